"""Counts that annotators and admins watch: votes, queue, progress."""
from datetime import timedelta

from django.contrib.auth.models import AbstractUser
from django.db.models import Count, Q
from django.utils import timezone

from feedback.models import Assignment, Comparison, Project, Vote


def annotator_progress(*, annotator: AbstractUser, project: Project) -> dict:
    start_of_day = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    done = Vote.objects.filter(annotator=annotator, comparison__project=project).aggregate(
        total=Count("id"), today=Count("id", filter=Q(created_at__gte=start_of_day))
    )
    # Open comparisons minus the open ones this annotator already holds or skipped: two
    # index lookups, where an anti-join over every open comparison took tens of ms.
    open_total = Comparison.objects.filter(project=project, status=Comparison.Status.OPEN).count()
    touched = Assignment.objects.filter(
        annotator=annotator, comparison__project=project, comparison__status=Comparison.Status.OPEN
    ).count()
    return {"done_today": done["today"], "done_total": done["total"], "remaining": open_total - touched}


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
