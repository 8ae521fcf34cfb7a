"""The jackknife-t interval: Student-t quantiles, the jackknife standard error, no interval with few minibatches."""

from __future__ import annotations

import numpy as np
import pytest

from core.interval import MIN_BATCHES, jackknife_interval, t975


@pytest.mark.parametrize(
    ("df", "exact"), [(1, 12.7062), (4, 2.7764), (9, 2.2622), (30, 2.0423), (40, 2.0211), (60, 2.0003), (120, 1.9799)]
)
def test_t_quantiles_match_the_tables(df, exact):
    assert t975(df) == pytest.approx(exact, abs=5e-4)


def test_for_a_mean_the_jackknife_error_is_the_standard_error():
    """Leave-one-out means give exactly s / sqrt(n): the textbook identity the jackknife rests on."""
    x = np.random.default_rng(0).normal(size=(12, 3))
    leave_one_out = (x.sum(0) - x) / (len(x) - 1)
    low, high = jackknife_interval(x.mean(0), leave_one_out)
    se = x.std(0, ddof=1) / np.sqrt(len(x))
    np.testing.assert_allclose((high - low) / 2, t975(11) * se, rtol=1e-12)
    np.testing.assert_allclose((high + low) / 2, x.mean(0), rtol=1e-12)


def test_the_interval_holds_its_level_for_a_mean():
    """Normal data, 10 units: a 95% t interval covers the true mean 95% of the time (here 94-96% of 4,000)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4000, 10))
    leave_one_out = (x.sum(1, keepdims=True) - x) / 9
    low, high = jackknife_interval(x.mean(1), leave_one_out.T)
    coverage = np.mean((low <= 0) & (0 <= high))
    assert 0.94 <= coverage <= 0.96


def test_no_interval_below_the_minimum_number_of_minibatches():
    low, high = jackknife_interval(np.zeros(2), np.zeros((MIN_BATCHES - 1, 2)))
    assert np.isnan(low).all() and np.isnan(high).all()
