"""Bradley–Terry ratings of models from pairwise human votes, with bootstrap intervals,
and Wilson intervals for win-rates. Plain numpy; no Django.

The votes are first aggregated into counts per (model pair, outcome), so the cost of a
fit does not grow with the number of votes. The bootstrap resamples those counts
multinomially, which is exactly resampling the votes with replacement, and fits all the
replicates at once with a batched Newton solve.

Scale: Elo-like, rating = anchor + 400·log10(strength ratio), so a 400-point gap means
10:1 odds; the anchor model (round 0) sits at `anchor_rating`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

ELO_SCALE = 400.0 / math.log(10.0)
# A weak Gaussian prior on the log-strengths: it keeps a model that won (or lost) every
# vote finite, and leaves well-measured models practically at their maximum-likelihood value.
RIDGE = 1e-4
Z95 = 1.959963984540054


@dataclass
class PairCounts:
    """Votes aggregated per unordered model pair (a < b by index): wins of a, wins of b, ties, both-bad."""

    models: list[str]
    a: np.ndarray
    b: np.ndarray
    wins_a: np.ndarray
    wins_b: np.ndarray
    ties: np.ndarray
    both_bad: np.ndarray = field(default=None)

    def __post_init__(self):
        for name in ("a", "b"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.int64))
        for name in ("wins_a", "wins_b", "ties", "both_bad"):
            value = getattr(self, name)
            setattr(self, name, np.zeros(len(self.a), dtype=np.int64) if value is None
                    else np.asarray(value, dtype=np.int64))

    @property
    def judged(self) -> np.ndarray:
        """Votes that order the pair or tie it (both-bad says nothing about which is better)."""
        return self.wins_a + self.wins_b + self.ties


def pair_counts(rows, models: list[str] | None = None) -> PairCounts:
    """Aggregate (model_a, model_b, choice, count) rows into PairCounts.

    `choice` is one of a, b, tie, both_bad, about model_a / model_b; a row with the same
    model on both sides says nothing about ranking and is dropped. `models` fixes the
    order of models (others are appended as they appear).
    """
    names = list(models or [])
    index = {m: i for i, m in enumerate(names)}
    table: dict[tuple[int, int], list[int]] = {}
    for model_a, model_b, choice, count in rows:
        if model_a == model_b:
            continue
        for m in (model_a, model_b):
            if m not in index:
                index[m] = len(names)
                names.append(m)
        i, j = index[model_a], index[model_b]
        if i > j:
            i, j = j, i
            choice = {"a": "b", "b": "a"}.get(choice, choice)
        cell = table.setdefault((i, j), [0, 0, 0, 0])
        cell[("a", "b", "tie", "both_bad").index(choice)] += int(count)
    keys = sorted(table)
    cells = np.array([table[k] for k in keys], dtype=np.int64).reshape(-1, 4)
    return PairCounts(names, [k[0] for k in keys], [k[1] for k in keys], cells[:, 0], cells[:, 1], cells[:, 2],
                      cells[:, 3])


def pair_counts_from_votes(model_a: np.ndarray, model_b: np.ndarray, choice: np.ndarray, models: list[str]) -> PairCounts:
    """Aggregate raw vote arrays (model indices, choice codes 0=a 1=b 2=tie 3=both-bad) with bincount."""
    model_a, model_b, choice = (np.asarray(x, dtype=np.int64) for x in (model_a, model_b, choice))
    keep = model_a != model_b
    model_a, model_b, choice = model_a[keep], model_b[keep], choice[keep]
    swap = model_a > model_b
    lo, hi = np.where(swap, model_b, model_a), np.where(swap, model_a, model_b)
    choice = np.where(swap & (choice < 2), 1 - choice, choice)
    n = len(models)
    cells = np.bincount((lo * n + hi) * 4 + choice, minlength=n * n * 4).reshape(n * n, 4)
    pairs = np.flatnonzero(cells.sum(axis=1))
    return PairCounts(list(models), pairs // n, pairs % n, cells[pairs, 0], cells[pairs, 1], cells[pairs, 2],
                      cells[pairs, 3])


def fit_bradley_terry(n_models: int, a: np.ndarray, b: np.ndarray, wins_a: np.ndarray, wins_b: np.ndarray,
                      *, ridge: float = RIDGE, tol: float = 1e-9, max_iter: int = 100) -> np.ndarray:
    """Log-strengths θ maximising Σ wins·log σ(θ_winner − θ_loser) − ridge/2·‖θ‖².

    `wins_a` / `wins_b` may be 1-d (one data set) or 2-d (replicates × pairs); ties should
    already be counted half to each side. Returns θ with the same leading shape. Newton's
    method on the concave objective; each step is capped so a replicate with a model
    that won everything cannot overshoot.
    """
    wins_a = np.asarray(wins_a, dtype=np.float64)
    wins_b = np.asarray(wins_b, dtype=np.float64)
    single = wins_a.ndim == 1
    if single:
        wins_a, wins_b = wins_a[None], wins_b[None]
    reps = wins_a.shape[0]
    total = wins_a + wins_b
    theta = np.zeros((reps, n_models))
    eye = np.eye(n_models) * ridge
    for _ in range(max_iter):
        p = 1.0 / (1.0 + np.exp(theta[:, b] - theta[:, a]))  # P(a beats b)
        resid = wins_a - total * p
        grad = np.zeros((reps, n_models))
        np.add.at(grad.T, a, resid.T)
        np.subtract.at(grad.T, b, resid.T)
        grad -= ridge * theta
        w = total * p * (1.0 - p)
        hess = np.zeros((reps, n_models, n_models))
        # the negative Hessian is the weighted graph Laplacian plus the ridge
        np.add.at(hess, (slice(None), a, a), w)
        np.add.at(hess, (slice(None), b, b), w)
        np.subtract.at(hess, (slice(None), a, b), w)
        np.subtract.at(hess, (slice(None), b, a), w)
        hess += eye
        step = np.linalg.solve(hess, grad[..., None])[..., 0]
        biggest = np.abs(step).max(axis=1, keepdims=True)
        step *= np.minimum(1.0, 3.0 / np.maximum(biggest, 1e-300))
        theta += step
        if biggest.max() < tol:
            break
    return theta[0] if single else theta


def connected_to(n_models: int, a: np.ndarray, b: np.ndarray, judged: np.ndarray, anchor: int) -> np.ndarray:
    """Which models are linked to `anchor` through pairs with at least one judged vote."""
    neighbours = [[] for _ in range(n_models)]
    for i, j, n in zip(a.tolist(), b.tolist(), judged.tolist()):
        if n:
            neighbours[i].append(j)
            neighbours[j].append(i)
    seen = np.zeros(n_models, dtype=bool)
    seen[anchor] = True
    stack = [anchor]
    while stack:
        for k in neighbours[stack.pop()]:
            if not seen[k]:
                seen[k] = True
                stack.append(k)
    return seen


def leaderboard(counts: PairCounts, *, anchor: int = 0, anchor_rating: float = 1000.0, resamples: int = 1000,
                seed: int = 0, level: float = 0.95) -> dict:
    """Ratings with bootstrap intervals, vote counts per model and the win-rate matrix.

    Ties count half a win to each side; both-bad votes are left out of the fit and
    reported per model. Models not linked to the anchor by any judged vote get no rating.
    Returns a JSON-able dict: models (sorted by rating), matrix, totals.
    """
    n = len(counts.models)
    a, b = counts.a, counts.b
    judged = counts.judged
    half_a = counts.wins_a + 0.5 * counts.ties
    half_b = counts.wins_b + 0.5 * counts.ties
    linked = connected_to(n, a, b, judged, anchor) if n else np.zeros(0, dtype=bool)
    theta = fit_bradley_terry(n, a, b, half_a, half_b) if n else np.zeros(0)
    rating = anchor_rating + ELO_SCALE * (theta - theta[anchor]) if n else theta

    low = high = np.full(n, np.nan)
    if resamples and judged.sum():
        rng = np.random.default_rng(seed)
        # one category per (pair, outcome): resampling the votes with replacement
        cells = np.concatenate([counts.wins_a, counts.wins_b, counts.ties]).astype(np.float64)
        draws = rng.multinomial(int(cells.sum()), cells / cells.sum(), size=resamples)
        k = len(a)
        wa, wb, wt = draws[:, :k], draws[:, k:2 * k], draws[:, 2 * k:]
        boot = fit_bradley_terry(n, a, b, wa + 0.5 * wt, wb + 0.5 * wt)
        boot = anchor_rating + ELO_SCALE * (boot - boot[:, [anchor]])
        tail = (1.0 - level) / 2.0 * 100.0
        low, high = np.percentile(boot, [tail, 100.0 - tail], axis=0)

    votes = np.zeros(n, dtype=np.int64)
    both_bad = np.zeros(n, dtype=np.int64)
    wins = np.zeros(n)
    np.add.at(votes, a, judged + counts.both_bad)
    np.add.at(votes, b, judged + counts.both_bad)
    np.add.at(both_bad, a, counts.both_bad)
    np.add.at(both_bad, b, counts.both_bad)
    np.add.at(wins, a, half_a)
    np.add.at(wins, b, half_b)
    judged_per = votes - both_bad

    def num(x):
        return None if x is None or not np.isfinite(x) else round(float(x), 1)

    models = []
    for i, name in enumerate(counts.models):
        ok = bool(linked[i])
        models.append({
            "model": name, "rating": num(rating[i]) if ok else None,
            "low": num(low[i]) if ok else None, "high": num(high[i]) if ok else None,
            "votes": int(votes[i]), "judged": int(judged_per[i]), "both_bad": int(both_bad[i]),
            "win_rate": round(float(wins[i] / judged_per[i]), 4) if judged_per[i] else None,
            "anchor": i == anchor, "linked": ok,
        })
    models.sort(key=lambda m: (m["rating"] is None, -(m["rating"] or 0.0), m["model"]))

    # matrix[i][j]: share of i's judged votes against j that i won (ties half); None when never compared
    rate = [[None] * n for _ in range(n)]
    played = [[0] * n for _ in range(n)]
    for i, j, ha, hb, t in zip(a.tolist(), b.tolist(), half_a.tolist(), half_b.tolist(), judged.tolist()):
        if t:
            rate[i][j], rate[j][i] = round(ha / t, 4), round(hb / t, 4)
            played[i][j] = played[j][i] = int(t)
    order = [counts.models.index(m["model"]) for m in models]
    return {
        "models": models,
        "matrix": {"models": [counts.models[i] for i in order],
                   "win_rate": [[rate[i][j] for j in order] for i in order],
                   "votes": [[played[i][j] for j in order] for i in order]},
        "votes": int(judged.sum() + counts.both_bad.sum()),
        "judged": int(judged.sum()),
        "both_bad": int(counts.both_bad.sum()),
        "anchor": counts.models[anchor] if n else None,
        "anchor_rating": anchor_rating,
        "resamples": resamples,
        "seed": seed,
        "level": level,
    }


def wilson_interval(successes: float, n: float, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion (ties may count half, so successes may be fractional)."""
    if n <= 0:
        return None
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)
