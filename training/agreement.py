"""Can the votes be trusted? Inter-annotator agreement and per-annotator figures. Plain numpy; no Django.

Choices are coded 0 = A better, 1 = B better, 2 = tie, 3 = both bad. On the ordinal
scale A > tie > B, both-bad has no place and counts as missing; the nominal scale
keeps all four. Krippendorff's alpha comes from the `krippendorff` package, fed value
counts per comparison so a million votes cost one bincount.
"""
from __future__ import annotations

import math

import krippendorff
import numpy as np

A, B, TIE, BOTH_BAD = 0, 1, 2, 3
CHOICES = ("a", "b", "tie", "both_bad")
# ordinal position of each choice on A > tie > B
_ORDINAL_COLUMNS = [A, TIE, B]


def value_counts(comparison: np.ndarray, choice: np.ndarray) -> np.ndarray:
    """(units × 4) how many votes each comparison got of each choice."""
    comparison = np.asarray(comparison, dtype=np.int64)
    _, unit = np.unique(comparison, return_inverse=True)
    n_units = int(unit.max()) + 1 if len(unit) else 0
    return np.bincount(unit * 4 + np.asarray(choice, dtype=np.int64), minlength=n_units * 4).reshape(n_units, 4)


def krippendorff_alphas(counts: np.ndarray) -> dict:
    """Ordinal (A > tie > B) and nominal alpha over units with at least two pairable values.

    Returns {ordinal, nominal, units} with None where alpha is undefined (fewer than two
    such units, or no variation at all).
    """
    out = {"units": 0, "ordinal": None, "nominal": None}
    nominal = counts[counts.sum(axis=1) >= 2]
    ordinal = counts[:, _ORDINAL_COLUMNS]
    ordinal = ordinal[ordinal.sum(axis=1) >= 2]
    out["units"] = int(len(nominal))
    for key, table, level in (("nominal", nominal, "nominal"), ("ordinal", ordinal, "ordinal")):
        if len(table) < 2 or np.count_nonzero(table.sum(axis=0)) < 2:
            continue  # alpha needs disagreement to be possible: at least two values in use
        value = float(krippendorff.alpha(value_counts=table, value_domain=list(range(table.shape[1])),
                                         level_of_measurement=level))
        out[key] = round(value, 4) if math.isfinite(value) else None
    return out


def leave_one_out_agreement(comparison: np.ndarray, choice: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per vote: whether the other votes on its comparison have a single most common choice
    (`has_majority`), and whether this vote matches it (`agrees`)."""
    comparison = np.asarray(comparison, dtype=np.int64)
    choice = np.asarray(choice, dtype=np.int64)
    _, unit = np.unique(comparison, return_inverse=True)
    counts = value_counts(comparison, choice)
    others = counts[unit].copy()
    others[np.arange(len(choice)), choice] -= 1
    top = others.max(axis=1)
    has_majority = (top > 0) & ((others == top[:, None]).sum(axis=1) == 1)
    agrees = has_majority & (others.argmax(axis=1) == choice)
    return has_majority, agrees


def binomial_two_sided_p(k: int, n: int) -> float:
    """Exact two-sided binomial test of k successes in n against p = 1/2 (as scipy's binomtest)."""
    if n <= 0:
        return 1.0
    ks = np.arange(n + 1)
    log_pmf = (np.array([math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in ks])
               - n * math.log(2.0))
    pmf = np.exp(log_pmf)
    # symmetric null: everything at least as unlikely as k, i.e. as far from n/2
    p = pmf[pmf <= pmf[k] * (1 + 1e-7)].sum()
    return float(min(1.0, p))


def _robust_low(values: list[float], value: float, spread_floor: float) -> bool:
    """Whether `value` sits far below the others (median − 3·scaled MAD, with a floor on the spread)."""
    if len(values) < 3:
        return False
    median = float(np.median(values))
    mad = 1.4826 * float(np.median(np.abs(np.asarray(values) - median)))
    return value < median - 3 * max(mad, spread_floor)


def annotator_flags(rows: list[dict], *, min_gold_accuracy: float, min_votes: int = 20,
                    min_gold: int = 5) -> None:
    """Add `flags` (reasons, plain words) to each annotator row in place.

    A row has votes, left_picks, ab_votes, left_p, ties, both_bad, median_s,
    loo_compared, loo_agreement, gold_votes, gold_accuracy. Thresholds are deliberately
    conservative: a flag is a reason to look, not a verdict.
    """
    agreements = [r["loo_agreement"] for r in rows if r["loo_compared"] >= 10]
    speeds = [r["median_s"] for r in rows if r["median_s"] is not None and r["votes"] >= min_votes]
    for r in rows:
        flags = []
        if r["gold_votes"] >= min_gold and r["gold_accuracy"] < min_gold_accuracy:
            flags.append(f"gold accuracy {r['gold_accuracy']:.0%} is below {min_gold_accuracy:.0%}")
        if r["ab_votes"] >= min_votes and r["left_p"] < 0.001:
            flags.append(f"picks the left response {r['left_picks'] / r['ab_votes']:.0%} of the time (p={r['left_p']:.1g})")
        if r["loo_compared"] >= 10 and (r["loo_agreement"] < 0.4 or _robust_low(agreements, r["loo_agreement"], 0.1)):
            flags.append(f"agrees with the others' majority only {r['loo_agreement']:.0%} of the time")
        if r["votes"] >= min_votes and r["median_s"] is not None and len(speeds) >= 3 \
                and r["median_s"] < float(np.median(speeds)) / 4:
            flags.append(f"votes in {r['median_s']:.1f} s (median), far faster than the others")
        if r["votes"] >= min_votes and (r["ties"] + r["both_bad"]) / r["votes"] > 0.6:
            flags.append("answers tie or both bad in most votes")
        r["flags"] = flags
        r["flagged"] = bool(flags)
