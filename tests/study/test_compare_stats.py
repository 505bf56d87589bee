"""hls_tune/study/compare_stats.py: mean ± std, paired differences and Kendall τ-b."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hls_tune.study.compare_stats import Summary, kendall_tau_b


def test_summary_is_the_mean_and_sample_std_in_percent():
    assert Summary.of([0.8, 0.9]).format() == "85.0 ± 7.1"
    assert Summary.of([0.5]).format() == "50.0"
    assert Summary.of([]) is None
    assert Summary.of([1000, 3000]).format("count") == "2,000 ± 1,414"


# Kendall tau-b by hand. x = 1 2 3 4, y = 1 3 2 4: 5 concordant pairs, 1 discordant, no
# ties: tau = 4/6; exact two-sided p = 2 * (orderings of 4 with <= 1 inversion) / 4!
# = 2 * (1 + 3) / 24 = 1/3.
# With ties, x = 1 1 2 3, y = 1 2 2 3: pairs (12) tie in x, (23) tie in y, the other 4 are
# concordant; n0 = 6, n1 = n2 = 1: tau-b = 4 / sqrt(5 * 5) = 0.8 (tau-a would be 4/6).
# Tie-corrected variance of S = C - D (Kendall 1970):
# (n(n-1)(2n+5) - sum t(t-1)(2t+5) - sum u(u-1)(2u+5)) / 18 + sum t(t-1) sum u(u-1) / (2n(n-1))
# + sum t(t-1)(t-2) sum u(u-1)(u-2) / (9n(n-1)(n-2)) = (156 - 18 - 18) / 18 + 4 / 24 + 0 = 41/6
# p = erfc(4 / sqrt(41/6) / sqrt 2).
def test_kendall_tau_b_matches_hand_computed_values():
    exact = kendall_tau_b([1, 2, 3, 4], [1, 3, 2, 4])
    assert exact.tau == pytest.approx(4 / 6)
    assert exact.method == "exact"
    assert exact.p_value == pytest.approx(1 / 3)
    tied = kendall_tau_b([1, 1, 2, 3], [1, 2, 2, 3])
    assert tied.tau == pytest.approx(0.8)
    assert tied.method == "normal"
    assert tied.p_value == pytest.approx(math.erfc(4 / math.sqrt(41 / 6) / math.sqrt(2)))
    assert kendall_tau_b([1, 2, 3], [3, 2, 1]).tau == pytest.approx(-1.0)
    assert kendall_tau_b([1, 1, 1], [1, 2, 3]) is None  # undefined: x is constant
    assert kendall_tau_b([1], [1]) is None


def test_kendall_tau_b_agrees_with_scipy_on_random_samples():
    from scipy.stats import kendalltau

    rng = np.random.default_rng(0)
    for n in (5, 12, 40, 70):
        for ties in (False, True):
            x = rng.integers(0, 4, n) if ties else rng.permutation(n)
            y = rng.integers(0, 4, n) if ties else rng.permutation(n)
            ours = kendall_tau_b(list(x), list(y))
            method = "exact" if ours.method == "exact" else "asymptotic"
            ref = kendalltau(x, y, variant="b", method=method)
            assert ours.tau == pytest.approx(ref.statistic, abs=1e-12), (n, ties)
            assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9), (n, ties)
