"""FHIR R4 and CDS Hooks: the calculator as a hospital's systems call it.

``fhir_input`` / ``fhir_values`` read Parameters or Bundles into a patient, ``fhir_output`` writes
RiskAssessment and OperationOutcome, ``fhir_codes`` the code systems, ``fhir_api`` the FHIR answer of
``POST /api/v1/predict``, ``cds_hooks`` the patient-view service, ``openapi`` their OpenAPI paths.
Depends on :mod:`calculator.json_requests`, never on :mod:`calculator.api`.
"""


def blueprints() -> list:
    """The FHIR and CDS Hooks blueprints (exempt from CSRF: systems call them, not a browser form)."""
    from calculator.interop import cds_hooks, fhir_api

    return [fhir_api.blueprint, cds_hooks.blueprint]


def init_app(app) -> None:
    """Register the FHIR and CDS Hooks endpoints on ``app`` and their paths in its OpenAPI document."""
    from calculator.interop import openapi
    from calculator.json_requests import OPENAPI_EXTENSIONS

    for blueprint in blueprints():
        app.register_blueprint(blueprint)
    app.extensions.setdefault(OPENAPI_EXTENSIONS, []).append(openapi.extend)
