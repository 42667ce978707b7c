"""Evaluate a compiled predictor with numpy alone, vectorized over many patients.

Logistic models (``cr``, ``severe_crs``): ``p = 1 / (1 + exp(-(intercept + z @ coef)))``; Cox models
(``efs``, ``os``): ``S(t) = S0(t) ** exp(z @ coef)``, with ``z = (x - center) / scale``. The 95 %
interval of a prediction is the 2.5th-97.5th percentile (numpy's default, linear interpolation)
of the same prediction over the bootstrap parameter sets, which share the training ``center`` and
``scale``, widened where needed to contain the prediction itself (:func:`_enclosing`). Survival
curves stop at the model's ``max_follow_up_months``; nothing is extrapolated.

One core (:func:`_evaluate`) computes a model's predictions, with or without their intervals, at
any set of grid months; :func:`predict` asks it for whole curves, :func:`predict_points` for the
6 / 12 / 24-month values only. Patients outside the modelled population
(:func:`model.burden.in_modelled_population`) get NaN predictions and ``in_population`` False.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from model.compiling import CompiledModel, CompiledPredictor, as_compiled
from model.features import design_matrix
from model.inputs import input_warnings, patient_columns
from model.patient import burden_subgroups, in_modelled_population

if TYPE_CHECKING:
    from model.bundle import LoadedBundle

#: Months at which survival is reported as single values.
HORIZONS_MONTHS = (6, 12, 24)
_INTERVAL_QUANTILES = (0.025, 0.975)
_LP_LIMIT = 700.0  # keeps exp() finite: exp(700) ~ 1e304
_CHUNK_ELEMENTS = 1 << 18  # patients x bootstrap (x months) at once: 2 MB stays in cache


@dataclass(frozen=True, eq=False)
class Probability:
    """Probabilities (n,) with their 95 % interval bounds (n,); NaN outside the population."""

    probability: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


@dataclass(frozen=True, eq=False)
class SurvivalCurves:
    """Survival curves on ``months`` (T,): ``survival``, ``lower``, ``upper`` of shape (n, T).

    ``at`` maps 6 / 12 / 24 months to the (n,) survival there, or to ``None`` past follow-up.
    """

    months: np.ndarray
    survival: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    at: dict[int, np.ndarray | None]
    max_follow_up_months: float


@dataclass(frozen=True, eq=False)
class Predictions:
    """Predictions for n patients; a model the bundle lacks is ``None``."""

    cr: Probability | None
    severe_crs: Probability | None
    efs: SurvivalCurves | None
    os: SurvivalCurves | None
    burden_subgroup: np.ndarray  # (n,) "a".."e", "" outside the modelled population
    scrs_band: list[dict | None]  # (n,) the manifest's sCRS band row of the patient's subgroup
    in_population: np.ndarray  # (n,) bool
    warnings: list[list[str]]  # (n,) see input_warnings


class _Inputs:
    """Design columns computed once for every model, plus population membership."""

    def __init__(self, predictor: CompiledPredictor, patients):
        self.columns = patient_columns(patients, predictor.required_fields)
        names = list(dict.fromkeys(f for m in predictor.models.values() for f in m.features))
        blasts = self.columns["marrow_blasts_pct"].astype(float)
        self.n = blasts.size
        matrix = design_matrix(self.columns, names) if names else np.empty((self.n, 0))
        bad = ~np.all(np.isfinite(matrix), axis=1) | ~np.isfinite(blasts)
        if bad.any():
            raise ValueError(f"non-finite inputs for patient row(s) {np.flatnonzero(bad)[:10]}")
        self.in_population = in_modelled_population(blasts, self.columns["mrd_positive"])
        self.subgroup = np.full(self.n, "", dtype="<U1")
        inside = self.in_population
        self.subgroup[inside] = burden_subgroups(blasts[inside],
                                                 self.columns["mrd_positive"][inside])
        self._index = {name: i for i, name in enumerate(names)}
        self._matrix = matrix

    def x(self, model: CompiledModel) -> np.ndarray:
        return self._matrix[:, [self._index[name] for name in model.features]]

    def hide_outside(self, values: np.ndarray) -> np.ndarray:
        values[~self.in_population] = np.nan
        return values


def _linear(x, model: CompiledModel, boot: bool) -> np.ndarray:
    lp = x @ model.boot_weights.T + model.boot_offset if boot else x @ model.weights + model.offset
    return np.clip(lp, -_LP_LIMIT, _LP_LIMIT)


def _logistic(lp: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-lp))


def _interval(values: np.ndarray, transform=None,
              decreasing: bool = False) -> tuple[np.ndarray, ...]:
    """2.5th and 97.5th percentiles over the last (bootstrap) axis of ``transform(values)``.

    Same numbers as ``np.quantile(transform(values), q, axis=-1)`` (linear interpolation between
    order statistics). The order statistics of a monotone transform are the transform of the
    order statistics (reversed if it is ``decreasing``), so only the four needed are
    transformed, after a full sort: numpy's vectorized sort beats ``np.partition`` at four
    positions several times over.
    """
    last = values.shape[-1] - 1
    ordered = np.sort(values, axis=-1)
    bounds = []
    for q in _INTERVAL_QUANTILES:
        position = q * last
        low = int(np.floor(position))
        ranks = (low, min(low + 1, last))
        start, end = (ordered[..., last - k if decreasing else k] for k in ranks)
        if transform is not None:
            start, end = transform(start), transform(end)
        bounds.append(start + (end - start) * (position - low))
    return tuple(bounds)


def _enclosing(point: np.ndarray, lower: np.ndarray,
               upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounds widened to contain the point: ``(min(lower, point), max(upper, point))``.

    The full-data estimate of a penalized model can fall just outside the percentiles of its
    bootstrap refits (a skewed bootstrap distribution, few refits); an interval that excludes its
    own estimate would contradict it on the page. Widening only ever makes the interval more
    conservative, and keeps survival bands non-increasing (the minimum or maximum of two
    non-increasing curves is non-increasing).
    """
    return np.fmin(lower, point), np.fmax(upper, point)


def _horizon_index(model: CompiledModel) -> dict[int, int | None]:
    """Grid column holding S(h) (step function: last grid point <= h); None past follow-up."""
    return {h: (int(np.searchsorted(model.months, h, side="right")) - 1
                if h <= model.max_follow_up_months else None) for h in HORIZONS_MONTHS}


def _chunks(n: int, per_patient: int):
    size = max(1, _CHUNK_ELEMENTS // max(per_patient, 1))
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def _probability_bounds(x, model: CompiledModel) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap 2.5 / 97.5 percentiles of the probability, each (n,)."""
    lower, upper = np.empty(x.shape[0]), np.empty(x.shape[0])
    for rows in _chunks(x.shape[0], model.boot_offset.size):
        lower[rows], upper[rows] = _interval(_linear(x[rows], model, boot=True), _logistic)
    return lower, upper


def _survival_bands(x, model: CompiledModel, columns: list[int] | slice):
    """Bootstrap 2.5 / 97.5 percentiles of S(t) at grid ``columns``, shape (n, len(columns)).

    S_b(t) = exp(-H0_b(t) exp(lp_b)) decreases with u_b(t) = lp_b + log H0_b(t), so the
    percentiles are found on u (one addition an element) and only they are exponentiated.
    Months that share a baseline column (no event between them in any refit) share their
    percentiles: each distinct column is computed once and spread back.
    """
    if columns == slice(None):  # the whole curve: every distinct column, as compiled
        log_h0, spread = model.boot_log_hazard, model.hazard_column
    else:
        wanted, spread = np.unique(model.hazard_column[columns], return_inverse=True)
        log_h0 = model.boot_log_hazard[wanted]  # (U, B)
    lower = np.empty((x.shape[0], log_h0.shape[0]))
    upper = np.empty_like(lower)
    for rows in _chunks(x.shape[0], log_h0.size):
        u = _linear(x[rows], model, boot=True)[:, None, :] + log_h0[None]  # (n, U, B)
        lower[rows], upper[rows] = _interval(u, _survival_from_u, decreasing=True)
    return lower[:, spread.reshape(-1)], upper[:, spread.reshape(-1)]


def _survival_from_u(u: np.ndarray) -> np.ndarray:
    return np.exp(-np.exp(u))



def _evaluate(inputs: _Inputs, model: CompiledModel, columns: list[int] | slice,
              intervals: bool) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The one evaluation of a model: point predictions and, with ``intervals``, their bounds.

    Parameters
    ----------
    inputs : _Inputs
        The patients' design columns and population membership.
    model : CompiledModel
    columns : list of int or slice
        Cox models: the grid months wanted (``slice(None)`` for the whole curve); ignored for
        logistic models.
    intervals : bool
        Also compute the bootstrap 95 % bounds (B evaluations a patient instead of one).

    Returns
    -------
    point, lower, upper : numpy.ndarray
        Probabilities (n,) or survival (n, len(columns)), NaN outside the modelled population;
        ``lower`` and ``upper`` are ``None`` without ``intervals``.
    """
    x = inputs.x(model)
    lp = _linear(x, model, boot=False)
    logistic = model.kind == "logistic"
    point = (_logistic(lp) if logistic
             else np.exp(np.exp(lp)[:, None] * model.log_baseline[columns]))
    if not intervals:
        return inputs.hide_outside(point), None, None
    bounds = _probability_bounds(x, model) if logistic else _survival_bands(x, model, columns)
    lower, upper = _enclosing(point, *bounds)
    return tuple(inputs.hide_outside(v) for v in (point, lower, upper))


def predict(model: CompiledPredictor | LoadedBundle, patients) -> Predictions:
    """Full predictions: probabilities with intervals and survival curves with bands.

    Parameters
    ----------
    model : CompiledPredictor or LoadedBundle
    patients : mapping of field -> array-like, or sequence of parsed patient dicts

    Returns
    -------
    Predictions
    """
    predictor = as_compiled(model)
    inputs = _Inputs(predictor, patients)
    results: dict[str, Any] = {}
    for name, compiled in predictor.models.items():
        point, lower, upper = _evaluate(inputs, compiled, slice(None), intervals=True)
        if compiled.kind == "logistic":
            results[name] = Probability(point, lower, upper)
            continue
        at = {h: None if i is None else point[:, i] for h, i in _horizon_index(compiled).items()}
        results[name] = SurvivalCurves(compiled.months, point, lower, upper, at,
                                       compiled.max_follow_up_months)
    bands = [predictor.scrs_bands.get(subgroup) for subgroup in inputs.subgroup.tolist()]
    return Predictions(results.get("cr"), results.get("severe_crs"), results.get("efs"),
                       results.get("os"), inputs.subgroup, bands, inputs.in_population,
                       input_warnings(predictor, inputs.columns))


def predict_points(model: CompiledPredictor | LoadedBundle, patients, *,
                   intervals: bool = False) -> dict[str, np.ndarray]:
    """Fast path for many patients: probabilities and survival at 6 / 12 / 24 months only.

    Parameters
    ----------
    model : CompiledPredictor or LoadedBundle
    patients : mapping of field -> array-like, or sequence of parsed patient dicts
    intervals : bool
        Also compute the bootstrap 95 % bounds (B evaluations a patient instead of one).

    Returns
    -------
    dict of str -> numpy.ndarray, each (n,)
        ``cr``, ``severe_crs``, ``efs_6mo``, ``efs_12mo``, ``efs_24mo``, ``os_6mo``...; with
        ``intervals`` also ``cr_lower``, ``cr_upper``, ``efs_6mo_lower``... NaN past follow-up
        and outside the modelled population. ``burden_subgroup`` ("" outside the population).
    """
    predictor = as_compiled(model)
    inputs = _Inputs(predictor, patients)
    suffixes = ("", "_lower", "_upper") if intervals else ("",)
    out: dict[str, np.ndarray] = {}
    for name, compiled in predictor.models.items():
        if compiled.kind == "logistic":
            values = _evaluate(inputs, compiled, slice(None), intervals)
            out.update((name + suffix, value) for suffix, value in zip(suffixes, values))
            continue
        index = _horizon_index(compiled)
        available = [i for i in index.values() if i is not None]
        values = _evaluate(inputs, compiled, available, intervals)
        for h, i in index.items():
            for suffix, value in zip(suffixes, values):
                out[f"{name}_{h}mo{suffix}"] = (np.full(inputs.n, np.nan) if i is None
                                                else value[:, available.index(i)].copy())
    out["burden_subgroup"] = inputs.subgroup
    return out
