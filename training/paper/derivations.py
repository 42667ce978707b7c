"""Unpublished counts that the published numbers determine, derived by exhaustive search.

Each function enumerates every configuration compatible with the paper's sample sizes and
returns those that reproduce the printed P value with the paper's test. Where exactly one
configuration is left the count is derived; where several are left, the reconstruction's
choice is an assumption, and the tests check that it is one of the solutions listed here.
"""
from __future__ import annotations

import itertools

import numpy as np
from scipy import stats

N_LOW, N_HIGH = 33, 45


def severe_crs_counts(p_printed: float = 0.0053, n_low: int = N_LOW,
                      n_high: int = N_HIGH) -> list[tuple[int, int]]:
    """(low, high) sCRS counts whose two-sided Fisher P rounds to ``p_printed``.

    The paper (Fig. 4B) prints P = 0.0053 and says sCRS was more frequent in the high group;
    ``n_low`` / ``n_high`` are the group sizes (patients).
    """
    return [
        (low, high)
        for low in range(n_low + 1)
        for high in range(n_high + 1)
        if round(stats.fisher_exact([[low, n_low - low], [high, n_high - high]]).pvalue, 4) == p_printed
    ]


def subgroup_configurations(low_events: int, high_events: int, p_printed: float = 0.0224,
                            min_size: int = 8, n_low: int = N_LOW,
                            n_high: int = N_HIGH) -> list[tuple[tuple[int, ...], tuple[int, ...], float]]:
    """Subgroup sizes (a..e) and sCRS events reproducing the one-way ANOVA P of Fig. 4C.

    Only configurations with sCRS rates non-decreasing from a to e (the paper: "the CRS
    reaction became increasingly severe as the tumor burden increased") and no subgroup
    smaller than ``min_size`` are listed (groups of ``n_low`` and ``n_high`` patients). The ANOVA of a 0/1 outcome is computed in closed
    form from the counts (between-group and within-group sums of squares), vectorized over
    every event split; :func:`scipy.stats.f_oneway` on the expanded data gives the same P.
    """
    ea, ec, ed = (g.ravel() for g in np.meshgrid(
        np.arange(low_events + 1), np.arange(high_events + 1), np.arange(high_events + 1),
        indexing="ij"))
    events = np.column_stack([ea, low_events - ea, ec, ed, high_events - ec - ed]).astype(float)
    events = events[events[:, 4] >= 0]
    total_n, total_events = n_low + n_high, low_events + high_events
    solutions = []
    for a in range(min_size, n_low - min_size + 1):
        for c, d in itertools.product(range(min_size, n_high), repeat=2):
            e = n_high - c - d
            if e < min_size:
                continue
            sizes = np.array([a, n_low - a, c, d, e], dtype=float)
            rates = events / sizes
            ok = np.all(events <= sizes, axis=1) & np.all(np.diff(rates, axis=1) >= 0, axis=1)
            if not ok.any():
                continue
            k, r = events[ok], rates[ok]
            between = (sizes * (r - total_events / total_n) ** 2).sum(axis=1)
            within = (k * (1 - r)).sum(axis=1)
            with np.errstate(divide="ignore"):
                f = (between / 4) / (within / (total_n - 5))
            p = stats.f.sf(f, 4, total_n - 5)
            for row in np.flatnonzero(np.round(p, 4) == p_printed):
                solutions.append((tuple(int(x) for x in sizes), tuple(int(x) for x in k[row]), float(p[row])))
    return solutions


def crs_grade_p(low_counts, high_counts) -> float:
    """Student t test P of CRS grade, from counts of grades 0..k in each group."""
    low = np.repeat(np.arange(len(low_counts)), low_counts)
    high = np.repeat(np.arange(len(high_counts)), high_counts)
    return float(stats.ttest_ind(low, high).pvalue)


def neurotoxicity_counts(max_events: int = 10) -> list[tuple[int, int]]:
    """(low, high) neurotoxicity counts with a two-sided Fisher P > 0.9999 (Fig. 4D)."""
    return [
        (low, high)
        for low in range(max_events + 1)
        for high in range(max_events + 1)
        if stats.fisher_exact([[low, N_LOW - low], [high, N_HIGH - high]]).pvalue > 0.9999
    ]
