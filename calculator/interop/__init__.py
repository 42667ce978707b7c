"""FHIR R4 and CDS Hooks: the calculator as a hospital's systems call it.

``fhir_input`` / ``fhir_values`` read Parameters or Bundles into a patient, ``fhir_output`` writes
RiskAssessment and OperationOutcome, ``fhir_codes`` the code systems, ``fhir_api`` the FHIR answer of
``POST /api/v1/predict``, ``cds_hooks`` the patient-view service, ``openapi`` their OpenAPI paths.
Depends on :mod:`calculator.json_requests`, never on :mod:`calculator.api`.
"""


#: Largest FHIR body (``POST /api/v1/predict`` as ``application/fhir+json``) or CDS Hooks call:
#: a chart's prefetch of up to ``_count`` = 50 Observations (about 0.9 KB each with text,
#: identifiers and categories; see tests/test_cds_prefetch.py) and its Patient, with room for
#: verbose EHRs, and still a bound.
MAX_CHART_BYTES = 128 * 1024


def chart_body_limit() -> int | None:
    """The body limit of a FHIR or CDS Hooks request (None for the others)."""
    from flask import request

    from calculator.interop.fhir_output import FHIR_JSON

    if request.path.startswith("/cds-services/") or request.mimetype == FHIR_JSON:
        return MAX_CHART_BYTES
    return None


def blueprints() -> list:
    """The FHIR and CDS Hooks blueprints (exempt from CSRF: systems call them, not a browser form)."""
    from calculator.interop import cds_hooks, fhir_api

    return [fhir_api.blueprint, cds_hooks.blueprint]


def init_app(app) -> None:
    """Register the FHIR and CDS Hooks endpoints on ``app`` and their paths in its OpenAPI document."""
    from calculator.interop import fhir_api, openapi
    from calculator.json_requests import ERROR_FORMATS, OPENAPI_EXTENSIONS
    from calculator.security import BODY_LIMITS

    from calculator.interop.cds_auth import configure_cds_authentication

    configure_cds_authentication(app)
    for blueprint in blueprints():
        app.register_blueprint(blueprint)
    app.extensions.setdefault(OPENAPI_EXTENSIONS, []).append(openapi.extend)
    app.extensions.setdefault(ERROR_FORMATS, []).append(fhir_api.outcome_for_http_error)
    app.extensions.setdefault(BODY_LIMITS, []).append(chart_body_limit)
