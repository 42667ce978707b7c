"""FHIR on ``POST /api/v1/predict``: content negotiation, FHIR in, ``RiskAssessment`` out.

- A body sent as ``application/fhir+json`` is a ``Parameters`` or ``Bundle``
  (:mod:`calculator.interop.fhir_input`); one sent as ``application/json`` is the API's patient object.
- The answer is a ``RiskAssessment`` (``application/fhir+json``) when the ``Accept`` header
  prefers ``application/fhir+json`` to ``application/json``, or, with no preference, when the body
  was FHIR; otherwise the API's JSON answer. Errors follow the same choice: an
  ``OperationOutcome`` naming each problem, or the API's ``errors`` list.

Also ``GET /fhir/CodeSystem/cart-risk-input``: the code system the inputs are coded in.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from calculator.extensions import calculator_state
from calculator.json_requests import PREDICT_PATH, read_json_body
from calculator.interop.fhir_input import FhirInputError, Issue, patient_from_resource
from calculator.interop.fhir_output import FHIR_JSON, operation_outcome, risk_assessment
from model.errors import InputError

blueprint = Blueprint("fhir", __name__)
CODE_SYSTEM_PATH = "/fhir/CodeSystem/cart-risk-input"


def is_fhir_request() -> bool:
    """Whether the current request sends FHIR or prefers a FHIR answer."""
    return request.mimetype == FHIR_JSON or _answer_as_fhir()


@blueprint.before_app_request
def answer_fhir_predict():
    """Answer ``POST /api/v1/predict`` here when the request sends or prefers FHIR.

    Runs before the API's own view (:func:`calculator.api.predict`, plain JSON), which therefore
    never sees a FHIR request; returning None lets every other request through.
    """
    if request.method == "POST" and request.path == PREDICT_PATH and is_fhir_request():
        return predict_fhir()
    return None


def _answer_as_fhir() -> bool:
    accept = request.accept_mimetypes
    fhir_quality, json_quality = accept[FHIR_JSON], accept["application/json"]
    if fhir_quality == json_quality:
        return request.mimetype == FHIR_JSON
    return fhir_quality > json_quality


def fhir_response(resource: dict[str, Any], status: int = 200) -> Response:
    """A FHIR resource as ``application/fhir+json`` (strict JSON: no NaN or infinity)."""
    return Response(current_app.json.dumps(resource), status=status, mimetype=FHIR_JSON)


def outcome_response(error: FhirInputError) -> Response:
    return fhir_response(operation_outcome(error.issues), error.status)


def _issues_from_input_error(error: InputError) -> list[Issue]:
    issues = []
    for problem in error.errors:
        code = "required" if problem.message == "is required" else "value"
        if problem.field == "body":
            code = "structure"
        issues.append(Issue(code, problem.field, f"{problem.field}: {problem.message}"))
    return issues


def predict_fhir():
    """``POST /api/v1/predict`` for a FHIR request (see the module docstring)."""
    from model.predictor import prediction_answer

    bundle = calculator_state().bundle
    required = bundle.predictor.required_fields
    subject, basis = None, []
    try:
        if request.mimetype == FHIR_JSON:
            body = read_json_body(media_types=(FHIR_JSON,))
            found = patient_from_resource(body, required)
            patient, subject, basis = found.values, found.subject, found.basis
        else:
            from model.patient import parse_patient

            patient = parse_patient(read_json_body(), required=required)
        answer = prediction_answer(bundle, patient)
    except FhirInputError as error:
        return _answer_error(error)
    except InputError as error:
        status = getattr(error, "status_code", 422)
        return _answer_error(FhirInputError(_issues_from_input_error(error), status))
    if not _answer_as_fhir():
        return jsonify(answer)
    return fhir_response(risk_assessment(answer, patient, bundle.manifest, subject=subject,
                                         basis=basis))


def _answer_error(error: FhirInputError):
    if _answer_as_fhir():
        return outcome_response(error)
    errors = [{"field": issue.expression or "body", "message": issue.message}
              for issue in error.issues]
    return jsonify({"errors": errors}), error.status


@blueprint.get(CODE_SYSTEM_PATH)
def input_code_system():
    """The FHIR ``CodeSystem`` of the calculator's input codes."""
    from calculator.interop.fhir_codes import input_code_system as build

    return fhir_response(build())
