"""FHIR on ``POST /api/v1/predict``: content negotiation, FHIR in, ``RiskAssessment`` out.

- A body sent as ``application/fhir+json`` is a ``Parameters`` or ``Bundle``
  (:mod:`calculator.interop.fhir_input`); one sent as ``application/json`` is the API's patient object.
- The answer is a ``RiskAssessment`` (``application/fhir+json``) when the ``Accept`` header
  prefers ``application/fhir+json`` to ``application/json``, or, with no preference, when the body
  was FHIR; otherwise the API's JSON answer. Errors follow the same choice: an
  ``OperationOutcome`` naming each problem, or the API's ``errors`` list.

Also ``GET /fhir/CodeSystem/<name>`` and ``GET /fhir/StructureDefinition/<name>``: the code
systems and the extension the calculator's resources use (``cart-risk-input`` is the inputs').
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from calculator.extensions import calculator_state
from calculator.json_requests import PREDICT_MEDIA_TYPES, PREDICT_PATH, read_json_body
from calculator.interop.fhir_input import FhirInputError, Issue, patient_from_resource
from calculator.interop.fhir_output import FHIR_JSON, operation_outcome, risk_assessment
from model.errors import InputError

blueprint = Blueprint("fhir", __name__)
DEFINITION_PATH = "/fhir/<any(CodeSystem, StructureDefinition):kind>/<name>"


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
    fhir_quality = accept_quality(FHIR_JSON)
    json_quality = accept_quality("application/json")
    if fhir_quality == json_quality:
        return request.mimetype == FHIR_JSON
    return fhir_quality > json_quality


#: The ``fhirVersion`` media-type parameter values that mean R4 (FHIR R4 http.html#mime-type).
R4_VERSIONS = ("4.0", "4.0.1")


def accept_quality(media_type: str, header: str | None = None) -> float:
    """How much the request's ``Accept`` header wants ``media_type`` (0 to 1; 1 without one).

    The most specific matching range decides (RFC 9110 12.5.1): ``type/subtype`` before
    ``type/*`` before ``*/*``; ``q=0`` means "not acceptable". Parameters other than ``q`` are
    ignored (``charset=utf-8``), except that a ``fhirVersion`` other than R4's makes
    ``application/fhir+json`` not match (that client wants another FHIR version).
    """
    header = request.headers.get("Accept") if header is None else header
    if not header or not header.strip():
        return 1.0
    main, _, sub = media_type.partition("/")
    best: tuple[int, float] | None = None
    for item in header.split(","):
        kind, *parameters = [part.strip() for part in item.split(";")]
        kind = kind.lower()
        quality, matches = 1.0, True
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            name, value = name.strip().lower(), value.strip().strip('"')
            if name == "q":
                try:
                    quality = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    quality = 0.0
            elif name == "fhirversion" and kind == FHIR_JSON and value not in R4_VERSIONS:
                matches = False
        if not matches:
            continue
        if kind == media_type:
            specificity = 3
        elif kind == f"{main}/*":
            specificity = 2
        elif kind in ("*/*", "*"):
            specificity = 1
        else:
            continue
        if best is None or specificity > best[0]:
            best = (specificity, quality)
    return best[1] if best else 0.0


def fhir_response(resource: dict[str, Any], status: int = 200) -> Response:
    """A FHIR resource as ``application/fhir+json`` (strict JSON: no NaN or infinity)."""
    return Response(current_app.json.dumps(resource), status=status, mimetype=FHIR_JSON)


def outcome_response(error: FhirInputError) -> Response:
    return fhir_response(operation_outcome(error.issues), error.status)


#: FHIR issue types of the HTTP errors answered as an OperationOutcome.
_HTTP_ISSUE_CODES = {404: "not-found", 405: "not-supported", 413: "too-costly",
                     415: "not-supported"}


def outcome_for_http_error(status: int, message: str) -> Response | None:
    """An HTTP error (413, 500, routing errors...) as an ``OperationOutcome`` when the request
    sent or prefers FHIR; None otherwise (the API's JSON error then)."""
    if not is_fhir_request():
        return None
    code = "exception" if status >= 500 else _HTTP_ISSUE_CODES.get(status, "invalid")
    return outcome_response(FhirInputError([Issue(code, "", message)], status))


def _issues_from_input_error(error: InputError) -> list[Issue]:
    """Issues of a JSON body's (or the population rule's) problems: no FHIRPath expression
    (the body is no FHIR resource); the field is named in the message."""
    issues = []
    for problem in error.errors:
        code = "required" if problem.message == "is required" else "value"
        if problem.field == "body":
            code = "structure"
        issues.append(Issue(code, "", f"{problem.field}: {problem.message}", problem.field))
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

            patient = parse_patient(read_json_body(named=PREDICT_MEDIA_TYPES), required=required)
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
    errors = [{"field": issue.expression or issue.field or "body", "message": issue.message}
              for issue in error.issues]
    return jsonify({"errors": errors}), error.status


@blueprint.get(DEFINITION_PATH)
def fhir_definition(kind: str, name: str):
    """A ``CodeSystem`` or ``StructureDefinition`` of the calculator (its canonical URL ends in
    this path), as :mod:`calculator.interop.fhir_definitions` builds it."""
    from calculator.interop.fhir_definitions import definition
    from calculator.json_requests import error_response

    resource = definition(kind, name)
    if resource is None:
        return error_response(404, f"no {kind} {name!r} here: the calculator serves "
                                   "/fhir/CodeSystem/<name> and /fhir/StructureDefinition/<name> "
                                   "for the names in docs/fhir.md", "path")
    return fhir_response(resource)
