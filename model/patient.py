"""A patient's input: the one definition of every field, its checks, and the tumour-burden rules.

Every way a patient enters the calculator (JSON API, HTML form, command line, scored CSV) is checked
here and nowhere else. Two parsers share the field catalogue :data:`PATIENT_FIELDS`:

- :func:`parse_patient` for JSON-like values (strict types: ``true`` is not a number, ``"12"`` is
  not a number, ``1`` is not a boolean);
- :func:`parse_form` for text (form fields, command-line options, CSV cells).

Both collect every problem and raise one :class:`~model.errors.InputError`.
"""
from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass, field
from typing import Any, Collection, Iterable, Mapping

import numpy as np

from model.errors import FieldError, InputError
from model.burden import (BURDEN_GROUP_LABELS, HIGH_BURDEN_FROM_PCT,  # noqa: F401
                          MRD_THRESHOLD_PCT, SUBGROUP_EDGES_PCT,
                          SUBGROUP_LABELS, burden_group, burden_groups, burden_subgroup,
                          burden_subgroups, in_modelled_population, population_refusal)
from model.features import required_fields

#: Longest text accepted for any value; anything longer is a paste error or an attack.
MAX_TEXT_LENGTH = 64

#: Fields every prediction needs: blasts and MRD place the patient in a burden subgroup (the sCRS
#: band) and decide whether the patient belongs to the modelled population at all.
ALWAYS_REQUIRED = ("marrow_blasts_pct", "mrd_positive")


_TRUE_WORDS = frozenset({"true", "yes", "1"})
_FALSE_WORDS = frozenset({"false", "no", "0"})
_NUMBER_TEXT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_DECIMAL_COMMA = re.compile(r"[+-]?\d*,\d+")


@dataclass(frozen=True)
class FieldSpec:
    """Definition of one patient field.

    Attributes
    ----------
    name : str
        API / form / CSV name.
    kind : {"number", "boolean", "choice"}
    label : str
        Short label for a form or a table.
    help : str
        One line of help for the form.
    unit : str
        Unit of a number ("" otherwise).
    minimum, maximum : float or None
        Inclusive hard limits of a number; values outside are refused (the training range is a
        separate, softer check that only warns).
    choices : dict of str -> str
        Allowed values of a choice, each with its human label.
    aliases : dict of str -> str
        Extra spellings accepted from text input (lower case) -> canonical value.
    """

    name: str
    kind: str
    label: str
    help: str
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def json_schema(self) -> dict[str, Any]:
        """JSON Schema of the field's value, for OpenAPI documents."""
        description = self.help + (f" Unit: {self.unit}." if self.unit else "")
        if self.kind == "number":
            return {"type": "number", "minimum": self.minimum, "maximum": self.maximum,
                    "description": description}
        if self.kind == "boolean":
            return {"type": "boolean", "description": description}
        return {"type": "string", "enum": list(self.choices), "description": description}


def _boolean(name: str, label: str, help: str) -> FieldSpec:
    return FieldSpec(name, "boolean", label, help)


PATIENT_FIELDS: dict[str, FieldSpec] = {
    spec.name: spec
    for spec in [
        FieldSpec("marrow_blasts_pct", "number", "Marrow blasts",
                  "Bone-marrow blast percentage before CAR-T infusion (0 if none seen).",
                  unit="%", minimum=0.0, maximum=100.0),
        _boolean("mrd_positive", "MRD positive",
                 "Minimal residual disease detected by flow cytometry (>= 0.01 %) before "
                 "infusion."),
        FieldSpec("age_years", "number", "Age", "Age at CAR-T infusion.",
                  unit="years", minimum=0.5, maximum=100.0),
        FieldSpec("sex", "choice", "Sex", "Sex of the patient.",
                  choices={"M": "male", "F": "female"}, aliases={"male": "M", "female": "F"}),
        _boolean("ph_positive", "Ph positive", "Philadelphia chromosome (BCR-ABL1) positive."),
        _boolean("prior_therapy_ge_6mo", "Prior therapy >= 6 months",
                 "Treated with other approaches for more than half a year before CAR-T."),
        _boolean("prior_chemo_ge_3", ">= 3 prior chemotherapy lines",
                 "CAR-T given as third or later salvage."),
        _boolean("prior_hsct", "Prior HSCT",
                 "Previous haematopoietic stem cell transplantation."),
        _boolean("relapsed", "Relapsed", "Relapsed disease (yes) or refractory disease (no)."),
        _boolean("tp53_mutation", "TP53 mutation", "TP53 mutation detected."),
        _boolean("poor_cytogenetics", "Poor cytogenetics", "Poor-risk cytogenetics."),
        FieldSpec("tb_assessed", "choice", "Blasts measured",
                  "When the marrow blasts were measured: before or after fludarabine-"
                  "cyclophosphamide (FC) conditioning.",
                  choices={"before_fc": "before FC conditioning",
                           "after_fc": "after FC conditioning"}),
    ]
}


def required_patient_fields(features: Iterable[str]) -> list[str]:
    """Patient fields a prediction needs: :data:`ALWAYS_REQUIRED` plus those the model features use.

    Parameters
    ----------
    features : iterable of str
        Feature names (from :data:`model.features.FEATURES`) of every model in a bundle.
    """
    needed = list(ALWAYS_REQUIRED)
    for name in required_fields(list(dict.fromkeys(features))):
        if name not in needed:
            needed.append(name)
    return needed


# --------------------------------------------------------------------------- parsing


def parse_patient(raw: Mapping, required: Collection[str] = ()) -> dict[str, Any]:
    """Check a JSON-like patient object and return its values with Python types.

    Parameters
    ----------
    raw : mapping
        Field name -> JSON value. Numbers must be JSON numbers (not booleans, not strings, finite),
        booleans must be ``true`` / ``false``, choices must be one of the field's exact values.
        ``null`` counts as absent.
    required : collection of str
        Fields that must be present (:func:`required_patient_fields`); :data:`ALWAYS_REQUIRED` are
        added.

    Returns
    -------
    dict
        Present fields in catalogue order: numbers as ``float``, booleans as ``bool``, choices as
        ``str``. Absent optional fields are left out.

    Raises
    ------
    InputError
        Listing every problem: unknown fields, missing required fields, wrong types, values out of
        range or not among the choices, text longer than :data:`MAX_TEXT_LENGTH`.
    """
    return _parse(raw, required, _json_value, ignore=())


def parse_form(raw: Mapping[str, str | None], required: Collection[str] = (),
               *, ignore: Collection[str] = ()) -> dict[str, Any]:
    """Check a patient given as text (HTML form, command line, CSV row) and return typed values.

    Numbers use a decimal point (``"12.5"``; ``"12,5"`` is refused with a hint), booleans are
    ``true/false``, ``yes/no`` or ``1/0`` (any case), choices are matched without regard to case.
    Empty or blank text counts as absent, and so does a float NaN (how pandas reads an empty CSV
    cell even with ``dtype=str``).

    Parameters
    ----------
    raw : mapping of str -> str
        Field name -> text (``None`` counts as absent).
    required : collection of str
        As for :func:`parse_patient`.
    ignore : collection of str
        Names that are not patient fields but are expected in the input (e.g. a CSV's
        ``patient_id`` column); skipped instead of reported as unknown.

    Returns
    -------
    dict
        As for :func:`parse_patient`.

    Raises
    ------
    InputError
        Listing every problem.
    """
    return _parse(raw, required, _text_value, ignore=ignore)


def parse_text_value(name: str, text: str | None) -> Any:
    """One field's text, checked exactly as :func:`parse_form` checks it.

    For callers that check a column of text once per distinct value (a scored CSV).

    Parameters
    ----------
    name : str
        Field name in :data:`PATIENT_FIELDS`.
    text : str or None

    Returns
    -------
    float, bool, str or None
        The typed value; ``None`` when the text is absent or blank.

    Raises
    ------
    InputError
        With one :class:`~model.errors.FieldError` for the field, the message :func:`parse_form`
        gives.
    """
    try:
        return _text_value(PATIENT_FIELDS[name], text)
    except _Invalid as problem:
        raise InputError([FieldError(name, str(problem))]) from None


def needed_fields(required: Collection[str]) -> set[str]:
    """:data:`ALWAYS_REQUIRED` plus ``required``; an unknown field name is a ValueError."""
    unknown = [name for name in required if name not in PATIENT_FIELDS]
    if unknown:
        raise ValueError(f"unknown required field(s): {', '.join(map(str, unknown))}")
    return set(ALWAYS_REQUIRED) | set(required)


def _parse(raw: Any, required: Collection[str], read_value, *, ignore: Collection[str]) -> dict:
    needed = needed_fields(required)
    if not isinstance(raw, Mapping):
        raise InputError([FieldError(
            "body", f"must be an object of patient fields (got {type(raw).__name__})")])
    errors: list[FieldError] = []
    patient: dict[str, Any] = {}
    for name, spec in PATIENT_FIELDS.items():
        value = raw.get(name)
        try:
            parsed = read_value(spec, value)
        except _Invalid as problem:
            errors.append(FieldError(name, str(problem)))
            continue
        if parsed is None:
            if name in needed:
                errors.append(FieldError(name, "is required"))
        else:
            patient[name] = parsed
    for name in raw:
        if name not in PATIENT_FIELDS and name not in ignore:
            errors.append(FieldError(_shorten(name), _unknown_field_message(name)))
    if errors:
        raise InputError(errors)
    return patient


class _Invalid(Exception):
    """One field's problem, raised inside the value readers."""


def _json_value(spec: FieldSpec, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str) and len(value) > MAX_TEXT_LENGTH:
        raise _Invalid(f"is too long ({len(value)} characters; at most {MAX_TEXT_LENGTH})")
    if spec.kind == "number":
        if isinstance(value, (bool, np.bool_)):
            raise _Invalid(f"must be a number, not a boolean (got {str(value).lower()})")
        if isinstance(value, str):
            raise _Invalid(f"must be a number, not text (got {value!r})")
        if not isinstance(value, numbers.Real):
            raise _Invalid(f"must be a number (got {type(value).__name__})")
        return _checked_number(spec, value)
    if spec.kind == "boolean":
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        raise _Invalid(f"must be true or false (got {_show(value)})")
    if isinstance(value, str) and value in spec.choices:
        return value
    raise _Invalid(f"must be one of {_choice_list(spec)} (got {_show(value)})")


def _text_value(spec: FieldSpec, value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None  # pandas reads an empty CSV cell as NaN even with dtype=str
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_TEXT_LENGTH:
        raise _Invalid(f"is too long ({len(text)} characters; at most {MAX_TEXT_LENGTH})")
    text = text.strip()
    if not text:
        return None
    if spec.kind == "number":
        if _DECIMAL_COMMA.fullmatch(text):
            raise _Invalid(f"use a dot as the decimal separator: {text.replace(',', '.')} "
                           f"(got {text!r})")
        if not _NUMBER_TEXT.fullmatch(text):
            raise _Invalid(f"must be a number such as 12.5 (got {text!r})")
        return _checked_number(spec, text)
    if spec.kind == "boolean":
        word = text.lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
        raise _Invalid(f"must be true or false (yes/no, 1/0) (got {text!r})")
    key = text.lower()
    for choice in spec.choices:
        if choice.lower() == key:
            return choice
    if key in spec.aliases:
        return spec.aliases[key]
    raise _Invalid(f"must be one of {_choice_list(spec)} (got {text!r})")


def _checked_number(spec: FieldSpec, value: Any) -> float:
    limits = (f"must be between {_fmt(spec.minimum)} and {_fmt(spec.maximum)}"
              f"{' ' + spec.unit if spec.unit not in ('', '%') else ''}")
    try:
        number = float(value)
    except OverflowError:
        raise _Invalid(f"{limits} (got a number too large to represent)") from None
    if not math.isfinite(number):
        raise _Invalid(f"must be a finite number (got {_show(value)})")
    number += 0.0  # -0.0 becomes 0.0
    if not spec.minimum <= number <= spec.maximum:
        raise _Invalid(f"{limits} (got {_fmt(number)})")
    return number


def _unknown_field_message(name: Any) -> str:
    import difflib  # only on this error path

    if isinstance(name, str):
        key = name.strip().lower().replace("-", "_").replace(" ", "_")
        close = [known for known in PATIENT_FIELDS if len(key) >= 3 and key in known]
        close = close or difflib.get_close_matches(key, list(PATIENT_FIELDS), n=1, cutoff=0.6)
        if len(close) == 1 and close[0] != name:
            return f"unknown field (did you mean {close[0]!r}?)"
    return "unknown field; known fields are " + ", ".join(PATIENT_FIELDS)


def _choice_list(spec: FieldSpec) -> str:
    return ", ".join(repr(choice) for choice in spec.choices)


def _fmt(number: float) -> str:
    return f"{number:g}"


def _shorten(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= MAX_TEXT_LENGTH else text[:MAX_TEXT_LENGTH] + "..."


def _show(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, str):
        return repr(_shorten(value))
    if value is None:
        return "null"
    if isinstance(value, numbers.Real):
        try:
            return _fmt(float(value))
        except OverflowError:
            return "a number too large to represent"
    return type(value).__name__
