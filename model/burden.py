"""Tumor-burden groups and subgroups (Li et al., Results: 'Safety analysis').

Tumor burden is the bone-marrow blast percentage measured before CAR-T infusion.
Group: low < 5 % <= high. Subgroups: a = 0 % with MRD positivity; b = 0 < blasts < 5;
c = 5 <= blasts < 20; d = 20 <= blasts < 50; e = blasts >= 50.
"""
from __future__ import annotations

import numpy as np

HIGH_BURDEN_THRESHOLD_PCT = 5.0
SUBGROUPS = ("a", "b", "c", "d", "e")
SUBGROUP_LABELS = {
    "a": "0% blasts, MRD positive",
    "b": "0% < blasts < 5%",
    "c": "5% <= blasts < 20%",
    "d": "20% <= blasts < 50%",
    "e": "blasts >= 50%",
}
_EDGES = np.array([5.0, 20.0, 50.0])


def burden_groups(blasts_pct) -> np.ndarray:
    """'low' (< 5 %) or 'high' (>= 5 %) for each marrow blast percentage (0-100)."""
    blasts = np.asarray(blasts_pct, dtype=float)
    return np.where(blasts >= HIGH_BURDEN_THRESHOLD_PCT, "high", "low")


def burden_subgroups(blasts_pct, mrd_positive) -> np.ndarray:
    """Subgroup letter a-e for each patient; '' for 0 % blasts without MRD (outside the population).

    Parameters
    ----------
    blasts_pct : array-like of float, 0-100
        Pre-infusion marrow blast percentage.
    mrd_positive : array-like of bool or 0/1
        MRD positive by flow cytometry.
    """
    blasts = np.atleast_1d(np.asarray(blasts_pct, dtype=float))
    mrd = np.atleast_1d(np.asarray(mrd_positive, dtype=bool))
    letters = np.array(["b", "c", "d", "e"])[np.searchsorted(_EDGES, blasts, side="right")]
    letters = np.where(blasts <= 0, np.where(mrd, "a", ""), letters)
    return letters


def burden_subgroup(blasts_pct: float, mrd_positive: bool) -> str:
    """Subgroup letter for one patient ('' when outside the modelled population)."""
    return str(burden_subgroups([blasts_pct], [mrd_positive])[0])
