"""Reading import bodies: a JSON list, JSONL or CSV, with errors that name the row."""
import csv
import io
import json

from feedback.services.projects import PromptImportError

from django.conf import settings


def too_big_message() -> str:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    size = f"{limit // (1024 * 1024)} MiB" if limit >= 1024 * 1024 else f"{limit} bytes"
    return f"is larger than the {size} limit; split the import"


def parse_rows(body: bytes, content_type: str) -> list:
    if len(body) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:  # chunked uploads carry no Content-Length to check first
        raise PromptImportError(0, "body", too_big_message())
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PromptImportError(0, "body", "is not UTF-8") from None
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind == "text/csv":
        reader = csv.DictReader(io.StringIO(text))
        rows = []
        for row in reader:
            if row.get("messages"):
                try:
                    row["messages"] = json.loads(row["messages"])
                except json.JSONDecodeError as exc:
                    raise PromptImportError(reader.line_num - 1, "messages", f"is not JSON: {exc.msg}") from None
            if row.get("tags"):
                row["tags"] = [t.strip() for t in row["tags"].split(",") if t.strip()]
            rows.append({k: v for k, v in row.items() if v not in ("", None)})
        return rows
    if kind in ("application/x-ndjson", "application/jsonl", "application/x-jsonlines"):
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise PromptImportError(number, "line", f"is not JSON: {exc.msg}") from None
        return rows
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PromptImportError(0, "body", f"is not JSON: {exc.msg} (send a list, or JSONL/CSV with their content type)") from None
    if not isinstance(data, list):
        raise PromptImportError(0, "body", "must be a JSON list of rows")
    return data
