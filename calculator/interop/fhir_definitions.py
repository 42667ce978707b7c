"""The calculator's code systems and its extension as FHIR R4 resources, so a receiver can look
them up: ``GET /fhir/CodeSystem/<name>`` and ``GET /fhir/StructureDefinition/<name>``.

Their canonical URLs (``https://cart-risk.example/fhir/...``, :mod:`calculator.interop.fhir_codes`)
are identifiers; the resources are served by every running calculator under the path that ends
its canonical URL, and are built and validated with the ``fhir.resources`` R4B models (R4B keeps
R4's ``CodeSystem`` and ``StructureDefinition``).
"""
from __future__ import annotations

from typing import Any

from calculator.interop.fhir_codes import (BURDEN_SUBGROUP_SYSTEM, CI95_EXTENSION, INPUT_SYSTEM,
                                           METHOD_SYSTEM, OBSERVATIONS, OUTCOME_SYSTEM, OUTCOMES,
                                           OUTPUT_FORMAT_SYSTEM, TB_ASSESSED_CODES,
                                           TB_ASSESSED_SYSTEM, TB_ASSESSED_VALUES)

RESEARCH_USE = ("Research use; see docs/fhir.md of the cart-risk calculator.")
#: Codes of :data:`METHOD_SYSTEM` (RiskAssessment.method and the CDS card's source.topic).
METHOD_CODES = {
    "cart-risk-penalized-models": (
        "cart-risk models: logistic (complete remission, severe CRS) and Cox (event-free and "
        "overall survival), each fitted by the method named in RiskAssessment.method.text"),
    "research-use-reconstructed-cohort": "Research use: model trained on a reconstructed cohort",
    "center-cohort": "Model trained on a center's cohort",
}
OUTPUT_FORMATS = {
    "1": "Probabilities as fractions 0-1 in probabilityDecimal (before issue 22; not R4)",
    "2": "Probabilities in percent 0-100 in probabilityDecimal and the interval extension (R4)",
}


def _code_system(url: str, name: str, title: str, description: str,
                 concepts: list[dict[str, str]]) -> dict[str, Any]:
    from fhir.resources.R4B.codesystem import CodeSystem

    resource = CodeSystem(url=url, name=name, title=title, status="active", experimental=True,
                          content="complete", caseSensitive=True,
                          description=f"{description} {RESEARCH_USE}", concept=concepts)
    return resource.model_dump(mode="json", exclude_none=True)


def _input() -> dict[str, Any]:
    concepts = []
    for entry in OBSERVATIONS:
        kind = {"quantity": "valueQuantity, UCUM " + " or ".join(f"'{u}'" for u in entry.units),
                "boolean": "valueBoolean",
                "coded": f"valueCodeableConcept from {TB_ASSESSED_SYSTEM} "
                         f"({', '.join(TB_ASSESSED_VALUES)})"}[entry.value]
        concepts.append({"code": entry.code, "display": entry.display,
                         "definition": f"{entry.display}. Carried as {kind}; patient field "
                                       f"'{entry.field}' of the cart-risk API."})
    return _code_system(INPUT_SYSTEM, "CartRiskInput", "cart-risk calculator inputs",
                        "Observation codes the cart-risk calculator reads. Local codes, used "
                        "where no LOINC or SNOMED CT code could be confirmed from the "
                        "terminologies' own documents.", concepts)


def _tb_assessed() -> dict[str, Any]:
    words = {"before_fc": "before", "after_fc": "after"}
    return _code_system(TB_ASSESSED_SYSTEM, "CartRiskTbAssessed",
                        "When the marrow blasts were measured",
                        "When the marrow sample was taken relative to fludarabine-"
                        "cyclophosphamide (FC) conditioning.",
                        [{"code": code, "display": f"Measured {words[value]} FC conditioning"}
                         for value, code in TB_ASSESSED_CODES.items()])


def _outcome() -> dict[str, Any]:
    return _code_system(OUTCOME_SYSTEM, "CartRiskOutcome", "cart-risk predicted outcomes",
                        "Outcomes of RiskAssessment.prediction.outcome.",
                        [{"code": code, "display": display} for code, display in
                         OUTCOMES.values()])


def _method() -> dict[str, Any]:
    return _code_system(METHOD_SYSTEM, "CartRiskMethod", "cart-risk methods and provenance",
                        "RiskAssessment.method and the CDS Hooks card's source.topic.",
                        [{"code": code, "display": display}
                         for code, display in METHOD_CODES.items()])


def _burden_subgroup() -> dict[str, Any]:
    from model.burden import SUBGROUP_LABELS

    return _code_system(BURDEN_SUBGROUP_SYSTEM, "CartRiskBurdenSubgroup",
                        "Tumour-burden subgroups of the severe CRS band",
                        "Marrow-blast subgroups (Li et al.) of the severe CRS prediction's "
                        "qualitativeRisk.",
                        [{"code": code, "display": label}
                         for code, label in SUBGROUP_LABELS.items()])


def _output_format() -> dict[str, Any]:
    return _code_system(OUTPUT_FORMAT_SYSTEM, "CartRiskOutputFormat",
                        "cart-risk RiskAssessment format versions",
                        "Versions of the RiskAssessment the calculator writes (meta.tag).",
                        [{"code": code, "display": display}
                         for code, display in OUTPUT_FORMATS.items()])


def _ci95_extension() -> dict[str, Any]:
    from fhir.resources.R4B.structuredefinition import StructureDefinition

    resource = StructureDefinition(
        url=CI95_EXTENSION, name="ProbabilityCi95", title="95 % interval of a predicted "
        "probability", status="active", experimental=True, fhirVersion="4.0.1",
        kind="complex-type", abstract=False, type="Extension", derivation="constraint",
        baseDefinition="http://hl7.org/fhir/StructureDefinition/Extension",
        description=("The bootstrap 95 % interval of RiskAssessment.prediction.probability"
                     "Decimal, in the same unit: percent (UCUM '%'), 0-100. " + RESEARCH_USE),
        context=[{"type": "element", "expression": "RiskAssessment.prediction"}],
        differential={"element": [
            {"id": "Extension", "path": "Extension", "short": "95 % interval of the "
             "probability", "definition": "The bootstrap 95 % interval of the predicted "
             "probability, in percent.", "max": "1"},
            {"id": "Extension.extension", "path": "Extension.extension", "max": "0"},
            {"id": "Extension.url", "path": "Extension.url", "fixedUri": CI95_EXTENSION},
            {"id": "Extension.value[x]", "path": "Extension.value[x]", "min": 1,
             "type": [{"code": "Range"}]}]})
    return resource.model_dump(mode="json", exclude_none=True)


#: name (the last part of the canonical URL) -> builder.
CODE_SYSTEMS = {url.rsplit("/", 1)[1]: build for url, build in (
    (INPUT_SYSTEM, _input), (TB_ASSESSED_SYSTEM, _tb_assessed), (OUTCOME_SYSTEM, _outcome),
    (METHOD_SYSTEM, _method), (BURDEN_SUBGROUP_SYSTEM, _burden_subgroup),
    (OUTPUT_FORMAT_SYSTEM, _output_format))}
STRUCTURE_DEFINITIONS = {CI95_EXTENSION.rsplit("/", 1)[1]: _ci95_extension}


def definition(kind: str, name: str) -> dict[str, Any] | None:
    """The ``CodeSystem`` or ``StructureDefinition`` called ``name`` (JSON-ready), or None."""
    table = {"CodeSystem": CODE_SYSTEMS, "StructureDefinition": STRUCTURE_DEFINITIONS}.get(kind)
    build = (table or {}).get(name)
    return build() if build else None
