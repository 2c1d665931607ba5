"""Queries about training rounds: listing, and the human-judged win-rate of each round."""
from django.db.models import Count, Q

from feedback.models import Checkpoint, Comparison, Project, TrainingRound, Vote
from feedback.selectors.checkpoints import reference_policy
from training.ratings import wilson_interval


def rounds_for_project(project: Project):
    return TrainingRound.objects.filter(project=project).select_related(
        "policy_checkpoint", "reward_checkpoint", "parent_policy"
    ).order_by("-number")


def running_round(project: Project) -> TrainingRound | None:
    return TrainingRound.objects.filter(project=project, status__in=TrainingRound.ACTIVE_STATUSES).first()


def _with_interval(counts: dict) -> dict:
    """Add votes, win_rate (ties count half; both-bad left out) and its Wilson 95% interval."""
    judged = counts["new"] + counts["old"] + counts["tie"]
    counts["votes"] = judged + counts["both_bad"]
    counts["judged"] = judged
    wins = counts["new"] + 0.5 * counts["tie"]
    counts["win_rate"] = wins / judged if judged else None
    interval = wilson_interval(wins, judged)
    counts["low"], counts["high"] = interval if interval else (None, None)
    return counts


def round_win_rate(training_round: TrainingRound) -> dict:
    """How often annotators preferred the round's new policy over its parent, on the round's batch.

    The batch pairs them on train prompts and on held-out prompts (the project's
    `eval_parent_share`); its new-vs-round-0 part is round_win_rate_vs_round0's. Ties count
    half; both-bad votes are reported but left out of the rate; `low` / `high` bound it with
    a Wilson 95% interval.
    """
    new, parent = training_round.policy_checkpoint, training_round.parent_policy
    if new is not None and parent is not None:
        return checkpoint_win_rate(new, parent, Q(comparison__round=training_round))
    # a round without a recorded parent (older rows): its batch had the new policy as sample A
    counts = Vote.objects.filter(comparison__round=training_round).exclude(
        comparison__status=Comparison.Status.RETIRED).aggregate(
        new=Count("id", filter=Q(choice=Comparison.Choice.A)),
        old=Count("id", filter=Q(choice=Comparison.Choice.B)),
        tie=Count("id", filter=Q(choice=Comparison.Choice.TIE)),
        both_bad=Count("id", filter=Q(choice=Comparison.Choice.BOTH_BAD)),
    )
    return _with_interval(counts)


def checkpoint_win_rate(new: Checkpoint, old: Checkpoint, where: Q | None = None) -> dict:
    """Votes on any comparison of `new` against `old` (either side; `where` narrows the votes),
    as round_win_rate counts them."""
    votes = Vote.objects.exclude(comparison__status=Comparison.Status.RETIRED)
    if where is not None:
        votes = votes.filter(where)
    forward = Q(comparison__sample_a__checkpoint=new, comparison__sample_b__checkpoint=old)
    backward = Q(comparison__sample_a__checkpoint=old, comparison__sample_b__checkpoint=new)
    counts = votes.filter(forward | backward).aggregate(
        new=Count("id", filter=(forward & Q(choice=Comparison.Choice.A)) | (backward & Q(choice=Comparison.Choice.B))),
        old=Count("id", filter=(forward & Q(choice=Comparison.Choice.B)) | (backward & Q(choice=Comparison.Choice.A))),
        tie=Count("id", filter=Q(choice=Comparison.Choice.TIE)),
        both_bad=Count("id", filter=Q(choice=Comparison.Choice.BOTH_BAD)),
    )
    return _with_interval(counts)


def round_win_rate_vs_round0(training_round: TrainingRound) -> dict | None:
    """The round's new policy against round 0, when annotators have judged such pairs; else None."""
    reference = reference_policy(training_round.project)
    new = training_round.policy_checkpoint
    if reference is None or new is None or new.pk == reference.pk or (
            training_round.parent_policy_id == reference.pk):
        return None  # round 1's parent is round 0: the parent comparison already says it
    counts = checkpoint_win_rate(new, reference)
    return counts if counts["votes"] else None


def round_history(project: Project, limit: int = 50) -> list[dict]:
    """Per finished round, oldest first: human win-rate vs parent (and vs round 0) with Wilson
    intervals, the reward model's held-out accuracy and the KL to round 0 at the end of the round."""
    rounds = list(rounds_for_project(project).filter(
        status__in=[TrainingRound.Status.DONE, TrainingRound.Status.NEEDS_REVIEW])[:limit])
    history = []
    for r in reversed(rounds):
        metrics = r.metrics or {}
        history.append({
            "round": r.number, "round_id": r.pk, "parent": round_win_rate(r), "round0": round_win_rate_vs_round0(r),
            "rm_accuracy": (metrics.get("reward_summary") or {}).get("eval_accuracy"),
            "kl": round_kl_to_round0(metrics),
            "method": (r.config or {}).get("method", "ppo"),
        })
    return history


def round_kl_to_round0(metrics: dict) -> float | None:
    """The new policy's KL to round 0 as its round measured it: PPO's at the end of its rollouts,
    DPO's on its answers to held-out prompts (the same estimator, summed over the answer)."""
    metrics = metrics or {}
    ppo = metrics.get("ppo_summary") or {}
    if "final_kl" in ppo:
        return ppo["final_kl"]
    return (metrics.get("dpo_summary") or {}).get("kl_to_round0")


def round_history_chart(history: list[dict]) -> dict:
    """The series static/feedback/round_history.js draws (None where a round has no figure)."""
    def pick(part, key):
        return [(h[part] or {}).get(key) if isinstance(h[part], dict) else None for h in history]

    return {
        "x": [h["round"] for h in history],
        "win_rate": pick("parent", "win_rate"), "low": pick("parent", "low"), "high": pick("parent", "high"),
        "round0": pick("round0", "win_rate"), "round0_low": pick("round0", "low"), "round0_high": pick("round0", "high"),
        "rm_accuracy": [h["rm_accuracy"] for h in history], "kl": [h["kl"] for h in history],
    }
