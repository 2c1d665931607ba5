"""Reads behind annotator quality: agreement, gold accuracy, position bias, pace.

The figures come from training/agreement.py (plain numpy); this module turns the
project's vote rows into its arrays. Results are cached per project and vote state.
"""
from collections import defaultdict

import numpy as np
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db.models import Count, F, Max, Q

from feedback.models import Assignment, Comparison, Project, Vote
from training.agreement import (
    A,
    B,
    BOTH_BAD,
    TIE,
    annotator_flags,
    binomial_two_sided_p,
    krippendorff_alphas,
    leave_one_out_agreement,
    value_counts,
)

MIN_GOLD_VOTES = 5
_CODE = {"a": A, "b": B, "tie": TIE, "both_bad": BOTH_BAD}


def gold_accuracy(project: Project) -> dict[int, dict]:
    """{annotator id: {gold_votes, gold_correct, gold_accuracy}} over comparisons with a gold answer."""
    rows = (Vote.objects.filter(comparison__project=project).exclude(comparison__gold_choice="")
            .values("annotator_id")
            .annotate(n=Count("id"), correct=Count("id", filter=Q(choice=F("comparison__gold_choice"))))
            .order_by())
    return {r["annotator_id"]: {"gold_votes": r["n"], "gold_correct": r["correct"],
                                "gold_accuracy": r["correct"] / r["n"]} for r in rows}


def flagged_by_gold(project: Project) -> set[int]:
    """Annotators whose accuracy on at least MIN_GOLD_VOTES gold comparisons is below the project's threshold."""
    return {uid for uid, g in gold_accuracy(project).items()
            if g["gold_votes"] >= MIN_GOLD_VOTES and g["gold_accuracy"] < project.min_gold_accuracy}


def excluded_annotator_ids(project: Project) -> set[int]:
    """Whose votes training snapshots, exports and the leaderboard leave out: the gold-flagged
    annotators when the project says `exclude_flagged`, else nobody."""
    if not project.exclude_flagged:
        return set()
    return flagged_by_gold(project)


def _alphas(comparison: np.ndarray, choice: np.ndarray) -> dict:
    return krippendorff_alphas(value_counts(comparison, choice)) if len(choice) else {
        "units": 0, "ordinal": None, "nominal": None}


def project_quality(project: Project) -> dict:
    """Agreement for the project and per round, and one row of figures per annotator (cached per vote state)."""
    state = Vote.objects.filter(comparison__project=project).aggregate(n=Count("id"), last=Max("id"))
    gold_state = Comparison.objects.filter(project=project).exclude(gold_choice="").aggregate(n=Count("id"), last=Max("id"))
    key = (f"quality:{project.pk}:{state['n']}:{state['last']}:{gold_state['n']}:{gold_state['last']}:"
           f"{project.min_gold_accuracy}")
    cached = cache.get(key)
    if cached is not None:
        return cached
    result = _project_quality(project)
    cache.set(key, result, 3600)
    return result


def _project_quality(project: Project) -> dict:
    rows = list(Vote.objects.filter(comparison__project=project).values_list(
        "comparison_id", "annotator_id", "choice", "left_sample_id", "comparison__sample_a_id", "time_spent_ms",
        "created_at", "comparison__round__number", "comparison__batch").order_by("id").iterator(chunk_size=10_000))
    n = len(rows)
    comparison = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
    annotator = np.fromiter((r[1] for r in rows), dtype=np.int64, count=n)
    choice = np.fromiter((_CODE[r[2]] for r in rows), dtype=np.int64, count=n)
    left_is_a = np.fromiter((r[3] == r[4] for r in rows), dtype=bool, count=n)
    batch = np.fromiter((r[8] for r in rows), dtype=np.int64, count=n)
    seconds = np.array([r[5] / 1000.0 if r[5] is not None else np.nan for r in rows], dtype=np.float64)

    overall = _alphas(comparison, choice)
    per_round = []
    for number in sorted(set(batch.tolist())):
        mask = batch == number
        per_round.append({"batch": number, "votes": int(mask.sum()), **_alphas(comparison[mask], choice[mask])})

    has_majority, agrees = leave_one_out_agreement(comparison, choice) if n else (np.zeros(0, bool), np.zeros(0, bool))
    # a pick of the left response: A chosen while A was on the left, or B while B was
    picked_left = ((choice == A) & left_is_a) | ((choice == B) & ~left_is_a)
    gold = gold_accuracy(project)
    skips = defaultdict(lambda: defaultdict(int))
    for uid, reason, count in (Assignment.objects.filter(comparison__project=project, status=Assignment.Status.SKIPPED)
                               .values_list("annotator_id", "skip_reason").annotate(n=Count("id")).order_by()):
        skips[uid][reason or "no reason"] += count
    days = defaultdict(set)
    last = {}
    for r in rows:
        days[r[1]].add(r[6].date())
        last[r[1]] = max(last.get(r[1], r[6]), r[6])
    ids = sorted(set(annotator.tolist()) | set(skips))
    names = dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username"))

    annotators = []
    for uid in ids:
        mine = annotator == uid
        votes = int(mine.sum())
        ab = int((mine & ((choice == A) | (choice == B))).sum())
        left = int((mine & picked_left).sum())
        compared = int((mine & has_majority).sum())
        spent = seconds[mine]
        spent = spent[np.isfinite(spent)]
        g = gold.get(uid, {"gold_votes": 0, "gold_correct": 0, "gold_accuracy": None})
        annotators.append({
            "annotator_id": uid, "username": names.get(uid, str(uid)), "votes": votes,
            "votes_per_day": round(votes / len(days[uid]), 1) if days[uid] else 0.0,
            "active_days": len(days[uid]),
            "median_s": round(float(np.median(spent)), 1) if len(spent) else None,
            "ab_votes": ab, "left_picks": left, "left_share": round(left / ab, 3) if ab else None,
            "left_p": binomial_two_sided_p(left, ab),
            "ties": int((mine & (choice == TIE)).sum()), "both_bad": int((mine & (choice == BOTH_BAD)).sum()),
            "skips": sum(skips[uid].values()), "skip_reasons": dict(sorted(skips[uid].items())),
            "loo_compared": compared,
            "loo_agreement": round(int((mine & agrees).sum()) / compared, 3) if compared else None,
            "gold_votes": g["gold_votes"], "gold_correct": g["gold_correct"],
            "gold_accuracy": round(g["gold_accuracy"], 3) if g["gold_accuracy"] is not None else None,
            "last_active": last[uid].isoformat() if uid in last else None,
        })
    annotator_flags(annotators, min_gold_accuracy=project.min_gold_accuracy, min_gold=MIN_GOLD_VOTES)
    annotators.sort(key=lambda r: (not r["flagged"], r["username"]))
    return {"alpha": overall, "rounds": per_round, "annotators": annotators, "votes": n,
            "min_gold_accuracy": project.min_gold_accuracy, "exclude_flagged": project.exclude_flagged,
            "excluded": sorted(excluded_annotator_ids(project))}
