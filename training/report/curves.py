"""The numbers behind the report's figures: calibration groups, ROC points, net benefit, Kaplan-Meier.

Computation only (arrays in, arrays or plain dicts out); :mod:`training.report.plots` draws them and the
report templates lay them out.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from model.burden import burden_groups
from training.evaluation.bands import wilson_interval
from training.evaluation.metrics import loess

#: Thresholds of the report's decision curves (probability, 0.01 to 0.80).
DECISION_THRESHOLDS = np.linspace(0.01, 0.80, 80)


def calibration_bins(y: np.ndarray, p: np.ndarray, groups: int) -> list[dict]:
    """Equal-size groups of patients sorted by predicted probability.

    Returns
    -------
    list of dict with ``n``, ``events``, ``mean_predicted``, ``observed`` and Wilson ``ci95``.
    """
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=float)
    order = np.argsort(p, kind="stable")
    rows = []
    for chunk in np.array_split(order, max(1, min(groups, p.size))):
        if chunk.size == 0:
            continue
        events = int(y[chunk].sum())
        rows.append({"n": int(chunk.size), "events": events,
                     "mean_predicted": float(p[chunk].mean()), "observed": events / chunk.size,
                     "ci95": wilson_interval(events, int(chunk.size))})
    return rows


def calibration_curve(y: np.ndarray, p: np.ndarray, groups: int = 5) -> dict:
    """Grouped observed rates (:func:`calibration_bins`) and a loess smooth of y on p.

    Returns
    -------
    dict with ``bins`` and ``smooth``: (sorted p, smoothed observed proportion in [0, 1]), or
    None when p has no spread or fewer than 10 patients.
    """
    p = np.asarray(p, float)
    order = np.argsort(p, kind="stable")
    smooth = None
    if np.ptp(p) > 0 and p.size >= 10:
        smooth = (p[order], np.clip(loess(p[order], np.asarray(y, float)[order]), 0, 1))
    return {"bins": calibration_bins(y, p, groups), "smooth": smooth}


def roc_points(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every distinct threshold, from (0, 0) to (1, 1).

    scikit-learn's ``roc_curve`` (every threshold kept); with one outcome class only, where it is
    undefined, the rate of the missing class is 0 throughout.
    """
    y = np.asarray(y).astype(bool)
    p = np.asarray(p, dtype=float)
    if y.all() or not y.any():
        share = np.r_[0.0, [(p >= t).mean() for t in np.unique(p)[::-1]]]
        zeros = np.zeros_like(share)
        return (zeros, share) if y.all() else (share, zeros)
    fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)
    return fpr, tpr


def net_benefit(y: np.ndarray, risk: np.ndarray, thresholds: np.ndarray) -> dict[str, np.ndarray]:
    """Net benefit of acting when ``risk >= t``, of acting for all, and of acting for none.

    NB(t) = TP / n - FP / n * t / (1 - t) (Vickers & Elkin, Med Decis Making 2006;26:565).
    """
    y = np.asarray(y).astype(bool)
    risk = np.asarray(risk, dtype=float)
    t = np.asarray(thresholds, dtype=float)
    act = risk[None, :] >= t[:, None]
    n = y.size
    odds = t / (1.0 - t)
    model = (act & y).sum(axis=1) / n - (act & ~y).sum(axis=1) / n * odds
    prevalence = y.mean()
    return {"model": model, "all": prevalence - (1.0 - prevalence) * odds, "none": np.zeros_like(t)}


def decision_curve(y: np.ndarray, risk: np.ndarray, thresholds: np.ndarray | None = None) -> dict:
    """Net benefit curves (:func:`net_benefit`) with their ``thresholds`` and the ``prevalence`` of y."""
    t = DECISION_THRESHOLDS if thresholds is None else np.asarray(thresholds, float)
    return {"thresholds": t, "prevalence": float(np.mean(y)), **net_benefit(y, risk, t)}


def kaplan_meier_curve(time: np.ndarray, event: np.ndarray) -> dict:
    """Kaplan-Meier step function (lifelines) with its 95 % interval: ``km_months``,
    ``km_survival``, ``km_lower``, ``km_upper``."""
    from lifelines import KaplanMeierFitter

    fitter = KaplanMeierFitter().fit(time, event)
    interval = fitter.confidence_interval_survival_function_.to_numpy()
    return {"km_months": fitter.survival_function_.index.to_numpy(float),
            "km_survival": fitter.survival_function_.to_numpy()[:, 0],
            "km_lower": interval[:, 0], "km_upper": interval[:, 1]}


def follow_up_median(time: np.ndarray, event: np.ndarray) -> float:
    """Median potential follow-up (months) by the reverse Kaplan-Meier method (censorings as events)."""
    from lifelines import KaplanMeierFitter

    return float(KaplanMeierFitter().fit(time, 1 - event).median_survival_time_)


def survival_by_burden_group(name: str, cohort: pd.DataFrame, curves) -> list[dict]:
    """Observed Kaplan-Meier and mean predicted survival of outcome ``name`` by burden group.

    ``curves`` holds the model's predicted ``months`` and per-patient ``survival`` rows. Groups
    without patients are left out.
    """
    time = cohort[f"{name}_months"].to_numpy(float)
    event = cohort[f"{name}_event"].to_numpy(int)
    groups = burden_groups(cohort["marrow_blasts_pct"])
    data = []
    for group, label in (("low", "blasts < 5 %"), ("high", "blasts >= 5 %")):
        members = groups == group
        if not members.any():
            continue
        data.append({"label": f"{label} (n={int(members.sum())})",
                     **kaplan_meier_curve(time[members], event[members]),
                     "months": curves.months, "predicted": curves.survival[members].mean(axis=0)})
    return data


def mean_predicted_survival(baseline, linear_predictor: np.ndarray, grid) -> tuple[np.ndarray, np.ndarray]:
    """(months, mean over patients of exp(-H0(t) exp(lp))) on the grid up to the baseline's
    maximum follow-up; ``baseline`` has ``at(months)`` and ``max_follow_up``."""
    months = np.asarray(grid, float)
    months = months[months <= baseline.max_follow_up]
    lp = np.asarray(linear_predictor, float)
    return months, np.exp(-baseline.at(months)[:, None] * np.exp(lp)[None, :]).mean(axis=1)
