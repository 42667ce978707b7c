"""Monte Carlo standard errors of the simulation study (training/simulation/monte_carlo.py)."""
import math

import numpy as np
import pandas as pd
import pytest

from training.simulation.monte_carlo import mcse_mean, mcse_median, median_interval
from training.simulation.study import summarize


def test_order_statistic_ranks_follow_the_binomial_interval():
    # m = 100: 50 -/+ 1.96 * 10 / 2 = 40.2 / 59.8 -> ranks 40 and 60
    assert median_interval(100) == (40, 60)
    assert median_interval(1000) == (469, 531)  # 500 -/+ 30.99
    # on 1..100 the interval is [40, 60]: MCSE = 20 / (2 * 1.96)
    assert mcse_median(np.arange(1.0, 101.0)) == pytest.approx(20 / 3.919928, rel=1e-6)


def test_median_mcse_matches_the_sampling_spread_of_the_median():
    """Over many samples from a known distribution, the average MCSE is the actual standard
    deviation of the sample median (and the asymptotic sqrt(pi / 2) / sqrt(m) for N(0, 1))."""
    rng = np.random.default_rng(3)
    m = 400
    samples = rng.standard_normal((3000, m))
    spread = np.median(samples, axis=1).std(ddof=1)
    estimates = np.array([mcse_median(s) for s in samples[:300]])
    assert spread == pytest.approx(math.sqrt(math.pi / 2) / math.sqrt(m), rel=0.06)
    assert estimates.mean() == pytest.approx(spread, rel=0.08)
    skewed = np.exp(rng.standard_normal((3000, m)))  # lognormal: density at median 1/sqrt(2 pi)
    spread = np.median(skewed, axis=1).std(ddof=1)
    assert np.mean([mcse_median(s) for s in skewed[:300]]) == pytest.approx(spread, rel=0.08)


def test_median_mcse_handles_infinite_slopes_and_small_samples():
    values = np.r_[np.linspace(0.5, 1.5, 80), np.full(20, np.inf)]  # 20 % flat fits
    assert math.isfinite(mcse_median(values))
    assert mcse_median(np.r_[np.linspace(0.5, 1.5, 50), np.full(50, np.inf)]) == math.inf
    assert math.isnan(mcse_median(np.array([1.0, 2.0, np.nan])))


def test_mean_mcse_is_sd_over_root_m():
    values = np.array([1.0, 2.0, 4.0, 7.0])
    assert mcse_mean(values) == pytest.approx(np.std(values, ddof=1) / 2.0)
    assert math.isnan(mcse_mean(np.array([1.0])))


def test_summary_reports_mcse_beside_the_medians_and_means():
    rng = np.random.default_rng(5)
    rows = pd.DataFrame({"n": 78, "repetition": np.arange(200), "outcome": "cr",
                         "method": "m", "calibration_slope": rng.lognormal(0, 0.4, 200),
                         "calibration_in_the_large": rng.normal(0, 0.02, 200),
                         "rmse": rng.uniform(0.05, 0.1, 200), "mae": 0.04, "c_index": 0.7,
                         "edge": False, "null_limit": False, "failed": False})
    summary = summarize(rows).iloc[0]
    assert summary["slope_median_mcse"] == mcse_median(rows["calibration_slope"].to_numpy())
    assert summary["rmse_mcse"] == pytest.approx(rows["rmse"].std() / math.sqrt(200))
    assert summary["c_mcse"] == 0.0
