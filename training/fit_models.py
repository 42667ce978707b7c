"""Fit one model with its optimism bootstrap, and describe it for the bundle.

:func:`fit_model` returns the three things a bundle stores about a model: its manifest entry (model
card), its ``predictor.json`` parameters, and the audit estimator (scikit-learn or lifelines).
Shapes and keys follow ``docs/bundle-format.md``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from model.features import FEATURES, design_matrix, required_fields
from model.patient import PATIENT_FIELDS
from training import cox, logistic
from training.bootstrap import BootstrapResult, optimism_bootstrap
from training.metrics import evaluate_cox, evaluate_logistic
from training.sample_size import cox_snell_r2, riley_binary, riley_survival

#: Prediction horizon (months) of the Cox models' metrics and Riley's overall-risk criterion.
HORIZON_MONTHS = 12.0

#: Optimism-corrected calibration slopes outside this range get a warning in the model card.
SLOPE_WARNING_RANGE = (0.8, 1.25)

PENALTY_RULE = ("minimum AIC = -2 loglik + 2 df(lambda) over the grid, df = effective degrees of "
                "freedom trace(I (I + lambda P)^-1) (Gray 1992); ties go to the larger lambda")

#: name -> (kind, outcome column(s), outcome description, what the "events" count is)
MODELS = {
    "cr": ("logistic", ("cr",), "complete remission (MRD-negative or MRD-positive CR) vs no "
           "response", "non-responders"),
    "severe_crs": ("logistic", ("severe_crs",), "severe CRS, CTCAE v4.03 grade >= 3", "severe CRS"),
    "efs": ("cox", ("efs_months", "efs_event"), "event-free survival (months; event = no "
            "response, relapse or death)", "EFS events"),
    "os": ("cox", ("os_months", "os_event"), "overall survival (months; event = death)",
           "deaths"),
}


@dataclass(frozen=True)
class FittedModel:
    """One fitted model, as the bundle stores it."""

    entry: dict
    params: dict
    estimator: Any
    result: BootstrapResult


# --------------------------------------------------------------------------- bootstrap callables
# Module-level functions (not closures) so that every joblib backend can pickle them.


def _fit_logistic(data: dict) -> logistic.LogisticFit:
    return logistic.fit_logistic(data["X"], data["y"])


def _evaluate_logistic(fit, data: dict) -> dict:
    return evaluate_logistic(fit, data["X"], data["y"])


def _fit_cox(data: dict) -> cox.CoxFit:
    return cox.fit_cox(data["X"], data["time"], data["event"])


def _evaluate_cox(fit, data: dict, horizon: float) -> dict:
    return evaluate_cox(fit, data["X"], data["time"], data["event"], horizon=horizon)


# --------------------------------------------------------------------------- helpers


def _num(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def feature_entries(features: tuple[str, ...], X: np.ndarray) -> list[dict]:
    """``features`` block: name, patient field, label and training range of each model column."""
    return [{"name": name, "field": FEATURES[name].field, "label": FEATURES[name].label,
             "min": float(X[:, j].min()), "max": float(X[:, j].max())}
            for j, name in enumerate(features)]


def field_ranges(cohort: pd.DataFrame, features: tuple[str, ...]) -> dict[str, list]:
    """Training range ``[min, max]`` of each patient field the model reads (choices: levels seen)."""
    ranges: dict[str, list] = {}
    for field in required_fields(features):
        values = cohort[field]
        if field in PATIENT_FIELDS and PATIENT_FIELDS[field].kind == "choice":
            ranges[field] = sorted(str(v) for v in values.unique())
        else:
            ranges[field] = [float(values.min()), float(values.max())]
    return ranges


def _coefficients(features: tuple[str, ...], fit, intervals: dict, ratio: str) -> dict:
    per_sd = fit.coef
    return {name: {"estimate": _num(intervals["estimate"][j]), "se": _num(intervals["se"][j]),
                   "ci95": [_num(intervals["lower"][j]), _num(intervals["upper"][j])],
                   "ratio": _num(intervals[ratio][j]),
                   "ratio_ci95": [_num(intervals[f"{ratio}_lower"][j]),
                                  _num(intervals[f"{ratio}_upper"][j])],
                   "estimate_per_sd": _num(per_sd[j]),
                   "constant_in_training": bool(not fit.active[j])}
            for j, name in enumerate(features)}


def _penalty(fit, equivalent: str) -> dict:
    return {"kind": "ridge", "lambda": float(fit.lam), "rule": PENALTY_RULE,
            "grid": [float(v) for v in fit.grid], "aic": [_num(v) for v in fit.aic],
            "effective_df": _num(fit.df),
            "scale": "standardized columns (training mean and SD); lambda on the summed "
                     "log-likelihood; intercept unpenalized",
            "equivalent": equivalent}


def _r2_for_riley(fit, refit) -> tuple[float, str]:
    """Apparent Cox-Snell R^2 of the unpenalized model, or of the least penalized finite fit."""
    try:
        plain = refit(grid=(0.0,))
        basis = "unpenalized maximum likelihood fit"
    except logistic.FitError:
        finite = [lam for lam, aic in zip(fit.grid, fit.aic) if np.isfinite(aic)]
        lam = float(min(finite))
        plain = refit(grid=(lam,))
        basis = (f"least penalized finite fit (lambda = {lam:.4g}): the unpenalized estimate does "
                 "not exist in this cohort (separation)")
    return cox_snell_r2(plain.loglik, plain.loglik_null, plain.n), basis


def _sample_size(compute, r2: float, basis: str) -> dict:
    try:
        out = compute(r2)
    except ValueError as problem:
        return {"error": f"not computable: {problem}", "r2_basis": basis, "pass": False,
                "warning": f"Riley sample-size criteria not computable ({problem})."}
    out["r2_basis"] = basis
    return out


def _warnings(entry: dict, result: BootstrapResult, B: int) -> list[str]:
    out = []
    riley = entry["sample_size"].get("warning")
    if riley:
        out.append(riley)
    if entry["events_per_variable"] < 10:
        out.append(f"{entry['events']} {entry['events_label']} for {len(entry['features'])} "
                   f"predictor parameters: {entry['events_per_variable']:.1f} events per variable "
                   "(fewer than 10).")
    slope = entry["optimism_corrected"].get("calibration_slope")
    low, high = SLOPE_WARNING_RANGE
    if slope is not None and slope < low:
        out.append(f"Optimism-corrected calibration slope {slope:.2f} < {low}: predictions are "
                   "likely too extreme in new patients.")
    elif slope is not None and slope > high:
        out.append(f"Optimism-corrected calibration slope {slope:.2f} > {high}: predictions are "
                   "likely too close to the average (over-shrunk).")
    for metric, count in result.n_finite.items():
        if count < B:
            out.append(f"{metric} was estimable in {count} of {B} bootstrap resamples; its "
                       "optimism is averaged over those.")
    redraws = int(result.redraws.sum())
    if redraws:
        out.append(f"{redraws} degenerate bootstrap resample(s) (no finite fit) were redrawn.")
    for name, coefficient in entry["coefficients"].items():
        if coefficient["constant_in_training"]:
            out.append(f"{name} is constant in the training cohort; its coefficient is fixed at 0.")
    ph = entry.get("ph_test", {}).get("global", {})
    if ph.get("p") is not None and ph["p"] < 0.05:
        out.append(f"Proportional-hazards test: global p = {ph['p']:.3f} < 0.05; hazard ratios "
                   "may change over follow-up.")
    return out


def _card(name: str, cohort: pd.DataFrame, features: tuple[str, ...], X: np.ndarray,
          result: BootstrapResult, events: int, B: int) -> dict:
    kind, _, outcome, events_label = MODELS[name]
    summary = result.summary()
    return {
        "kind": kind, "outcome": outcome,
        "features": feature_entries(features, X),
        "field_ranges": field_ranges(cohort, features),
        "n": int(X.shape[0]), "events": int(events), "events_label": events_label,
        "events_per_variable": events / len(features),
        "apparent": summary["apparent"], "optimism": summary["optimism"],
        "optimism_corrected": summary["optimism_corrected"],
        "optimism_mean": summary["optimism_mean"], "optimism_summary": summary["optimism_summary"],
        "bootstrap": int(B), "bootstrap_seed": int(result.seed),
        "bootstrap_estimable": summary["n_finite"], "bootstrap_redraws": summary["redraws"],
    }


# --------------------------------------------------------------------------- the two kinds


def _logistic_model(name, cohort, features, X, B, seed, jobs, progress, backend) -> FittedModel:
    y = cohort[MODELS[name][1][0]].to_numpy(dtype=int)
    result = optimism_bootstrap(_fit_logistic, _evaluate_logistic, {"X": X, "y": y}, B, seed,
                                n_jobs=jobs, progress=progress, backend=backend)
    fit = result.fit
    positives = int(y.sum())
    events = min(positives, y.size - positives)  # EPV counts the smaller outcome class
    entry = _card(name, cohort, features, X, result, events, B)
    entry["outcome_counts"] = {"1": positives, "0": int(y.size - positives)}
    entry["coefficients"] = _coefficients(features, fit, logistic.wald_intervals(fit), "odds_ratio")
    entry["ratio_name"] = "odds ratio (per unit of the feature)"
    entry["intercept"] = float(fit.intercept_original)
    entry["penalty"] = _penalty(fit, f"scikit-learn LogisticRegression(C=1/lambda, l1_ratio=0) "
                                     "on the standardized columns")
    r2, basis = _r2_for_riley(fit, partial(logistic.fit_logistic, X, y))
    entry["sample_size"] = _sample_size(
        lambda r: riley_binary(y.size, len(features), events / y.size, r, r2_source="apparent"),
        r2, basis)
    entry["warnings"] = _warnings(entry, result, B)
    boot = [logistic.restandardize(f, fit.center, fit.scale) for f in result.fits]
    params = {"kind": "logistic", "features": list(features),
              "center": fit.center.tolist(), "scale": fit.scale.tolist(),
              "intercept": float(fit.intercept), "coef": fit.coef.tolist(),
              "bootstrap": {"intercept": [float(b[0]) for b in boot],
                            "coef": [b[1].tolist() for b in boot]}}
    estimator = logistic.to_sklearn(fit, X, y)
    return FittedModel(entry, params, estimator, result)


def _cox_model(name, cohort, features, X, B, seed, jobs, progress, backend,
               month_grid: np.ndarray) -> FittedModel:
    time_col, event_col = MODELS[name][1]
    time = cohort[time_col].to_numpy(dtype=float)
    event = cohort[event_col].to_numpy(dtype=int)
    data = {"X": X, "time": time, "event": event}
    result = optimism_bootstrap(_fit_cox, partial(_evaluate_cox, horizon=HORIZON_MONTHS), data,
                                B, seed, n_jobs=jobs, progress=progress, backend=backend)
    fit = result.fit
    entry = _card(name, cohort, features, X, result, int(event.sum()), B)
    entry["coefficients"] = _coefficients(features, fit, cox.hazard_ratios(fit), "hazard_ratio")
    entry["ratio_name"] = "hazard ratio (per unit of the feature)"
    entry["penalty"] = _penalty(fit, "lifelines CoxPHFitter(penalizer=lambda/n, l1_ratio=0) on "
                                     "the standardized columns; Efron ties")
    entry["ties"] = fit.ties
    entry["horizon_months"] = HORIZON_MONTHS
    entry["max_follow_up_months"] = float(fit.max_follow_up)
    entry["ph_test"] = cox.ph_test(fit, X, time, event, names=list(features))
    r2, basis = _r2_for_riley(fit, partial(cox.fit_cox, X, time, event))
    entry["sample_size"] = _sample_size(
        lambda r: riley_survival(time.size, len(features), int(event.sum()), float(time.sum()),
                                 HORIZON_MONTHS, r, r2_source="apparent"), r2, basis)
    entry["warnings"] = _warnings(entry, result, B)
    boot = [cox.restandardize(f, fit.center, fit.scale, month_grid) for f in result.fits]
    params = {"kind": "cox", "features": list(features),
              "center": fit.center.tolist(), "scale": fit.scale.tolist(),
              "coef": fit.coef.tolist(),
              "baseline_survival": cox.baseline_survival(fit, month_grid).tolist(),
              # The exact Breslow steps, so that validation reproduces the apparent figures.
              "baseline_steps": {"months": fit.event_times.tolist(),
                                 "cumulative_hazard": fit.cumhaz0.tolist()},
              "max_follow_up_months": float(fit.max_follow_up),
              "bootstrap": {"coef": [b[0].tolist() for b in boot],
                            "baseline_survival": [b[1].tolist() for b in boot]}}
    estimator = cox.fit_lifelines(fit, X, time, event, names=list(features))
    # lifelines stamps the wall-clock time of the fit; the bundle's own `created` says when it was
    # trained, and without the stamp identical runs give byte-identical estimator files.
    for fitted in (estimator, getattr(estimator, "_model", None)):
        if fitted is not None:
            fitted._time_fit_was_called = "see manifest.json: created"
    return FittedModel(entry, params, estimator, result)


def fit_model(name: str, cohort: pd.DataFrame, features: tuple[str, ...], *, B: int, seed: int,
              jobs: int = 1, progress: bool = False, backend: str | None = None,
              month_grid: np.ndarray | None = None) -> FittedModel:
    """Fit model ``name`` on ``cohort`` and run its optimism bootstrap.

    Parameters
    ----------
    name : {"cr", "severe_crs", "efs", "os"}
    cohort : pandas.DataFrame
        Validated cohort with the derived columns of :func:`training.analyses.derive`.
    features : tuple of str
        Feature names (model column order).
    B, seed, jobs, progress, backend
        Passed to :func:`training.bootstrap.optimism_bootstrap`.
    month_grid : numpy.ndarray, optional
        Months (ascending, from 0) on which Cox baseline survival is tabulated; required for Cox.

    Returns
    -------
    FittedModel

    Raises
    ------
    training.logistic.FitError
        The outcome cannot be modelled (one class, no events, no finite fit).
    """
    X = design_matrix(cohort, features)
    args = (name, cohort, features, X, B, seed, jobs, progress, backend)
    if MODELS[name][0] == "logistic":
        return _logistic_model(*args)
    if month_grid is None:
        raise ValueError("a Cox model needs month_grid")
    return _cox_model(*args, month_grid=month_grid)
