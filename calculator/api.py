"""The JSON API: ``POST /api/v1/predict``, ``GET /api/v1/openapi.json`` and ``GET /healthz``.

Every answer is JSON, errors included: ``{"errors": [{"field": ..., "message": ...}]}`` with 400
(not JSON), 413 (too large), 415 (not declared as ``application/json``) or 422 (JSON that is not
a valid patient); an unexpected failure answers 500 with field ``server`` and the request id only.
The API needs no CSRF token: a cross-site HTML form cannot send ``application/json``.
Input goes through :func:`model.patient.parse_patient` only; the answer is
:func:`model.predictor.prediction_answer`, the same function behind the result page.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify

from calculator.extensions import calculator_state
from calculator.json_requests import (OPENAPI_EXTENSIONS, PREDICT_MEDIA_TYPES, PREDICT_PATH,
                                     read_json_body)
from model.errors import InputError
from model.outcomes import LOGISTIC, OUTCOMES
from model.patient import PATIENT_FIELDS, parse_patient
from model.patient_schema import patient_json_schema
from model.predictor import HORIZONS_MONTHS, prediction_answer

blueprint = Blueprint("api", __name__)


@blueprint.errorhandler(InputError)
def _input_error(error: InputError):
    return jsonify(error.to_dict()), error.status_code


@blueprint.post(PREDICT_PATH)
def predict():
    """Predict for one patient from the patient fields as JSON.

    A request that sends or prefers FHIR never reaches this view: :mod:`calculator.interop`
    answers it first (see :func:`calculator.interop.fhir_api.answer_fhir_predict`).
    """
    bundle = calculator_state().bundle
    patient = parse_patient(read_json_body(named=PREDICT_MEDIA_TYPES),
                            required=bundle.predictor.required_fields)
    return jsonify(prediction_answer(bundle, patient))


@blueprint.get("/api/v1/openapi.json")
def openapi():
    """The OpenAPI 3 document of this API, with the loaded bundle's required fields."""
    return jsonify(openapi_document())


@blueprint.get("/healthz")
def healthz():
    """200 with the release and the bundle id: a verified bundle is loaded (the app does not
    exist otherwise)."""
    from model.release import __version__

    bundle = calculator_state().bundle
    return jsonify({"status": "ok", "version": __version__,
                    "bundle": {"id": bundle.id, "format_version": bundle.manifest.get(
                                   "format_version"),
                               "provenance": bundle.manifest.get("provenance"),
                               "created": bundle.manifest.get("created")}})


# --------------------------------------------------------------------------- OpenAPI document


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"oneOf": [schema, {"type": "null"}]}


def _probability_schema(description: str) -> dict[str, Any]:
    number = {"type": "number", "minimum": 0, "maximum": 1}
    return {"type": "object", "description": description,
            "required": ["probability", "ci95"],
            "properties": {"probability": number,
                           "ci95": {"type": "array", "items": number, "minItems": 2,
                                    "maxItems": 2,
                                    "description": "bootstrap 95 % interval [lower, upper]"}}}


def _survival_schema(description: str) -> dict[str, Any]:
    series = {"type": "array", "items": _nullable({"type": "number"})}
    bounds = {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1},
              "minItems": 2, "maxItems": 2}

    def by_horizon(schema: dict[str, Any], description: str) -> dict[str, Any]:
        return {"type": "object", "description": description,
                "properties": {str(h): _nullable(schema) for h in HORIZONS_MONTHS}}

    return {"type": "object", "description": description,
            "required": ["months", "survival", "lower", "upper", "at"],
            "properties": {
                "months": {**series, "description": "month grid; stops at the cohort's last "
                                                     "follow-up (never extrapolated)"},
                "survival": series, "lower": series, "upper": series,
                "at": by_horizon({"type": "number"}, "survival at 6, 12 and 24 months (null "
                                                     "past the last follow-up)"),
                "at_ci95": by_horizon(bounds, "bootstrap 95 % interval [lower, upper] of the "
                                              "survival at 6, 12 and 24 months (null past the "
                                              "last follow-up)"),
                "at_risk": by_horizon({"type": "integer", "minimum": 0},
                                      "training patients still at risk (followed, without an "
                                      "event) at 6, 12 and 24 months, of one cohort (an "
                                      "ensemble: the mean over its reconstructions; see "
                                      "model.at_risk); an estimate resting on "
                                      "fewer than 10 % of the cohort or 10 patients also gets "
                                      "an entry in warnings"),
                "at_risk_range": by_horizon({"type": "array", "items": {"type": "integer"}},
                                            "ensemble bundles: the smallest and largest "
                                            "number at risk over the reconstructions")}}


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1 document of the API for the app's loaded bundle."""
    from importlib import metadata

    bundle = calculator_state().bundle
    required = list(bundle.predictor.required_fields)
    try:
        version = metadata.version("cart-risk")
    except metadata.PackageNotFoundError:
        version = "unknown"
    errors = {"description": "invalid input",
              "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Errors"}}}}
    example = {"marrow_blasts_pct": 12.0, "mrd_positive": True, "age_years": 30, "sex": "M",
               "ph_positive": False, "prior_hsct": False, "relapsed": True}
    example = {name: value for name, value in example.items() if name in PATIENT_FIELDS}
    band = {"type": "object", "properties": {
        "subgroup": {"type": "string", "enum": list("abcde")}, "label": {"type": "string"},
        "observed": {"type": "object", "properties": {
            "events": {"type": "integer"}, "n": {"type": "integer"}, "rate": {"type": "number"},
            "ci95": {"type": "array", "items": {"type": "number"}}}},
        "reconstructed": {"type": "object", "description": "ensemble bundles: the subgroup's sCRS "
                          "rate range and size range across the reconstructions (assumed split)",
                          "properties": {"rate_range": {"type": "array", "items": {"type": "number"}},
                                         "n_range": {"type": "array", "items": {"type": "integer"}},
                                         "reconstructions": {"type": "integer"},
                                         "evidence": {"type": "string"}}},
        "published": {"type": "object", "description": "the published two-group sCRS count the "
                      "subgroup belongs to (4/33 below 5 % blasts, 19/45 at 5 % or more)",
                      "properties": {"group": {"type": "string"}, "label": {"type": "string"},
                                     "events": {"type": "integer"}, "n": {"type": "integer"},
                                     "rate": {"type": "number"}, "evidence": {"type": "string"}}}}}
    severe_crs = _probability_schema("severe CRS (CTCAE v4.03 grade >= 3)")
    severe_crs["properties"]["band"] = {**band, "description": "the patient's burden subgroup and "
                                        "its sCRS rate in the training data (observed in a center's "
                                        "cohort; for reconstructed bundles an assumed split, see "
                                        "model.evidence)"}
    answers = {outcome.name: _nullable(severe_crs if outcome.name == "severe_crs" else
                                       _probability_schema(outcome.label.lower())
                                       if outcome.kind == LOGISTIC else
                                       _survival_schema(outcome.label.lower()))
               for outcome in OUTCOMES}
    prediction = {
        "type": "object",
        "required": [*answers, "warnings", "model"],
        "properties": {
            **answers,
            "warnings": {"type": "array", "items": {"type": "string"},
                         "description": "inputs outside the training data, survival "
                                        "estimates resting on few patients at risk, missing "
                                        "models"},
            "model": {"type": "object", "properties": {
                "id": {"type": "string", "description": "SHA-256 of the bundle manifest"},
                "provenance": {"type": "string"}, "trained_on": {"type": "string"},
                "created": {"type": "string"},
                "reconstructions": {"type": "integer", "description": "ensemble bundles: how many "
                                    "reconstructed cohorts were pooled"},
                "at_risk": {"type": "string", "description": "ensemble and updated bundles: what "
                            "the numbers at risk count ('mean of 20 reconstructions', 'observed "
                            "in the update cohort of 160 center patients')"},
                "evidence": {"type": "object", "additionalProperties": {"type": "string"},
                             "description": "what each number rests on: published, derived from "
                                            "published numbers, assumed, or model output"},
                "lineage": _nullable({"type": "object", "description": "for an updated bundle: "
                                      "its parent bundle, the update cohort and each model's "
                                      "update method"})}}}}
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "cart-risk API", "version": version,
            "description": (
                "Risk predictions for ssCART-19 after fludarabine-cyclophosphamide in "
                "relapsed/refractory B-ALL. Bundle " + bundle.id[:12] + " ("
                + str(bundle.manifest.get("provenance")) + "). Unknown fields are rejected."),
        },
        "paths": {
            "/api/v1/predict": {"post": {
                "operationId": "predict", "summary": "Predict for one patient",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Patient"}, "example": example}}},
                "responses": {
                    "200": {"description": "prediction", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Prediction"}}}},
                    "400": {**errors, "description": "body is not valid JSON"},
                    "413": {**errors, "description": "body too large"},
                    "415": {**errors, "description": "body not declared as application/json"},
                    "422": {**errors, "description": "not a valid patient, or a patient outside "
                                                     "the modelled population"}}}},
            "/api/v1/openapi.json": {"get": {
                "operationId": "openapi", "summary": "This document",
                "responses": {"200": {"description": "OpenAPI document"}}}},
            "/healthz": {"get": {
                "operationId": "healthz", "summary": "Liveness: a verified bundle is loaded",
                "responses": {"200": {"description": "bundle id", "content": {
                    "application/json": {"schema": {"type": "object"}}}}}}},
        },
        "components": {"schemas": {
            "Patient": {**patient_json_schema(required, null_for_absent=True),
                        "description": "one patient; fields required by this bundle: "
                                       + ", ".join(required)},
            "Prediction": prediction,
            "Errors": {"type": "object", "required": ["errors"], "properties": {"errors": {
                "type": "array", "items": {"type": "object", "required": ["field", "message"],
                                           "properties": {"field": {"type": "string"},
                                                          "message": {"type": "string"}}}}}},
        }},
    }
    for extend in current_app.extensions.get(OPENAPI_EXTENSIONS, ()):
        extend(document)  # e.g. the FHIR and CDS Hooks endpoints (calculator.interop)
    return document
