"""The severe-CRS band table: observed sCRS rate by tumour-burden subgroup a-e.

Each row gives the observed events / n, the rate, its Wilson score 95 % interval, and an isotonic
(monotone non-decreasing from a to e) smoothed rate. Monotonicity is prespecified from the paper's
finding that sCRS rises with tumour burden; the smoothing pools adjacent subgroups whose observed
rates go the wrong way (pool-adjacent-violators, weighted by n), so a small subgroup cannot make a
lower burden look riskier than a higher one by chance alone.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from model.burden import SUBGROUP_LABELS, burden_subgroups

SUBGROUPS = tuple(SUBGROUP_LABELS)  # a..e, in burden order


def wilson_interval(events: int, n: int, level: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval of a binomial proportion (Wilson 1927), closed form.

    Parameters
    ----------
    events, n : int
        Successes and trials (0 <= events <= n).
    level : float
        Confidence level in (0, 1).

    Returns
    -------
    (lower, upper) in [0, 1], or None when n == 0.
    """
    if n == 0:
        return None
    if not 0 <= events <= n:
        raise ValueError(f"need 0 <= events <= n (got {events} of {n})")
    z = float(stats.norm.ppf(0.5 + level / 2.0))
    p = events / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2.0 * n)) / denominator
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denominator
    # Clipping only removes rounding residue at events = 0 or n, where the bound is exactly 0 or 1.
    return max(0.0, centre - half), min(1.0, centre + half)


def isotonic_rates(events: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Monotone non-decreasing rates fitted to events / n, weighted by n (NaN where n == 0)."""
    from sklearn.isotonic import IsotonicRegression

    events = np.asarray(events, dtype=float)
    n = np.asarray(n, dtype=float)
    out = np.full(n.size, np.nan)
    seen = n > 0
    if seen.any():
        x = np.flatnonzero(seen).astype(float)
        model = IsotonicRegression(increasing=True, y_min=0.0, y_max=1.0)
        out[seen] = model.fit_transform(x, events[seen] / n[seen], sample_weight=n[seen])
    return out


def scrs_band_table(cohort: pd.DataFrame) -> list[dict]:
    """The five sCRS band rows of a cohort with ``marrow_blasts_pct``, ``mrd_positive``, ``crs_grade``.

    Returns
    -------
    list of dict, subgroups a-e in order, each with ``subgroup``, ``label``, ``events``, ``n``,
    ``rate``, ``ci95`` and ``smoothed_rate`` (``None`` for rate, interval and smoothed rate of a
    subgroup without patients).
    """
    letters = burden_subgroups(cohort["marrow_blasts_pct"], cohort["mrd_positive"])
    severe = cohort["crs_grade"].to_numpy() >= 3
    events = np.array([int(severe[letters == s].sum()) for s in SUBGROUPS])
    n = np.array([int((letters == s).sum()) for s in SUBGROUPS])
    smoothed = isotonic_rates(events, n)
    rows = []
    for i, subgroup in enumerate(SUBGROUPS):
        interval = wilson_interval(int(events[i]), int(n[i]))
        rows.append({
            "subgroup": subgroup, "label": SUBGROUP_LABELS[subgroup],
            "events": int(events[i]), "n": int(n[i]),
            "rate": float(events[i] / n[i]) if n[i] else None,
            "ci95": list(interval) if interval else None,
            "smoothed_rate": float(smoothed[i]) if n[i] else None,
        })
    return rows
