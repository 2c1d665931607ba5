"""Reads of an annotator's own votes: "my votes" and personal stats."""
import statistics
from datetime import datetime, time

from django.contrib.auth.models import AbstractUser
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from feedback.models import Comparison, Project, Sample, Vote
from feedback.services.exports import model_label


def vote_shown_choice(vote: Vote) -> str:
    """The choice in the terms the annotator saw: "a" is the response shown first (left).

    Stored choices name the comparison's sample A / B; which of them was shown on the
    left is random per assignment and recorded as `left_sample`.
    """
    if vote.choice not in (Comparison.Choice.A, Comparison.Choice.B):
        return vote.choice
    left_is_a = vote.left_sample_id == vote.comparison.sample_a_id
    if left_is_a:
        return vote.choice
    return Comparison.Choice.B if vote.choice == Comparison.Choice.A else Comparison.Choice.A


def _shown_as(choice: str) -> Q:
    """Votes whose choice, in screen terms, is `choice`."""
    if choice not in ("a", "b"):
        return Q(choice=choice)
    other = "b" if choice == "a" else "a"
    return (Q(left_sample_id=F("comparison__sample_a_id")) & Q(choice=choice)) | (
        Q(left_sample_id=F("comparison__sample_b_id")) & Q(choice=other))


def votes_for_annotator(
    *, annotator: AbstractUser, projects: QuerySet[Project], project_id: int | None = None, choice: str = "",
) -> QuerySet[Vote]:
    """The annotator's votes in `projects` (the ones they may still see), newest first."""
    votes = Vote.objects.filter(annotator=annotator, comparison__project__in=projects)
    if project_id is not None:
        votes = votes.filter(comparison__project_id=project_id)
    if choice:
        votes = votes.filter(_shown_as(choice))
    return votes.select_related("comparison__prompt", "comparison__project").order_by("-created_at", "-id")


def annotator_stats(*, votes: QuerySet[Vote]) -> dict:
    """Votes today and in total, and the median seconds spent per vote."""
    start_of_day = timezone.make_aware(datetime.combine(timezone.localdate(), time.min))
    spent = [ms for ms in votes.exclude(time_spent_ms=None).values_list("time_spent_ms", flat=True)]
    return {
        "today": votes.filter(created_at__gte=start_of_day).count(),
        "total": votes.count(),
        "median_seconds": round(statistics.median(spent) / 1000, 1) if spent else None,
    }


def sample_author(sample: Sample) -> str:
    """Who wrote a sample, as the annotator may be told after voting: checkpoint name and round."""
    if sample.checkpoint_id is None:
        return sample.model_name or "unknown model"
    round_ = sample.checkpoint.produced_by
    return model_label(sample.checkpoint.name, round_.number if round_ is not None else None)
