"""Reads behind the leaderboard: which votes count now, aggregated per model pair and outcome.

A model is a policy checkpoint of the project, named as the `arena` export names it
(`checkpoint:<id>`), or the external model name of an imported pair. The aggregation
happens in the database (one GROUP BY), so the pure computation in training/ratings.py
sees at most a few thousand rows however many votes there are.
"""
from django.db.models import Count, Max

from feedback.models import Checkpoint, Comparison, Project, Vote
from feedback.selectors.checkpoints import reference_policy


def leaderboard_votes(project: Project):
    """The votes the leaderboard is computed from: all of the project's, less retired comparisons'."""
    votes = Vote.objects.filter(comparison__project=project).exclude(comparison__status=Comparison.Status.RETIRED)
    from feedback.selectors.quality import excluded_annotator_ids

    excluded = excluded_annotator_ids(project)
    if excluded:
        votes = votes.exclude(annotator_id__in=excluded)
    return votes


def leaderboard_state(project: Project) -> dict:
    """What a computed leaderboard is valid for: the count and latest id of the votes it used.

    A new vote raises both; retiring a comparison or excluding an annotator lowers the count.
    """
    from feedback.selectors.quality import excluded_annotator_ids

    state = leaderboard_votes(project).aggregate(votes=Count("id"), max_vote_id=Max("id"))
    state["max_vote_id"] = state["max_vote_id"] or 0
    state["excluded"] = sorted(excluded_annotator_ids(project))
    return state


def model_key(checkpoint_id: int | None, model_name: str) -> str:
    """The name a sample's model has on the leaderboard and in the arena export."""
    return model_name or (f"checkpoint:{checkpoint_id}" if checkpoint_id else "unknown")


def leaderboard_rows(project: Project) -> list[tuple[str, str, str, int]]:
    """(model_a, model_b, choice, count) over the leaderboard's votes."""
    grouped = (
        leaderboard_votes(project)
        .values("comparison__sample_a__checkpoint_id", "comparison__sample_a__model_name",
                "comparison__sample_b__checkpoint_id", "comparison__sample_b__model_name", "choice")
        .annotate(n=Count("id"))
        .order_by()
    )
    return [
        (model_key(row["comparison__sample_a__checkpoint_id"], row["comparison__sample_a__model_name"]),
         model_key(row["comparison__sample_b__checkpoint_id"], row["comparison__sample_b__model_name"]),
         row["choice"], row["n"])
        for row in grouped
    ]


def leaderboard_models(project: Project) -> tuple[list[dict], str | None]:
    """The project's policy checkpoints in round order as {key, name, round, checkpoint_id},
    and the key of round 0 (the anchor)."""
    reference = reference_policy(project)
    policies = (Checkpoint.objects.filter(project=project, kind=Checkpoint.Kind.POLICY)
                .select_related("produced_by").order_by("created_at", "id"))
    models = []
    for c in policies:
        number = c.produced_by.number if c.produced_by_id else (0 if reference and c.pk == reference.pk else None)
        models.append({"key": f"checkpoint:{c.pk}", "name": c.name, "round": number, "checkpoint_id": c.pk})
    return models, (f"checkpoint:{reference.pk}" if reference else None)
