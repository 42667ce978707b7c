"""Kaplan-Meier (product-limit) estimation with numpy alone, for the prediction side.

The calculator draws the cohort's observed curves under each patient's prediction, and the
reconstruction checks its survival draws, without importing lifelines. The tests compare this
estimator with lifelines and statsmodels.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

import numpy as np

from model.outcomes import SURVIVAL_COLUMNS

#: A survival estimate is flagged where fewer than this share of the cohort remains at risk...
FEW_AT_RISK_FRACTION = 0.10
#: ...or fewer than this many patients, whichever is larger.
FEW_AT_RISK_PATIENTS = 10


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
    times : numpy.ndarray
        Every patient's time to event or censoring, sorted (months): the numbers at risk.
    """

    months: np.ndarray
    survival: np.ndarray
    n: int
    events: int
    times: np.ndarray = field(default_factory=lambda: np.empty(0))

    @property
    def last_event_months(self) -> float | None:
        """Time of the last event (months); the curve is flat after it. None without events."""
        if not self.events:
            return None
        drops = self.survival < np.concatenate([[1.0], self.survival[:-1]])
        return float(self.months[drops][-1])

    def at_risk(self, months) -> np.ndarray:
        """Patients still followed (no event, not censored) just before each of ``months``."""
        return number_at_risk(self.times, months)


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
    return KaplanMeier(steps_months, steps_survival, int(time.size), int(event.sum()),
                       np.sort(time))


def survival_at(curve: KaplanMeier, months) -> np.ndarray:
    """Survival of a step curve at ``months`` (right-continuous; 1.0 before the first event)."""
    index = np.searchsorted(curve.months, np.asarray(months, dtype=float), side="right") - 1
    return curve.survival[np.maximum(index, 0)]


def number_at_risk(times, months) -> np.ndarray:
    """How many of ``times`` (months to event or censoring) are >= each of ``months``."""
    ordered = np.sort(np.asarray(times, dtype=float))
    return ordered.size - np.searchsorted(ordered, np.asarray(months, dtype=float), side="left")


def few_at_risk(at_risk, n: int) -> np.ndarray:
    """Whether an estimate rests on few patients: fewer than 10 % of ``n`` or 10 at risk."""
    return np.asarray(at_risk) < max(FEW_AT_RISK_PATIENTS, FEW_AT_RISK_FRACTION * n)


def cohort_follow_up(content: bytes) -> dict[str, np.ndarray]:
    """Each survival outcome's follow-up times (months) from a cohort CSV's bytes.

    An outcome whose columns are absent, or whose cells are not all numbers (a centre cohort
    with blank outcome cells), is left out.
    """
    try:
        rows = list(csv.DictReader(io.StringIO(content.decode("utf-8"))))
    except (UnicodeDecodeError, csv.Error):
        return {}
    times = {}
    for outcome, (column, _) in SURVIVAL_COLUMNS.items():
        try:
            values = np.array([float(row[column]) for row in rows])
        except (KeyError, TypeError, ValueError):
            continue
        if values.size and np.all(np.isfinite(values)):
            times[outcome] = np.sort(values)
    return times
