"""FHIR output: a prediction as an R4 ``RiskAssessment``, problems as an ``OperationOutcome``.

Both are built with the ``fhir.resources`` models (R4B, which keeps R4's ``RiskAssessment`` and
``OperationOutcome`` element for element: see docs/fhir.md) and serialized from them, so what
goes out has passed the library's validation. The answer read is
:func:`model.predictor.prediction_answer`'s; fields other code may add are ignored, and fields
this code reads are read defensively.
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Any, Iterable, Mapping

from calculator.interop.fhir_codes import (BURDEN_SUBGROUP_SYSTEM, BY_FIELD, CI95_EXTENSION,
                                           INPUT_SYSTEM, METHOD_SYSTEM, OUTCOME_SYSTEM, OUTCOMES,
                                           OUTPUT_FORMAT_SYSTEM, OUTPUT_FORMAT_VERSION,
                                           TB_ASSESSED_CODES, TB_ASSESSED_SYSTEM, UCUM)
from calculator.interop.fhir_narrative import narrative
from model.outcomes import LOGISTIC_NAMES, SURVIVAL_NAMES
from model.predictor import HORIZONS_MONTHS

FHIR_JSON = "application/fhir+json"
RECONSTRUCTED_NOTE = (
    "Research use only. Trained on a synthetic cohort of {n} reconstructed from the published "
    "aggregates of one study (Li et al., NCT03919240), not on patient-level data; ssCART-19 after "
    "fludarabine-cyclophosphamide in relapsed/refractory B-ALL. Severe CRS is graded by CTCAE "
    "v4.03, not ASTCT.")
CENTER_NOTE = ("Trained on {n} (provenance: {provenance}). ssCART-19 in relapsed/refractory "
               "B-ALL; severe CRS graded by CTCAE v4.03.")
NO_SUBJECT = "the patient whose values were sent (the calculator keeps no identifier)"


def risk_assessment(answer: Mapping[str, Any], patient: Mapping[str, Any],
                    manifest: Mapping[str, Any], *, subject: str | None = None,
                    basis: Iterable[str] = (), now: dt.datetime | None = None) -> dict[str, Any]:
    """The prediction ``answer`` for ``patient`` as a FHIR R4 ``RiskAssessment`` (JSON-ready).

    - ``prediction``: complete remission and severe CRS (``probabilityDecimal`` in percent,
      0-100 as R4 defines it; the bootstrap 95 % interval, also in percent, in the
      :data:`~calculator.interop.fhir_codes.CI95_EXTENSION` extension and in
      ``rationale``; for severe CRS the burden subgroup and its observed rate as
      ``qualitativeRisk``), and event-free and overall survival at 6, 12 and 24 months
      (probability of being alive [and event-free] with ``whenRange`` 0 to that month; a horizon
      past the cohort's follow-up is left out).
    - ``basis``: the input values as contained Observations (coded as on input), plus
      references to the caller's own Observations when they had ids.
    - ``note``: what the model was trained on, and the answer's warnings.

    Parameters
    ----------
    answer : mapping
        :func:`model.predictor.prediction_answer`.
    patient : mapping
        The parsed patient the answer is for.
    manifest : mapping
        The bundle's manifest (provenance, training size).
    subject : str, optional
        Reference to the Patient; without one the subject is a display text only.
    basis : iterable of str
        References to the Observations the values came from.
    now : datetime, optional
        ``occurrenceDateTime`` (default: the current UTC time).
    """
    from fhir.resources.R4B.riskassessment import RiskAssessment

    from calculator.results import describe_value, is_reconstructed_manifest
    from model.patient import PATIENT_FIELDS

    model = answer.get("model") or {}
    trained_on = model.get("trained_on") or "an unstated number of patients"
    template = RECONSTRUCTED_NOTE if is_reconstructed_manifest(manifest) else CENTER_NOTE
    notes = [template.format(n=trained_on, provenance=manifest.get("provenance"))]
    notes.append("Inputs: " + "; ".join(f"{PATIENT_FIELDS[name].label} {describe_value(name, value)}"
                                        for name, value in patient.items()
                                        if name in PATIENT_FIELDS) + ".")
    notes += [f"Warning: {warning}" for warning in answer.get("warnings") or []]
    contained = _input_observations(patient)
    references = [{"reference": f"#{item['id']}"} for item in contained]
    references += [{"reference": reference} for reference in basis]
    bundle_id = str(model.get("id") or "")
    predictions = _predictions(answer)
    resource = RiskAssessment(
        meta={"tag": [{"system": OUTPUT_FORMAT_SYSTEM, "code": OUTPUT_FORMAT_VERSION,
                       "display": "probabilities in percent (0-100)"}]},
        text=narrative("cart-risk prediction (research use)",
                       [_prediction_line(item) for item in predictions] + notes),
        status="final",
        subject={"reference": subject} if subject else {"display": NO_SUBJECT},
        occurrenceDateTime=(now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds"),
        method={"coding": [{"system": METHOD_SYSTEM, "code": "cart-risk-penalized-models",
                            "display": "cart-risk logistic and Cox models"}],
                "text": f"{method_text(manifest)}; cart-risk bundle {bundle_id[:12]} "
                        f"({model.get('provenance')}), created {model.get('created')}"},
        contained=contained, basis=references, prediction=predictions,
        note=[{"text": text} for text in notes])
    return json.loads(resource.model_dump_json(exclude_none=True))


def method_text(manifest: Mapping[str, Any]) -> str:
    """How each model was fitted, from the bundle's manifest (e.g. "CR and severe CRS: ridge,
    penalty by AIC ...; EFS and OS: maximum likelihood x ... shrinkage")."""
    by_label: dict[str, list[str]] = {}
    names = {"cr": "CR", "severe_crs": "severe CRS", "efs": "EFS", "os": "OS"}
    for name, record in (manifest.get("models") or {}).items():
        method = record.get("method") if isinstance(record, Mapping) else None
        if isinstance(method, Mapping):
            label = str(method.get("label") or method.get("name") or "unstated method")
        else:
            label = str(method or "unstated method")
        by_label.setdefault(label, []).append(names.get(name, name))
    return "; ".join(f"{' and '.join(models)}: {label}" for label, models in by_label.items()) \
        or "fitting methods not recorded in the bundle"


def _prediction_line(item: Mapping[str, Any]) -> str:
    line = f"{item['outcome']['text']}: {item['probabilityDecimal']:.1f} %"
    if item.get("rationale"):
        line += f" ({item['rationale'].rstrip('.')})"
    return line


def _coded(outcome: str, horizon: int | None = None) -> dict[str, Any]:
    code, display = OUTCOMES[outcome]
    text = display if horizon is None else f"{display} at {horizon} months"
    return {"coding": [{"system": OUTCOME_SYSTEM, "code": code, "display": display}], "text": text}


def _interval(ci95: Any) -> tuple[float, float] | None:
    if (isinstance(ci95, (list, tuple)) and len(ci95) == 2
            and all(isinstance(value, (int, float)) for value in ci95)):
        return float(ci95[0]), float(ci95[1])
    return None


def percent_of(probability: float) -> float:
    """A probability (0-1) as R4's ``probabilityDecimal``: a percentage, 0-100 (ras-2)."""
    return round(100.0 * float(probability), 8)


def _prediction(outcome: dict, probability: float, ci95: tuple[float, float] | None,
                horizon: int | None = None, extra: str = "") -> dict[str, Any]:
    """One ``prediction``; ``probability`` and ``ci95`` as fractions 0-1, written in percent."""
    item: dict[str, Any] = {"outcome": outcome, "probabilityDecimal": percent_of(probability)}
    rationale = []
    if ci95 is not None:
        low, high = percent_of(ci95[0]), percent_of(ci95[1])
        item["extension"] = [{"url": CI95_EXTENSION, "valueRange": {
            "low": {"value": low, "unit": "%", "system": UCUM, "code": "%"},
            "high": {"value": high, "unit": "%", "system": UCUM, "code": "%"}}}]
        rationale.append(f"95 % bootstrap interval {low:.1f} % to {high:.1f} %")
    if horizon is not None:
        item["whenRange"] = {"low": {"value": 0, "unit": "months", "system": UCUM, "code": "mo"},
                             "high": {"value": horizon, "unit": "months", "system": UCUM,
                                      "code": "mo"}}
    if extra:
        rationale.append(extra)
    if rationale:
        item["rationale"] = "; ".join(rationale) + "."
    return item


def _predictions(answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    items = []
    for name in LOGISTIC_NAMES:
        result = answer.get(name)
        if not isinstance(result, Mapping) or result.get("probability") is None:
            continue
        extra, band = "", result.get("band") if name == "severe_crs" else None
        item = _prediction(_coded(name), float(result["probability"]),
                           _interval(result.get("ci95")))
        if isinstance(band, Mapping) and band.get("subgroup"):
            observed = band.get("observed") or {}
            extra = (f"burden subgroup {band['subgroup']} ({band.get('label')}): severe CRS in "
                     f"{observed.get('events')} of {observed.get('n')} training patients")
            item["qualitativeRisk"] = {
                "coding": [{"system": BURDEN_SUBGROUP_SYSTEM, "code": str(band["subgroup"]),
                            "display": str(band.get("label"))}], "text": extra}
            item["rationale"] = "; ".join(filter(None, [item.get("rationale", "").rstrip("."),
                                                        extra])) + "."
        items.append(item)
    for name in SURVIVAL_NAMES:
        for horizon in HORIZONS_MONTHS:
            value = survival_at(answer.get(name), horizon)
            if value is None:
                continue
            bounds = (value["lower"], value["upper"]) if value.get("lower") is not None \
                and value.get("upper") is not None else None
            items.append(_prediction(_coded(name, horizon), value["survival"], bounds, horizon))
    return items


def survival_at(curve: Any, months: int) -> dict[str, float | None] | None:
    """Survival at ``months`` with its 95 % band, from an API survival answer (None past
    follow-up).

    Reads ``at[str(months)]`` as a number (the band then from the curve's step function at the
    last grid month at or before ``months``) or as a mapping with ``survival``/``lower``/``upper``.
    """
    if not isinstance(curve, Mapping):
        return None
    at = (curve.get("at") or {}).get(str(months))
    if isinstance(at, Mapping):
        if at.get("survival") is None:
            return None
        return {"survival": float(at["survival"]), "lower": at.get("lower"),
                "upper": at.get("upper")}
    if not isinstance(at, (int, float)):
        return None
    grid = curve.get("months") or []
    index = max((i for i, month in enumerate(grid) if month is not None and month <= months),
                default=None)
    lower = upper = None
    if index is not None:
        lower = (curve.get("lower") or [None] * len(grid))[index]
        upper = (curve.get("upper") or [None] * len(grid))[index]
    return {"survival": float(at), "lower": lower, "upper": upper}


def _input_observations(patient: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The patient's values as contained Observations, coded as the calculator reads them."""
    from fhir.resources.R4B.observation import Observation

    observations = []
    for name, value in patient.items():
        entry = BY_FIELD.get(name)
        if entry is None:
            continue
        item: dict[str, Any] = {
            "id": f"input-{entry.code}", "status": "final",
            "code": {"coding": [{"system": INPUT_SYSTEM, "code": entry.code,
                                 "display": entry.display}]}}
        if entry.value == "quantity":
            item["valueQuantity"] = {"value": value, "unit": entry.ucum, "system": UCUM,
                                     "code": entry.ucum}
        elif entry.value == "boolean":
            item["valueBoolean"] = bool(value)
        else:
            item["valueCodeableConcept"] = {"coding": [{"system": TB_ASSESSED_SYSTEM,
                                                        "code": TB_ASSESSED_CODES[value]}]}
        observations.append(Observation.model_validate(item))
    return [json.loads(item.model_dump_json(exclude_none=True)) for item in observations]


def operation_outcome(issues: Iterable[Any]) -> dict[str, Any]:
    """An ``OperationOutcome`` with one error ``issue`` for each problem.

    Parameters
    ----------
    issues : iterable
        Objects with ``code`` (FHIR issue type), ``expression`` (FHIRPath, may be empty) and
        ``message`` (:class:`calculator.interop.fhir_input.Issue`).
    """
    from fhir.resources.R4B.operationoutcome import OperationOutcome

    items = []
    for issue in issues:
        item = {"severity": "error", "code": issue.code, "diagnostics": issue.message,
                "details": {"text": issue.message}}
        if issue.expression:
            item["expression"] = [issue.expression]
        items.append(item)
    resource = OperationOutcome(
        text=narrative("The calculator could not use this request",
                       [item["diagnostics"] for item in items] or ["invalid input"]),
        issue=items or [{"severity": "error", "code": "invalid"}])
    return json.loads(resource.model_dump_json(exclude_none=True))
