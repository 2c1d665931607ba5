"""Celery tasks: thin wrappers that take ids and call services."""
from celery import shared_task
from django.conf import settings


@shared_task(
    name="feedback.run_training_round",
    acks_late=True,
    soft_time_limit=settings.RLHF_ROUND_TIME_LIMIT_S,
    time_limit=settings.RLHF_ROUND_TIME_LIMIT_S + 120,
)
def run_training_round(round_id: int) -> None:
    from feedback.services.rounds import round_execute

    round_execute(round_id)


@shared_task(name="feedback.run_job", acks_late=True, soft_time_limit=3600, time_limit=3720)
def run_job(job_id: int) -> None:
    from feedback.services.jobs import job_execute

    job_execute(job_id)
