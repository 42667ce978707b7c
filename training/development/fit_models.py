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
from model.outcomes import BY_NAME
from model.patient import PATIENT_FIELDS
from training.fitting import cox, logistic
from training.evaluation import ph_test
from training.development.bootstrap import BootstrapResult, bootstrap_refits, optimism_bootstrap
from training.development.card_warnings import card_warnings as _warnings
from training.development.audit import COX_EQUIVALENT, LOGISTIC_EQUIVALENT, cox_estimator, logistic_estimator
from training.development.methods import LABELS, METHODS_BY_KIND, fit_cox_method, fit_logistic_method
from training.evaluation.metrics import evaluate_cox, evaluate_logistic
from training.evaluation.sample_size import cox_snell_r2, riley_binary, riley_survival

#: Prediction horizon (months) of the Cox models' metrics and Riley's overall-risk criterion.
HORIZON_MONTHS = 12.0

#: Fitting method of each model kind: the winners of the simulation study by the rule of
#: docs/method-selection.md (docs/simulation/selection.json; tests/test_simulation.py checks).
DEFAULT_METHODS = {"logistic": "aic_ridge", "cox": "heuristic_shrinkage"}

RULES = {
    "aic_ridge": ("minimum AIC = -2 loglik + 2 df(lambda), df = effective degrees of freedom "
                  "trace(I (I + lambda P)^-1) (Gray 1992), over a grid extended until AIC turns; "
                  "ties go to the larger lambda"),
    "cv_ridge": ("minimum 10-fold cross-validated deviance (Cox: -2 x cross-validated partial "
                 "likelihood, Verweij & Van Houwelingen 1993) over a grid extended until it "
                 "turns; folds stratified by outcome, fixed seed"),
    "firth": "maximum of l(b) + 1/2 log det I(b) (Firth 1993); no tuning",
    "heuristic_shrinkage": ("maximum likelihood coefficients x s = (LR - df) / LR, the model "
                            "likelihood-ratio chi-square LR on df coefficients (Van Houwelingen & "
                            "Le Cessie 1990); logistic intercept / Cox baseline re-estimated at the "
                            "shrunken coefficients; no tuning"),
    "mle": "unpenalized maximum likelihood; no tuning",
    "heuristic_shrinkage_fallback": (
        "maximum likelihood coefficients x s = (LR - df) / LR, the model likelihood-ratio "
        "chi-square LR on df coefficients (Van Houwelingen & Le Cessie 1990); where the maximum "
        "likelihood fit does not exist (separation), Firth's coefficients x s with LR Firth's "
        "penalized likelihood-ratio statistic; intercept re-estimated at the shrunken "
        "coefficients; no tuning"),
    "firth_heuristic_shrinkage": (
        "Firth's coefficients x s = (LR - df) / LR, LR Firth's penalized likelihood-ratio "
        "statistic on df coefficients (Van Houwelingen & Le Cessie 1990); intercept re-estimated "
        "at the shrunken coefficients; no tuning"),
    "bootstrap_shrinkage": (
        "maximum likelihood coefficients x s, s the mean calibration slope on the cohort of the "
        "maximum likelihood fits to 200 bootstrap resamples (fixed seed; resamples without a fit "
        "dropped), capped to [0, 1] (Van Houwelingen & Le Cessie 1990; Steyerberg et al. 2001); "
        "intercept re-estimated at the shrunken coefficients; no tuning"),
}


def parse_methods(specs) -> dict[str, str]:
    """``["logistic=firth", ...]`` -> ``{"logistic": "firth", "cox": <default>}``.

    Raises
    ------
    ValueError
        A spec that is not KIND=METHOD with a known kind and method.
    """
    methods = dict(DEFAULT_METHODS)
    for spec in specs or ():
        kind, _, method = str(spec).partition("=")
        if kind not in methods or method not in METHODS_BY_KIND[kind]:
            raise ValueError(f"{spec!r} is not KIND=METHOD with KIND logistic (METHOD one of "
                             f"{', '.join(METHODS_BY_KIND['logistic'])}) or cox (METHOD one of "
                             f"{', '.join(METHODS_BY_KIND['cox'])})")
        methods[kind] = method
    return methods



@dataclass(frozen=True)
class FittedModel:
    """One fitted model, as the bundle stores it."""

    entry: dict
    params: dict
    estimator: Any
    result: BootstrapResult


# --------------------------------------------------------------------------- bootstrap callables
# Module-level functions (not closures) so that every joblib backend can pickle them.


def _fit_logistic(data: dict, method: str) -> logistic.LogisticFit:
    return fit_logistic_method(method, data["X"], data["y"])


def _evaluate_logistic(fit, data: dict) -> dict:
    return evaluate_logistic(fit, data["X"], data["y"])


def _fit_cox(data: dict, method: str) -> cox.CoxFit:
    return fit_cox_method(method, data["X"], data["time"], data["event"])


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


def _mark_shrunk_to_zero(coefficients: dict, fit, unshrunk) -> None:
    """Coefficients shrunk to exactly 0 (heuristic factor 0) get ``shrunk_to_zero`` and the
    unshrunk (maximum likelihood) fit's 95 % interval per unit, ``unshrunk_ci95``: their own
    interval is [0, 0], which states no uncertainty at all."""
    shrunk = [name for j, name in enumerate(coefficients) if fit.active[j] and fit.coef[j] == 0.0]
    if not shrunk:
        return
    try:
        intervals = unshrunk()
    except (logistic.FitError, np.linalg.LinAlgError):
        intervals = None
    for j, name in enumerate(coefficients):
        if name in shrunk:
            coefficients[name]["shrunk_to_zero"] = True
            coefficients[name]["unshrunk_ci95"] = (None if intervals is None else
                                                   [_num(intervals["lower"][j]), _num(intervals["upper"][j])])


def _penalty(fit, equivalent: str) -> dict:
    """The ``penalty`` block: what the method shrinks by, and how that was chosen."""
    method = fit.method
    kind = {"aic_ridge": "ridge", "cv_ridge": "ridge", "firth": "firth",
            "heuristic_shrinkage": "uniform shrinkage", "mle": "none",
            "heuristic_shrinkage_fallback": "uniform shrinkage",
            "firth_heuristic_shrinkage": "uniform shrinkage",
            "bootstrap_shrinkage": "uniform shrinkage"}[method]
    block = {"kind": kind, "method": method, "lambda": float(fit.lam), "rule": RULES[method],
             "effective_df": _num(fit.df), "shrinkage": float(fit.shrinkage),
             "scale": "standardized columns (training mean and SD); lambda on the summed "
                      "log-likelihood; intercept unpenalized",
             "equivalent": equivalent}
    if kind == "ridge":
        block["grid"] = [float(v) for v in fit.grid]
        block["criterion_name"] = "AIC" if method == "aic_ridge" else "cross-validated deviance"
        block["criterion"] = [_num(v) for v in fit.aic]
        block["edge"] = bool(fit.edge)
        block["null_limit"] = bool(fit.null_limit)
    return block


def _method_block(kind: str, method: str) -> dict:
    return {"name": method, "label": LABELS[method], "default": DEFAULT_METHODS[kind],
            "is_default": method == DEFAULT_METHODS[kind],
            "selection": "simulation study, docs/method-selection.md and docs/simulation/"}


def _tuning(result: BootstrapResult) -> dict:
    """How often the bootstrap refits' tuning chose a grid edge or the no-effect limit."""
    fits = [result.fit, *result.fits]
    tuned = fits[0].method in ("aic_ridge", "cv_ridge")
    return {"tuned": tuned, "resamples": len(result.fits),
            "edge_resamples": int(sum(bool(f.edge) for f in result.fits)),
            "null_limit_resamples": int(sum(bool(f.null_limit) for f in result.fits)),
            "original_edge": bool(fits[0].edge), "original_null_limit": bool(fits[0].null_limit)}


def _r2_for_riley(fit, refit) -> tuple[float, str]:
    """Apparent Cox-Snell R^2 of the unpenalized model, or of the least penalized finite fit."""
    try:
        plain = refit(grid=(0.0,), extend=False)
        basis = "unpenalized maximum likelihood fit"
    except logistic.FitError:
        for lam in sorted(v for v in logistic.LAMBDA_GRID if v > 0):
            try:
                plain = refit(grid=(lam,), extend=False)
                break
            except logistic.FitError:
                continue
        else:
            raise
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


def _card(name: str, cohort: pd.DataFrame, features: tuple[str, ...], X: np.ndarray,
          result: BootstrapResult, events: int, B: int) -> dict:
    record = BY_NAME[name]
    kind, outcome, events_label = record.kind, record.description, record.events_label
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
        "optimism_median": summary["optimism_median"],
        "optimism_corrected_median": summary["optimism_corrected_median"],
        "tuning": _tuning(result),
        "bootstrap": int(B), "bootstrap_seed": int(result.seed),
        "bootstrap_estimable": summary["n_finite"], "bootstrap_redraws": summary["redraws"],
    }


# --------------------------------------------------------------------------- the two kinds


def _logistic_model(name, cohort, features, X, B, seed, jobs, progress, backend,
                    method: str) -> FittedModel:
    y = cohort[BY_NAME[name].model_columns[0]].to_numpy(dtype=int)
    result = optimism_bootstrap(partial(_fit_logistic, method=method), _evaluate_logistic,
                                {"X": X, "y": y}, B, seed, n_jobs=jobs, progress=progress,
                                backend=backend)
    fit = result.fit
    positives = int(y.sum())
    events = min(positives, y.size - positives)  # EPV counts the smaller outcome class
    entry = _card(name, cohort, features, X, result, events, B)
    entry["outcome_counts"] = {"1": positives, "0": int(y.size - positives)}
    entry["coefficients"] = _coefficients(features, fit, logistic.wald_intervals(fit), "odds_ratio")
    _mark_shrunk_to_zero(entry["coefficients"], fit,
                         lambda: logistic.wald_intervals(logistic.fit_unpenalized(X, y)))
    entry["ratio_name"] = "odds ratio (per unit of the feature)"
    entry["intercept"] = float(fit.intercept_original)
    entry["penalty"] = _penalty(fit, LOGISTIC_EQUIVALENT[method])
    entry["method"] = _method_block("logistic", method)
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
    return FittedModel(entry, params, logistic_estimator(fit, X, y), result)


def _cox_model(name, cohort, features, X, B, seed, jobs, progress, backend, method: str,
               month_grid: np.ndarray) -> FittedModel:
    time_col, event_col = BY_NAME[name].model_columns
    time = cohort[time_col].to_numpy(dtype=float)
    event = cohort[event_col].to_numpy(dtype=int)
    data = {"X": X, "time": time, "event": event}
    result = optimism_bootstrap(partial(_fit_cox, method=method),
                                partial(_evaluate_cox, horizon=HORIZON_MONTHS), data, B, seed,
                                n_jobs=jobs, progress=progress, backend=backend)
    fit = result.fit
    entry = _card(name, cohort, features, X, result, int(event.sum()), B)
    entry["coefficients"] = _coefficients(features, fit, cox.hazard_ratios(fit), "hazard_ratio")
    _mark_shrunk_to_zero(entry["coefficients"], fit,
                         lambda: cox.hazard_ratios(cox.fit_unpenalized(X, time, event, ties=fit.ties)))
    entry["ratio_name"] = "hazard ratio (per unit of the feature)"
    entry["penalty"] = _penalty(fit, COX_EQUIVALENT[method])
    entry["method"] = _method_block("cox", method)
    entry["ties"] = fit.ties
    entry["horizon_months"] = HORIZON_MONTHS
    entry["max_follow_up_months"] = float(fit.max_follow_up)
    entry["ph_test"] = ph_test.cox_zph(X, time, event, names=list(features))
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
    return FittedModel(entry, params, cox_estimator(fit, X, time, event, list(features)), result)


def fit_model(name: str, cohort: pd.DataFrame, features: tuple[str, ...], *, B: int, seed: int,
              jobs: int = 1, progress: bool = False, backend: str | None = None,
              month_grid: np.ndarray | None = None, method: str | None = None) -> FittedModel:
    """Fit model ``name`` on ``cohort`` and run its optimism bootstrap.

    Parameters
    ----------
    name : {"cr", "severe_crs", "efs", "os"}
    cohort : pandas.DataFrame
        Validated cohort with the derived columns of :func:`training.paper.analyses.derive`.
    features : tuple of str
        Feature names (model column order).
    B, seed, jobs, progress, backend
        Passed to :func:`training.development.bootstrap.optimism_bootstrap`.
    month_grid : numpy.ndarray, optional
        Months (ascending, from 0) on which Cox baseline survival is tabulated; required for Cox.
    method : str, optional
        Fitting method (:data:`training.development.methods.METHODS_BY_KIND` of the model's kind); default :data:`DEFAULT_METHODS` of
        the model's kind, the simulation study's winner. The bootstrap repeats the same method.

    Returns
    -------
    FittedModel

    Raises
    ------
    training.fitting.logistic.FitError
        The outcome cannot be modelled (one class, no events, no finite fit).
    """
    kind = BY_NAME[name].kind
    method = DEFAULT_METHODS[kind] if method is None else method
    if method not in METHODS_BY_KIND[kind]:
        raise ValueError(f"method must be one of {', '.join(METHODS_BY_KIND[kind])} for the "
                         f"{kind} models; got {method!r}")
    X = design_matrix(cohort, features)
    args = (name, cohort, features, X, B, seed, jobs, progress, backend, method)
    if kind == "logistic":
        return _logistic_model(*args)
    if month_grid is None:
        raise ValueError("a Cox model needs month_grid")
    return _cox_model(*args, month_grid=month_grid)


def more_refits(name: str, cohort: pd.DataFrame, features: tuple[str, ...], *, seed,
                start: int, stop: int, method: str | None = None) -> tuple[list, np.ndarray]:
    """Refits ``start .. stop - 1`` of a bootstrap of :func:`fit_model`'s procedure with ``seed``
    (an int or entropy list of ``numpy.random.SeedSequence``), unscored: for the ensemble's
    pooled validation (:mod:`training.development.ensemble_validation`). Returns the fits and
    their resamples' rows, (stop - start, n)."""
    kind = BY_NAME[name].kind
    method = DEFAULT_METHODS[kind] if method is None else method
    X = design_matrix(cohort, features)
    columns = BY_NAME[name].model_columns
    if kind == "logistic":
        return bootstrap_refits(partial(_fit_logistic, method=method),
                                {"X": X, "y": cohort[columns[0]].to_numpy(dtype=int)}, seed, start, stop)
    data = {"X": X, "time": cohort[columns[0]].to_numpy(dtype=float),
            "event": cohort[columns[1]].to_numpy(dtype=int)}
    return bootstrap_refits(partial(_fit_cox, method=method), data, seed, start, stop)
