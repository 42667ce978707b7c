"""Kaplan-Meier (product-limit) estimation with numpy alone, for the prediction side.

The calculator draws the cohort's observed curves under each patient's prediction, and the
reconstruction checks its survival draws, without importing lifelines. The tests compare this
estimator with lifelines and statsmodels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class KaplanMeier:
    """A Kaplan-Meier step curve: ``survival[i]`` holds from ``months[i]`` until the next time.

    Attributes
    ----------
    months : numpy.ndarray
        0, then each distinct event time, then the last follow-up time (months).
    survival : numpy.ndarray
        Survival probability (0-1) from each time on.
    n : int
        Patients in the group.
    events : int
        Events in the group.
    """

    months: np.ndarray
    survival: np.ndarray
    n: int
    events: int


def kaplan_meier(months, events) -> KaplanMeier:
    """Kaplan-Meier estimate (product-limit) of one group.

    Parameters
    ----------
    months : array-like of float
        Time to event or censoring, months (>= 0).
    events : array-like of 0/1
        1 = event, 0 = censored.
    """
    time = np.asarray(months, dtype=float)
    event = np.asarray(events, dtype=float) == 1
    event_times = np.unique(time[event])
    at_risk = np.array([(time >= t).sum() for t in event_times], dtype=float)
    failed = np.array([(event & (time == t)).sum() for t in event_times], dtype=float)
    survival = np.cumprod(1.0 - failed / at_risk) if event_times.size else np.empty(0)
    last = float(time.max()) if time.size else 0.0
    steps_months = np.concatenate([[0.0], event_times])
    steps_survival = np.concatenate([[1.0], survival])
    if last > steps_months[-1]:  # the curve runs flat to the last follow-up
        steps_months = np.append(steps_months, last)
        steps_survival = np.append(steps_survival, steps_survival[-1])
    return KaplanMeier(steps_months, steps_survival, int(time.size), int(event.sum()))


def survival_at(curve: KaplanMeier, months) -> np.ndarray:
    """Survival of a step curve at ``months`` (right-continuous; 1.0 before the first event)."""
    index = np.searchsorted(curve.months, np.asarray(months, dtype=float), side="right") - 1
    return curve.survival[np.maximum(index, 0)]
