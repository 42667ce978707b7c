"""The OpenAPI description of the FHIR and CDS Hooks endpoints, added to the API's document.

:func:`extend` adds, to the document :func:`calculator.api.openapi_document` builds: FHIR
request and response media types on ``POST /api/v1/predict``, the FHIR code system, the CDS
Hooks discovery and service endpoints, and the result-link page. FHIR resources are described
by their outline (resource type, the elements the calculator reads or writes); what makes one
usable (codes, units, one value per code) is in docs/fhir.md and checked by the server.
"""
from __future__ import annotations

from typing import Any

from calculator.interop.cds_hooks import PREFETCH_KEYS, SERVICE_ID
from calculator.interop.fhir_definitions import CODE_SYSTEMS, STRUCTURE_DEFINITIONS
from calculator.interop.fhir_codes import INPUT_SYSTEM
from calculator.interop.fhir_output import FHIR_JSON
from calculator.result_links import RESULT_LINK_LIFETIME_SECONDS

_REF = "#/components/schemas/"


def _resource(kind: str, required: tuple[str, ...] = (), **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": ["resourceType", *required],
            "properties": {"resourceType": {"const": kind}, **properties}}


def schemas() -> dict[str, Any]:
    """The component schemas the FHIR and CDS Hooks paths refer to."""
    any_resource = {"type": "object", "required": ["resourceType"],
                    "properties": {"resourceType": {"type": "string"}}}
    parameter = {"type": "object", "required": ["name", "resource"], "properties": {
        "name": {"enum": ["patient", "observation"]}, "resource": any_resource}}
    card = {"type": "object", "required": ["summary", "indicator", "source"], "properties": {
        "uuid": {"type": "string"}, "summary": {"type": "string", "maxLength": 140},
        "detail": {"type": "string"}, "indicator": {"enum": ["info", "warning", "critical"]},
        "source": {"type": "object", "required": ["label"], "properties": {
            "label": {"type": "string"}, "url": {"type": "string"},
            "topic": {"type": "object"}}},
        "links": {"type": "array", "items": {
            "type": "object", "required": ["label", "url", "type"], "properties": {
                "label": {"type": "string"}, "url": {"type": "string"},
                "type": {"enum": ["absolute", "smart"]}}}}}}
    return {
        "FhirPatientInput": {
            "description": f"A FHIR R4 Parameters (parameters 'patient' and 'observation') or "
                           f"Bundle holding one Patient and the Observations, coded in "
                           f"{INPUT_SYSTEM} (docs/fhir.md).",
            "oneOf": [_resource("Parameters", ("parameter",), parameter={
                          "type": "array", "items": parameter}),
                      _resource("Bundle", ("type", "entry"), type={"type": "string"}, entry={
                          "type": "array", "items": {"type": "object", "properties": {
                              "fullUrl": {"type": "string"}, "resource": any_resource}}})]},
        "RiskAssessment": _resource(
            "RiskAssessment", ("status", "subject", "occurrenceDateTime", "method", "prediction",
                               "note"),
            status={"const": "final"}, subject={"type": "object"},
            occurrenceDateTime={"type": "string"}, method={"type": "object"},
            basis={"type": "array", "items": {"type": "object"}},
            contained={"type": "array", "items": {"type": "object"}},
            note={"type": "array", "items": {"type": "object", "required": ["text"]}},
            prediction={"type": "array", "items": {
                "type": "object", "required": ["outcome", "probabilityDecimal"], "properties": {
                    "outcome": {"type": "object"},
                    "probabilityDecimal": {"type": "number", "minimum": 0, "maximum": 1},
                    "whenRange": {"type": "object"}, "rationale": {"type": "string"},
                    "qualitativeRisk": {"type": "object"},
                    "extension": {"type": "array", "items": {"type": "object"}}}}}),
        "OperationOutcome": _resource("OperationOutcome", ("issue",), issue={
            "type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["severity", "code", "diagnostics"],
                "properties": {"severity": {"const": "error"}, "code": {"type": "string"},
                               "diagnostics": {"type": "string"},
                               "expression": {"type": "array", "items": {"type": "string"}}}}}),
        "CdsRequest": {
            "type": "object", "required": ["hook", "hookInstance", "context", "prefetch"],
            "description": "A CDS Hooks 2.0 patient-view call; the prefetch keys of GET "
                           "/cds-services are required (412 without them).",
            "properties": {
                "hook": {"const": "patient-view"},
                "hookInstance": {"type": "string", "minLength": 1},
                "fhirServer": {"type": "string"}, "fhirAuthorization": {"type": "object"},
                "context": {"type": "object", "required": ["patientId"], "properties": {
                    "patientId": {"type": "string", "minLength": 1},
                    "userId": {"type": "string"}, "encounterId": {"type": "string"}}},
                "prefetch": {"type": "object", "required": list(PREFETCH_KEYS),
                             "properties": {key: {"description": "a FHIR resource, or null "
                                                                 "when the chart has none"}
                                            for key in PREFETCH_KEYS}}}},
        "CdsCards": {"type": "object", "required": ["cards"], "properties": {
            "cards": {"type": "array", "minItems": 1, "maxItems": 1, "items": card}}},
        "CdsDiscovery": {"type": "object", "required": ["services"], "properties": {
            "services": {"type": "array", "items": {
                "type": "object", "required": ["hook", "id", "description", "prefetch"],
                "properties": {"hook": {"type": "string"}, "id": {"type": "string"},
                               "title": {"type": "string"}, "description": {"type": "string"},
                               "prefetch": {"type": "object", "additionalProperties": {
                                   "type": "string"}}}}}}},
    }


def extend(document: dict[str, Any]) -> None:
    """Add the FHIR and CDS Hooks endpoints to an OpenAPI 3.1 ``document`` (in place)."""
    document["components"]["schemas"].update(schemas())
    errors = {"application/json": {"schema": {"$ref": _REF + "Errors"}}}
    outcome = {FHIR_JSON: {"schema": {"$ref": _REF + "OperationOutcome"}}}
    predict = document["paths"]["/api/v1/predict"]["post"]
    predict["description"] = (
        "Send the patient as JSON (application/json) or as FHIR (application/fhir+json: a "
        "Parameters or Bundle, docs/fhir.md). The answer is a FHIR RiskAssessment when Accept "
        "prefers application/fhir+json, or, with no preference, when the body was FHIR; errors "
        "then come as an OperationOutcome naming each problem.")
    predict["requestBody"]["content"][FHIR_JSON] = {
        "schema": {"$ref": _REF + "FhirPatientInput"}}
    responses = predict["responses"]
    responses["200"]["content"][FHIR_JSON] = {"schema": {"$ref": _REF + "RiskAssessment"}}
    for status in ("400", "415", "422"):
        responses[status]["content"] = {**responses[status]["content"], **outcome}
    document["paths"]["/fhir/CodeSystem/{name}"] = {"get": {
        "operationId": "codeSystem", "summary": "A FHIR CodeSystem the calculator's resources use",
        "parameters": [{"name": "name", "in": "path", "required": True,
                        "schema": {"type": "string", "enum": list(CODE_SYSTEMS)}}],
        "responses": {"200": {"description": "CodeSystem", "content": {
            FHIR_JSON: {"schema": {"type": "object"}}}},
            "404": {"description": "no such code system", "content": errors}}}}
    document["paths"]["/fhir/StructureDefinition/{name}"] = {"get": {
        "operationId": "structureDefinition",
        "summary": "The StructureDefinition of an extension the calculator writes",
        "parameters": [{"name": "name", "in": "path", "required": True,
                        "schema": {"type": "string", "enum": list(STRUCTURE_DEFINITIONS)}}],
        "responses": {"200": {"description": "StructureDefinition", "content": {
            FHIR_JSON: {"schema": {"type": "object"}}}},
            "404": {"description": "no such extension", "content": errors}}}}
    document["paths"]["/cds-services"] = {"get": {
        "operationId": "cdsDiscovery", "summary": "CDS Hooks discovery",
        "responses": {"200": {"description": "the services", "content": {
            "application/json": {"schema": {"$ref": _REF + "CdsDiscovery"}}}}}}}
    document["paths"]["/cds-services/{service_id}"] = {"post": {
        "operationId": "cdsPatientView", "summary": "CDS Hooks patient-view: one card",
        "parameters": [{"name": "service_id", "in": "path", "required": True,
                        "schema": {"type": "string", "enum": [SERVICE_ID]}}],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": _REF + "CdsRequest"}}}},
        "responses": {
            "200": {"description": "one card: the risks, or what is missing", "content": {
                "application/json": {"schema": {"$ref": _REF + "CdsCards"}}}},
            "400": {"description": "not a valid hook call", "content": errors},
            "401": {"description": "trusted issuers are configured and the call has no valid "
                                   "Authorization: Bearer JWT (docs/cds-hooks.md)",
                    "content": errors},
            "404": {"description": "no such service", "content": errors},
            "412": {"description": "prefetch keys not sent", "content": errors},
            "413": {"description": "body too large", "content": errors},
            "415": {"description": "body not declared as application/json",
                    "content": errors}}}}
    html = {"text/html": {"schema": {"type": "string"}}}
    document["paths"]["/r/{token}"] = {"get": {
        "operationId": "resultLink", "summary": "The result page behind a CDS card's link",
        "description": "The token is encrypted (no patient value is readable in the URL) and "
                       f"works for {RESULT_LINK_LIFETIME_SECONDS // 60} minutes.",
        "parameters": [{"name": "token", "in": "path", "required": True,
                        "schema": {"type": "string"}}],
        "responses": {"200": {"description": "result page", "content": html},
                      "404": {"description": "not a token of this server", "content": html},
                      "409": {"description": "made where another bundle serves",
                              "content": html},
                      "410": {"description": "expired", "content": html}}}}
