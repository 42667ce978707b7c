"""Evaluate a bundle's ``predictor.json`` with numpy alone, vectorized over many patients.

Logistic models (``cr``, ``severe_crs``): ``p = 1 / (1 + exp(-(intercept + z @ coef)))``; Cox models
(``efs``, ``os``): ``S(t) = S0(t) ** exp(z @ coef)``, with ``z = (x - center) / scale``. The 95 %
interval of a prediction is the 2.5th-97.5th percentile (numpy's default, linear interpolation)
of the same prediction over the bootstrap parameter sets, which share the training ``center`` and
``scale``, widened where needed to contain the prediction itself (:func:`_enclosing`). Survival
curves stop at the model's ``max_follow_up_months``; nothing is extrapolated.

Patients come either as a mapping of field -> array (one value a patient; a DataFrame works) or as
a sequence of parsed patient dicts (:func:`model.patient.parse_patient`). Patients outside the
modelled population (:func:`model.burden.in_modelled_population`) get NaN predictions and ``in_population`` False.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from model.errors import BundleError, FieldError, InputError
from model.provenance import is_reconstructed
from model.features import design_matrix, required_fields
from model.outcomes import (KINDS, LOGISTIC_NAMES, NAMES, SURVIVAL_HORIZONS_MONTHS,
                            SURVIVAL_NAMES)
from model.patient import (PATIENT_FIELDS, SUBGROUP_LABELS, burden_subgroups,
                           in_modelled_population, population_refusal, required_patient_fields)
from model.survival import FEW_AT_RISK_FRACTION, FEW_AT_RISK_PATIENTS, few_at_risk, number_at_risk

if TYPE_CHECKING:
    from model.bundle import LoadedBundle

#: Months at which survival is reported as single values.
HORIZONS_MONTHS = SURVIVAL_HORIZONS_MONTHS
#: Predictor format versions this code evaluates.
SUPPORTED_FORMAT_VERSION = 1
_INTERVAL_QUANTILES = (0.025, 0.975)
_LP_LIMIT = 700.0  # keeps exp() finite: exp(700) ~ 1e304
_CHUNK_ELEMENTS = 1 << 18  # patients x bootstrap (x months) at once: 2 MB stays in cache


@dataclass(frozen=True, eq=False)
class CompiledModel:
    """One model's parameters as numpy arrays, folded to the raw (unstandardized) feature scale.

    ``lp = X @ weights + offset`` for the fitted model and ``X @ boot_weights.T + boot_offset``
    for the B bootstrap refits. Cox models add ``months`` (T,), ``log_baseline`` (T,) and
    ``boot_log_baseline`` (B, T), all cut at ``max_follow_up_months``, and for the bands
    ``boot_log_hazard`` (U, B): log H0_b(t) of the U distinct grid columns (a baseline changes
    only at event times, so most of the T months repeat a column: 32-35 of 103 on the default
    bundle) with ``hazard_column`` (T,) naming each month's column.
    """

    name: str
    kind: str
    features: tuple[str, ...]
    weights: np.ndarray
    offset: float
    boot_weights: np.ndarray
    boot_offset: np.ndarray
    months: np.ndarray | None = None
    log_baseline: np.ndarray | None = None
    boot_log_baseline: np.ndarray | None = None
    max_follow_up_months: float | None = None
    boot_log_hazard: np.ndarray | None = None
    hazard_column: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class CompiledPredictor:
    """Everything needed to predict: models by name, sCRS bands by subgroup, training ranges.

    Attributes
    ----------
    models : dict of str -> CompiledModel
        Keyed ``cr``, ``severe_crs``, ``efs``, ``os``; a bundle may lack some.
    scrs_bands : dict of str -> dict
        Subgroup letter -> band row as in the manifest (``events``, ``n``, ``rate``, ``ci95``...).
    field_ranges : dict of str -> dict of str -> list
        Model -> patient field -> training range ``[min, max]`` (from the manifest).
    required_fields : tuple of str
        Patient fields a prediction needs (pass to :func:`model.patient.parse_patient`).
    """

    models: dict[str, CompiledModel]
    scrs_bands: dict[str, dict]
    field_ranges: dict[str, dict[str, list]]
    required_fields: tuple[str, ...]


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


# --------------------------------------------------------------------------- compiling


def compile_predictor(params: Mapping, manifest: Mapping | None = None) -> CompiledPredictor:
    """Check the structure of parsed ``predictor.json`` and turn it into numpy arrays.

    Parameters
    ----------
    params : mapping
        Parsed ``predictor.json`` (see ``docs/bundle-format.md``).
    manifest : mapping, optional
        Parsed ``manifest.json``; its per-model ``field_ranges`` drive the range warnings.

    Raises
    ------
    BundleError
        Check ``predictor-structure``: a shape, kind, value or version that cannot be evaluated.
    """
    try:
        return _compile(params, manifest or {})
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as problem:
        detail = f"missing entry {problem}" if isinstance(problem, KeyError) else str(problem)
        raise BundleError("predictor-structure", "predictor.json", detail) from None


def _compile(params: Mapping, manifest: Mapping) -> CompiledPredictor:
    version = params["format_version"]
    if not isinstance(version, int) or not 1 <= version <= SUPPORTED_FORMAT_VERSION:
        raise ValueError(f"format_version {version!r}; this code reads "
                         f"1-{SUPPORTED_FORMAT_VERSION}")
    grid = _floats(params["month_grid"], "month_grid", ndim=1)
    if grid.size < 1 or grid[0] < 0 or np.any(np.diff(grid) <= 0):
        raise ValueError("month_grid must be increasing from >= 0")
    if not params["models"]:
        raise ValueError("no models")
    models = {name: _compile_model(name, spec, grid) for name, spec in params["models"].items()}
    bands = {row["subgroup"]: dict(row) for row in params.get("scrs_bands", [])}
    if set(bands) - set("abcde"):
        raise ValueError(f"scrs_bands subgroups must be a-e (got {sorted(bands)})")
    manifest_models = manifest.get("models", {})
    ranges = {name: _field_ranges(manifest_models.get(name, {}).get("field_ranges", {}), name)
              for name in models}
    features = [feature for model in models.values() for feature in model.features]
    return CompiledPredictor(models, bands, ranges, tuple(required_patient_fields(features)))


def _compile_model(name: str, spec: Mapping, grid: np.ndarray) -> CompiledModel:
    if KINDS.get(name) != spec["kind"]:
        raise ValueError(f"model {name!r} of kind {spec['kind']!r}; expected "
                         f"{KINDS.get(name, 'one of ' + ', '.join(KINDS))}")
    features = tuple(f["name"] if isinstance(f, Mapping) else f for f in spec["features"])
    required_fields(features)  # unknown feature names raise KeyError
    p = len(features)
    center = _floats(spec["center"], f"{name}.center", shape=(p,))
    scale = _floats(spec["scale"], f"{name}.scale", shape=(p,))
    if np.any(scale <= 0):
        raise ValueError(f"{name}.scale must be positive")
    coef = _floats(spec["coef"], f"{name}.coef", shape=(p,))
    boot = spec["bootstrap"]
    boot_coef = _floats(boot["coef"], f"{name}.bootstrap.coef", ndim=2)
    n_boot = boot_coef.shape[0]
    if n_boot < 1 or boot_coef.shape[1] != p:
        raise ValueError(f"{name}.bootstrap.coef has shape {boot_coef.shape}; expected (B, {p}) "
                         "with B >= 1")
    weights, boot_weights = coef / scale, boot_coef / scale
    offset, boot_offset = -float(center @ weights), -(boot_weights @ center)
    if spec["kind"] == "logistic":
        offset += float(_floats(spec["intercept"], f"{name}.intercept", shape=()))
        boot_offset = boot_offset + _floats(boot["intercept"], f"{name}.bootstrap.intercept",
                                            shape=(n_boot,))
        return CompiledModel(name, "logistic", features, weights, offset, boot_weights,
                             boot_offset)
    follow_up = float(_floats(spec["max_follow_up_months"], f"{name}.max_follow_up_months",
                              shape=()))
    keep = grid <= follow_up
    baseline = _survival(spec["baseline_survival"], f"{name}.baseline_survival", grid.size)
    boot_baseline = _survival(boot["baseline_survival"], f"{name}.bootstrap.baseline_survival",
                              grid.size, n_boot)
    with np.errstate(divide="ignore"):  # log(0) = -inf is right: S0 = 0 gives S = 0
        log_baseline = np.log(baseline[keep])
        boot_log_baseline = np.log(boot_baseline[:, keep])
        # H0 = 0 at t = 0: log H0 = -inf, and S = 1 there (see _survival_bands)
        log_hazard = np.log(-boot_log_baseline).T  # (T, B)
    distinct, column = np.unique(log_hazard, axis=0, return_inverse=True)
    return CompiledModel(name, "cox", features, weights, offset, boot_weights, boot_offset,
                         grid[keep], log_baseline,
                         boot_log_baseline, follow_up, np.ascontiguousarray(distinct),
                         column.reshape(-1))


def _field_ranges(ranges: Mapping, model: str) -> dict[str, list[float]]:
    """Numeric training ranges ``[min, max]`` of number and yes/no fields (choices are skipped)."""
    checked = {}
    for field, value in ranges.items():
        if field in PATIENT_FIELDS and PATIENT_FIELDS[field].kind != "choice":
            low, high = _floats(value, f"manifest {model}.field_ranges.{field}", shape=(2,))
            if low > high:
                raise ValueError(f"manifest {model}.field_ranges.{field} has min > max")
            checked[field] = [float(low), float(high)]
    return checked


def _floats(values: Any, where: str, *, shape: tuple | None = None, ndim: int | None = None):
    array = np.asarray(values, dtype=float)
    if (shape is not None and array.shape != shape) or (ndim is not None and array.ndim != ndim):
        raise ValueError(f"{where} has shape {array.shape}; expected {shape or f'{ndim}-d'}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{where} has non-finite values")
    return array


def _survival(values: Any, where: str, n_months: int, n_boot: int | None = None) -> np.ndarray:
    shape = (n_months,) if n_boot is None else (n_boot, n_months)
    curve = _floats(values, where, shape=shape)
    if np.any((curve < 0) | (curve > 1)) or np.any(np.diff(curve, axis=-1) > 1e-12):
        raise ValueError(f"{where} must be non-increasing within [0, 1]")
    return curve


# --------------------------------------------------------------------------- evaluation


def _as_predictor(model: CompiledPredictor | LoadedBundle) -> CompiledPredictor:
    return model if isinstance(model, CompiledPredictor) else model.predictor


def _columns(patients: Mapping | Sequence[Mapping], fields: Sequence[str]) -> dict[str, np.ndarray]:
    if isinstance(patients, Mapping) or hasattr(patients, "columns"):
        missing = [name for name in fields if name not in patients]
        get = lambda name: np.atleast_1d(np.asarray(patients[name]))  # noqa: E731
    else:
        missing = sorted({name for p in patients for name in fields if name not in p},
                         key=list(fields).index)
        get = lambda name: np.asarray([p[name] for p in patients])  # noqa: E731
    if missing:
        raise ValueError(f"patients lack required field(s): {', '.join(missing)}")
    columns = {name: get(name) for name in fields}
    sizes = {column.shape for column in columns.values()}
    if len(sizes) != 1 or len(next(iter(sizes))) != 1:
        raise ValueError(f"patient fields must be 1-d arrays of equal length (got {sizes})")
    return columns


class _Inputs:
    """Design columns computed once for every model, plus population membership."""

    def __init__(self, predictor: CompiledPredictor, patients):
        self.columns = _columns(patients, predictor.required_fields)
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
    predictor = _as_predictor(model)
    inputs = _Inputs(predictor, patients)
    results: dict[str, Any] = {}
    for name, compiled in predictor.models.items():
        x = inputs.x(compiled)
        lp = _linear(x, compiled, boot=False)
        if compiled.kind == "logistic":
            probability = _logistic(lp)
            lower, upper = _enclosing(probability, *_probability_bounds(x, compiled))
            results[name] = Probability(*(inputs.hide_outside(v)
                                          for v in (probability, lower, upper)))
            continue
        survival = inputs.hide_outside(np.exp(np.exp(lp)[:, None] * compiled.log_baseline))
        lower, upper = (inputs.hide_outside(v) for v in
                        _enclosing(survival, *_survival_bands(x, compiled, slice(None))))
        at = {h: None if i is None else survival[:, i] for h, i in _horizon_index(compiled).items()}
        results[name] = SurvivalCurves(compiled.months, survival, lower, upper, at,
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
    predictor = _as_predictor(model)
    inputs = _Inputs(predictor, patients)
    out: dict[str, np.ndarray] = {}
    for name, compiled in predictor.models.items():
        x = inputs.x(compiled)
        lp = _linear(x, compiled, boot=False)
        if compiled.kind == "logistic":
            out[name] = inputs.hide_outside(_logistic(lp))
            if intervals:
                lower, upper = _enclosing(out[name], *_probability_bounds(x, compiled))
                out[f"{name}_lower"], out[f"{name}_upper"] = map(inputs.hide_outside,
                                                                (lower, upper))
            continue
        index = _horizon_index(compiled)
        available = [i for i in index.values() if i is not None]
        points = np.exp(np.exp(lp)[:, None] * compiled.log_baseline[available])
        bands = _enclosing(points, *_survival_bands(x, compiled, available)) if intervals \
            else None
        for h, i in index.items():
            key = f"{name}_{h}mo"
            if i is None:
                out[key] = np.full(inputs.n, np.nan)
                if intervals:
                    out[f"{key}_lower"], out[f"{key}_upper"] = out[key].copy(), out[key].copy()
                continue
            column = available.index(i)
            out[key] = inputs.hide_outside(points[:, column].copy())
            if intervals:
                out[f"{key}_lower"] = inputs.hide_outside(bands[0][:, column].copy())
                out[f"{key}_upper"] = inputs.hide_outside(bands[1][:, column].copy())
    out["burden_subgroup"] = inputs.subgroup
    return out


# --------------------------------------------------------------------------- warnings and answer


def input_warnings(model: CompiledPredictor | LoadedBundle, patients) -> list[list[str]]:
    """Per patient, warnings about inputs the training data did not cover.

    A number outside the training range of a model that uses it ("age_years 81 is outside the
    training range 9-73"), a yes/no value no training patient had, and high blasts recorded as
    MRD negative (normally a data-entry error).
    """
    predictor = _as_predictor(model)
    columns = _columns(patients, predictor.required_fields)
    n = columns["marrow_blasts_pct"].size
    warnings: list[list[str]] = [[] for _ in range(n)]
    checks = _range_checks(predictor)
    if checks:
        values = np.column_stack([columns[check.field].astype(float) for check in checks])
        lows, highs = (np.array([getattr(c, side) for c in checks]) for side in ("low", "high"))
        for i, j in np.argwhere((values < lows) | (values > highs)).tolist():
            warnings[i].append(checks[j].message(values[i, j]))
    blasts = columns["marrow_blasts_pct"].astype(float)
    mrd = np.asarray(columns["mrd_positive"], dtype=float)
    for i in np.flatnonzero((blasts >= 5) & (mrd == 0)):
        warnings[i].append(f"mrd_positive is false with {blasts[i]:g} % marrow blasts: marrow "
                           "blasts at this level are normally MRD positive; check both entries")
    return warnings


@dataclass(frozen=True)
class _RangeCheck:
    """One training-range check of :func:`input_warnings`: a field against one model's range."""

    field: str
    low: float
    high: float
    scope: str  # " of the cr, severe_crs models" where models differ on the field's range

    def message(self, value: float) -> str:
        if PATIENT_FIELDS[self.field].kind == "boolean":
            return (f"{self.field} is {str(bool(value)).lower()} but every training "
                    f"patient{self.scope} had {str(bool(self.low)).lower()}")
        return (f"{self.field} {value:g} is outside the training range "
                f"{self.low:g}-{self.high:g}{self.scope}")


@functools.lru_cache(maxsize=16)
def _range_checks(predictor: CompiledPredictor) -> tuple[_RangeCheck, ...]:
    """The range checks of a compiled predictor, worked out once (it never changes)."""
    by_field: dict[tuple[str, tuple], list[str]] = {}
    for name, compiled in predictor.models.items():
        ranges = predictor.field_ranges.get(name, {})
        for field in required_fields(compiled.features):
            if field in ranges and PATIENT_FIELDS[field].kind != "choice":
                by_field.setdefault((field, tuple(ranges[field])), []).append(name)
    checks = []
    for (field, (low, high)), names in by_field.items():
        several = sum(1 for f, _ in by_field if f == field) > 1
        scope = f" of the {', '.join(names)} model{'s' * (len(names) > 1)}" if several else ""
        checks.append(_RangeCheck(field, low, high, scope))
    return tuple(checks)


def _num(value: Any, digits: int = 3) -> float | None:
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def _nums(values: np.ndarray, digits: int = 3) -> list[float | None]:
    """``[_num(v, digits) for v in values]``, the same numbers, vectorized.

    ``rint(x * 10**digits) / 10**digits`` equals Python's correctly rounded ``round(x, digits)``
    unless ``x * 10**digits`` lies near a tie (where the product's own rounding can decide), is
    too large to hold every integer exactly, or is not finite; those few values go through
    :func:`_num`. One answer holds ~800 numbers, and ``round`` on each cost more than the
    prediction itself.
    """
    values = np.asarray(values, dtype=float)
    scale = 10.0 ** digits
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = values * scale
        rounded = (np.rint(scaled) / scale).tolist()
        exceptional = (~(np.abs(scaled) < 2.0 ** 52)
                       | (np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6))
    for i in np.flatnonzero(exceptional).tolist():
        rounded[i] = _num(values[i], digits)
    return rounded


def prediction_answer(bundle: LoadedBundle, patient: Mapping[str, Any]) -> dict[str, Any]:
    """The API answer for one parsed patient (shape: docs/api.md).

    Probabilities and survival are rounded to 3 decimals, months to 2; every number is finite
    (``None`` where there is no value). A model the bundle lacks answers ``None`` with a warning.

    Raises
    ------
    InputError
        For a patient outside the modelled population (field ``marrow_blasts_pct``).
    """
    refusal = population_refusal(patient)
    if refusal:
        raise InputError([FieldError("marrow_blasts_pct", refusal)])
    predictions = predict(bundle, [patient])
    answer: dict[str, Any] = {}
    for name in LOGISTIC_NAMES:
        result = getattr(predictions, name)
        answer[name] = None if result is None else {
            "probability": _num(result.probability[0]),
            "ci95": [_num(result.lower[0]), _num(result.upper[0])]}
    if answer["severe_crs"] is not None:
        answer["severe_crs"]["band"] = _band(str(predictions.burden_subgroup[0]),
                                             predictions.scrs_band[0])
    cohort_notes = []
    for name in SURVIVAL_NAMES:
        curves = getattr(predictions, name)
        if curves is None:
            answer[name] = None
            continue
        answer[name] = _survival_answer(curves, bundle.follow_up.get(name))
        cohort_notes += few_at_risk_warnings(name, answer[name]["at_risk"],
                                             bundle.follow_up.get(name))
    missing = [name for name in KINDS if answer[name] is None]
    answer["warnings"] = predictions.warnings[0] + cohort_notes + [
        f"{name}: this bundle has no {name} model (its training cohort lacked the outcome)"
        for name in missing]
    manifest = bundle.manifest
    n = manifest.get("training_data", {}).get("n")
    trained_on = f"{n} patients" if n is not None else None
    parent_n = ((manifest.get("lineage") or {}).get("parent") or {}).get("training_data", {}).get("n")
    if trained_on and parent_n is not None:  # an updated bundle: say both
        trained_on = f"{parent_n} patients, updated on {n}"
    answer["model"] = {"id": bundle.id, "provenance": manifest.get("provenance"),
                       "trained_on": trained_on,
                       "created": manifest.get("created"),
                       "lineage": lineage_summary(manifest)}
    members = (manifest.get("ensemble") or {}).get("members")
    if members:
        answer["model"]["reconstructions"] = int(members)
        answer["model"]["trained_on"] = f"{n} patients in each of {members} reconstructed cohorts"
    answer["model"]["evidence"] = evidence_labels(manifest)
    return answer


#: Evidence labels: what each number shown rests on.
EVIDENCE_PUBLISHED = "published"
EVIDENCE_DERIVED = "derived from published numbers"
EVIDENCE_ASSUMED = "assumed"
EVIDENCE_MODEL = "model output"


def evidence_labels(manifest: Mapping) -> dict[str, str]:
    """What the answer's numbers rest on, by key (for the API, page, CLI and report)."""
    reconstructed = is_reconstructed(manifest)
    ensemble = bool((manifest.get("ensemble") or {}).get("members"))
    trained = ("trained on cohorts reconstructed from published aggregates; the 95 % interval "
               "covers sampling and reconstruction uncertainty" if ensemble else
               "trained on one cohort reconstructed from published aggregates" if reconstructed
               else "trained on the center's cohort")
    out = {name: f"{EVIDENCE_MODEL} ({trained})" for name in NAMES}
    if reconstructed:
        out["severe_crs.band"] = (f"{EVIDENCE_ASSUMED}: the five-subgroup split is assumption A1 "
                                  "(a reconstruction, not observed)")
        out["severe_crs.band.published"] = (f"{EVIDENCE_PUBLISHED}: two burden groups (4/33 vs 19/45, "
                                            f"{EVIDENCE_DERIVED} from the printed Fisher P)")
    else:
        out["severe_crs.band"] = "observed in the center's cohort"
    return out


def _survival_answer(curves: SurvivalCurves, follow_up: np.ndarray | None) -> dict[str, Any]:
    """One patient's survival answer: the curve and band, and the values at 6 / 12 / 24 months.

    ``at`` keeps its shape (month -> survival); ``at_ci95`` (month -> [lower, upper]) and
    ``at_risk`` (month -> training patients still followed then) sit beside it, each ``None``
    past the last follow-up (``at_risk`` also when the bundle's cohort has no follow-up times).
    """
    horizons = list(curves.at)
    columns = np.searchsorted(curves.months, horizons, side="right") - 1
    reported = [curves.at[h] is not None for h in horizons]
    counts = (number_at_risk(follow_up, horizons).tolist() if follow_up is not None
              else [None] * len(horizons))
    # one rounding pass over the three curves (one call costs more than its numbers)
    size = curves.months.size
    rounded = _nums(np.concatenate([curves.survival[0], curves.lower[0], curves.upper[0]]))
    survival, lower, upper = (rounded[k * size:(k + 1) * size] for k in range(3))
    return {"months": _nums(curves.months, 2), "survival": survival, "lower": lower,
            "upper": upper,
            "at": {str(h): survival[i] if shown else None
                   for h, i, shown in zip(horizons, columns, reported)},
            "at_ci95": {str(h): [lower[i], upper[i]] if shown else None
                        for h, i, shown in zip(horizons, columns, reported)},
            "at_risk": {str(h): count if shown else None
                        for h, count, shown in zip(horizons, counts, reported)}}


def few_at_risk_warnings(name: str, at_risk: Mapping[str, int | None],
                          follow_up: np.ndarray | None) -> list[str]:
    """A warning for each horizon whose estimate rests on few patients.

    Parameters
    ----------
    name : str
        ``"efs"`` or ``"os"``.
    at_risk : mapping
        The survival answer's ``at_risk`` (month -> training patients at risk, or None).
    follow_up : numpy.ndarray, optional
        The training cohort's follow-up times (its size is the cohort's n).
    """
    if follow_up is None:
        return []
    n = int(follow_up.size)
    return [f"{name} at {months} months: only {count} of the {n} training patients remained "
            f"at risk (fewer than {FEW_AT_RISK_FRACTION * 100:g} % of the cohort or "
            f"{FEW_AT_RISK_PATIENTS} patients); this estimate rests on few patients"
            for months, count in at_risk.items()
            if count is not None and few_at_risk(count, n)]


def lineage_summary(manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """Where an updated bundle comes from (``manifest["lineage"]``, see docs/bundle-format.md).

    Returns
    -------
    None for a bundle trained from scratch; else the parent bundle's id and provenance, the update
    cohort's SHA-256 and patient count, and each model's update method.
    """
    lineage = manifest.get("lineage")
    if not lineage:
        return None
    parent = lineage.get("parent", {})
    cohort = lineage.get("update_cohort", {})
    return {"parent_id": parent.get("id"), "parent_provenance": parent.get("provenance"),
            "update_cohort_sha256": cohort.get("sha256"), "update_cohort_n": cohort.get("n"),
            "methods": {name: record.get("method")
                        for name, record in lineage.get("models", {}).items()}}


def _band(subgroup: str, row: Mapping | None) -> dict[str, Any] | None:
    if row is None:
        return None
    ci = row.get("ci95") or [None, None]
    band = {"subgroup": subgroup, "label": row.get("label") or SUBGROUP_LABELS[subgroup],
            "observed": {"events": row.get("events"), "n": row.get("n"),
                         "rate": _num(row["rate"]) if row.get("rate") is not None else None,
                         "ci95": [None if c is None else _num(c) for c in ci]}}
    if row.get("rate_range") is not None:
        # An ensemble bundle: "observed" holds the mean over the reconstructions (kept for
        # compatibility); the range and the published groups say what is known.
        band["reconstructed"] = {"rate_range": [_num(v) for v in row["rate_range"]],
                                 "n_range": list(row.get("n_range") or []),
                                 "reconstructions": row.get("members"), "evidence": row.get("evidence")}
    if row.get("published_group") is not None:
        band["published"] = dict(row["published_group"])
    return band

