"""Queries about training rounds: listing, and the human-judged win-rate of each round."""
from django.db.models import Count, Q

from feedback.models import Comparison, Project, TrainingRound, Vote


def rounds_for_project(project: Project):
    return TrainingRound.objects.filter(project=project).select_related(
        "policy_checkpoint", "reward_checkpoint", "parent_policy"
    ).order_by("-number")


def running_round(project: Project) -> TrainingRound | None:
    return TrainingRound.objects.filter(project=project, status__in=TrainingRound.ACTIVE_STATUSES).first()


def round_win_rate(training_round: TrainingRound) -> dict:
    """How often annotators preferred the round's new policy (sample A) over its parent (sample B).

    Ties count half; both-bad votes are reported but left out of the rate.
    """
    counts = Vote.objects.filter(comparison__round=training_round).aggregate(
        new=Count("id", filter=Q(choice=Comparison.Choice.A)),
        old=Count("id", filter=Q(choice=Comparison.Choice.B)),
        tie=Count("id", filter=Q(choice=Comparison.Choice.TIE)),
        both_bad=Count("id", filter=Q(choice=Comparison.Choice.BOTH_BAD)),
    )
    judged = counts["new"] + counts["old"] + counts["tie"]
    counts["votes"] = judged + counts["both_bad"]
    counts["win_rate"] = (counts["new"] + 0.5 * counts["tie"]) / judged if judged else None
    return counts
