"""Projects: their settings, prompts, imported pairs, members, archive, and the round-0 policy.

Creating a project registers its round-0 policy: at once when the base is a safetensors
folder (hashing it), or through a `setup` job when a GGUF must be converted first, since
that takes tens of seconds and must never run inside a request.
"""
import hashlib
from pathlib import Path

from django.contrib.auth.models import AbstractUser
from django.db import transaction
from django.utils import timezone

from feedback.models import Assignment, Checkpoint, Comparison, Job, Project, ProjectMembership, Prompt, Sample
from feedback.selectors.checkpoints import reference_policy
from feedback.services.checkpoints import checkpoint_register
from feedback.services.errors import FieldError, RowError, int_in_range
from feedback.services.generation_backend import api_key_clean, backend_clean
from feedback.services.model_paths import gguf_in, policy_base_ensure, policy_base_source
from feedback.services.validation import (
    MODEL_NAME_MAX_CHARS, PROMPT_MAX_CHARS, RESPONSE_MAX_CHARS, TAG_MAX_CHARS, TAGS_MAX, text_problem,
)
from training.config import ConfigError, GuardConfig, config_from_dict
from training.progress import NO_HOOKS, Hooks

GUIDELINES_MAX_BYTES = 100_000
NAME_MAX_LENGTH = 200
PREVIEW_ROWS = 10
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt")


class ProjectError(FieldError):
    """A project setting or action that cannot be accepted."""


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


def _split_and_tags(number: int, row) -> tuple[str | None, list[str]]:
    """A row's own split (None: not given) and tags, checked."""
    if not isinstance(row, dict):
        return None, []
    split = row.get("split")
    if split is not None and split not in Prompt.Split.values:
        raise PromptImportError(number, "split", f"must be one of {', '.join(Prompt.Split.values)}")
    tags = row.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise PromptImportError(number, "tags", "must be a list of strings")
    if len(tags) > TAGS_MAX:
        raise PromptImportError(number, "tags", f"at most {TAGS_MAX} tags per prompt")
    for i, tag in enumerate(tags):
        if len(tag) > TAG_MAX_CHARS:
            raise PromptImportError(number, f"tags[{i}]", f"is longer than {TAG_MAX_CHARS} characters")
        _check_text(number, f"tags[{i}]", tag)
    return split, tags


def import_options(*, holdout_percent=0, tags=()) -> tuple[int, list[str]]:
    """Check the options an upload form adds to every row: a held-out share and tags."""
    if not int_in_range(holdout_percent, 0, 100):
        raise ProjectError("holdout_percent", "must be an integer between 0 and 100")
    tags = [t.strip() for t in tags if isinstance(t, str) and t.strip()]
    if len(tags) > 20 or any(len(t) > 50 or text_problem(t) for t in tags):
        raise ProjectError("tags", "at most 20 tags of at most 50 characters each, without NUL or lone surrogates")
    return holdout_percent, tags


def _apply_split(prepared: list[dict], holdout_percent: int) -> None:
    """Rows without their own split: hold out `holdout_percent` of them, chosen by a hash of
    their text, so the preview and the import pick the same rows and a re-upload does too."""
    undecided = [r for r in prepared if r["split"] is None]
    held = round(len(undecided) * holdout_percent / 100)
    if not held:  # nothing held out: no need to rank 100,000 rows by hash
        for r in undecided:
            r["split"] = Prompt.Split.TRAIN
        return
    ranked = sorted(undecided, key=lambda r: hashlib.sha256(repr(r["messages"]).encode()).hexdigest())
    for i, r in enumerate(ranked):
        r["split"] = Prompt.Split.HELD_OUT if i < held else Prompt.Split.TRAIN


def prompt_rows_prepare(rows, *, holdout_percent: int = 0, tags=()) -> list[dict]:
    """Validate import rows into {messages, split, tags}; the first bad row raises, naming
    the row (1-based), the field and the reason."""
    holdout_percent, extra_tags = import_options(holdout_percent=holdout_percent, tags=tags)
    if not isinstance(rows, list):
        raise PromptImportError(0, "body", "must be a list of rows")
    prepared = []
    for number, row in enumerate(rows, start=1):
        messages = _messages_from_row(number, row)
        split, row_tags = _split_and_tags(number, row)
        prepared.append({"messages": messages, "split": split, "tags": list(dict.fromkeys(row_tags + extra_tags))})
    _apply_split(prepared, holdout_percent)
    return prepared


def prompts_import(*, project: Project, rows: list, source: str = "", holdout_percent: int = 0,
                   tags=()) -> list[Prompt]:
    """Import prompts atomically: one bad row rejects the whole import, naming the row (1-based)."""
    prepared = prompt_rows_prepare(rows, holdout_percent=holdout_percent, tags=tags)
    with transaction.atomic():
        return Prompt.objects.bulk_create(
            [Prompt(project=project, source=source, **row) for row in prepared], batch_size=1000
        )


def _preview(prepared: list[dict]) -> dict:
    splits = {value: 0 for value in Prompt.Split.values}
    for row in prepared:
        splits[row["split"]] += 1
    return {"count": len(prepared), "rows": prepared[:PREVIEW_ROWS], "splits": splits}


def prompts_preview(*, rows, holdout_percent: int = 0, tags=()) -> dict:
    """What an import would create, without creating it: the row count, the split counts
    and the first rows as they will be stored (raises like the import on a bad row)."""
    return _preview(prompt_rows_prepare(rows, holdout_percent=holdout_percent, tags=tags))


def project_policy_init(*, project: Project) -> tuple[Checkpoint, bool]:
    """Register the project's round-0 policy (its base model) as the active checkpoint.

    Converts a GGUF base (the bundled SmolLM2) once when needed, which is slow: requests
    call `project_policy_setup` instead. Returns (checkpoint, created).
    """
    existing = reference_policy(project)
    if existing is not None:
        return existing, False
    path, _ = policy_base_ensure(project)
    with transaction.atomic():
        # Two set-ups of one project (a job and demo_setup, say) must not both register a
        # round 0: the project row lock makes the second see the first's checkpoint.
        Project.objects.select_for_update().get(pk=project.pk)
        existing = reference_policy(project)
        if existing is not None:
            return existing, False
        checkpoint = checkpoint_register(
            project=project, kind=Checkpoint.Kind.POLICY, path=path, name="round 0", activate=True,
        )
    return checkpoint, True


def project_setup_pending(project: Project) -> Job | None:
    """The project's queued or running set-up job, if any."""
    return Job.objects.filter(
        project=project, kind=Job.Kind.SETUP, status__in=[Job.Status.QUEUED, Job.Status.RUNNING]
    ).first()


def project_policy_setup(*, project: Project, user: AbstractUser | None = None) -> Job | None:
    """Register the round-0 policy now when its base is a ready safetensors folder; when a
    GGUF must be converted first, queue a `setup` job instead (or return the one queued).

    Returns the job, or None when the policy is registered (now or before).
    """
    if reference_policy(project) is not None:
        return None
    _, gguf = policy_base_source(project)
    if gguf is None:
        project_policy_init(project=project)
        return None
    pending = project_setup_pending(project)
    if pending is not None:
        return pending
    with transaction.atomic():
        job = Job.objects.create(kind=Job.Kind.SETUP, project=project, created_by=user,
                                 params={"convert": gguf.name})
        from feedback.services.runs import run_enqueue

        run_enqueue(job)
    return job


def project_setup_run(job: Job, hooks: Hooks = NO_HOOKS) -> dict:
    """The `setup` job's work: convert the GGUF base once, then register round 0."""
    hooks.progress("converting", 0, 2)
    hooks.check()
    _, converted = policy_base_ensure(job.project)
    hooks.check()
    hooks.progress("registering", 1, 2)
    checkpoint, created = project_policy_init(project=job.project)
    hooks.progress("registered", 2, 2)
    return {"checkpoint": checkpoint.pk, "converted": converted, "registered": created}


def model_folder_check(field: str, value, *, allow_gguf: bool) -> str:
    """A base model setting: empty (the bundled model), a folder with config.json and
    weights, or (for policies) a .gguf file or a folder holding one. Nothing from a hub."""
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or len(value) > 500:
        raise ProjectError(field, "must be a path of at most 500 characters")
    value = value.strip()
    try:
        path = Path(value).expanduser()
        exists = path.exists()
    except (OSError, ValueError):  # NUL bytes, names too long, ...
        exists = False
    if not exists:
        raise ProjectError(field, f"{value} does not exist on the server (a local model folder; hub ids are not fetched)")
    if not path.is_absolute():
        raise ProjectError(field, "must be an absolute path")
    if allow_gguf and gguf_in(path) is not None:
        return str(path)
    if path.is_file() and path.suffix == ".gguf":
        raise ProjectError(field, "a .gguf file cannot be a reward base; give a folder with config.json and weights")
    if not path.is_dir() or not (path / "config.json").is_file():
        also = " or a .gguf file" if allow_gguf else ""
        raise ProjectError(field, f"must be a folder holding config.json and weights{also}")
    if not any(next(path.glob(pattern), None) for pattern in WEIGHT_PATTERNS):
        raise ProjectError(field, f"{value} has config.json but no weights (*.safetensors or *.bin)")
    return str(path)


def project_fields_clean(data: dict, *, project: Project | None = None) -> dict:
    """Check the editable settings present in `data`; a new project needs a name.

    Unknown keys are ignored (the API's serializer lists what may be sent).
    """
    from feedback.services.generation import generation_config

    if not isinstance(data, dict):
        raise ProjectError("body", "must be an object")
    cleaned = {}
    if "name" in data or project is None:
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ProjectError("name", "is required")
        name = name.strip()
        if len(name) > NAME_MAX_LENGTH:
            raise ProjectError("name", f"is longer than {NAME_MAX_LENGTH} characters")
        taken = Project.objects.filter(name__iexact=name)
        if project is not None:
            taken = taken.exclude(pk=project.pk)
        if taken.exists():
            raise ProjectError("name", "another project has this name")
        cleaned["name"] = name
    if "guidelines" in data:
        guidelines = data["guidelines"] if data["guidelines"] is not None else ""
        if not isinstance(guidelines, str):
            raise ProjectError("guidelines", "must be text (markdown)")
        if len(guidelines.encode()) > GUIDELINES_MAX_BYTES:
            raise ProjectError("guidelines", f"is larger than {GUIDELINES_MAX_BYTES // 1000} KB")
        cleaned["guidelines"] = guidelines
    if "votes_per_comparison" in data:
        if not int_in_range(data["votes_per_comparison"], 1, 100):
            raise ProjectError("votes_per_comparison", "must be an integer between 1 and 100")
        cleaned["votes_per_comparison"] = data["votes_per_comparison"]
    if "reveal_models" in data:
        if not isinstance(data["reveal_models"], bool):
            raise ProjectError("reveal_models", "must be true or false")
        cleaned["reveal_models"] = data["reveal_models"]
    if "policy_base_model" in data:
        cleaned["policy_base_model"] = model_folder_check("policy_base_model", data["policy_base_model"], allow_gguf=True)
    if "reward_base_model" in data:
        cleaned["reward_base_model"] = model_folder_check("reward_base_model", data["reward_base_model"], allow_gguf=False)
    if "generation_settings" in data:
        settings_ = data["generation_settings"]
        if not isinstance(settings_, dict):
            raise ProjectError("generation_settings", "must be an object")
        try:
            generation_config(Project(generation_settings=settings_))
        except ConfigError as exc:
            raise ProjectError(f"generation_settings.{exc.field}", exc.reason) from None
        cleaned["generation_settings"] = settings_
    if "generation_backend" in data:
        cleaned["generation_backend"] = backend_clean(data["generation_backend"])
    if "generation_api_key" in data:
        cleaned["generation_api_key"] = api_key_clean(data["generation_api_key"])
    if "guard_settings" in data:
        guards = data["guard_settings"]
        if not isinstance(guards, dict):
            raise ProjectError("guard_settings", "must be an object")
        try:
            config_from_dict(GuardConfig, guards)
        except ConfigError as exc:
            raise ProjectError(f"guard_settings.{exc.field}", exc.reason) from None
        cleaned["guard_settings"] = guards
    cleaned.update(_eval_shares_clean(data, project))
    return cleaned


EVAL_SHARE_FIELDS = ("eval_parent_share", "eval_round0_share")


def _eval_shares_clean(data: dict, project: Project | None) -> dict:
    """The held-out evaluation shares of a batch: each a fraction 0..1, together at most 1
    (what is left of the batch is train prompts, new policy vs its parent)."""
    cleaned = {}
    for field in EVAL_SHARE_FIELDS:
        if field not in data:
            continue
        value = data[field]
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ProjectError(field, "must be a number between 0 and 1") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ProjectError(field, "must be a number between 0 and 1")
        cleaned[field] = float(value)
    if cleaned:
        current = project or Project()
        shares = {f: cleaned.get(f, getattr(current, f)) for f in EVAL_SHARE_FIELDS}
        if sum(shares.values()) > 1.0 + 1e-9:
            field = next(f for f in reversed(EVAL_SHARE_FIELDS) if f in cleaned)
            raise ProjectError(field, f"eval_parent_share + eval_round0_share must be at most 1, not "
                                      f"{shares['eval_parent_share']:g} + {shares['eval_round0_share']:g}")
    return cleaned


def project_create(*, data: dict, user: AbstractUser | None = None) -> tuple[Project, Job | None]:
    """Create a project and register (or queue the set-up of) its round-0 policy.

    Returns (project, setup job or None when round 0 is registered already).
    """
    fields = project_fields_clean(data)
    with transaction.atomic():
        project = Project.objects.create(**fields)
        job = project_policy_setup(project=project, user=user)
    return project, job


def project_update(*, project: Project, data: dict, user: AbstractUser | None = None) -> tuple[Project, Job | None]:
    """Change a project's settings. The policy base is fixed once round 0 is registered
    (every later checkpoint descends from it); until then, saving retries the set-up."""
    fields = project_fields_clean(data, project=project)
    base_changes = "policy_base_model" in fields and fields["policy_base_model"] != project.policy_base_model
    if base_changes and reference_policy(project) is not None:
        raise ProjectError("policy_base_model", "cannot change once round 0 is registered; create a new project")
    with transaction.atomic():
        for name, value in fields.items():
            setattr(project, name, value)
        if fields:
            project.save(update_fields=list(fields))
        job = None
        if reference_policy(project) is None:
            job = project_policy_setup(project=project, user=user)
    return project, job


def project_archive(*, project: Project) -> Project:
    """Hide the project from annotators and stop new rounds and batches (reversible)."""
    Project.objects.filter(pk=project.pk, archived_at__isnull=True).update(archived_at=timezone.now())
    project.refresh_from_db(fields=["archived_at"])
    return project


def project_unarchive(*, project: Project) -> Project:
    Project.objects.filter(pk=project.pk).update(archived_at=None)
    project.archived_at = None
    return project


def project_ensure_not_archived(project: Project, error=ProjectError) -> None:
    """Raise `error` naming the project when it is archived (no new rounds or batches)."""
    if project.archived_at is not None:
        raise error("project", "is archived; unarchive it first")


def membership_add(*, project: Project, user: AbstractUser, role: str = ProjectMembership.Role.ANNOTATOR
                   ) -> tuple[ProjectMembership, bool]:
    """Give `user` access to `project` (or change their role). Returns (membership, created)."""
    if role not in ProjectMembership.Role.values:
        raise ProjectError("role", f"must be one of {', '.join(ProjectMembership.Role.values)}")
    if not user.is_active:
        raise ProjectError("user", "is deactivated")
    membership, created = ProjectMembership.objects.update_or_create(project=project, user=user,
                                                                     defaults={"role": role})
    return membership, created


def membership_remove(*, project: Project, user: AbstractUser) -> bool:
    """Take `user` off `project`; their live reservations return to the pool at once
    instead of blocking a slot until they expire. Their votes stay."""
    with transaction.atomic():
        deleted, _ = ProjectMembership.objects.filter(project=project, user=user).delete()
        Assignment.objects.filter(annotator=user, comparison__project=project,
                                  status=Assignment.Status.RESERVED).delete()
    return bool(deleted)


def refresh_planner_statistics() -> None:
    """After a bulk import, let PostgreSQL's planner see the new rows now.

    Until autovacuum's next ANALYZE, a fresh project looks empty to the planner, which
    then nests loops over all its comparisons in the queue's queries (tens of ms each).
    Only the comparison table: the queue plans over it (and assignments); prompts and
    samples are reached by primary key, and analysing them too cost 0.5 s an import.
    """
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE feedback_comparison")


def comparison_rows_prepare(rows, *, holdout_percent: int = 0, tags=()) -> list[dict]:
    """Validate imported pairs ({prompt, response_a, response_b, model_a?, model_b?, split?,
    tags?}) into {messages, split, tags, response_a, response_b, model_a, model_b}."""
    holdout_percent, extra_tags = import_options(holdout_percent=holdout_percent, tags=tags)
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
        models = {}
        for field, default in (("model_a", "imported-a"), ("model_b", "imported-b")):
            value = row.get(field, default)
            if not isinstance(value, str) or not value.strip() or len(value) > MODEL_NAME_MAX_CHARS:
                raise PromptImportError(
                    number, field, f"must be a non-empty string of at most {MODEL_NAME_MAX_CHARS} characters")
            _check_text(number, field, value)
            models[field] = value.strip()
        split, row_tags = _split_and_tags(number, row)
        gold = row.get("gold") or ""
        if gold not in ("", "a", "b", "tie", "both_bad"):
            raise PromptImportError(number, "gold", "must be a, b, tie or both_bad (the correct answer) or empty")
        prepared.append({"messages": messages, "split": split, "tags": list(dict.fromkeys(row_tags + extra_tags)),
                         "response_a": row["response_a"], "response_b": row["response_b"], "gold": gold, **models})
    _apply_split(prepared, holdout_percent)
    return prepared


def comparisons_preview(*, rows, holdout_percent: int = 0, tags=()) -> dict:
    """What a pair import would create, without creating it (see prompts_preview)."""
    return _preview(comparison_rows_prepare(rows, holdout_percent=holdout_percent, tags=tags))


def comparisons_import(*, project: Project, rows: list, source: str = "import", holdout_percent: int = 0,
                       tags=()) -> int:
    """Import pairs written elsewhere ({prompt, response_a, response_b, model_a?, model_b?, gold?})
    atomically: one bad row stores nothing. Returns how many pairs were imported."""
    from django.db import connection

    prepared = comparison_rows_prepare(rows, holdout_percent=holdout_percent, tags=tags)
    with transaction.atomic():
        if connection.vendor in ("postgresql", "sqlite"):
            _pairs_write(project, prepared, source)
        else:  # not a database this project supports today; kept as the reference the tests compare with
            _pairs_bulk_create(project, prepared, source)
    if len(prepared) >= 1000:
        refresh_planner_statistics()
    return len(prepared)


def _pairs_bulk_create(project: Project, prepared: list[dict], source: str) -> None:
    """Any database: a prompt, two samples and a comparison per pair, by bulk inserts in
    chunks (100,000 pairs are 400,000 rows)."""

    for start in range(0, len(prepared), 2000):
        chunk = prepared[start:start + 2000]
        prompts = Prompt.objects.bulk_create(
            [Prompt(project=project, messages=r["messages"], split=r["split"], tags=r["tags"], source=source)
             for r in chunk]
        )
        samples = Sample.objects.bulk_create([
            Sample(prompt=prompt, model_name=r[f"model_{side}"], text=r[f"response_{side}"])
            for prompt, r in zip(prompts, chunk)
            for side in "ab"
        ])
        Comparison.objects.bulk_create([
            Comparison(project=project, prompt=prompt, sample_a=samples[2 * i], sample_b=samples[2 * i + 1],
                       votes_needed=project.votes_per_comparison, gold_choice=r["gold"])
            for i, (prompt, r) in enumerate(zip(prompts, chunk))
        ])


PAIR_COLUMNS = {
    "prompt": "id, project_id, messages, source, split, tags, created_at",
    "sample": "id, prompt_id, checkpoint_id, model_name, text, generation_params, token_count, finished, created_at",
    "comparison": "id, project_id, prompt_id, sample_a_id, sample_b_id, batch, round_id, votes_needed, status, "
                  "gold_choice, created_at",
}
"""The columns `_pair_rows` fills, per table: every column, so no default is left to the ORM."""


def _pair_rows(project: Project, prepared: list[dict], source: str, ids: dict, now) -> dict:
    """The rows of the three tables for `prepared` pairs, as iterators in PAIR_COLUMNS
    order, with the values the ORM would write (defaults included; test_pair_import
    compares the two)."""
    import json

    dumps = json.dumps  # what JSONField stores
    prompt_ids, sample_ids = ids["prompt"], ids["sample"]
    votes_needed, status = project.votes_per_comparison, Comparison.Status.OPEN.value
    return {
        "prompt": ((pk, project.pk, dumps(r["messages"]), source, r["split"], dumps(r["tags"]), now)
                   for pk, r in zip(prompt_ids, prepared)),
        "sample": ((sample_ids[2 * i + k], prompt_id, None, r[f"model_{side}"], r[f"response_{side}"], "{}", 0, True,
                    now)
                   for i, (prompt_id, r) in enumerate(zip(prompt_ids, prepared)) for k, side in enumerate("ab")),
        "comparison": ((pk, project.pk, prompt_id, sample_ids[2 * i], sample_ids[2 * i + 1], 0, None, votes_needed,
                        status, r["gold"], now)
                       for i, (pk, prompt_id, r) in enumerate(zip(ids["comparison"], prompt_ids, prepared))),
    }


PAIR_TABLES = {"prompt": Prompt, "sample": Sample, "comparison": Comparison}
PAIR_COUNTS = {"prompt": 1, "sample": 2, "comparison": 1}
"""Rows per pair in each table."""


def _reserve_ids(cursor, vendor: str, table: str, count: int) -> list[int]:
    """`count` fresh primary keys of `table`, in one round trip, that no other writer can
    take (ids reserved and then rolled back are skipped, as with any insert).

    PostgreSQL: from the table's sequence. SQLite: by moving the table's AUTOINCREMENT
    counter past them; that UPDATE takes the database's one write lock, which the
    transaction then holds until it ends, and SQLite never hands out an id at or below
    the counter.
    """
    if vendor == "postgresql":
        # the sequence's name looked up once (a subquery), not once per id: 9x less server time
        cursor.execute(f"SELECT nextval((SELECT pg_get_serial_sequence('{table}', 'id'))::regclass) "
                       "FROM generate_series(1, %s)", [count])
        return sorted(row[0] for row in cursor.fetchall())
    cursor.execute("INSERT INTO sqlite_sequence (name, seq) SELECT %s, 0 "
                   "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = %s)", [table, table])
    cursor.execute(f"UPDATE sqlite_sequence SET seq = max(seq, (SELECT coalesce(max(id), 0) FROM {table})) + %s "
                   "WHERE name = %s RETURNING seq", [count, table])
    top = cursor.fetchone()[0]
    return list(range(top - count + 1, top + 1))


def _pairs_write(project: Project, prepared: list[dict], source: str) -> None:
    """The rows of `_pairs_bulk_create`, written without the ORM: ids reserved first, so
    each prompt's samples and comparison can name it without reading anything back.

    PostgreSQL: three COPY streams, whatever the number of pairs. SQLite: one
    executemany per table. The ORM path costs a round trip and a RETURNING list per
    ~100 to 2,000 rows of each table, and builds a model object per row: bench/
    profile_requests.py compares them.
    """
    from django.db import IntegrityError, connection

    vendor = connection.vendor
    now = connection.ops.adapt_datetimefield_value(timezone.now())  # SQLite stores text, in UTC
    # wrap_database_errors: psycopg's errors raised as Django's (IntegrityError, ...), as on any query
    with connection.cursor() as wrapper, connection.wrap_database_errors:
        ids = {name: _reserve_ids(wrapper, vendor, PAIR_TABLES[name]._meta.db_table, PAIR_COUNTS[name] * len(prepared))
               for name in PAIR_TABLES}
        rows = _pair_rows(project, prepared, source, ids, now)
        restore_role = _foreign_key_triggers_off(wrapper) if vendor == "postgresql" else None
        for name, model in PAIR_TABLES.items():
            table, columns = model._meta.db_table, PAIR_COLUMNS[name]
            if vendor == "postgresql":
                from psycopg.copy import QueuedLibpqWriter

                # a writer thread sends while this one formats rows: the server works meanwhile
                with wrapper.cursor.copy(f"COPY {table} ({columns}) FROM STDIN",
                                         writer=QueuedLibpqWriter(wrapper.cursor)) as copy:
                    for row in rows[name]:
                        copy.write_row(row)
                if wrapper.cursor.rowcount != len(ids[name]):  # what the references count on
                    raise IntegrityError(f"COPY wrote {wrapper.cursor.rowcount} rows of {table}, "
                                         f"not {len(ids[name])}")
            else:
                placeholders = ", ".join(["%s"] * (columns.count(",") + 1))
                # a list: Django's debug cursor (query counting) takes len() of it
                wrapper.executemany(f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", list(rows[name]))
        if restore_role is not None:
            wrapper.execute("SELECT set_config('session_replication_role', %s, true)", [restore_role])
            # The one row outside the import that its rows point at, locked as each trigger
            # call would have locked it, and as late: from here to the commit, so that page
            # views locking the project (leaderboard, playground) do not wait for the COPYs.
            # Deleted meanwhile: the import fails, as its deferred checks would have.
            wrapper.execute(f"SELECT 1 FROM {Project._meta.db_table} WHERE id = %s FOR KEY SHARE", [project.pk])
            if wrapper.fetchone() is None:
                raise IntegrityError(f"project {project.pk} does not exist (deleted while importing?)")


def _foreign_key_triggers_off(cursor) -> str | None:
    """On PostgreSQL, turn off the foreign-key triggers of the rows this import writes,
    because what they check holds by construction: 7 trigger calls per pair took 40 % of
    a 20,000-pair import (bench/profile_requests.py). Returns the setting to restore right
    after the writes, or None when this database role may not (then the triggers run as
    usual, and the import is slower).

    Off for this transaction only (session_replication_role set locally; a superuser, or
    a role granted SET on it, may), and only while the three COPYs run: the way
    pg_restore --disable-triggers loads rows whose references it knows to be sound. Every
    reference written names either a row of this same import (its ids reserved from the
    sequences above, its rows written by COPYs that fail whole or write every row; no
    other transaction can see or delete them before commit) or the project, whose row the
    caller locks after the writes as each trigger call would lock it (FOR KEY SHARE:
    deleting the project then waits for the import to end, and fails on its prompts, whose
    triggers in the deleting session are on). The round and checkpoint columns are NULL.
    CHECK and UNIQUE constraints are not triggers and hold as always. Tables with triggers
    of their own (not the foreign keys') keep every trigger on.
    """
    from django.db import connection

    privilege = "has_parameter_privilege('session_replication_role', 'SET')" if connection.pg_version >= 150000 \
        else "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)"
    # The setting turns off every ordinary trigger, not only the foreign keys' (which are
    # internal): a trigger someone added to these tables (an audit log) keeps them all on.
    cursor.execute(f"SELECT current_setting('session_replication_role'), {privilege}, EXISTS ("
                   "SELECT 1 FROM pg_trigger WHERE tgrelid = ANY(%s::regclass[]) AND NOT tgisinternal)",
                   [[model._meta.db_table for model in PAIR_TABLES.values()]])
    current, allowed, own_triggers = cursor.fetchone()
    if not allowed or current != "origin" or own_triggers:
        return None
    cursor.execute("SELECT set_config('session_replication_role', 'replica', true)")
    return current
