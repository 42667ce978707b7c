"""Bundle content checks: what a bundle says must make sense, not only match its hashes.

Hashes prove that a bundle's files are the ones its manifest lists; they say nothing about a
manifest and a predictor written by a broken or careless tool. Everything here runs after the
hashes match and before anything is evaluated or served, and refuses with ONE line naming the
file and the field, e.g.::

    bundle check 'predictor-structure' failed (predictor.json): models.efs.baseline_survival: never falls below 1

What is checked (see ``docs/bundle-format.md``):

- **JSON itself** (:func:`parse_json`): size caps per file, strict JSON (no ``NaN`` / ``Infinity``,
  no number that overflows to infinity), nesting at most :data:`MAX_JSON_DEPTH` deep, integers of
  at most :data:`MAX_INTEGER_DIGITS` digits anywhere.
- **The fields the predictor and the calculator read** (:func:`check_manifest`,
  :func:`check_predictor`): types, finite numbers, ranges, consistent array shapes, monotone
  non-increasing baseline survival that falls below 1, a month grid covering the stated
  follow-up, sCRS bands whose rate is events / n, and size caps (at most
  :data:`MAX_BOOTSTRAP_SETS` bootstrap parameter sets a model). Other fields may be added by
  later tools and are left alone (only the JSON-level caps apply to them).
- **The training cohort** is checked through the cohort schema (:mod:`model.cohort`) by the
  calculator before it serves (:func:`model.bundle.read_training_cohort`).
"""
from __future__ import annotations

import json
import math
from typing import Any, Mapping

import numpy as np

from model.errors import BundleError
from model.outcomes import KINDS

#: Largest files read (bytes). predictor.json holds B x (p + months) numbers per model: 5,000
#: bootstrap sets of 2 Cox models on a 721-point grid are ~150 MB.
MAX_FILE_BYTES = {"manifest.json": 16 << 20, "predictor.json": 256 << 20,
                  "training_cohort.csv": 64 << 20}
#: Deepest nesting of JSON arrays and objects accepted (the formats need 5).
MAX_JSON_DEPTH = 32
#: Longest integer accepted anywhere in a bundle's JSON (int64 has 19 digits).
MAX_INTEGER_DIGITS = 18
#: Bootstrap parameter sets a model may carry: a few thousand, so that intervals and figures
#: stay fast (each prediction evaluates every set).
MAX_BOOTSTRAP_SETS = 5000
#: Features a model may have, and points of the shared month grid (0.5-month steps to 360 months).
MAX_FEATURES = 64
MAX_GRID_POINTS = 1000
#: Longest follow-up (months) a model may state: 30 years, the cohort schema's limit for times.
MAX_FOLLOW_UP_MONTHS = 360.0
#: The check a content refusal names, by file (as :class:`~model.errors.BundleError` ``check``).
CHECKS = {"manifest.json": "manifest-content", "predictor.json": "predictor-structure",
          "training_cohort.csv": "training-data-content"}


class _Refusal(Exception):
    """One violation: where (a dotted field path) and what."""

    def __init__(self, where: str, message: str):
        super().__init__(f"{where}: {message}" if where else message)


# --------------------------------------------------------------------------- JSON


def parse_json(content: bytes, file: str) -> Any:
    """Parse a bundle JSON file strictly; :class:`BundleError` (check ``content``) if it is not.

    Parameters
    ----------
    content : bytes
        The file's bytes (already hash-checked).
    file : str
        Its name in the bundle, for the message and the size cap (:data:`MAX_FILE_BYTES`).
    """
    limit = MAX_FILE_BYTES.get(file, 16 << 20)
    if len(content) > limit:
        raise BundleError(CHECKS.get(file, "content"), file, f"{len(content):,} bytes; at most {limit:,} are read")

    def refuse_constant(name: str):
        raise _Refusal("", f"{name} is not a JSON number")

    def finite_float(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise _Refusal("", f"the number {text[:20]} overflows to infinity")
        return value

    try:
        value = json.loads(content, parse_constant=refuse_constant, parse_float=finite_float)
    except RecursionError:
        raise BundleError(CHECKS.get(file, "content"), file, "JSON nested too deeply") from None
    except _Refusal as refusal:
        raise BundleError(CHECKS.get(file, "content"), file, str(refusal)) from None
    except ValueError as problem:  # JSONDecodeError, UnicodeDecodeError, int over 4300 digits
        raise BundleError(CHECKS.get(file, "content"), file, f"not JSON: {str(problem)[:200]}") from None
    try:
        _check_shape(value)
    except _Refusal as refusal:
        raise BundleError(CHECKS.get(file, "content"), file, str(refusal)) from None
    return value


def _check_shape(value: Any) -> None:
    """Depth and integer-size caps over the whole document, without recursion."""
    stack = [(value, "", 0)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth >= MAX_JSON_DEPTH:
                raise _Refusal(where, f"nested more than {MAX_JSON_DEPTH} levels deep")
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                if isinstance(child, (dict, list, int)) and not isinstance(child, bool):
                    stack.append((child, _join(where, key), depth + 1))
        elif isinstance(item, int) and not isinstance(item, bool):
            digits = len(str(abs(item)))
            if digits > MAX_INTEGER_DIGITS:
                raise _Refusal(where, f"an integer of {digits} digits (at most "
                                      f"{MAX_INTEGER_DIGITS})")


def _join(where: str, key: Any) -> str:
    return f"{where}[{key}]" if isinstance(key, int) else (f"{where}.{key}" if where else str(key))


# --------------------------------------------------------------------------- value checks


def _object(value: Any, where: str) -> Mapping:
    if not isinstance(value, dict):
        raise _Refusal(where, f"must be an object (got {_kind(value)})")
    return value


def _list(value: Any, where: str, *, length: int | None = None, max_length: int | None = None,
          min_length: int = 0) -> list:
    if not isinstance(value, list):
        raise _Refusal(where, f"must be an array (got {_kind(value)})")
    if length is not None and len(value) != length:
        raise _Refusal(where, f"has {len(value)} entries; expected {length}")
    if len(value) < min_length:
        raise _Refusal(where, f"has {len(value)} entries; at least {min_length} needed")
    if max_length is not None and len(value) > max_length:
        raise _Refusal(where, f"has {len(value)} entries; at most {max_length} are accepted")
    return value


def _number(value: Any, where: str, *, low: float | None = None, high: float | None = None,
            integer: bool = False, above: float | None = None, optional: bool = False):
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Refusal(where, f"must be a number (got {_kind(value)})")
    if integer and not (isinstance(value, int) or float(value).is_integer()):
        raise _Refusal(where, f"must be a whole number (got {value!r})")
    number = float(value)  # ints are at most MAX_INTEGER_DIGITS digits: always finite
    if not math.isfinite(number):
        raise _Refusal(where, "must be finite")
    if (low is not None and number < low) or (high is not None and number > high) or (
            above is not None and number <= above):
        bounds = (f"greater than {above:g}" if above is not None else
                  f"between {low:g} and {high:g}" if low is not None and high is not None else
                  f"at least {low:g}" if low is not None else f"at most {high:g}")
        raise _Refusal(where, f"must be {bounds} (got {number:g})")
    return int(number) if integer else number


def _numbers(value: Any, where: str, *, low: float | None = None, high: float | None = None,
             **length) -> np.ndarray:
    """A 1-d array of finite numbers (JSON numbers only: no true/false, no text, no null)."""
    items = _list(value, where, **length)
    if not set(map(type, items)) <= {int, float}:
        bad = next(i for i, item in enumerate(items) if type(item) not in (int, float))
        raise _Refusal(f"{where}[{bad}]", f"must be a number (got {_kind(items[bad])})")
    array = np.asarray(items, dtype=float)
    outside = ~np.isfinite(array)
    if low is not None:
        outside |= array < low
    if high is not None:
        outside |= array > high
    if outside.any():
        bad = int(np.flatnonzero(outside)[0])
        _number(items[bad], f"{where}[{bad}]", low=low, high=high)  # raises, naming the bound
    return array


def _text(value: Any, where: str, *, optional: bool = False, max_length: int = 100_000) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise _Refusal(where, f"must be text (got {_kind(value)})")
    if len(value) > max_length:
        raise _Refusal(where, f"is {len(value):,} characters long; at most {max_length:,}")


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "text", bool: "true/false",
            type(None): "null"}.get(type(value), "a number" if isinstance(value, (int, float))
                                   else type(value).__name__)


def _interval(value: Any, where: str, *, low: float | None = None, high: float | None = None,
              optional: bool = True) -> None:
    if value is None and optional:
        return
    lower, upper = (_number(v, f"{where}[{i}]", low=low, high=high)
                    for i, v in enumerate(_list(value, where, length=2)))
    if lower > upper:
        raise _Refusal(where, f"lower bound {lower:g} above upper bound {upper:g}")


def _features(value: Any, where: str) -> list[str]:
    names = []
    for i, feature in enumerate(_list(value, where, min_length=1, max_length=MAX_FEATURES)):
        at = f"{where}[{i}]"
        if isinstance(feature, dict):
            _text(feature.get("name"), f"{at}.name", max_length=200)
            _text(feature.get("label"), f"{at}.label", optional=True, max_length=500)
            names.append(feature["name"])
        else:
            _text(feature, at, max_length=200)
            names.append(feature)
    return names


def _bands(value: Any, where: str) -> None:
    seen = set()
    for i, row in enumerate(_list(value, where, max_length=5)):
        at = f"{where}[{i}]"
        _object(row, at)
        letter = row.get("subgroup")
        if letter not in ("a", "b", "c", "d", "e") or letter in seen:
            raise _Refusal(f"{at}.subgroup", f"must be one of a-e, each once (got {letter!r})")
        seen.add(letter)
        _text(row.get("label"), f"{at}.label", optional=True, max_length=200)
        n = _number(row.get("n"), f"{at}.n", low=0, integer=True)
        events = _number(row.get("events"), f"{at}.events", low=0, high=n, integer=True)
        rate = _number(row.get("rate"), f"{at}.rate", low=0, high=1, optional=n == 0)
        if rate is not None and abs(rate - events / n) > 1e-9:
            raise _Refusal(f"{at}.rate", f"{rate:g} is not events / n = {events} / {n}")
        _interval(row.get("ci95"), f"{at}.ci95", low=0, high=1)
        if rate is not None and row.get("ci95") is not None and not (
                row["ci95"][0] - 1e-9 <= rate <= row["ci95"][1] + 1e-9):
            raise _Refusal(f"{at}.ci95", f"does not contain the rate {rate:g}")
        _number(row.get("smoothed_rate"), f"{at}.smoothed_rate", low=0, high=1, optional=True)


# --------------------------------------------------------------------------- manifest.json


def _refuse_as_bundle_error(file: str, check, content: Any) -> None:
    """Run ``check(content)``; a refusal becomes the :class:`BundleError` naming ``file``."""
    try:
        check(content)
    except _Refusal as refusal:
        raise BundleError(CHECKS[file], file, str(refusal)) from None


def check_manifest(manifest: Any) -> None:
    """Check the manifest fields the calculator reads; :class:`BundleError` naming the field."""
    _refuse_as_bundle_error("manifest.json", _check_manifest, manifest)


def _check_manifest(manifest: Any) -> None:
    _object(manifest, "")
    for name in ("provenance", "source", "created", "crs_scale"):
        _text(manifest.get(name), name, optional=True, max_length=5000)
    training = _object(manifest.get("training_data"), "training_data")
    _number(training.get("n"), "training_data.n", low=1, integer=True)
    for name in ("seed", "bootstrap"):
        _number(manifest.get(name), name, low=0, integer=True, optional=True)
    for key, version in _object(manifest.get("packages", {}), "packages").items():
        _text(version, f"packages.{key}", optional=True, max_length=100)
    for i, warning in enumerate(_list(manifest.get("warnings", []), "warnings")):
        _text(warning, f"warnings[{i}]")
    _object(manifest.get("unavailable_models", {}), "unavailable_models")
    models = _object(manifest.get("models", {}), "models")
    for name in KINDS:
        if name in models:
            _check_model_card(models[name], f"models.{name}")
    if "scrs_bands" in manifest:
        _bands(manifest["scrs_bands"], "scrs_bands")


def _check_model_card(card: Any, where: str) -> None:
    _object(card, where)
    _text(card.get("kind"), f"{where}.kind", optional=True, max_length=100)
    n = _number(card.get("n"), f"{where}.n", low=1, integer=True, optional=True)
    _number(card.get("events"), f"{where}.events", low=0, high=n, integer=True, optional=True)
    _number(card.get("events_per_variable"), f"{where}.events_per_variable", low=0,
            optional=True)
    _number(card.get("bootstrap"), f"{where}.bootstrap", low=0, integer=True, optional=True)
    _number(card.get("horizon_months"), f"{where}.horizon_months", above=0,
            high=MAX_FOLLOW_UP_MONTHS, optional=True)
    for name in ("outcome", "events_label", "ratio_name"):
        _text(card.get(name), f"{where}.{name}", optional=True, max_length=5000)
    for i, warning in enumerate(_list(card.get("warnings", []), f"{where}.warnings")):
        _text(warning, f"{where}.warnings[{i}]")
    if card.get("features") is not None:
        _features(card["features"], f"{where}.features")
    for group in ("apparent", "optimism_corrected"):
        for metric, value in _object(card.get(group, {}), f"{where}.{group}").items():
            _number(value, f"{where}.{group}.{metric}", optional=True)
    coefficients = _object(card.get("coefficients", {}), f"{where}.coefficients")
    for feature, row in coefficients.items():
        at = f"{where}.coefficients.{feature}"
        _object(row, at)
        _number(row.get("ratio"), f"{at}.ratio", above=0, optional=True)
        _interval(row.get("ratio_ci95"), f"{at}.ratio_ci95", low=0)
    for field, bounds in _object(card.get("field_ranges", {}), f"{where}.field_ranges").items():
        if isinstance(bounds, list) and all(isinstance(b, str) for b in bounds):
            continue  # a choice field's values
        _interval(bounds, f"{where}.field_ranges.{field}", optional=False)


# --------------------------------------------------------------------------- predictor.json


def check_predictor(params: Any) -> None:
    """Check ``predictor.json`` as the predictor reads it; :class:`BundleError` naming the field.

    Beyond what :func:`model.predictor.compile_predictor` needs to evaluate at all, this refuses
    parameters that would evaluate to nonsense: a baseline survival that never falls below 1, a
    month grid ending long before the stated follow-up (survival at 24 months would silently be
    the last grid value), sCRS band rates outside 0-1 or not events / n, more than
    :data:`MAX_BOOTSTRAP_SETS` bootstrap sets.
    """
    _refuse_as_bundle_error("predictor.json", _check_predictor, params)


def _check_predictor(params: Any) -> None:
    _object(params, "")
    _number(params.get("format_version"), "format_version", low=1, integer=True)
    _number(params.get("blasts_floor_pct"), "blasts_floor_pct", above=0, high=100,
            optional=True)
    grid = _numbers(params.get("month_grid"), "month_grid", min_length=1,
                    max_length=MAX_GRID_POINTS)
    if grid[0] < 0 or np.any(np.diff(grid) <= 0):
        raise _Refusal("month_grid", "must increase from 0 or more")
    models = _object(params.get("models"), "models")
    if not models:
        raise _Refusal("models", "is empty")
    for name, spec in models.items():
        if name not in KINDS:
            raise _Refusal(f"models.{name}", f"unknown model (known: {', '.join(KINDS)})")
        _check_model(_object(spec, f"models.{name}"), f"models.{name}", KINDS[name], grid)
    _bands(params.get("scrs_bands", []), "scrs_bands")


def _check_model(spec: Mapping, where: str, kind: str, grid: np.ndarray) -> None:
    if spec.get("kind") != kind:
        raise _Refusal(f"{where}.kind", f"must be {kind!r} (got {spec.get('kind')!r})")
    p = len(_features(spec.get("features"), f"{where}.features"))
    _numbers(spec.get("center"), f"{where}.center", length=p)
    scale = _numbers(spec.get("scale"), f"{where}.scale", length=p)
    if np.any(scale <= 0):
        raise _Refusal(f"{where}.scale", "must be positive")
    _numbers(spec.get("coef"), f"{where}.coef", length=p)
    boot = _object(spec.get("bootstrap"), f"{where}.bootstrap")
    sets = _list(boot.get("coef"), f"{where}.bootstrap.coef", min_length=1,
                 max_length=MAX_BOOTSTRAP_SETS)
    for i, row in enumerate(sets):
        _numbers(row, f"{where}.bootstrap.coef[{i}]", length=p)
    b = len(sets)
    if kind == "logistic":
        _number(spec.get("intercept"), f"{where}.intercept")
        _numbers(boot.get("intercept"), f"{where}.bootstrap.intercept", length=b)
        return
    follow_up = _number(spec.get("max_follow_up_months"), f"{where}.max_follow_up_months",
                        above=0, high=MAX_FOLLOW_UP_MONTHS)
    step = float(np.diff(grid).max()) if grid.size > 1 else 1.0
    if grid[-1] + step < follow_up:
        raise _Refusal("month_grid", f"ends at {grid[-1]:g} months, short of {where}'s stated "
                                     f"follow-up of {follow_up:g} months")
    in_follow_up = int(np.count_nonzero(grid <= follow_up))
    _survival(spec.get("baseline_survival"), f"{where}.baseline_survival", len(grid),
              in_follow_up)
    curves = _list(boot.get("baseline_survival"), f"{where}.bootstrap.baseline_survival",
                   length=b)
    for i, curve in enumerate(curves):
        _survival(curve, f"{where}.bootstrap.baseline_survival[{i}]", len(grid), None)


def _survival(value: Any, where: str, length: int, in_follow_up: int | None) -> None:
    curve = _numbers(value, where, low=0, high=1, length=length)
    rises = np.flatnonzero(np.diff(curve) > 1e-12)
    if rises.size:
        i = int(rises[0]) + 1
        raise _Refusal(f"{where}[{i}]", f"{curve[i]:g} rises above the month before "
                                        f"({curve[i - 1]:g}); survival never increases")
    if in_follow_up and curve[in_follow_up - 1] >= 1.0:
        raise _Refusal(where, "never falls below 1 within follow-up: a survival model without "
                              "events cannot describe risk")
