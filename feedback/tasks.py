"""Celery tasks: thin wrappers that take ids and call services."""
import logging

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings

logger = logging.getLogger(__name__)


@shared_task(
    name="feedback.run_training_round",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.RLHF_ROUND_TIME_LIMIT_S,
    time_limit=settings.RLHF_ROUND_TIME_LIMIT_S + 120,
)
def run_training_round(round_id: int) -> None:
    from feedback.services.rounds import round_execute

    round_execute(round_id)


@shared_task(name="feedback.run_job", acks_late=True, reject_on_worker_lost=True, soft_time_limit=3600,
             time_limit=3720)
def run_job(job_id: int) -> None:
    from feedback.services.jobs import job_execute

    job_execute(job_id)


@shared_task(name="feedback.reap_runs", ignore_result=True)
def reap_runs() -> list[dict]:
    from feedback.services.runs import runs_reap

    return runs_reap()


@worker_ready.connect
def reap_on_worker_start(**_kwargs) -> None:
    """A restarted worker first ends the runs its previous process left behind."""
    from feedback.services.runs import runs_reap

    try:
        for item in runs_reap():
            logger.warning("at worker start: %s", item)
    except Exception:  # the worker must start even if the database is briefly away
        logger.exception("reaping runs at worker start failed")
