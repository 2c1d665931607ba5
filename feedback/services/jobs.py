"""Background jobs besides rounds: comparison batches, generation for a checkpoint, export files.

Jobs share the run lifecycle of services/runs.py with rounds (claim, heartbeat, cancel,
reaping). Each kind writes its output only at its very end, in one step, so a job whose
worker died is simply queued again.
"""
import logging

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import transaction

from feedback.models import Checkpoint, Job, Project, Prompt
from feedback.selectors.checkpoints import active_policy
from feedback.selectors.comparisons import latest_batch
from feedback.services.checkpoints import checkpoint_verify
from feedback.services.errors import FieldError, int_in_range
from feedback.services.exports import export_options, export_lines_for, jsonl_chunks
from feedback.services.generation import comparisons_all_pairs, generation_config, prompts_for_batch
from feedback.services.generation_backend import OPENAI, server_config
from feedback.services.runs import RunProgress, run_cancel, run_enqueue, run_execute
from training.config import SEED_MAX, ConfigError
from training.progress import Hooks

logger = logging.getLogger(__name__)

MAX_GENERATE_PROMPTS = 64
MAX_GENERATE_TOKENS = 1024
INLINE_GENERATE_PROMPTS = 4
INLINE_GENERATE_TOKENS = 128


# the kinds that load a model, whose result records the device they ran on
MODEL_JOBS = {Job.Kind.BATCH, Job.Kind.GENERATE, Job.Kind.SETUP}


class JobError(FieldError):
    """Bad job parameters."""


def _enqueue(job: Job) -> Job:
    return run_enqueue(job)


def batch_params(project: Project, data: dict) -> dict:
    prompts = data.get("prompts", 16)
    if not int_in_range(prompts, 1, 10_000):
        raise JobError("prompts", "must be an integer between 1 and 10000")
    k = data.get("samples_per_prompt", 2)
    if not int_in_range(k, 2, 4):
        raise JobError("samples_per_prompt", "must be 2, 3 or 4 (every pair of samples becomes a comparison)")
    split = data.get("split", Prompt.Split.TRAIN)
    if split not in Prompt.Split.values:
        raise JobError("split", f"must be one of {', '.join(Prompt.Split.values)}")
    ids = data.get("prompt_ids")
    if ids is not None:
        if not isinstance(ids, list) or not ids or len(ids) > 10_000 or not all(int_in_range(i, 1, SEED_MAX) for i in ids):
            raise JobError("prompt_ids", "must be a non-empty list of at most 10000 prompt ids")
        found = set(Prompt.objects.filter(project=project, pk__in=ids).values_list("pk", flat=True))
        missing = sorted(set(ids) - found)
        if missing:
            raise JobError("prompt_ids", f"not prompts of this project: {missing[:10]}")
    try:
        generation = generation_config(project, data.get("generation"))
    except ConfigError as exc:
        raise JobError(exc.path("generation"), exc.reason) from None
    return {"prompts": prompts, "samples_per_prompt": k, "split": split, "prompt_ids": ids,
            "generation": generation.__dict__}


def job_batch_create(*, project: Project, data: dict, user: AbstractUser | None = None) -> Job:
    if project.archived_at is not None:
        raise JobError("project", "is archived; unarchive it first")
    params = batch_params(project, data)
    checkpoint = active_policy(project)
    server = server_config(project)
    if server is not None:
        # what the job will sample from (the key stays out of params)
        params["backend"] = {"kind": OPENAI, "base_url": server.base_url, "model": server.model}
    elif checkpoint is None:
        raise JobError("project", "has no active policy to sample from")
    with transaction.atomic():
        return _enqueue(Job.objects.create(kind=Job.Kind.BATCH, project=project, checkpoint=checkpoint,
                                           params=params, created_by=user))


def generate_params(data: dict) -> dict:
    prompts = data.get("prompts")
    if not isinstance(prompts, list) or not prompts:
        raise JobError("prompts", "must be a non-empty list of strings or message lists")
    if len(prompts) > MAX_GENERATE_PROMPTS:
        raise JobError("prompts", f"at most {MAX_GENERATE_PROMPTS} per request")
    from feedback.services.projects import PromptImportError, _messages_from_row

    messages = []
    for i, p in enumerate(prompts):
        try:
            messages.append(_messages_from_row(i + 1, {"messages": p} if isinstance(p, list) else {"prompt": p}))
        except PromptImportError as exc:
            raise JobError(f"prompts[{i}]", exc.message) from None
    max_new_tokens = data.get("max_new_tokens", 128)
    if not int_in_range(max_new_tokens, 1, MAX_GENERATE_TOKENS):
        raise JobError("max_new_tokens", f"must be an integer between 1 and {MAX_GENERATE_TOKENS}")
    temperature = data.get("temperature", 0.7)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 < temperature <= 5:
        raise JobError("temperature", "must be a number in (0, 5]")
    seed = data.get("seed")
    if seed is not None and not int_in_range(seed, 0, SEED_MAX):
        raise JobError("seed", f"must be an integer between 0 and {SEED_MAX} (or null)")
    return {"prompts": messages, "max_new_tokens": max_new_tokens, "temperature": float(temperature), "seed": seed}


def generate_is_small(params: dict) -> bool:
    return len(params["prompts"]) <= INLINE_GENERATE_PROMPTS and params["max_new_tokens"] <= INLINE_GENERATE_TOKENS


def generate_now(checkpoint: Checkpoint, params: dict, hooks: Hooks = Hooks()) -> list[dict]:
    from training.config import GenerationConfig
    from training.generation import generate_responses

    config = GenerationConfig(max_new_tokens=params["max_new_tokens"], temperature=params["temperature"],
                              seed=params["seed"])
    samples = generate_responses(checkpoint_verify(checkpoint), params["prompts"], config, hooks)
    return [{"prompt": p, "text": s.text, "token_count": s.token_count, "finished": s.finished}
            for p, s in zip(params["prompts"], samples)]


def job_generate_create(*, checkpoint: Checkpoint, params: dict, user: AbstractUser | None = None) -> Job:
    with transaction.atomic():
        return _enqueue(Job.objects.create(kind=Job.Kind.GENERATE, project=checkpoint.project, checkpoint=checkpoint,
                                           params=params, created_by=user))


def job_export_create(*, project: Project, params: dict, user: AbstractUser | None = None) -> Job:
    params = export_options(params)  # raises ExportError naming the field
    with transaction.atomic():
        return _enqueue(Job.objects.create(kind=Job.Kind.EXPORT, project=project, params=params, created_by=user))


def job_cancel(*, job: Job) -> Job:
    """Ask a job to stop: a queued one, or one whose worker is gone, ends at once."""
    return run_cancel(job)


def job_execute(job_id: int) -> Job | None:
    """Run a queued job (called by the worker; a second call does nothing)."""
    return run_execute(Job, job_id, first_status=Job.Status.RUNNING, body=_job_body)


def _job_body(job: Job, progress: RunProgress) -> dict:
    job = Job.objects.select_related("project", "checkpoint").get(pk=job.pk)
    hooks = progress.hooks()
    runner = JOB_RUNNERS[job.kind]
    result = runner(job, hooks)
    if job.kind in MODEL_JOBS and "backend" not in result:
        from training.device import describe as device_describe

        # the worker is in claimed_by (host:pid); the device says whether it sampled on a GPU
        result = {**result, "device": device_describe()}
    return {"result": result}


def _run_batch(job: Job, hooks: Hooks) -> dict:
    from training.config import GenerationConfig

    p = job.params
    if p.get("prompt_ids"):
        prompts = list(Prompt.objects.filter(project=job.project, pk__in=p["prompt_ids"]).order_by("id"))
    else:
        prompts = prompts_for_batch(job.project, p["prompts"], split=p["split"])
    # The backend is the one chosen when the job was queued: a job queued for local sampling
    # does not start calling a server set up since, nor the reverse.
    server = None
    if p.get("backend", {}).get("kind") == OPENAI:
        server = server_config(job.project)
        if server is None or (server.base_url, server.model) != (p["backend"]["base_url"], p["backend"]["model"]):
            raise JobError("generation_backend", "changed since this job was queued; queue a new batch")
    created = comparisons_all_pairs(
        project=job.project, prompts=prompts, checkpoint=job.checkpoint, samples_per_prompt=p["samples_per_prompt"],
        batch=latest_batch(job.project), config=GenerationConfig(**p["generation"]), params=p["generation"], hooks=hooks,
        server=server,
    )
    result = {"comparisons": len(created), "prompts": len(prompts)}
    if server is not None:
        result["backend"] = {"kind": OPENAI, "base_url": server.base_url, "model": server.model}
    return result


def _run_export(job: Job, hooks: Hooks) -> dict:
    fmt = job.params["format"]
    folder = settings.DATA_DIR / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"project-{job.project_id}-job-{job.pk}-{fmt}.jsonl"
    tmp = final.with_suffix(".part")
    rows = 0
    with open(tmp, "w", encoding="utf-8") as fh:
        for chunk in jsonl_chunks(export_lines_for(job.project, job.params)):
            fh.write(chunk)
            rows += chunk.count("\n")
            hooks.progress("export", rows, 0)
            hooks.check()
    tmp.rename(final)
    Job.objects.filter(pk=job.pk).update(file_path=str(final))
    return {"rows": rows, "bytes": final.stat().st_size}


def _run_generate(job: Job, hooks: Hooks) -> dict:
    return {"responses": generate_now(job.checkpoint, job.params, hooks)}


def _run_setup(job: Job, hooks: Hooks) -> dict:
    from feedback.services.projects import project_setup_run

    return project_setup_run(job, hooks)


def _run_ratings(job: Job, hooks: Hooks) -> dict:
    from feedback.services.leaderboard import leaderboard_job_run

    return leaderboard_job_run(job, hooks)


# What each kind of job does; a new kind of background work is a function here.
JOB_RUNNERS = {
    Job.Kind.RATINGS: _run_ratings,
    Job.Kind.SETUP: _run_setup,
    Job.Kind.BATCH: _run_batch,
    Job.Kind.GENERATE: _run_generate,
    Job.Kind.EXPORT: _run_export,
}
