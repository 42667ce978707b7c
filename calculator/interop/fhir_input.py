"""FHIR input: a ``Parameters`` or ``Bundle`` (or a CDS Hooks prefetch) -> one checked patient.

Each resource is first validated with the ``fhir.resources`` models (structure, cardinality and
datatypes; R4B models, which keep R4's ``Parameters``, ``Bundle``, ``Patient`` and
``Observation``). The calculator's fields are then read from the raw JSON by code
(:mod:`calculator.interop.fhir_codes`) with the JSON types checked strictly (the library would read
``"yes"`` as ``true``), and finally checked by :func:`model.patient.parse_patient` like any API
input. Every problem becomes an :class:`Issue` naming the resource (a FHIRPath expression) and
the calculator field; :class:`FhirInputError` carries them all, for an ``OperationOutcome``.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any, Collection, Mapping

from calculator.interop.fhir_codes import BY_CODE, BY_FIELD, INPUT_SYSTEM
from calculator.interop.fhir_observations import (Subjects, context_references, observed_at,
                                                  refusals, set_aside_reason)
from calculator.interop.fhir_values import (MAX_ISSUES, FhirInputError, Issue, missing_issue,
                                            observation_value, patient_demographics, show)
from model.errors import InputError
from model.patient import ALWAYS_REQUIRED, PATIENT_FIELDS, parse_patient

__all__ = ["FhirInputError", "FhirPatient", "Issue", "patient_from_prefetch",
           "patient_from_resource"]
PARAMETER_NAMES = ("patient", "observation")


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
    when: dt.datetime | None = None
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
                                    f"holding a Patient and Observations (got {show(found)})")],
                             400)
    kind = body["resourceType"]
    _validate(kind, body, kind)
    if kind == "Parameters":
        patients, observations = _from_parameters(body)
    else:
        patients, observations = _from_bundle(body)
    return _assemble(patients, observations, required, latest=False)


def patient_from_prefetch(patient: Any, observations: Any, required: Collection[str] = (), *,
                          patient_id: str | None = None,
                          fhir_server: str | None = None) -> FhirPatient:
    """Read a patient from a CDS Hooks prefetch: a Patient and a searchset Bundle of Observations.

    Unlike :func:`patient_from_resource`, a chart holds a history: of several Observations with
    the same code the latest by instant is used
    (:func:`calculator.interop.fhir_observations.observed_at`); a conflict is only two different values
    at the same latest instant.

    Parameters
    ----------
    patient, observations : parsed JSON or None
        The prefetch's ``patient`` and ``observations`` (None when the EHR sent none).
    patient_id : str, optional
        ``context.patientId``: the Patient and every Observation must be about this patient.
    fhir_server : str, optional
        The call's ``fhirServer``: an absolute subject on it names the same patient.

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
    known = context_references(patient_id, fhir_server) if patient_id else set()
    return _assemble(patients, found, required, latest=True, subject=subject, known=known)


# --------------------------------------------------------------------------- structure


def _validate(kind: str, body: Any, where: str) -> None:
    """Validate ``body`` with the fhir.resources model of ``kind``; FhirInputError(400) if not."""
    import pydantic

    from fhir.resources.R4B import get_fhir_model_class

    if not isinstance(body, Mapping) or body.get("resourceType") != kind:
        found = body.get("resourceType") if isinstance(body, Mapping) else type(body).__name__
        raise FhirInputError([Issue("structure", where, f"must be a FHIR {kind} resource "
                                    f"(got {show(found)})")], 400)
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
                                f"unknown parameter {show(name)}; expected 'patient' or "
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
                                f"resource type {show(kind)} is not used; send one Patient "
                                "and Observations"))
    if issues:
        raise FhirInputError(issues)
    return patients, observations


# --------------------------------------------------------------------------- values


def _assemble(patients: list, observations: list, required: Collection[str], *, latest: bool,
              subject: str | None = None, known: set[str] = frozenset()) -> FhirPatient:
    issues: list[Issue] = []
    if len(patients) > 1:
        raise FhirInputError([Issue("business-rule", where, "more than one Patient: send one")
                              for where, _, _ in patients])
    patient = patients[0][1] if patients else None
    references = set(known)
    if patients:
        where, resource, full_url = patients[0]
        issues += refusals(resource, where)
        if resource.get("id"):
            subject = subject or f"Patient/{resource['id']}"
            references.add(f"Patient/{resource['id']}")
        if full_url:
            subject = subject or full_url
            references.add(full_url)
    if subject:
        references.add(subject)
    subjects = Subjects(references, patient_sent=patient is not None)
    readings: dict[str, list[_Reading]] = {}
    set_aside: dict[str, list[str]] = {}
    for where, observation in observations:
        reason = set_aside_reason(observation)
        if reason is not None:
            code = _our_code(observation)
            if code is not None:
                set_aside.setdefault(code.field, []).append(f"{where} ({reason})")
            continue
        problem = subjects.check(observation, where)
        if problem is not None:
            issues.append(problem)
            continue
        refused = refusals(observation, where)
        if refused:
            issues += refused
            continue
        try:
            entry, value = observation_value(observation, where)
        except FhirInputError as error:
            issues += error.issues
            continue
        reference = f"Observation/{observation['id']}" if observation.get("id") else None
        readings.setdefault(entry.field, []).append(
            _Reading(value, where, observed_at(observation), reference))
    if subject is None and subjects.first is not None:
        subject = subjects.first[0]
    raw: dict[str, Any] = {}
    sources: dict[str, str] = {}
    measured: dict[str, dt.datetime | None] = {}
    for name, found in readings.items():
        chosen = _choose(name, found, latest, issues)
        if chosen is not None:
            raw[name], sources[name], measured[name] = chosen.value, chosen.where, chosen.when
    if patient is not None:
        when = measured.get("marrow_blasts_pct")
        patient_demographics(patient, patients[0][0], raw, sources, issues,
                             needs_sex="sex" in _needed(required),
                             measured_on=when.date().isoformat() if when else None)
    if issues:
        raise FhirInputError(issues)
    missing = [name for name in _needed(required) if name not in raw]
    if missing:
        raise FhirInputError([missing_issue(name, patient is not None, set_aside.get(name, []))
                              for name in missing])
    try:
        values = parse_patient(raw, required=required)
    except InputError as error:
        raise FhirInputError([Issue("value", sources.get(problem.field, ""),
                                    f"{problem.field}: {problem.message}", problem.field)
                              for problem in error.errors]) from None
    basis = [reading.reference for name in values for reading in readings.get(name, [])
             if reading.reference]
    return FhirPatient(values, subject, list(dict.fromkeys(basis)))


def _our_code(observation: Mapping) -> Any:
    """The calculator's code entry of an Observation, or None."""
    codings = (observation.get("code") or {}).get("coding") or []
    return next((BY_CODE[coding.get("code")] for coding in codings
                 if isinstance(coding, Mapping) and coding.get("system") == INPUT_SYSTEM
                 and coding.get("code") in BY_CODE), None)


def _same(a: Any, b: Any) -> bool:
    """Whether two readings are the same value (12 and 12.0 are; true and 1 are not)."""
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or isinstance(b, str):
        return type(a) is type(b) and a == b
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


def _choose(name: str, found: list[_Reading], latest: bool, issues: list[Issue]):
    """The one reading of a field; records a conflict in ``issues`` (returns None then)."""
    candidates = found
    if latest and len(found) > 1:
        floor = dt.datetime.min.replace(tzinfo=dt.UTC)
        newest = max(reading.when or floor for reading in found)
        candidates = [reading for reading in found if (reading.when or floor) == newest]
    if any(not _same(candidates[0].value, reading.value) for reading in candidates[1:]):
        code = BY_FIELD[name].code
        shown = ", ".join(f"{reading.where} = {show(reading.value)}" for reading in candidates)
        issues.append(Issue("business-rule", candidates[0].where,
                            f"{name}: conflicting Observations coded {code!r} ({shown}); "
                            "send one value", name))
        return None
    return candidates[-1]


def _needed(required: Collection[str]) -> list[str]:
    wanted = set(ALWAYS_REQUIRED) | set(required)
    return [name for name in PATIENT_FIELDS if name in wanted]

