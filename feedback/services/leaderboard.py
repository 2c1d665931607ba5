"""The project leaderboard: computed on a worker, cached, never computed inside a request.

A request asks `leaderboard_current`: it answers at once with the last computed
leaderboard (from the cache, or from the last `ratings` job's result when the cache is
cold or per-process) and, when new votes made it stale, queues one job to recompute it.
The job stores its result on its row, so every web process sees it, and in the cache.
"""
import logging

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from feedback.models import Job, Project
from feedback.selectors.leaderboard import leaderboard_models, leaderboard_rows, leaderboard_state
from feedback.services.runs import QueueUnavailable, run_enqueue
from training.ratings import leaderboard, pair_counts

logger = logging.getLogger(__name__)

RESAMPLES = 1000
SEED = 20240613
CACHE_SECONDS = 7 * 24 * 3600


def _cache_key(project_id: int, state: dict) -> str:
    excluded = ",".join(map(str, state.get("excluded", [])))
    return f"leaderboard:{project_id}:{state['max_vote_id']}:{state['votes']}:{excluded}"


def leaderboard_compute(project: Project, *, resamples: int = RESAMPLES, seed: int = SEED) -> dict:
    """Compute the leaderboard from the votes now (seconds for a million votes): for workers and tests."""
    state = leaderboard_state(project)  # read first: votes landing during the fit only make it stale sooner
    known, anchor = leaderboard_models(project)
    rows = leaderboard_rows(project)
    order = [m["key"] for m in known]
    counts = pair_counts(rows, models=order)
    anchor_index = counts.models.index(anchor) if anchor in counts.models else 0
    board = leaderboard(counts, anchor=anchor_index, resamples=resamples, seed=seed)
    info = {m["key"]: m for m in known}
    # checkpoints nobody has voted on yet are listed too, without a rating
    rated = {m["model"] for m in board["models"]}
    board["models"] += [{"model": k, "rating": None, "low": None, "high": None, "votes": 0, "judged": 0,
                         "both_bad": 0, "win_rate": None, "anchor": False, "linked": False}
                        for k in order if k not in rated]
    for m in board["models"]:
        meta = info.get(m["model"], {})
        m["name"] = meta.get("name", m["model"])
        m["round"] = meta.get("round")
        m["checkpoint_id"] = meta.get("checkpoint_id")
    board["matrix"]["names"] = [info.get(k, {}).get("name", k) for k in board["matrix"]["models"]]
    board["anchor_found"] = anchor in counts.models
    board["anchor_name"] = info.get(board["anchor"], {}).get("name", board["anchor"])
    board["state"] = state
    board["computed_at"] = timezone.now().isoformat()
    cache.set(_cache_key(project.pk, state), board, CACHE_SECONDS)
    return board


def _active_job(project: Project) -> Job | None:
    return Job.objects.filter(project=project, kind=Job.Kind.RATINGS,
                              status__in=[Job.Status.QUEUED, Job.Status.RUNNING]).order_by("-id").first()


def leaderboard_current(project: Project, *, refresh: bool = True) -> dict:
    """The last computed leaderboard and whether it is stale, queuing a recompute when it is.

    Returns {result (or None), stale, job (the recompute in flight, or None), queue_error}.
    """
    state = leaderboard_state(project)
    result = cache.get(_cache_key(project.pk, state))
    if result is None:
        last = (Job.objects.filter(project=project, kind=Job.Kind.RATINGS, status=Job.Status.DONE)
                .order_by("-id").only("result").first())
        result = last.result if last is not None and last.result else None
        if result is not None and result.get("state") == state:
            cache.set(_cache_key(project.pk, state), result, CACHE_SECONDS)
    stale = result is None or result.get("state") != state
    answer = {"result": result, "stale": stale, "job": None, "queue_error": ""}
    if stale and refresh:
        try:
            answer["job"] = leaderboard_refresh(project=project)
        except QueueUnavailable as exc:
            answer["queue_error"] = str(exc)
    return answer


def leaderboard_refresh(*, project: Project) -> Job:
    """Queue a recompute, or return the one already queued or running."""
    with transaction.atomic():
        # Two page views of a stale leaderboard must not queue two jobs: the project row
        # lock makes the second one see the first one's job.
        Project.objects.select_for_update().filter(pk=project.pk).first()
        job = _active_job(project)
        if job is not None:
            return job
        return run_enqueue(Job.objects.create(kind=Job.Kind.RATINGS, project=project,
                                              params={"resamples": RESAMPLES, "seed": SEED}))


def leaderboard_job_run(job: Job, hooks) -> dict:
    """The `ratings` job: compute and store the leaderboard."""
    hooks.progress("ratings", 0, 1)
    board = leaderboard_compute(job.project, resamples=job.params.get("resamples", RESAMPLES),
                                seed=job.params.get("seed", SEED))
    hooks.progress("ratings", 1, 1)
    return board


def leaderboard_ratings_by_model(project: Project) -> dict[str, dict]:
    """{model name as in the arena export: rating row} from the last computed leaderboard (never computes)."""
    from feedback.services.exports import model_label

    current = leaderboard_current(project, refresh=False)
    if current["result"] is None:
        return {}
    # The export names a checkpoint by its name and round (external models by their own name).
    return {(model_label(m["name"], m["round"]) if m.get("checkpoint_id") else m["model"]): m
            for m in current["result"]["models"]}
