"""Counts that annotators and admins watch: votes, queue, progress."""
from datetime import timedelta

from django.contrib.auth.models import AbstractUser
from django.db.models import Count, Q
from django.utils import timezone

from feedback.models import Comparison, Project, Vote


def annotator_progress(*, annotator: AbstractUser, project: Project) -> dict:
    votes = Vote.objects.filter(annotator=annotator, comparison__project=project)
    start_of_day = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    open_for_me = (
        Comparison.objects.filter(project=project, status=Comparison.Status.OPEN)
        .exclude(assignments__annotator=annotator)
        .count()
    )
    return {
        "done_today": votes.filter(created_at__gte=start_of_day).count(),
        "done_total": votes.count(),
        "remaining": open_for_me,
    }


def project_counts(project: Project) -> dict:
    comparisons = Comparison.objects.filter(project=project).aggregate(
        total=Count("id"), open=Count("id", filter=Q(status=Comparison.Status.OPEN))
    )
    votes = Vote.objects.filter(comparison__project=project).aggregate(
        total=Count("id"),
        pairs=Count("id", filter=Q(choice__in=[Comparison.Choice.A, Comparison.Choice.B])),
        last_day=Count("id", filter=Q(created_at__gte=timezone.now() - timedelta(days=1))),
    )
    return {
        "prompts": project.prompts.count(),
        "comparisons": comparisons["total"],
        "comparisons_open": comparisons["open"],
        "votes": votes["total"],
        "preference_votes": votes["pairs"],
        "votes_last_day": votes["last_day"],
    }
