"""Krippendorff's alpha, leave-one-out agreement and the binomial test on known values."""
import numpy as np
import krippendorff
import pytest

from training.agreement import (
    annotator_flags,
    binomial_two_sided_p,
    krippendorff_alphas,
    leave_one_out_agreement,
    value_counts,
)

nan = np.nan
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": 4 observers, 12 units, missing data
TEXTBOOK = [[1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
            [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
            [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
            [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan]]


def test_the_package_gives_the_textbook_values():
    assert round(krippendorff.alpha(reliability_data=TEXTBOOK, level_of_measurement="nominal"), 3) == 0.743
    assert round(krippendorff.alpha(reliability_data=TEXTBOOK, level_of_measurement="ordinal"), 3) == 0.815


def test_our_value_counts_give_the_same_alpha_as_the_reliability_matrix():
    rng = np.random.default_rng(3)
    coders, units = 5, 60
    truth = rng.integers(0, 3, units)
    data = np.where(rng.random((coders, units)) < 0.75, truth, rng.integers(0, 4, (coders, units))).astype(float)
    data[rng.random((coders, units)) < 0.3] = nan
    unit_idx, coder_idx = np.nonzero(~np.isnan(data.T))
    choice = data.T[unit_idx, coder_idx].astype(int)
    ours = krippendorff_alphas(value_counts(unit_idx, choice))
    expected_nominal = krippendorff.alpha(reliability_data=data, value_domain=[0, 1, 2, 3],
                                          level_of_measurement="nominal")
    assert ours["nominal"] == pytest.approx(expected_nominal, abs=1e-4)
    # ordinal over A > tie > B: codes 0 (a), 2 (tie), 1 (b) in that order; both-bad (3) is missing
    ordinal = np.where(data == 3, nan, np.select([data == 0, data == 2, data == 1], [0, 1, 2], nan))
    ordinal[np.isnan(data)] = nan
    expected_ordinal = krippendorff.alpha(reliability_data=ordinal, value_domain=[0, 1, 2],
                                          level_of_measurement="ordinal")
    assert ours["ordinal"] == pytest.approx(expected_ordinal, abs=1e-4)


def test_perfect_agreement_is_one_and_alpha_is_undefined_without_overlap():
    counts = value_counts([1, 1, 2, 2, 3, 3], [0, 0, 1, 1, 2, 2])
    assert krippendorff_alphas(counts)["nominal"] == 1.0
    assert krippendorff_alphas(value_counts([1, 2, 3], [0, 1, 0]))["nominal"] is None


def test_leave_one_out_majority():
    # comparison 1: a, a, b → the b voter disagrees, the a voters agree; comparison 2: a, b → no majority for either
    has_majority, agrees = leave_one_out_agreement([1, 1, 1, 2, 2], [0, 0, 1, 0, 1])
    assert has_majority.tolist() == [False, False, True, True, True]
    # vote 0: others are (a, b) → level, no majority; vote 2 (b): others (a, a) → disagrees
    assert agrees.tolist() == [False, False, False, False, False]
    has_majority, agrees = leave_one_out_agreement([1, 1, 1], [0, 0, 0])
    assert agrees.all()


def test_exact_binomial_two_sided():
    assert binomial_two_sided_p(9, 10) == pytest.approx(22 / 1024)
    assert binomial_two_sided_p(5, 10) == pytest.approx(1.0)
    assert binomial_two_sided_p(0, 0) == 1.0
    assert binomial_two_sided_p(80, 100) < 1e-8


def test_flags_name_the_reason():
    base = {"votes": 50, "ab_votes": 50, "left_picks": 25, "left_p": 1.0, "ties": 0, "both_bad": 0, "median_s": 10.0,
            "loo_compared": 40, "loo_agreement": 0.8, "gold_votes": 10, "gold_accuracy": 0.9}
    rows = [dict(base), dict(base), dict(base, left_picks=50, left_p=1e-15),
            dict(base, gold_accuracy=0.4), dict(base, loo_agreement=0.2)]
    annotator_flags(rows, min_gold_accuracy=0.7)
    assert [r["flagged"] for r in rows] == [False, False, True, True, True]
    assert "left" in rows[2]["flags"][0] and "gold" in rows[3]["flags"][0] and "majority" in rows[4]["flags"][0]
