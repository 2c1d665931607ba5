"""Leaderboard and agreement for a million synthetic votes over 50 checkpoints (compute only, no database).

    .venv/bin/python bench/leaderboard.py [--votes 1000000] [--models 50] [--resamples 1000]

Votes are drawn from a Bradley–Terry model with known strengths (10 % ties, 5 % both
bad); three annotators vote on each comparison. Prints the time of each step and how
well the fitted ratings recover the true ones.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.agreement import krippendorff_alphas, leave_one_out_agreement, value_counts  # noqa: E402
from training.ratings import ELO_SCALE, leaderboard, pair_counts_from_votes  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--votes", type=int, default=1_000_000)
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    truth = rng.normal(0, 0.5, args.models)
    truth -= truth[0]
    comparisons = args.votes // 3
    ma, mb = rng.integers(0, args.models, comparisons), rng.integers(0, args.models, comparisons)
    p = 1.0 / (1.0 + np.exp(truth[mb] - truth[ma]))
    comparison = np.repeat(np.arange(comparisons), 3)
    a, b, p = np.repeat(ma, 3), np.repeat(mb, 3), np.repeat(p, 3)
    u = rng.random(len(a))
    # ties 10 %, with the remaining wins set so that a tie counting half keeps the expected score at p
    win = np.clip((p - 0.05) / 0.9, 0.0, 1.0)
    choice = np.where(u < 0.05, 3, np.where(u < 0.15, 2, np.where(rng.random(len(a)) < win, 0, 1)))
    names = [f"checkpoint:{i}" for i in range(args.models)]

    t0 = time.perf_counter()
    counts = pair_counts_from_votes(a, b, choice, names)
    t1 = time.perf_counter()
    board = leaderboard(counts, anchor=0, resamples=args.resamples, seed=1)
    t2 = time.perf_counter()
    alphas = krippendorff_alphas(value_counts(comparison, choice))
    has_majority, agrees = leave_one_out_agreement(comparison, choice)
    t3 = time.perf_counter()

    fitted = {m["model"]: m for m in board["models"]}
    true_rating = 1000 + ELO_SCALE * truth
    error = max(abs(fitted[n]["rating"] - r) for n, r in zip(names, true_rating))
    covered = np.mean([fitted[n]["low"] <= r <= fitted[n]["high"] for n, r in zip(names[1:], true_rating[1:])])
    print(f"{len(a):,} votes, {args.models} models, {len(counts.a)} pairs, {args.resamples} resamples")
    print(f"aggregate votes into pair counts: {t1 - t0:.2f} s")
    print(f"Bradley–Terry fit + bootstrap:     {t2 - t1:.2f} s")
    print(f"Krippendorff alpha + leave-one-out agreement ({comparisons:,} comparisons): {t3 - t2:.2f} s "
          f"(ordinal {alphas['ordinal']}, nominal {alphas['nominal']}, "
          f"agreement {agrees.sum() / max(has_majority.sum(), 1):.3f})")
    print(f"total: {t3 - t0:.2f} s; max rating error {error:.1f} points; 95% intervals cover {covered:.0%} of true ratings")


if __name__ == "__main__":
    main()
