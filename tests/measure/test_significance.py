"""Intervals and the paired test against published values."""

from __future__ import annotations

import math

import pytest

from edgecam.measure.significance import (
    EXACT_BELOW,
    binomial_two_sided,
    chi2_1df_sf,
    mcnemar,
    paired_difference_interval,
    wilson_interval,
)

# Newcombe (1998), "Two-sided confidence intervals for the single proportion",
# Table II, method 3 (Wilson score interval without continuity correction).
NEWCOMBE_WILSON = [
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
]


@pytest.mark.parametrize("k, n, lo, hi", NEWCOMBE_WILSON)
def test_wilson_matches_newcombe(k, n, lo, hi):
    got = wilson_interval(k, n)
    assert got == pytest.approx((lo, hi), abs=5e-5)


@pytest.mark.parametrize("k, n", [(0, 1), (0, 100), (50, 100), (80, 100), (100, 100), (3, 7)])
def test_wilson_is_inside_0_1_around_p_and_mirrors(k, n):
    lo, hi = wilson_interval(k, n)
    assert 0.0 <= lo <= k / n <= hi <= 1.0
    mlo, mhi = wilson_interval(n - k, n)
    assert (mlo, mhi) == pytest.approx((1 - hi, 1 - lo), abs=1e-12)


def test_wilson_at_the_edges_and_bad_input():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(100, 100)[1] == 1.0 and wilson_interval(0, 100)[0] == 0.0
    # the figure quoted in issue 11: at n=100, a top-1 near 0.8 is known to about +-0.08
    lo, hi = wilson_interval(80, 100)
    assert 0.07 < 0.8 - lo < 0.10 and 0.06 < hi - 0.8 < 0.08
    for bad in [(-1, 10), (11, 10)]:
        with pytest.raises(ValueError):
            wilson_interval(*bad)


def test_binomial_two_sided_by_hand():
    # 6 of 22 fair flips: P(X <= 6) = (1+22+231+1540+7315+26334+74613) / 2^22
    assert binomial_two_sided(6, 22) == pytest.approx(2 * 110056 / 2**22, rel=1e-12)
    assert binomial_two_sided(16, 22) == binomial_two_sided(6, 22)  # symmetric
    assert binomial_two_sided(0, 5) == pytest.approx(2 / 32)
    assert binomial_two_sided(5, 10) == 1.0  # capped
    assert binomial_two_sided(0, 0) == 1.0


def test_chi2_tail_known_quantiles():
    assert chi2_1df_sf(3.841458820694124) == pytest.approx(0.05, rel=1e-9)  # the 95% critical value
    assert chi2_1df_sf(6.634896601021214) == pytest.approx(0.01, rel=1e-9)
    assert chi2_1df_sf(0.0) == 1.0


# Fagerland, Lydersen and Laake, "Statistical Analysis of Contingency Tables", ch. 8:
# complete response before/after consolidation therapy (Cavo et al., 2012),
# [[59, 6], [16, 80]]: exact conditional McNemar p = 0.052.
def test_mcnemar_exact_for_few_discordant_pairs():
    t = mcnemar(6, 16)
    assert (t.method, t.b, t.c, t.discordant) == ("exact", 6, 16, 22)
    assert t.p_value == pytest.approx(0.0525, abs=5e-5)
    assert not t.significant
    assert mcnemar(0, 0).p_value == 1.0
    # 0 vs 8: 2 / 2^8 = 0.0078, a real difference even with few photos
    assert mcnemar(0, 8).p_value == pytest.approx(2 / 256) and mcnemar(0, 8).significant


def test_mcnemar_chi2_with_continuity_correction_from_25_pairs():
    # Wikipedia's McNemar example: b=121, c=59; (|b-c| - 1)^2 / (b + c) = 61^2 / 180
    t = mcnemar(121, 59)
    assert t.method == "chi2"
    assert t.statistic == pytest.approx(61**2 / 180)
    assert t.p_value == pytest.approx(math.erfc(math.sqrt(61**2 / 180 / 2)))
    assert t.p_value < 1e-5 and t.significant
    assert mcnemar(13, 13).method == "chi2" and mcnemar(13, 13).p_value > 0.8
    assert mcnemar(EXACT_BELOW - 1, 0).method == "exact" and mcnemar(EXACT_BELOW, 0).method == "chi2"


def test_mcnemar_rejects_negative_counts():
    with pytest.raises(ValueError):
        mcnemar(-1, 3)


def test_paired_difference_interval_matches_the_book():
    # Same table, Newcombe's square-and-add interval: -0.0621 (-0.1186 to -0.0046).
    lo, hi = paired_difference_interval(59, 6, 16, 80)
    assert (lo, hi) == pytest.approx((-0.1186, -0.0046), abs=5e-5)
    # swapping A and B mirrors the interval
    lo2, hi2 = paired_difference_interval(59, 16, 6, 80)
    assert (lo2, hi2) == pytest.approx((-hi, -lo), abs=1e-12)


@pytest.mark.parametrize("table", [(100, 0, 0, 0), (0, 0, 0, 100), (50, 0, 0, 50), (0, 30, 0, 0), (5, 5, 5, 5)])
def test_paired_difference_interval_contains_the_estimate(table):
    both, a_only, b_only, neither = table
    n = sum(table)
    d = (a_only - b_only) / n
    lo, hi = paired_difference_interval(*table)
    assert -1.0 <= lo <= d <= hi <= 1.0
    assert paired_difference_interval(0, 0, 0, 0) == (-1.0, 1.0)
