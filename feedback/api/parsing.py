"""Reading request bodies: every JSON body, and imports (a JSON list, JSONL or CSV).

Errors name the field (and the row, for imports) instead of surfacing later as a 500.
"""
import csv
import io
import json

from django.conf import settings
from rest_framework.exceptions import ValidationError

from feedback.services.projects import PromptImportError
from feedback.api.parsers import TOO_DEEP
from feedback.services.validation import json_problem


def object_body(data) -> dict:
    """A request body that must be a JSON object (settings, options), as a dict."""
    if not isinstance(data, dict):
        raise ValidationError({"body": [f"must be a JSON object, not {_json_kind(data)}"]})
    return data


def _json_kind(value) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "null" if value is None else type(value).__name__


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
                except RecursionError:
                    raise PromptImportError(reader.line_num - 1, "messages", TOO_DEEP) from None
                except json.JSONDecodeError as exc:
                    raise PromptImportError(reader.line_num - 1, "messages", f"is not JSON: {exc.msg}") from None
            if row.get("tags"):
                row["tags"] = [t.strip() for t in row["tags"].split(",") if t.strip()]
            rows.append({k: v for k, v in row.items() if v not in ("", None)})
        return _checked(rows)
    if kind in ("application/x-ndjson", "application/jsonl", "application/x-jsonlines"):
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except RecursionError:
                    raise PromptImportError(number, "line", TOO_DEEP) from None
                except json.JSONDecodeError as exc:
                    raise PromptImportError(number, "line", f"is not JSON: {exc.msg}") from None
        return _checked(rows)
    try:
        data = json.loads(text)
    except RecursionError:
        raise PromptImportError(0, "body", TOO_DEEP) from None
    except json.JSONDecodeError as exc:
        raise PromptImportError(0, "body", f"is not JSON: {exc.msg} (send a list, or JSONL/CSV with their content type)") from None
    if not isinstance(data, list):
        raise PromptImportError(0, "body", "must be a JSON list of rows")
    return _checked(data)


def _checked(rows: list) -> list:
    """The rows, once none holds text that cannot be stored (NUL, lone surrogates, deep nesting)."""
    for number, row in enumerate(rows, start=1):
        problem = json_problem(row)
        if problem:
            field, reason = problem
            raise PromptImportError(number, field or ("prompt" if isinstance(row, str) else "row"), reason)
    return rows
