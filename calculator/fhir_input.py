"""FHIR input: a ``Parameters`` or ``Bundle`` (or a CDS Hooks prefetch) -> one checked patient.

Each resource is first validated with the ``fhir.resources`` models (structure, cardinality and
datatypes; R4B models, which keep R4's ``Parameters``, ``Bundle``, ``Patient`` and
``Observation``). The calculator's fields are then read from the raw JSON by code
(:mod:`calculator.fhir_codes`) with the JSON types checked strictly (the library would read
``"yes"`` as ``true``), and finally checked by :func:`model.patient.parse_patient` like any API
input. Every problem becomes an :class:`Issue` naming the resource (a FHIRPath expression) and
the calculator field; :class:`FhirInputError` carries them all, for an ``OperationOutcome``.
"""
from __future__ import annotations

import datetime as dt
import numbers
from dataclasses import dataclass, field
from typing import Any, Collection, Iterable, Mapping

from calculator.fhir_codes import (BY_CODE, BY_FIELD, GENDER_TO_SEX, IGNORED_STATUSES,
                                   INPUT_SYSTEM, TB_ASSESSED_SYSTEM, TB_ASSESSED_VALUES, UCUM,
                                   ObservationCode)
from model.errors import InputError
from model.patient import ALWAYS_REQUIRED, PATIENT_FIELDS, parse_patient

#: At most this many library validation errors are reported (a hostile body can hold thousands).
MAX_ISSUES = 20
PARAMETER_NAMES = ("patient", "observation")


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


@dataclass
class FhirPatient:
    """The patient read from FHIR input.

    Attributes
    ----------
    values : dict
        Parsed patient fields, as :func:`model.patient.parse_patient` returns them.
    subject : str or None
        Reference to the Patient (``Patient/<id>`` or the entry's ``fullUrl``), if it had one.
    basis : list of str
        References to the Observations used (those that had an id).
    """

    values: dict[str, Any]
    subject: str | None = None
    basis: list[str] = field(default_factory=list)


@dataclass
class _Reading:
    value: Any
    where: str
    when: str | None = None
    reference: str | None = None


# --------------------------------------------------------------------------- entry points


def patient_from_resource(body: Any, required: Collection[str] = ()) -> FhirPatient:
    """Read a patient from a ``Parameters`` or ``Bundle`` resource (parsed JSON).

    ``Parameters``: parameters named ``patient`` (a Patient, at most one) and ``observation``
    (an Observation each). ``Bundle``: entries holding one Patient and the Observations
    (a searchset's ``OperationOutcome`` entries are ignored). Two Observations with the same code
    and different values are a conflict.

    Raises
    ------
    FhirInputError
        Status 400 for a body that is not a valid Parameters or Bundle, 422 for a missing,
        conflicting, unknown or wrongly coded observation, a wrong unit or an invalid value.
    """
    if not isinstance(body, Mapping) or body.get("resourceType") not in ("Parameters", "Bundle"):
        found = body.get("resourceType") if isinstance(body, Mapping) else type(body).__name__
        raise FhirInputError([Issue("structure", "", "send a FHIR Parameters or Bundle resource "
                                    f"holding a Patient and Observations (got {_show(found)})")],
                             400)
    kind = body["resourceType"]
    _validate(kind, body, kind)
    if kind == "Parameters":
        patients, observations = _from_parameters(body)
    else:
        patients, observations = _from_bundle(body)
    return _assemble(patients, observations, required, latest=False)


def patient_from_prefetch(patient: Any, observations: Any, required: Collection[str] = (), *,
                          patient_id: str | None = None) -> FhirPatient:
    """Read a patient from a CDS Hooks prefetch: a Patient and a searchset Bundle of Observations.

    Unlike :func:`patient_from_resource`, a chart holds a history: of several Observations with
    the same code the latest (``effectiveDateTime``, else ``issued``) is used; a conflict is only
    two different values at the same latest time.

    Parameters
    ----------
    patient, observations : parsed JSON or None
        The prefetch's ``patient`` and ``observations`` (None when the EHR sent none).
    patient_id : str, optional
        ``context.patientId``: the Patient and every Observation must be about this patient.

    Raises
    ------
    FhirInputError
        Naming each missing or unusable item.
    """
    issues: list[Issue] = []
    patients: list[tuple[str, dict, str | None]] = []
    found: list[tuple[str, dict]] = []
    if patient is not None:
        try:
            _validate("Patient", patient, "prefetch.patient")
            patients.append(("prefetch.patient", patient, None))
        except FhirInputError as error:
            issues += error.issues
    if observations is not None:
        try:
            _validate("Bundle", observations, "prefetch.observations")
            _, found = _from_bundle(observations, where="prefetch.observations")
        except FhirInputError as error:
            issues += error.issues
    if issues:
        raise FhirInputError(issues)
    if patient_id is not None and patients and patients[0][1].get("id") not in (None, patient_id):
        raise FhirInputError([Issue("business-rule", "prefetch.patient",
                                    f"the Patient is {patients[0][1].get('id')!r}, not the "
                                    f"context's patient {patient_id!r}")])
    subject = f"Patient/{patient_id}" if patient_id else None
    return _assemble(patients, found, required, latest=True, subject=subject)


# --------------------------------------------------------------------------- structure


def _validate(kind: str, body: Any, where: str) -> None:
    """Validate ``body`` with the fhir.resources model of ``kind``; FhirInputError(400) if not."""
    import pydantic

    from fhir.resources.R4B import get_fhir_model_class

    if not isinstance(body, Mapping) or body.get("resourceType") != kind:
        found = body.get("resourceType") if isinstance(body, Mapping) else type(body).__name__
        raise FhirInputError([Issue("structure", where, f"must be a FHIR {kind} resource "
                                    f"(got {_show(found)})")], 400)
    try:
        get_fhir_model_class(kind).model_validate(body)
    except pydantic.ValidationError as error:
        issues = []
        for problem in error.errors()[:MAX_ISSUES]:
            path = where + "".join(f"[{part}]" if isinstance(part, int) else f".{part}"
                                   for part in problem.get("loc", ()))
            issues.append(Issue("structure", path, f"not valid FHIR: {problem.get('msg')}"))
        raise FhirInputError(issues, 400) from None
    except (KeyError, TypeError, ValueError, RecursionError) as error:
        # fhir.resources raises KeyError for an unknown resourceType inside a container
        detail = f"unknown resource type {error}" if isinstance(error, KeyError) else str(error)
        raise FhirInputError([Issue("structure", where, f"not valid FHIR: {detail}")],
                             400) from None


def _from_parameters(body: Mapping) -> tuple[list, list]:
    patients, observations, issues = [], [], []
    for index, parameter in enumerate(body.get("parameter") or []):
        where = f"Parameters.parameter[{index}]"
        name = parameter.get("name")
        resource = parameter.get("resource")
        if name not in PARAMETER_NAMES:
            issues.append(Issue("not-supported", where + ".name",
                                f"unknown parameter {_show(name)}; expected 'patient' or "
                                "'observation'"))
            continue
        expected = "Patient" if name == "patient" else "Observation"
        if not isinstance(resource, Mapping) or resource.get("resourceType") != expected:
            issues.append(Issue("structure", where, f"parameter {name!r} must hold a "
                                f"{expected} resource"))
            continue
        if name == "patient":
            patients.append((where + ".resource", resource, None))
        else:
            observations.append((where + ".resource", resource))
    if issues:
        raise FhirInputError(issues)
    return patients, observations


def _from_bundle(body: Mapping, where: str = "Bundle") -> tuple[list, list]:
    patients, observations, issues = [], [], []
    for index, entry in enumerate(body.get("entry") or []):
        at = f"{where}.entry[{index}]"
        resource = entry.get("resource")
        if not isinstance(resource, Mapping):
            issues.append(Issue("structure", at, "entry holds no resource"))
            continue
        kind = resource.get("resourceType")
        if kind == "OperationOutcome" and (entry.get("search") or {}).get("mode") == "outcome":
            continue
        if kind == "Patient":
            patients.append((at + ".resource", resource, entry.get("fullUrl")))
        elif kind == "Observation":
            observations.append((at + ".resource", resource))
        else:
            issues.append(Issue("not-supported", at + ".resource",
                                f"resource type {_show(kind)} is not used; send one Patient "
                                "and Observations"))
    if issues:
        raise FhirInputError(issues)
    return patients, observations


# --------------------------------------------------------------------------- values


def _assemble(patients: list, observations: list, required: Collection[str], *, latest: bool,
              subject: str | None = None) -> FhirPatient:
    issues: list[Issue] = []
    if len(patients) > 1:
        raise FhirInputError([Issue("business-rule", where, "more than one Patient: send one")
                              for where, _, _ in patients])
    patient = patients[0][1] if patients else None
    references = set()
    if patients:
        where, resource, full_url = patients[0]
        if resource.get("id"):
            subject = subject or f"Patient/{resource['id']}"
            references.add(f"Patient/{resource['id']}")
        if full_url:
            subject = subject or full_url
            references.add(full_url)
    if subject:
        references.add(subject)
    readings: dict[str, list[_Reading]] = {}
    for where, observation in observations:
        if observation.get("status") in IGNORED_STATUSES:
            continue
        about = (observation.get("subject") or {}).get("reference")
        if about and references and about not in references:
            issues.append(Issue("business-rule", where + ".subject",
                                f"this Observation is about {about!r}, not the Patient sent "
                                f"({', '.join(sorted(references))})"))
            continue
        try:
            entry, value = _observation_value(observation, where)
        except FhirInputError as error:
            issues += error.issues
            continue
        reference = f"Observation/{observation['id']}" if observation.get("id") else None
        when = observation.get("effectiveDateTime") or observation.get("issued")
        readings.setdefault(entry.field, []).append(_Reading(value, where, when, reference))
    raw: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, found in readings.items():
        chosen = _choose(name, found, latest, issues)
        if chosen is not None:
            raw[name], sources[name] = chosen.value, chosen.where
    if patient is not None:
        _from_patient(patient, patients[0][0], raw, sources, readings, issues,
                      needs_sex="sex" in _needed(required))
    if issues:
        raise FhirInputError(issues)
    missing = [name for name in _needed(required) if name not in raw]
    if missing:
        raise FhirInputError([_missing(name, patient is not None) for name in missing])
    try:
        values = parse_patient(raw, required=required)
    except InputError as error:
        raise FhirInputError([Issue("value", sources.get(problem.field, ""),
                                    f"{problem.field}: {problem.message}", problem.field)
                              for problem in error.errors]) from None
    basis = [reading.reference for name in values for reading in readings.get(name, [])
             if reading.reference]
    return FhirPatient(values, subject, list(dict.fromkeys(basis)))


def _choose(name: str, found: list[_Reading], latest: bool, issues: list[Issue]):
    """The one reading of a field; records a conflict in ``issues`` (returns None then)."""
    candidates = found
    if latest and len(found) > 1:
        newest = max((reading.when or "") for reading in found)
        candidates = [reading for reading in found if (reading.when or "") == newest]
    values = {repr(reading.value) for reading in candidates}
    if len(values) > 1:
        code = BY_FIELD[name].code
        shown = ", ".join(f"{reading.where} = {_show(reading.value)}" for reading in candidates)
        issues.append(Issue("business-rule", candidates[0].where,
                            f"{name}: conflicting Observations coded {code!r} ({shown}); "
                            "send one value", name))
        return None
    return candidates[-1]


def _observation_value(observation: Mapping, where: str) -> tuple[ObservationCode, Any]:
    codings = (observation.get("code") or {}).get("coding") or []
    ours = [coding for coding in codings
            if coding.get("system") == INPUT_SYSTEM and coding.get("code") in BY_CODE]
    if not ours:
        given = ", ".join(f"{c.get('system')}|{c.get('code')}" for c in codings) or "no coding"
        raise FhirInputError([Issue("code-invalid", where + ".code",
                                    f"unknown Observation code ({given}); the calculator reads "
                                    f"codes of {INPUT_SYSTEM} (docs/fhir.md)")])
    entry = BY_CODE[ours[0]["code"]]
    label = f"{entry.field} (Observation coded {entry.code!r})"
    if entry.value == "quantity":
        quantity = observation.get("valueQuantity")
        if not isinstance(quantity, Mapping):
            raise _value_issue(where, observation, label, "valueQuantity")
        unit, system, number = quantity.get("code"), quantity.get("system"), quantity.get("value")
        if system != UCUM or unit not in entry.units:
            accepted = " or ".join(repr(u) for u in entry.units)
            raise FhirInputError([Issue("value", where + ".valueQuantity",
                                        f"{label}: wrong unit: code {_show(unit)} of system "
                                        f"{_show(system)} (unit text "
                                        f"{_show(quantity.get('unit'))}); expected UCUM "
                                        f"({UCUM}) code {accepted}", entry.field)])
        if not isinstance(number, numbers.Real) or isinstance(number, bool):
            raise FhirInputError([Issue("value", where + ".valueQuantity.value",
                                        f"{label}: value must be a number "
                                        f"(got {_show(number)})", entry.field)])
        factor = entry.units[unit]
        return entry, number if factor == 1.0 else float(number) * factor
    if entry.value == "boolean":
        if "valueBoolean" not in observation:
            raise _value_issue(where, observation, label, "valueBoolean")
        value = observation["valueBoolean"]
        if not isinstance(value, bool):
            raise FhirInputError([Issue("value", where + ".valueBoolean",
                                        f"{label}: must be true or false (got {_show(value)})",
                                        entry.field)])
        return entry, value
    concept = observation.get("valueCodeableConcept")
    if not isinstance(concept, Mapping):
        raise _value_issue(where, observation, label, "valueCodeableConcept")
    for coding in concept.get("coding") or []:
        if coding.get("system") == TB_ASSESSED_SYSTEM and coding.get("code") in TB_ASSESSED_VALUES:
            return entry, TB_ASSESSED_VALUES[coding["code"]]
    raise FhirInputError([Issue("code-invalid", where + ".valueCodeableConcept",
                                f"{label}: expected a code of {TB_ASSESSED_SYSTEM} "
                                f"({', '.join(TB_ASSESSED_VALUES)})", entry.field)])


def _value_issue(where: str, observation: Mapping, label: str, expected: str) -> FhirInputError:
    given = [key for key in observation if key.startswith("value")]
    if not given:
        reason = (observation.get("dataAbsentReason") or {}).get("text") or ", ".join(
            str(c.get("code")) for c in (observation.get("dataAbsentReason") or {}).get("coding")
            or [])
        detail = f"has no value{f' (dataAbsentReason: {reason})' if reason else ''}"
    else:
        detail = f"carries {given[0]}"
    return FhirInputError([Issue("value", where, f"{label}: {detail}; expected {expected}",
                                 label.split(" ")[0])])


def _from_patient(patient: Mapping, where: str, raw: dict, sources: dict,
                  readings: Mapping[str, list[_Reading]], issues: list[Issue], *,
                  needs_sex: bool) -> None:
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
    blasts = readings.get("marrow_blasts_pct") or []
    on = _date(blasts[-1].when) if blasts and blasts[-1].when else dt.datetime.now(dt.UTC).date()
    age = _years_between(str(birth), on)
    if age is None:
        issues.append(Issue("value", where + ".birthDate",
                            f"age_years: birthDate {birth!r} is not a date", "age_years"))
    elif "age_years" in raw:
        if abs(float(raw["age_years"]) - age) > 1.0:
            issues.append(Issue("business-rule", where + ".birthDate",
                                f"age_years: the age-at-infusion Observation "
                                f"({_show(raw['age_years'])} years) conflicts with birthDate "
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


def _needed(required: Collection[str]) -> list[str]:
    wanted = set(ALWAYS_REQUIRED) | set(required)
    return [name for name in PATIENT_FIELDS if name in wanted]


def _missing(name: str, has_patient: bool) -> Issue:
    if name == "sex":
        return Issue("required", "Patient.gender", "sex: missing; give Patient.gender", "sex")
    entry = BY_FIELD[name]
    how = {"quantity": f"valueQuantity in UCUM {entry.ucum!r}", "boolean": "valueBoolean",
           "coded": f"valueCodeableConcept from {TB_ASSESSED_SYSTEM}"}[entry.value]
    hint = ""
    if name == "age_years":
        hint = " or Patient.birthDate" + ("" if has_patient else " (no Patient was sent)")
    return Issue("required", "Observation",
                 f"{name}: missing; send an Observation coded {INPUT_SYSTEM}|{entry.code} with "
                 f"{how}{hint}", name)


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "nothing"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 64 else text[:64] + "..."
