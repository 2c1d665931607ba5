"""The one place that turns database rows into the plain records `training/` consumes.

Aggregation rule ("majority"): per comparison, the A-or-B side with more votes wins;
ties and both-bad votes carry no ordering, so they count towards the total but are
never pairs. A comparison whose A and B votes are level gives no pair. The record's
`agreement` is the winning side's share of all votes on the comparison, and its
`margin` grows with the winners' mean strength (slightly 0, clearly 0.5, much 1.0).
"""
import hashlib
from collections import defaultdict

from feedback.models import Comparison, Project, Vote

AGGREGATION_RULE = "majority (A/B votes; ties and both-bad never pairs; level A/B gives no pair)"
_STRENGTH_MARGIN = {None: 0.0, 1: 0.0, 2: 0.5, 3: 1.0}


def preference_snapshot(project: Project, *, up_to_vote_id: int | None = None) -> tuple[list[dict], dict]:
    """Preference pairs from the project's votes, and a description of the snapshot.

    Returns (records, snapshot): records are {prompt, chosen, rejected, margin,
    agreement, comparison_id}; snapshot names the votes used (count, max id, sha256 of
    their ids) so a round can say exactly what it trained on.
    """
    votes = Vote.objects.filter(comparison__project=project)
    if up_to_vote_id is not None:
        votes = votes.filter(id__lte=up_to_vote_id)
    votes = votes.order_by("id").values_list("id", "comparison_id", "choice", "strength")

    by_comparison: dict[int, list[tuple]] = defaultdict(list)
    digest = hashlib.sha256()
    vote_count = 0
    max_id = 0
    for vote_id, comparison_id, choice, strength in votes.iterator(chunk_size=2000):
        by_comparison[comparison_id].append((choice, strength))
        digest.update(f"{vote_id},".encode())
        vote_count += 1
        max_id = vote_id

    comparisons = Comparison.objects.filter(pk__in=list(by_comparison)).select_related("prompt", "sample_a", "sample_b")
    records = []
    dropped = {"tie_or_both_bad_only": 0, "level": 0}
    for comparison in comparisons.iterator(chunk_size=500):
        cast = by_comparison[comparison.pk]
        a = [s for c, s in cast if c == Comparison.Choice.A]
        b = [s for c, s in cast if c == Comparison.Choice.B]
        if not a and not b:
            dropped["tie_or_both_bad_only"] += 1
            continue
        if len(a) == len(b):
            dropped["level"] += 1
            continue
        winners, chosen, rejected = (a, comparison.sample_a, comparison.sample_b) if len(a) > len(b) else (
            b, comparison.sample_b, comparison.sample_a)
        margins = [_STRENGTH_MARGIN.get(s, 0.0) for s in winners]
        records.append({
            "comparison_id": comparison.pk,
            "prompt": comparison.prompt.messages,
            "chosen": chosen.text,
            "rejected": rejected.text,
            "margin": sum(margins) / len(margins),
            "agreement": len(winners) / len(cast),
        })
    records.sort(key=lambda r: r["comparison_id"])
    snapshot = {
        "votes": vote_count,
        "max_vote_id": max_id,
        "vote_ids_sha256": digest.hexdigest(),
        "comparisons": len(by_comparison),
        "pairs": len(records),
        "dropped": dropped,
        "aggregation": AGGREGATION_RULE,
    }
    return records, snapshot


def train_prompts(project: Project) -> list:
    """The train-split prompts as message lists, for PPO rollouts."""
    return list(project.prompts.filter(split="train").order_by("id").values_list("messages", flat=True))
