"""Monte Carlo standard errors of the simulation study's summaries.

A simulation study's summaries are estimates from a finite number of simulated cohorts; Morris,
White & Crowther (2019, Stat Med 38:2074, "Using simulation studies to evaluate statistical
methods") ask that each be reported with its Monte Carlo standard error (MCSE).

* Mean of m values: sd / sqrt(m) (sample SD, ``ddof=1``).
* Median of m values: from the distribution-free confidence interval of a median by order
  statistics. The number of values below the true median is Binomial(m, 1/2), so the order
  statistics x_(j) and x_(k), j = floor(m/2 - z sqrt(m)/2) and k = ceil(m/2 + z sqrt(m)/2)
  (1-based, normal approximation to the binomial, z = 1.96), bound a 95 % interval; the MCSE is
  its width / (2 z). It needs no density estimate and no resampling, and it is finite whenever
  the interval's ends are, so it works for slopes with +inf values (flat fits) as long as fewer
  than about half are infinite. Asymptotically it equals the usual 1 / (2 f(median) sqrt(m)).
"""
from __future__ import annotations

import math

import numpy as np

#: Normal quantile of the order-statistic interval (95 %).
Z = 1.959963984540054
#: Fewest values for which the median's MCSE is given (the interval needs j >= 1).
MIN_VALUES = 5


def mcse_mean(values: np.ndarray) -> float:
    """MCSE of the mean of ``values`` (finite values only): sd / sqrt(m); NaN for m < 2."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size < 2:
        return math.nan
    return float(np.std(values, ddof=1) / math.sqrt(values.size))


def median_interval(m: int) -> tuple[int, int]:
    """1-based ranks (j, k) of the order statistics bounding the 95 % interval of a median of m."""
    half = Z * math.sqrt(m) / 2.0
    j = max(1, math.floor(m / 2.0 - half))
    k = min(m, math.ceil(m / 2.0 + half))
    return j, k


def mcse_median(values: np.ndarray) -> float:
    """MCSE of the median of ``values`` (NaN ignored, +inf allowed): order-statistic interval
    width / (2 z); +inf when the interval's upper end is infinite, NaN below :data:`MIN_VALUES`."""
    values = np.sort(np.asarray(values, dtype=float))
    values = values[~np.isnan(values)]
    if values.size < MIN_VALUES:
        return math.nan
    j, k = median_interval(values.size)
    upper, lower = values[k - 1], values[j - 1]
    if not np.isfinite(upper):
        return math.inf
    return float((upper - lower) / (2.0 * Z))
