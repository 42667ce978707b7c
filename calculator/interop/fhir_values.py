"""Reading one FHIR resource's values for the calculator, and the problems found doing so.

:func:`observation_value` reads one Observation by its code (:mod:`calculator.interop.fhir_codes`), with
JSON types checked strictly and units checked against UCUM; :func:`patient_demographics` reads
sex and age from a Patient. Problems are :class:`Issue` objects, raised together in a
:class:`FhirInputError` (an ``OperationOutcome`` on the API, a card's list in CDS Hooks).
"""
from __future__ import annotations

import datetime as dt
import math
import numbers
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Iterable, Mapping

from calculator.interop.fhir_codes import (BY_CODE, BY_FIELD, GENDER_TO_SEX, INPUT_SYSTEM,
                                   TB_ASSESSED_SYSTEM, TB_ASSESSED_VALUES, UCUM, ObservationCode)

#: At most this many problems are reported (a hostile body can hold thousands).
MAX_ISSUES = 20


@dataclass(frozen=True)
class Issue:
    """One problem with FHIR input, as an ``OperationOutcome.issue``.

    Attributes
    ----------
    code : str
        FHIR issue type: ``structure``, ``required``, ``value``, ``code-invalid``,
        ``business-rule`` or ``not-supported``.
    expression : str
        FHIRPath of the element concerned, e.g. ``Parameters.parameter[1].resource``.
    message : str
        What is wrong, naming the calculator field where there is one.
    field : str
        The patient field concerned ("" when the problem is not about one field).
    """

    code: str
    expression: str
    message: str
    field: str = ""


class FhirInputError(ValueError):
    """FHIR input the calculator cannot use; ``status`` 400 (unreadable) or 422 (unusable)."""

    def __init__(self, issues: Iterable[Issue], status: int = 422):
        self.issues = list(issues)[:MAX_ISSUES] or [Issue("invalid", "", "invalid input")]
        self.status = status
        super().__init__("; ".join(f"{i.expression}: {i.message}" for i in self.issues))


def observation_value(observation: Mapping, where: str) -> tuple[ObservationCode, Any]:
    """The calculator field an Observation carries and its value (JSON-typed, in the field's unit).

    Raises
    ------
    FhirInputError
        An unknown code, a value of the wrong type or in a wrong unit.
    """
    codings = (observation.get("code") or {}).get("coding") or []
    ours = [coding for coding in codings
            if coding.get("system") == INPUT_SYSTEM and coding.get("code") in BY_CODE]
    if not ours:
        given = ", ".join(f"{c.get('system')}|{c.get('code')}" for c in codings) or "no coding"
        raise FhirInputError([Issue("code-invalid", where + ".code",
                                    f"unknown Observation code ({given}); the calculator reads "
                                    f"codes of {INPUT_SYSTEM} (docs/fhir.md)")])
    entry = BY_CODE[ours[0]["code"]]
    label = _label(entry)
    if entry.value == "quantity":
        quantity = observation.get("valueQuantity")
        if not isinstance(quantity, Mapping):
            raise _value_issue(where, observation, entry, "valueQuantity")
        unit, system, number = quantity.get("code"), quantity.get("system"), quantity.get("value")
        if system != UCUM or unit not in entry.units:
            accepted = " or ".join(repr(u) for u in entry.units)
            raise FhirInputError([Issue("value", where + ".valueQuantity",
                                        f"{label}: wrong unit: code {show(unit)} of system "
                                        f"{show(system)} (unit text "
                                        f"{show(quantity.get('unit'))}); expected UCUM "
                                        f"({UCUM}) code {accepted}", entry.field)])
        if not isinstance(number, numbers.Real) or isinstance(number, bool):
            raise FhirInputError([Issue("value", where + ".valueQuantity.value",
                                        f"{label}: value must be a number "
                                        f"(got {show(number)})", entry.field)])
        comparator = quantity.get("comparator")
        if comparator is not None:
            raise FhirInputError([Issue("value", where + ".valueQuantity.comparator",
                                        f"{label}: the value is a bound ({show(comparator)} "
                                        f"{show(number)}), not a measurement; the calculator "
                                        "needs the measured value", entry.field)])
        return entry, _in_field_unit(number, entry.units[unit], where, label, entry.field)

    if entry.value == "boolean":
        if "valueBoolean" not in observation:
            raise _value_issue(where, observation, entry, "valueBoolean")
        value = observation["valueBoolean"]
        if not isinstance(value, bool):
            raise FhirInputError([Issue("value", where + ".valueBoolean",
                                        f"{label}: must be true or false (got {show(value)})",
                                        entry.field)])
        return entry, value
    concept = observation.get("valueCodeableConcept")
    if not isinstance(concept, Mapping):
        raise _value_issue(where, observation, entry, "valueCodeableConcept")
    for coding in concept.get("coding") or []:
        if coding.get("system") == TB_ASSESSED_SYSTEM and coding.get("code") in TB_ASSESSED_VALUES:
            return entry, TB_ASSESSED_VALUES[coding["code"]]
    raise FhirInputError([Issue("code-invalid", where + ".valueCodeableConcept",
                                f"{label}: expected a code of {TB_ASSESSED_SYSTEM} "
                                f"({', '.join(TB_ASSESSED_VALUES)})", entry.field)])


def _in_field_unit(number: numbers.Real, factor: Fraction, where: str, label: str,
                   field: str) -> numbers.Real:
    """``number`` times the exact ``factor``; the number as sent when the factor is 1.

    A number no float can hold (a 400-digit integer) is an Issue, not an OverflowError; its
    range is checked later with the patient's other values.
    """
    try:
        converted = float(Fraction(number) * factor)
        if not math.isfinite(converted):
            raise OverflowError
    except (OverflowError, ValueError):
        raise FhirInputError([Issue("value", where + ".valueQuantity.value",
                                    f"{label}: value {show(number)} is far outside any "
                                    "plausible range", field)]) from None
    return number if factor == 1 else converted


def _label(entry: ObservationCode) -> str:
    return f"{entry.field} (Observation coded {entry.code!r})"


def _value_issue(where: str, observation: Mapping, entry: ObservationCode,
                 expected: str) -> FhirInputError:
    """The error for an Observation without the value[x] its code needs."""
    given = [key for key in observation if key.startswith("value")]
    if given:
        detail = f"carries {given[0]}"
    else:
        absent = observation.get("dataAbsentReason") or {}
        reason = absent.get("text") or ", ".join(str(coding.get("code"))
                                                 for coding in absent.get("coding") or [])
        detail = "has no value" + (f" (dataAbsentReason: {reason})" if reason else "")
    return FhirInputError([Issue("value", where, f"{_label(entry)}: {detail}; expected "
                                 f"{expected}", entry.field)])


def patient_demographics(patient: Mapping, where: str, raw: dict, sources: dict,
                         issues: list[Issue], *, needs_sex: bool,
                         measured_on: str | None = None) -> None:
    """Add ``sex`` (from ``gender``) and ``age_years`` (from ``birthDate``) of a Patient to ``raw``.

    Age is taken at ``measured_on`` (the marrow sample's date; today without one) unless ``raw``
    already has an age from an Observation, which must then agree within a year. Problems are
    appended to ``issues``; ``sources`` records where each value came from.
    """
    gender = patient.get("gender")
    if gender is not None:
        if gender in GENDER_TO_SEX:
            raw["sex"], sources["sex"] = GENDER_TO_SEX[gender], where + ".gender"
        elif needs_sex:
            issues.append(Issue("value", where + ".gender",
                                f"sex: Patient.gender {gender!r} is not modelled (the training "
                                "cohort recorded male and female only); leave it out", "sex"))
    birth = patient.get("birthDate")
    if birth is None:
        return
    on = _date(measured_on) if measured_on else dt.datetime.now(dt.UTC).date()
    age = _years_between(str(birth), on)
    if age is None:
        issues.append(Issue("value", where + ".birthDate",
                            f"age_years: birthDate {birth!r} is not a date", "age_years"))
    elif "age_years" in raw:
        if abs(float(raw["age_years"]) - age) > 1.0:
            issues.append(Issue("business-rule", where + ".birthDate",
                                f"age_years: the age-at-infusion Observation "
                                f"({show(raw['age_years'])} years) conflicts with birthDate "
                                f"{birth} ({age:.1f} years on {on.isoformat()})", "age_years"))
    else:
        raw["age_years"], sources["age_years"] = round(age, 2), where + ".birthDate"

def _years_between(birth: str, on: dt.date) -> float | None:
    """Years from ``birth`` (FHIR date: YYYY, YYYY-MM or YYYY-MM-DD) to ``on``; a partial date
    stands for the middle of its year (1 July) or month (the 15th)."""
    try:
        parts = [int(part) for part in birth.split("-")]
        if len(parts) == 1:
            born = dt.date(parts[0], 7, 1)
        elif len(parts) == 2:
            born = dt.date(parts[0], parts[1], 15)
        else:
            born = dt.date(*parts)
    except (ValueError, TypeError):
        return None
    return (on - born).days / 365.25


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(text)[:10])
    except ValueError:
        return dt.datetime.now(dt.UTC).date()



def missing_issue(name: str, has_patient: bool, set_aside: Iterable[str] = ()) -> Issue:
    """The issue for a required field nobody sent, saying which code and value type to send.

    ``set_aside``: the Observations of this field that were not used, with why (their status).
    The issue has no expression: there is no element to point at.
    """
    if name == "sex":
        return Issue("required", "", "sex: missing; give Patient.gender", "sex")
    entry = BY_FIELD[name]
    how = {"quantity": f"valueQuantity in UCUM {entry.ucum!r}", "boolean": "valueBoolean",
           "coded": f"valueCodeableConcept from {TB_ASSESSED_SYSTEM}"}[entry.value]
    hint = ""
    if name == "age_years":
        hint = " or Patient.birthDate" + ("" if has_patient else " (no Patient was sent)")
    unused = list(set_aside)
    if unused:
        hint += "; not used: " + "; ".join(unused[:3]) + (" ..." if len(unused) > 3 else "")
    return Issue("required", "",
                 f"{name}: missing; send an Observation coded {INPUT_SYSTEM}|{entry.code} with "
                 f"{how}{hint}", name)


def show(value: Any) -> str:
    """A value as a message shows it (short, JSON words for true, false and null)."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "nothing"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 64 else text[:64] + "..."
