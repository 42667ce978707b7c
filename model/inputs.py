"""Patients as columns of field values, and warnings about inputs the training data did not cover.

Patients come either as a mapping of field -> array (one value a patient; a DataFrame works) or as
a sequence of parsed patient dicts (:func:`model.patient.parse_patient`).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from model.compiling import CompiledPredictor, as_compiled
from model.features import required_fields
from model.patient import PATIENT_FIELDS

if TYPE_CHECKING:
    from model.bundle import LoadedBundle


def patient_columns(patients: Mapping | Sequence[Mapping],
                    fields: Sequence[str]) -> dict[str, np.ndarray]:
    """Each required field as a 1-d array over the patients.

    Raises
    ------
    ValueError
        A required field is missing, or the columns differ in length or are not 1-d.
    """
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


def input_warnings(model: CompiledPredictor | LoadedBundle, patients) -> list[list[str]]:
    """Per patient, warnings about inputs the training data did not cover.

    A number outside the training range of a model that uses it ("age_years 81 is outside the
    training range 9-73"), a yes/no value no training patient had, and high blasts recorded as
    MRD negative (normally a data-entry error).
    """
    predictor = as_compiled(model)
    columns = patient_columns(patients, predictor.required_fields)
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
