"""Which Observations describe the patient: one rule for the API's FHIR input and CDS Hooks.

An Observation is used only when all of these hold (docs/fhir.md, "Which Observations are used"):

- its ``status`` is ``final``, ``amended`` or ``corrected``; any other status (``registered``,
  ``preliminary``, ``cancelled``, ``entered-in-error``, ``unknown``) is not a result, and the
  Observation is set aside (named in the "missing" message if its field then has no value);
- it carries no ``modifierExtension`` (the calculator understands none, and FHIR says a
  resource with a modifier it does not understand must not be used): refused;
- it does not carry both a value and a ``dataAbsentReason`` (FHIR invariant obs-6): refused;
- its ``subject`` is the patient: the Patient sent (by ``Patient/<id>`` or the entry's
  ``fullUrl``), the CDS Hooks context's patient (relative, or absolute on the call's
  ``fhirServer``), or, with neither, the one subject every Observation names (Observations
  naming two different subjects are refused: one subject or none).

Of several usable Observations with one code, the API's input must agree (12 and 12.0 agree;
30 ``a`` and 360 ``mo`` agree); a CDS Hooks chart's history gives the latest, by instant
(:func:`observed_at`: ``effectiveDateTime``, ``effectiveInstant``, the end of
``effectivePeriod`` (else its start), else ``issued``, time zones honoured).
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Any, Mapping

from calculator.interop.fhir_codes import USABLE_STATUSES
from calculator.interop.fhir_values import Issue, show

#: FHIR dateTime / instant: a year, year-month, date, or date and time with a zone.
_DATE_TIME = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?"
                        r"(Z|[+-]\d{2}:\d{2})?)?)?)?$")


def set_aside_reason(observation: Mapping[str, Any]) -> str | None:
    """Why an Observation is not a result to use (its status), or None when it is."""
    status = observation.get("status")
    if status in USABLE_STATUSES:
        return None
    return (f"status {show(status)}: only {', '.join(USABLE_STATUSES)} results are used")


def refusals(resource: Mapping[str, Any], where: str) -> list[Issue]:
    """Problems that make a Patient or Observation unusable: a modifier extension, or a value
    together with a dataAbsentReason."""
    issues = []
    modifiers = resource.get("modifierExtension")
    if modifiers:
        urls = ", ".join(show(item.get("url")) for item in modifiers if isinstance(item, Mapping))
        issues.append(Issue("not-supported", where + ".modifierExtension",
                            f"a modifierExtension ({urls or 'no url'}) changes what this "
                            f"{resource.get('resourceType')} means, and the calculator "
                            "understands none; send it without"))
    if resource.get("dataAbsentReason") is not None and any(
            key.startswith("value") for key in resource):
        issues.append(Issue("business-rule", where + ".dataAbsentReason",
                            "carries both a value and a dataAbsentReason (FHIR obs-6): "
                            "send one or the other"))
    return issues


def observed_at(observation: Mapping[str, Any]) -> dt.datetime | None:
    """The instant an Observation describes (UTC), for choosing the latest; None if undated.

    ``effectiveDateTime``, ``effectiveInstant``, ``effectivePeriod.end`` (else ``.start``), else
    ``issued``. A partial date stands for its first instant (``2026-06`` is 1 June 00:00); a date
    or time without a zone is read as UTC.
    """
    period = observation.get("effectivePeriod") or {}
    for text in (observation.get("effectiveDateTime"), observation.get("effectiveInstant"),
                 period.get("end") if isinstance(period, Mapping) else None,
                 period.get("start") if isinstance(period, Mapping) else None,
                 observation.get("issued")):
        if isinstance(text, str):
            instant = parse_instant(text)
            if instant is not None:
                return instant
    return None


def parse_instant(text: str) -> dt.datetime | None:
    """A FHIR date, dateTime or instant as an aware UTC datetime (None if it is none of them)."""
    match = _DATE_TIME.match(text.strip())
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        moment = dt.datetime(int(year), int(month or 1), int(day or 1), int(hour or 0),
                             int(minute or 0), int(second or 0),
                             int(round(float(fraction or 0) * 1e6)) if fraction else 0)
        if zone in (None, "Z"):
            offset = dt.timedelta(0)
        else:
            sign = -1 if zone[0] == "-" else 1
            offset = sign * dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        return moment.replace(tzinfo=dt.timezone(offset)).astimezone(dt.UTC)
    except (ValueError, OverflowError):
        return None


class Subjects:
    """Checks that every Observation is about the one patient (see the module docstring).

    Parameters
    ----------
    known : set of str
        References that name the patient (``Patient/<id>``, a ``fullUrl``, the context's
        patient absolute on the FHIR server); empty when nothing names the patient.
    patient_sent : bool
        A Patient resource was sent (without an id or fullUrl it names nobody, and an
        Observation naming a subject cannot be matched to it).
    """

    def __init__(self, known: set[str], patient_sent: bool):
        self.known = set(known)
        self.patient_sent = patient_sent
        self.first: tuple[str, str] | None = None  # (reference, where) of the first subject

    def check(self, observation: Mapping[str, Any], where: str) -> Issue | None:
        """None if the Observation may be about the patient, else the Issue refusing it."""
        subject = observation.get("subject")
        if subject is None:
            return None
        about = subject.get("reference") if isinstance(subject, Mapping) else None
        if not isinstance(about, str) or not about:
            return Issue("business-rule", where + ".subject",
                         "the subject is not a reference (e.g. 'Patient/<id>'): the calculator "
                         "cannot tell whose result this is")
        about = _without_history(about)
        if self.known:
            if about in self.known:
                return None
            return Issue("business-rule", where + ".subject",
                         f"this Observation is about {show(about)}, not the patient "
                         f"({', '.join(sorted(self.known))})")
        if self.patient_sent:
            return Issue("business-rule", where + ".subject",
                         f"this Observation is about {show(about)}, but the Patient sent has "
                         "no id or fullUrl to match it with; give the Patient its id")
        if self.first is None:
            self.first = (about, where)
            return None
        if about == self.first[0]:
            return None
        return Issue("business-rule", where + ".subject",
                     f"Observations about different patients: {show(about)} here, "
                     f"{show(self.first[0])} at {self.first[1]}; send one patient's data")


def _without_history(reference: str) -> str:
    """``Patient/1/_history/2`` -> ``Patient/1`` (a version of the same patient)."""
    head, marker, _ = reference.partition("/_history/")
    return head if marker else reference


def context_references(patient_id: str, fhir_server: str | None) -> set[str]:
    """The references that name the CDS Hooks context's patient."""
    known = {f"Patient/{patient_id}"}
    if fhir_server:
        known.add(f"{fhir_server.rstrip('/')}/Patient/{patient_id}")
    return known
