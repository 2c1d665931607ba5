"""Projects, their prompts and their first checkpoint."""
from django.db import transaction

from feedback.models import Checkpoint, Project, Prompt
from feedback.selectors.checkpoints import reference_policy
from feedback.services.checkpoints import checkpoint_register
from feedback.services.errors import RowError
from feedback.services.model_paths import policy_base_ensure
from feedback.services.validation import (
    MODEL_NAME_MAX_CHARS, PROMPT_MAX_CHARS, RESPONSE_MAX_CHARS, TAG_MAX_CHARS, TAGS_MAX, text_problem,
)

ROLES = {"system", "user", "assistant"}


class PromptImportError(RowError):
    """A row that cannot be imported; the message names the row, the field and the reason."""


def _messages_from_row(row_number: int, row) -> list[dict]:
    if isinstance(row, str):
        row = {"prompt": row}
    if not isinstance(row, dict):
        raise PromptImportError(row_number, "prompt", "must be a string or an object")
    if "messages" in row:
        messages = row["messages"]
        if not isinstance(messages, list) or not messages:
            raise PromptImportError(row_number, "messages", "must be a non-empty list of {role, content}")
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str) or m["role"] not in ROLES \
                    or not isinstance(m.get("content"), str):
                raise PromptImportError(row_number, f"messages[{i}]", "needs role (system/user/assistant) and string content")
            if not m["content"].strip():
                raise PromptImportError(row_number, f"messages[{i}].content", "is empty")
            _check_text(row_number, f"messages[{i}].content", m["content"])
        if messages[-1]["role"] != "user":
            raise PromptImportError(row_number, "messages", "must end with a user turn")
        # one limit for a prompt however it is written: a conversation is not a way around it
        if sum(len(m["content"]) for m in messages) > PROMPT_MAX_CHARS:
            raise PromptImportError(row_number, "messages", f"are longer than {PROMPT_MAX_CHARS} characters in all")
        return [{"role": m["role"], "content": m["content"]} for m in messages]
    text = row.get("prompt")
    if not isinstance(text, str) or not text.strip():
        raise PromptImportError(row_number, "prompt", "is missing or empty")
    if len(text) > PROMPT_MAX_CHARS:
        raise PromptImportError(row_number, "prompt", f"is longer than {PROMPT_MAX_CHARS} characters")
    _check_text(row_number, "prompt", text)
    return [{"role": "user", "content": text.strip()}]


def _check_text(row_number: int, field: str, value: str) -> None:
    """Refuse text no database can store (NUL, lone surrogates), naming row and field."""
    reason = text_problem(value)
    if reason:
        raise PromptImportError(row_number, field, reason)


def _tags_from_row(row_number: int, row) -> list[str]:
    tags = row.get("tags", []) if isinstance(row, dict) else []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise PromptImportError(row_number, "tags", "must be a list of strings")
    if len(tags) > TAGS_MAX:
        raise PromptImportError(row_number, "tags", f"at most {TAGS_MAX} tags per prompt")
    for i, tag in enumerate(tags):
        if len(tag) > TAG_MAX_CHARS:
            raise PromptImportError(row_number, f"tags[{i}]", f"is longer than {TAG_MAX_CHARS} characters")
        _check_text(row_number, f"tags[{i}]", tag)
    return tags


def prompts_import(*, project: Project, rows: list, source: str = "") -> list[Prompt]:
    """Import prompts atomically: one bad row rejects the whole import, naming the row (1-based)."""
    prepared = []
    for number, row in enumerate(rows, start=1):
        messages = _messages_from_row(number, row)
        split = row.get("split", Prompt.Split.TRAIN) if isinstance(row, dict) else Prompt.Split.TRAIN
        if split not in Prompt.Split.values:
            raise PromptImportError(number, "split", f"must be one of {', '.join(Prompt.Split.values)}")
        tags = _tags_from_row(number, row)
        prepared.append(Prompt(project=project, messages=messages, split=split, tags=tags, source=source))
    with transaction.atomic():
        return Prompt.objects.bulk_create(prepared, batch_size=1000)


def project_policy_init(*, project: Project) -> tuple[Checkpoint, bool]:
    """Register the project's round-0 policy (its base model) as the active checkpoint.

    Converts the bundled SmolLM2 once when it is the base. Returns (checkpoint, created).
    """
    existing = reference_policy(project)
    if existing is not None:
        return existing, False
    path, _ = policy_base_ensure(project)
    checkpoint = checkpoint_register(
        project=project, kind=Checkpoint.Kind.POLICY, path=path, name="round 0", activate=True,
    )
    return checkpoint, True


def refresh_planner_statistics() -> None:
    """After a bulk import, let PostgreSQL's planner see the new rows now.

    Until autovacuum's next ANALYZE, a fresh project looks empty to the planner, which
    then nests loops over all its comparisons in the queue's queries (tens of ms each).
    """
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE feedback_prompt, feedback_sample, feedback_comparison")


def comparisons_import(*, project: Project, rows: list, source: str = "import") -> list:
    """Import pairs written elsewhere ({prompt, response_a, response_b, model_a?, model_b?}) atomically."""
    from feedback.models import Comparison, Sample

    if not isinstance(rows, list):
        raise PromptImportError(0, "body", "must be a list of objects")
    prepared = []
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise PromptImportError(number, "row", "must be an object")
        prompt_source = {"messages": row["prompt"]} if isinstance(row.get("prompt"), list) else {"prompt": row.get("prompt")}
        messages = _messages_from_row(number, prompt_source)
        for field in ("response_a", "response_b"):
            value = row.get(field)
            if not isinstance(value, str) or not value.strip():
                raise PromptImportError(number, field, "is missing or empty")
            if len(value) > RESPONSE_MAX_CHARS:
                raise PromptImportError(number, field, f"is longer than {RESPONSE_MAX_CHARS} characters")
            _check_text(number, field, value)
        models = []
        for field, default in (("model_a", "imported-a"), ("model_b", "imported-b")):
            value = row.get(field, default)
            if not isinstance(value, str) or not value.strip() or len(value) > MODEL_NAME_MAX_CHARS:
                raise PromptImportError(
                    number, field, f"must be a non-empty string of at most {MODEL_NAME_MAX_CHARS} characters")
            _check_text(number, field, value)
            models.append(value.strip())
        prepared.append((messages, row["response_a"], row["response_b"], models))
    created = []
    # bulk inserts in chunks: 100,000 pairs are 400,000 rows
    with transaction.atomic():
        for start in range(0, len(prepared), 2000):
            chunk = prepared[start:start + 2000]
            prompts = Prompt.objects.bulk_create(
                [Prompt(project=project, messages=messages, source=source) for messages, *_ in chunk]
            )
            samples = Sample.objects.bulk_create([
                Sample(prompt=prompt, model_name=model, text=text)
                for prompt, (_, ra, rb, (ma, mb)) in zip(prompts, chunk)
                for text, model in ((ra, ma), (rb, mb))
            ])
            created += Comparison.objects.bulk_create([
                Comparison(project=project, prompt=prompt, sample_a=samples[2 * i], sample_b=samples[2 * i + 1],
                           votes_needed=project.votes_per_comparison)
                for i, prompt in enumerate(prompts)
            ])
    if len(created) >= 1000:
        refresh_planner_statistics()
    return created
