"""Shift one group's values so an unpaired t test gives a printed P (IL-6 and CAR-T peaks, A9).

Used by :mod:`training.paper.reconstruction`: the paper prints the P value of a t test whose data are
not published, so the reconstruction draws plausible values and moves the high-burden group's
values by one constant (and, when rounding to the printed decimals moves P off target, single
values by one printed step) until the t test reproduces the printed P.
"""
from __future__ import annotations

import numpy as np
from scipy import optimize, stats


def tune_shift(values: np.ndarray, group: np.ndarray, target_p: float, decimals: int) -> np.ndarray:
    """Shift the high group's values by one constant so the t-test P equals ``target_p``."""
    low, high = values[group == "low"], values[group == "high"]

    def gap(shift):
        return stats.ttest_ind(low, high + shift).pvalue - target_p

    top = 50 * (high.std() + low.std()) + abs(low.mean() - high.mean())
    if gap(0.0) > 0:
        shift = optimize.brentq(gap, 0.0, top, xtol=1e-10)
    else:
        # The draw already separates the groups more than the printed P: start from equal means
        # (P = 1), where the bracket always changes sign.
        shift = optimize.brentq(gap, low.mean() - high.mean(), top, xtol=1e-10)

    def shifted(by):
        out = values.copy()
        out[group == "high"] = high + by
        out = np.round(out, decimals)
        return out, stats.ttest_ind(out[group == "low"], out[group == "high"]).pvalue

    out, p = shifted(shift)
    # Rounding to the printed decimals can move P off target: try the nearest shifts on that grid,
    # then (from the closest) single values one printed step up or down.
    step = 10.0 ** -decimals
    best = (abs(p - target_p), out, p)
    for j in (j for k in range(1, 41) for j in (k, -k)):
        if round(p, 4) == target_p:
            break
        out, p = shifted(shift + j * step / 4)
        best = min(best, (abs(p - target_p), out, p), key=lambda b: b[0])
    if round(p, 4) != target_p:
        _, out, p = best
        out, p = nudge(out, group == "high", target_p, step)
    if round(p, 4) != target_p:
        raise RuntimeError(f"could not tune t test to P = {target_p} (got {p:.6f})")
    if np.any(out <= 0):
        raise RuntimeError(f"tuning the t test to P = {target_p} needs values <= 0")
    return out


def nudge(values: np.ndarray, high: np.ndarray, target_p: float, step: float,
           limit: int = 200) -> tuple[np.ndarray, float]:
    """Move single high-group values by one printed step until the t-test P rounds to target."""
    out = values.copy()
    idx = np.flatnonzero(high)
    for _ in range(limit):
        p = stats.ttest_ind(out[~high], out[high]).pvalue
        if round(p, 4) == target_p:
            break
        candidates = np.repeat(out[None, :], 2 * idx.size, axis=0)
        candidates[np.arange(idx.size), idx] += step
        candidates[idx.size + np.arange(idx.size), idx] -= step
        gaps = np.abs(stats.ttest_ind(candidates[:, ~high], candidates[:, high], axis=1).pvalue - target_p)
        best = int(np.argmin(gaps))
        if gaps[best] >= abs(p - target_p):
            break
        out = np.round(candidates[best], 10)
    return out, float(stats.ttest_ind(out[~high], out[high]).pvalue)
