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

    configure_cds_authentication(app)
    for blueprint in blueprints():
        app.register_blueprint(blueprint)
    app.extensions.setdefault(OPENAPI_EXTENSIONS, []).append(openapi.extend)
    app.extensions.setdefault(ERROR_FORMATS, []).append(fhir_api.outcome_for_http_error)
    app.extensions.setdefault(BODY_LIMITS, []).append(chart_body_limit)


#: ``app.extensions`` key of the CDS Hooks trusted issuers (None: the service is open).
CDS_ISSUERS = "cart_risk.cds_issuers"


def configure_cds_authentication(app) -> None:
    """Check ``PUBLIC_URL`` and load the trusted issuers of ``CDS_ISSUERS_FILE``; warn when the
    CDS Hooks service is open (no issuers configured).

    Raises
    ------
    model.errors.ConfigurationError
        A malformed public URL or issuers file, or issuers without a public URL.
    """
    from calculator.interop.cds_auth import (ISSUERS_VARIABLE, PUBLIC_URL_VARIABLE,
                                             load_issuers, public_url)

    app.config["PUBLIC_URL"] = public_url(app.config.get("PUBLIC_URL"))
    path = app.config.get("CDS_ISSUERS_FILE")
    if path:
        app.extensions[CDS_ISSUERS] = load_issuers(path, app.config["PUBLIC_URL"])
        return
    app.extensions[CDS_ISSUERS] = None
    app.logger.warning(
        "CDS Hooks calls are not authenticated: no trusted issuers are configured (%s); "
        "anyone who can reach /cds-services can have patient data rendered into cards. "
        "See docs/cds-hooks.md, Authentication.", ISSUERS_VARIABLE)
    if not app.config["PUBLIC_URL"]:
        app.logger.warning("%s is not set: CDS cards carry no links (they are never built "
                           "from the request's Host header)", PUBLIC_URL_VARIABLE)
