"""Tumour-burden groups and subgroups, and the modelled population (Li et al., 'Safety analysis').

Tumour burden is the bone-marrow blast percentage measured before CAR-T infusion.
Group: low < 5 % <= high. Subgroups: a = 0 % blasts with MRD positivity; b = 0 < blasts < 5;
c = 5 <= blasts < 20; d = 20 <= blasts < 50; e = blasts >= 50.

The modelled population (one rule, used by the API, the form, the figures, ``score`` and the
patient JSON schema): a patient whose marrow blasts are below the MRD threshold
(:data:`MRD_THRESHOLD_PCT`, 0.01 %) and who is MRD negative is in MRD-negative remission, which no
cohort patient was, so the models say nothing about them.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

#: The MRD threshold of multiparameter flow cytometry (%): MRD negative means blasts below it.
MRD_THRESHOLD_PCT = 0.01

#: Blast percentage separating low (< 5 %) from high (>= 5 %) tumour burden.
HIGH_BURDEN_FROM_PCT = 5.0

#: Lower edges (%) of burden subgroups c, d and e; subgroup b is 0 < blasts < 5.
SUBGROUP_EDGES_PCT = (5.0, 20.0, 50.0)

BURDEN_GROUP_LABELS = {"low": "blasts < 5%", "high": "blasts >= 5%"}

SUBGROUP_LABELS = {
    "a": "0% blasts, MRD positive",
    "b": "0% < blasts < 5%",
    "c": "5% <= blasts < 20%",
    "d": "20% <= blasts < 50%",
    "e": "blasts >= 50%",
}


def population_refusal(patient: Mapping[str, Any]) -> str | None:
    """Why the models cannot describe this patient, or ``None`` when they can.

    Parameters
    ----------
    patient : mapping
        A parsed patient (:func:`parse_patient`): ``marrow_blasts_pct`` in %, ``mrd_positive``.
    """
    if in_modelled_population([patient["marrow_blasts_pct"]],
                              [patient.get("mrd_positive") is True])[0]:
        return None
    return (f"marrow blasts below {MRD_THRESHOLD_PCT:g} % (the MRD threshold) with negative MRD "
            "is outside the population the models describe: every patient in the training cohort had detectable leukaemia before infusion "
            "(marrow blasts or MRD positivity), so the models say nothing about a patient "
            "in MRD-negative remission.")


def in_modelled_population(blasts_pct: Any, mrd_positive: Any) -> np.ndarray:
    """Boolean array: True where a patient belongs to the modelled population.

    Parameters
    ----------
    blasts_pct : array-like of float
        Marrow blasts, % (0-100).
    mrd_positive : array-like of bool or 0/1
        MRD positivity; unknown (NaN) counts as not positive.

    A patient is outside when blasts are below :data:`MRD_THRESHOLD_PCT` and MRD is not positive.
    """
    blasts = np.asarray(blasts_pct, dtype=float)
    mrd = np.asarray(mrd_positive, dtype=float)
    return (blasts >= MRD_THRESHOLD_PCT) | (mrd == 1)  # NaN == 1 is False: unknown is not positive


def burden_group(blasts_pct: float) -> str:
    """Tumour-burden group of one patient: ``"low"`` (blasts < 5 %) or ``"high"`` (>= 5 %)."""
    return str(burden_groups([blasts_pct])[0])


def burden_groups(blasts_pct: Any) -> np.ndarray:
    """Vectorized :func:`burden_group`: array of ``"low"`` / ``"high"``, one a patient.

    Raises
    ------
    ValueError
        If any value is NaN or outside 0-100 %.
    """
    blasts = _checked_blasts(blasts_pct)
    return np.where(blasts >= HIGH_BURDEN_FROM_PCT, "high", "low")


def burden_subgroup(blasts_pct: float, mrd_positive: bool | None) -> str:
    """Tumour-burden subgroup of one patient (``"a"`` to ``"e"``; see :data:`SUBGROUP_LABELS`).

    Parameters
    ----------
    blasts_pct : float
        Marrow blasts, % (0-100).
    mrd_positive : bool or None
        MRD positivity; only needed at 0 % blasts.

    Raises
    ------
    ValueError
        For blasts below the MRD threshold without MRD positivity (outside the modelled
        population), NaN or values outside 0-100 %.
    """
    mrd = np.nan if mrd_positive is None else float(mrd_positive)
    return str(burden_subgroups([blasts_pct], [mrd])[0])


def burden_subgroups(blasts_pct: Any, mrd_positive: Any) -> np.ndarray:
    """Vectorized :func:`burden_subgroup`: array of ``"a"`` to ``"e"``, one a patient.

    Parameters
    ----------
    blasts_pct : array-like of float
        Marrow blasts, % (0-100).
    mrd_positive : array-like of bool or 0/1 (NaN = unknown)
        Only consulted where blasts are 0 %.

    Raises
    ------
    ValueError
        If any patient is outside the modelled population, or for invalid blasts.
    """
    blasts = _checked_blasts(blasts_pct)
    outside = ~in_modelled_population(blasts, mrd_positive)
    if outside.any():
        rows = np.flatnonzero(outside)
        raise ValueError(f"{rows.size} patient(s) with blasts below {MRD_THRESHOLD_PCT:g} % are "
                         f"not MRD positive (rows "
                         f"{', '.join(map(str, rows[:10]))}{'...' if rows.size > 10 else ''}): "
                         "outside the modelled population, no burden subgroup")
    # searchsorted 'right' puts a value equal to an edge into the subgroup that starts there.
    index = np.searchsorted(np.asarray(SUBGROUP_EDGES_PCT), blasts, side="right") + 1
    index[blasts == 0] = 0
    return np.asarray(list("abcde"))[index]


def _checked_blasts(blasts_pct: Any) -> np.ndarray:
    blasts = np.atleast_1d(np.asarray(blasts_pct, dtype=float))
    bad = ~((blasts >= 0) & (blasts <= 100))  # also catches NaN
    if bad.any():
        raise ValueError(f"marrow blasts must be between 0 and 100 % (got {blasts[bad][0]:g})")
    return blasts
