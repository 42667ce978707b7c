"""Compile a bundle's ``predictor.json`` into numpy arrays, checking its structure on the way.

The coefficients are folded to the raw (unstandardized) feature scale once, so that evaluating
(:mod:`model.evaluation`) is one matrix product a model: ``lp = X @ weights + offset`` with
``weights = coef / scale`` and ``offset = intercept - center @ weights``. Cox baselines are cut at
the model's ``max_follow_up_months`` (nothing is extrapolated) and kept as logarithms.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from model.errors import BundleError
from model.features import required_fields
from model.patient import PATIENT_FIELDS, required_patient_fields

if TYPE_CHECKING:
    from model.bundle import LoadedBundle

#: Predictor format versions this code evaluates.
SUPPORTED_FORMAT_VERSION = 1
MODEL_KINDS = {"cr": "logistic", "severe_crs": "logistic", "efs": "cox", "os": "cox"}


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



def as_compiled(model: CompiledPredictor | LoadedBundle) -> CompiledPredictor:
    """The compiled predictor of a loaded bundle, or ``model`` itself if already compiled."""
    return model if isinstance(model, CompiledPredictor) else model.predictor


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
    if MODEL_KINDS.get(name) != spec["kind"]:
        raise ValueError(f"model {name!r} of kind {spec['kind']!r}; expected "
                         f"{MODEL_KINDS.get(name, 'one of ' + ', '.join(MODEL_KINDS))}")
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
        # H0 = 0 at t = 0: log H0 = -inf, and S = 1 there (model.evaluation)
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

