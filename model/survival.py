"""Kaplan-Meier (product-limit) estimation with numpy alone, for the prediction side.

The calculator draws the cohort's observed curves under each patient's prediction, and the
reconstruction checks its survival draws, without importing lifelines. The tests compare this
estimator with lifelines and statsmodels.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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


@dataclass(frozen=True)
class MeanKaplanMeier(KaplanMeier):
    """The pointwise mean of several reconstructions' Kaplan-Meier curves (one group).

    ``n`` and ``events`` are the members' mean counts (rounded); :meth:`at_risk` is the mean of
    the members' numbers at risk (rounded); ``member_curves`` keeps each member's curve.
    """

    member_curves: tuple = ()

    def at_risk(self, months) -> np.ndarray:
        counts = np.mean([curve.at_risk(months) for curve in self.member_curves], axis=0)
        return np.rint(counts).astype(int)


def mean_kaplan_meier(curves) -> KaplanMeier:
    """One curve for one group over the reconstructions: the pointwise mean of their curves
    (each held at its last value after its last follow-up); a single curve is returned as it is."""
    curves = list(curves)
    if len(curves) == 1:
        return curves[0]
    months = np.unique(np.concatenate([curve.months for curve in curves]))
    survival = np.mean([survival_at(curve, months) for curve in curves], axis=0)
    return MeanKaplanMeier(months, survival, int(round(np.mean([c.n for c in curves]))),
                           int(round(np.mean([c.events for c in curves]))), np.empty(0),
                           tuple(curves))
