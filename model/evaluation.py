"""Evaluate a compiled predictor with numpy alone, vectorized over many patients.

Logistic models (``cr``, ``severe_crs``): ``p = 1 / (1 + exp(-(intercept + z @ coef)))``; Cox models
(``efs``, ``os``): ``S(t) = S0(t) ** exp(z @ coef)``, with ``z = (x - center) / scale``. The 95 %
interval of a prediction is the 2.5th-97.5th percentile (numpy's default, linear interpolation)
of the same prediction over the bootstrap parameter sets, which share the training ``center`` and
``scale``, widened where needed to contain the prediction itself (:func:`_enclosing`). Survival
curves stop at the model's ``max_follow_up_months``; nothing is extrapolated.

One core (:func:`_evaluate`) computes every model's predictions, with or without their intervals,
at any set of grid months; :func:`predict` asks it for whole curves, :func:`predict_points` for the
6 / 12 / 24-month values only. The bootstrap values of all models of a kind are sorted in one call
(a sort is most of an answer's cost, and one call per model cost more than the sorting itself). Patients outside the modelled population
(:func:`model.burden.in_modelled_population`) get NaN predictions and ``in_population`` False.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from model.compiling import CompiledModel, CompiledPredictor, as_compiled
from model.features import design_matrix
from model.inputs import input_warnings, patient_columns
from model.outcomes import SURVIVAL_HORIZONS_MONTHS
from model.patient import burden_subgroups, in_modelled_population

if TYPE_CHECKING:
    from model.bundle import LoadedBundle

#: Months at which survival is reported as single values.
HORIZONS_MONTHS = SURVIVAL_HORIZONS_MONTHS
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
        names, self._model_columns = _design_layout(predictor)
        blasts = self.columns["marrow_blasts_pct"].astype(float)
        self.n = blasts.size
        matrix = design_matrix(self.columns, names) if names else np.empty((self.n, 0))
        bad = ~np.all(np.isfinite(matrix), axis=1) | ~np.isfinite(blasts)
        if bad.any():
            raise ValueError(f"non-finite inputs for patient row(s) {np.flatnonzero(bad)[:10]}")
        self.in_population = in_modelled_population(blasts, self.columns["mrd_positive"])
        self.everyone_inside = bool(self.in_population.all())
        self.subgroup = np.full(self.n, "", dtype="<U1")
        inside = self.in_population
        self.subgroup[inside] = burden_subgroups(blasts[inside],
                                                 self.columns["mrd_positive"][inside])
        self._matrix = matrix

    def x(self, model: CompiledModel) -> np.ndarray:
        return self._matrix[:, self._model_columns[model.name]]

    def hide_outside(self, values: np.ndarray) -> np.ndarray:
        if not self.everyone_inside:
            values[~self.in_population] = np.nan
        return values


@functools.lru_cache(maxsize=16)
def _design_layout(predictor: CompiledPredictor) -> tuple[list[str], dict[str, np.ndarray]]:
    """Every feature the models use, once each, and each model's columns among them."""
    names = list(dict.fromkeys(f for m in predictor.models.values() for f in m.features))
    index = {name: i for i, name in enumerate(names)}
    return names, {model.name: np.array([index[f] for f in model.features], dtype=np.intp)
                   for model in predictor.models.values()}


def _linear(x, model: CompiledModel, boot: bool) -> np.ndarray:
    lp = x @ model.boot_weights.T + model.boot_offset if boot else x @ model.weights + model.offset
    return np.clip(lp, -_LP_LIMIT, _LP_LIMIT, out=lp)


def _logistic(lp: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-lp))


def _interval(values: np.ndarray, transform=None,
              decreasing: bool = False) -> tuple[np.ndarray, ...]:
    """2.5th and 97.5th percentiles over the last (bootstrap) axis of ``transform(values)``.

    ``values`` is sorted in place along that axis.

    Same numbers as ``np.quantile(transform(values), q, axis=-1)`` (linear interpolation between
    order statistics). The order statistics of a monotone transform are the transform of the
    order statistics (reversed if it is ``decreasing``), so only the four needed are
    transformed, after a full sort: numpy's vectorized sort beats ``np.partition`` at four
    positions several times over.
    """
    take, fraction = _order_statistics(values.shape[-1], decreasing)
    values.sort(axis=-1)  # in place: the callers' arrays are their own, and large
    picked = values[..., take]  # (..., 4): both quantiles' two neighbours
    if transform is not None:
        picked = transform(picked)
    start, end = picked[..., 0::2], picked[..., 1::2]
    bounds = start + (end - start) * fraction
    return bounds[..., 0], bounds[..., 1]


@functools.lru_cache(maxsize=16)
def _order_statistics(size: int, decreasing: bool) -> tuple[np.ndarray, np.ndarray]:
    """Sorted positions around each quantile of :data:`_INTERVAL_QUANTILES`, and the weights.

    Returns ``take`` (4,): the two order statistics enclosing the lower quantile, then the two of
    the upper one (counted from the end if ``decreasing``); ``fraction`` (2,): how far each
    quantile lies from the first of its two.
    """
    last = size - 1
    take, fraction = [], []
    for q in _INTERVAL_QUANTILES:
        position = q * last
        low = int(np.floor(position))
        take += [last - k if decreasing else k for k in (low, min(low + 1, last))]
        fraction.append(position - low)
    return np.array(take), np.array(fraction)


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


@functools.lru_cache(maxsize=64)
def _horizon_index(model: CompiledModel) -> dict[int, int | None]:
    """Grid column holding S(h) (step function: last grid point <= h); None past follow-up."""
    return {h: (int(np.searchsorted(model.months, h, side="right")) - 1
                if h <= model.max_follow_up_months else None) for h in HORIZONS_MONTHS}


def _chunks(n: int, per_patient: int):
    size = max(1, _CHUNK_ELEMENTS // max(per_patient, 1))
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def _by_boot_size(models: list[CompiledModel]) -> list[list[int]]:
    """Indices of ``models`` grouped by their number of bootstrap refits (equal within a group)."""
    groups: dict[int, list[int]] = {}
    for k, model in enumerate(models):
        groups.setdefault(model.boot_offset.size, []).append(k)
    return list(groups.values())


def _probability_bounds(xs: list[np.ndarray], models: list[CompiledModel]) -> list[tuple]:
    """Bootstrap 2.5 / 97.5 percentiles of each logistic model's probability, each (n,).

    The models' refits are sorted together, one sort for all (per group of equal B).
    """
    n = xs[0].shape[0] if xs else 0
    bounds: dict[int, tuple] = {}
    for group in _by_boot_size(models):
        lower, upper = np.empty((n, len(group))), np.empty((n, len(group)))
        for rows in _chunks(n, len(group) * models[group[0]].boot_offset.size):
            lp = np.stack([_linear(xs[k][rows], models[k], boot=True) for k in group], axis=1)
            lower[rows], upper[rows] = _interval(lp, _logistic)  # lp: (rows, models, B)
        bounds.update((k, (lower[:, j], upper[:, j])) for j, k in enumerate(group))
    return [bounds[k] for k in range(len(models))]


def _hazard_rows(model: CompiledModel, columns: list[int] | slice):
    """The distinct log H0_b columns (U, B) behind grid ``columns``, and each month's row in them."""
    if columns == slice(None):  # the whole curve: every distinct column, as compiled
        return model.boot_log_hazard, model.hazard_column
    wanted, spread = np.unique(model.hazard_column[columns], return_inverse=True)
    return model.boot_log_hazard[wanted], spread.reshape(-1)


def _survival_bands(xs: list[np.ndarray], models: list[CompiledModel],
                    columns: list[list[int] | slice]) -> list[tuple]:
    """Bootstrap 2.5 / 97.5 percentiles of S(t) at each Cox model's grid ``columns``.

    S_b(t) = exp(-H0_b(t) exp(lp_b)) decreases with u_b(t) = lp_b + log H0_b(t), so the
    percentiles are found on u (one addition an element) and only they are exponentiated.
    Months that share a baseline column (no event between them in any refit) share their
    percentiles: each distinct column is computed once and spread back. The u of all models
    (per group of equal B) are sorted together, one sort for all.

    Returns
    -------
    list of (lower, upper)
        One pair a model, each of shape (n, len(columns)).
    """
    n = xs[0].shape[0] if xs else 0
    rows_of = [_hazard_rows(model, wanted) for model, wanted in zip(models, columns)]
    bounds: dict[int, tuple] = {}
    for group in _by_boot_size(models):
        starts = np.cumsum([0] + [rows_of[k][0].shape[0] for k in group])
        n_boot = models[group[0]].boot_offset.size
        lower, upper = np.empty((n, starts[-1])), np.empty((n, starts[-1]))
        for rows in _chunks(n, starts[-1] * n_boot):
            u = np.empty((rows.stop - rows.start, starts[-1], n_boot))
            for k, start, stop in zip(group, starts[:-1], starts[1:]):
                np.add(_linear(xs[k][rows], models[k], boot=True)[:, None, :],
                       rows_of[k][0][None], out=u[:, start:stop])
            lower[rows], upper[rows] = _interval(u, _survival_from_u, decreasing=True)
        bounds.update((k, (lower[:, start + rows_of[k][1]], upper[:, start + rows_of[k][1]]))
                      for k, start in zip(group, starts[:-1]))
    return [bounds[k] for k in range(len(models))]


def _survival_from_u(u: np.ndarray) -> np.ndarray:
    return np.exp(-np.exp(u))


def _evaluate(inputs: _Inputs, models: Mapping[str, CompiledModel],
              columns: Mapping[str, list[int] | slice],
              intervals: bool) -> dict[str, tuple[np.ndarray, np.ndarray | None, np.ndarray | None]]:
    """The one evaluation of a predictor's models: point predictions and, with ``intervals``, bounds.

    Parameters
    ----------
    inputs : _Inputs
        The patients' design columns and population membership.
    models : mapping of str -> CompiledModel
    columns : mapping of str -> list of int or slice
        Cox models: the grid months wanted (``slice(None)`` for the whole curve).
    intervals : bool
        Also compute the bootstrap 95 % bounds (B evaluations a patient instead of one).

    Returns
    -------
    dict of str -> (point, lower, upper)
        Probabilities (n,) or survival (n, len(columns)), NaN outside the modelled population;
        ``lower`` and ``upper`` are ``None`` without ``intervals``.
    """
    xs = {name: inputs.x(model) for name, model in models.items()}
    points = {}
    for name, model in models.items():
        lp = _linear(xs[name], model, boot=False)
        points[name] = (_logistic(lp) if model.kind == "logistic"
                        else np.exp(np.exp(lp)[:, None] * model.log_baseline[columns[name]]))
    if not intervals:
        return {name: (inputs.hide_outside(point), None, None) for name, point in points.items()}
    logistic = [name for name, model in models.items() if model.kind == "logistic"]
    cox = [name for name, model in models.items() if model.kind == "cox"]
    bounds = dict(zip(logistic, _probability_bounds([xs[n] for n in logistic],
                                                    [models[n] for n in logistic])))
    bounds.update(zip(cox, _survival_bands([xs[n] for n in cox], [models[n] for n in cox],
                                           [columns[n] for n in cox])))
    return {name: tuple(inputs.hide_outside(v)
                        for v in (point, *_enclosing(point, *bounds[name])))
            for name, point in points.items()}


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
    evaluated = _evaluate(inputs, predictor.models, dict.fromkeys(predictor.models, slice(None)),
                          intervals=True)
    for name, compiled in predictor.models.items():
        point, lower, upper = evaluated[name]
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
    available = {name: [i for i in _horizon_index(compiled).values() if i is not None]
                 for name, compiled in predictor.models.items() if compiled.kind == "cox"}
    evaluated = _evaluate(inputs, predictor.models,
                          {name: available.get(name, slice(None)) for name in predictor.models},
                          intervals)
    for name, compiled in predictor.models.items():
        values = evaluated[name]
        if compiled.kind == "logistic":
            out.update((name + suffix, value) for suffix, value in zip(suffixes, values))
            continue
        index = _horizon_index(compiled)
        for h, i in index.items():
            for suffix, value in zip(suffixes, values):
                out[f"{name}_{h}mo{suffix}"] = (np.full(inputs.n, np.nan) if i is None
                                                else value[:, available[name].index(i)].copy())
    out["burden_subgroup"] = inputs.subgroup
    return out
