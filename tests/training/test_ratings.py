"""Bradley–Terry ratings, bootstrap intervals and Wilson intervals against hand-computed values."""
import math

import numpy as np
import pytest
import torch

from training.ratings import (
    ELO_SCALE,
    fit_bradley_terry,
    leaderboard,
    pair_counts,
    pair_counts_from_votes,
    wilson_interval,
)


def _by_model(board):
    return {m["model"]: m for m in board["models"]}


def test_two_models_three_wins_in_four_is_log10_3_times_400_points():
    board = leaderboard(pair_counts([("r0", "r1", "b", 3), ("r0", "r1", "a", 1)]), resamples=0)
    ratings = _by_model(board)
    assert ratings["r0"]["rating"] == 1000.0
    # P(r1 beats r0) = 3/4 → odds 3 → 400·log10(3) ≈ 190.85 points
    assert ratings["r1"]["rating"] == pytest.approx(1000 + 400 * math.log10(3), abs=0.1)


def test_ties_count_half_and_both_bad_is_counted_but_not_fitted():
    board = leaderboard(pair_counts([("r0", "r1", "a", 1), ("r0", "r1", "b", 1), ("r0", "r1", "tie", 2),
                                     ("r0", "r1", "both_bad", 5)]), resamples=0)
    ratings = _by_model(board)
    assert ratings["r1"]["rating"] == pytest.approx(1000.0, abs=0.05)
    assert ratings["r1"]["votes"] == 9 and ratings["r1"]["both_bad"] == 5 and ratings["r1"]["judged"] == 4
    assert board["matrix"]["win_rate"][0][1] == 0.5


def test_matches_a_direct_maximum_likelihood_solve_on_a_small_tournament():
    # a tournament of four players with uneven numbers of games, order-dependent outcomes
    rows = [("A", "B", "a", 7), ("A", "B", "b", 3), ("A", "C", "a", 5), ("A", "C", "b", 5),
            ("B", "C", "a", 2), ("B", "C", "b", 6), ("C", "D", "a", 9), ("C", "D", "b", 1),
            ("A", "D", "a", 4), ("A", "D", "b", 2), ("B", "D", "tie", 4), ("B", "D", "a", 1)]
    counts = pair_counts(rows)
    board = leaderboard(counts, anchor=0, resamples=0)
    # direct solve: maximise the likelihood with θ_A fixed at 0, by L-BFGS in float64
    a, b = torch.tensor(counts.a), torch.tensor(counts.b)
    wa = torch.tensor(counts.wins_a + 0.5 * counts.ties, dtype=torch.float64)
    wb = torch.tensor(counts.wins_b + 0.5 * counts.ties, dtype=torch.float64)
    free = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([free], max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        theta = torch.cat([torch.zeros(1, dtype=torch.float64), free])
        d = theta[a] - theta[b]
        loss = -(wa * torch.nn.functional.logsigmoid(d) + wb * torch.nn.functional.logsigmoid(-d)).sum()
        loss.backward()
        return loss

    opt.step(closure)
    direct = {name: 1000 + ELO_SCALE * float(t) for name, t in zip("ABCD", [0.0, *free.tolist()])}
    for name, row in _by_model(board).items():
        assert row["rating"] == pytest.approx(direct[name], abs=0.5), name


def test_batched_fit_equals_one_at_a_time():
    counts = pair_counts([("x", "y", "a", 3), ("y", "z", "a", 4), ("x", "z", "b", 2), ("x", "z", "a", 1)])
    w = np.stack([counts.wins_a, counts.wins_a + 1]).astype(float)
    l = np.stack([counts.wins_b + 1, counts.wins_b]).astype(float)
    batched = fit_bradley_terry(3, counts.a, counts.b, w, l)
    for i in range(2):
        np.testing.assert_allclose(batched[i], fit_bradley_terry(3, counts.a, counts.b, w[i], l[i]), atol=1e-8)


def test_a_model_that_won_everything_gets_a_finite_rating_and_an_unlinked_one_none():
    board = leaderboard(pair_counts([("r0", "r1", "b", 10), ("ext-a", "ext-b", "a", 3)]), resamples=50)
    ratings = _by_model(board)
    assert math.isfinite(ratings["r1"]["rating"]) and ratings["r1"]["rating"] > 1300
    assert ratings["ext-a"]["rating"] is None and not ratings["ext-a"]["linked"]


def test_raw_votes_aggregate_like_rows():
    a = np.array([0, 1, 0, 2, 2])
    b = np.array([1, 0, 1, 0, 2])
    choice = np.array([0, 0, 2, 3, 0])
    counts = pair_counts_from_votes(a, b, choice, ["m0", "m1", "m2"])
    expected = pair_counts([("m0", "m1", "a", 1), ("m1", "m0", "a", 1), ("m0", "m1", "tie", 1),
                            ("m2", "m0", "both_bad", 1)], models=["m0", "m1", "m2"])
    for field in ("a", "b", "wins_a", "wins_b", "ties", "both_bad"):
        np.testing.assert_array_equal(getattr(counts, field), getattr(expected, field))


def test_bootstrap_intervals_cover_the_truth_at_about_the_nominal_rate():
    rng = np.random.default_rng(7)
    truth = np.array([0.0, 0.3, -0.2, 0.6, 0.1])  # log-strengths, model 0 is the anchor
    names = [f"m{i}" for i in range(5)]
    covered = total = 0
    for _ in range(200):
        n = 600
        ma, mb = rng.integers(0, 5, n), rng.integers(0, 5, n)
        p = 1.0 / (1.0 + np.exp(truth[mb] - truth[ma]))
        choice = np.where(rng.random(n) < p, 0, 1)
        board = leaderboard(pair_counts_from_votes(ma, mb, choice, names), resamples=300,
                            seed=int(rng.integers(1 << 30)))
        for row in board["models"]:
            i = names.index(row["model"])
            if i == 0:
                continue
            true_rating = 1000 + ELO_SCALE * truth[i]
            covered += row["low"] <= true_rating <= row["high"]
            total += 1
    assert 0.9 <= covered / total <= 0.99, covered / total


def test_bootstrap_is_seeded():
    counts = pair_counts([("r0", "r1", "a", 30), ("r0", "r1", "b", 20), ("r1", "r2", "a", 12), ("r1", "r2", "b", 15)])
    assert leaderboard(counts, seed=3, resamples=200) == leaderboard(counts, seed=3, resamples=200)


def test_wilson_interval_matches_the_published_formula():
    low, high = wilson_interval(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(0, 0) is None
