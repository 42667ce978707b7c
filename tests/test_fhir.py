"""FHIR on the prediction API and the command line: FHIR in gives the JSON API's numbers,
RiskAssessment out carries them, and every unusable input gets an OperationOutcome naming it."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import REPO

PREDICT = "/api/v1/predict"
#: The FHIRPath expressions an OperationOutcome may carry: a path from the resource sent.
FHIRPATH = re.compile(r"^(Parameters|Bundle)(\.[a-zA-Z]+(\[\d+\])?)*$")
FHIR = "application/fhir+json"
INPUT = "https://cart-risk.example/fhir/CodeSystem/cart-risk-input"
UCUM = "http://unitsofmeasure.org"
#: docs/examples/fhir-parameters.json as the API's JSON patient: a man born 1996-06-01 whose
#: marrow was sampled on 2026-06-01 (age 30).
EXAMPLE_AS_JSON = {"marrow_blasts_pct": 12, "mrd_positive": True, "age_years": 30, "sex": "M",
                   "ph_positive": False, "prior_hsct": False, "relapsed": True}


def example_parameters() -> dict:
    return json.loads((REPO / "docs" / "examples" / "fhir-parameters.json").read_text())


def as_bundle(parameters: dict) -> dict:
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"fullUrl": f"urn:uuid:00000000-0000-0000-0000-00000000000{i}",
                       "resource": parameter["resource"]}
                      for i, parameter in enumerate(parameters["parameter"])]}


def observation(code: str, **value) -> dict:
    return {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": INPUT, "code": code}]}, **value}


def post_fhir(client, body, accept: str | None = None):
    headers = {"Accept": accept} if accept else {}
    return client.post(PREDICT, data=json.dumps(body), content_type=FHIR, headers=headers)


@pytest.fixture(scope="module")
def json_answer(app) -> dict:
    """The JSON API's answer for the example patient, sent as plain JSON."""
    answer = app.test_client().post(PREDICT, json=EXAMPLE_AS_JSON)
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def needed(loaded_bundle) -> set[str]:
    return set(loaded_bundle.predictor.required_fields) | {"marrow_blasts_pct", "mrd_positive"}


def test_the_example_covers_every_field_the_bundle_needs(loaded_bundle):
    assert needed(loaded_bundle) <= set(EXAMPLE_AS_JSON)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("shape", ["Parameters", "Bundle"])
def test_fhir_input_gives_the_json_apis_numbers(client, json_answer, shape):
    body = example_parameters() if shape == "Parameters" else as_bundle(example_parameters())
    answer = post_fhir(client, body, accept="application/json")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.mimetype == "application/json"
    assert answer.get_json() == json_answer


def _ci(prediction: dict) -> list[float]:
    """The interval extension as fractions 0-1 (it is written in percent, as the probability)."""
    (extension,) = prediction["extension"]
    low, high = extension["valueRange"]["low"], extension["valueRange"]["high"]
    assert low["code"] == high["code"] == "%"
    return [pytest.approx(low["value"] / 100, abs=1e-9), pytest.approx(high["value"] / 100,
                                                                        abs=1e-9)]


def as_percent(probability: float):
    """R4's probabilityDecimal of a probability: a percentage (0-100)."""
    return pytest.approx(100 * probability, abs=1e-6)


def _by_outcome(resource: dict) -> dict[tuple[str, int | None], dict]:
    found = {}
    for prediction in resource["prediction"]:
        code = prediction["outcome"]["coding"][0]["code"]
        horizon = prediction.get("whenRange", {}).get("high", {}).get("value")
        found[(code, horizon)] = prediction
    return found


def test_a_risk_assessment_carries_the_json_apis_numbers(client, json_answer):
    from fhir.resources.R4B.riskassessment import RiskAssessment

    from calculator.results import survival_at

    answer = post_fhir(client, example_parameters())
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.mimetype == FHIR
    resource = answer.get_json()
    RiskAssessment.model_validate(resource)  # what went out is valid for the FHIR library
    assert resource["status"] == "final"
    assert resource["subject"] == {"reference": "Patient/example-patient"}
    assert {"reference": "Observation/blasts"} in resource["basis"]
    predictions = _by_outcome(resource)
    cr, scrs = predictions[("complete-remission", None)], predictions[("severe-crs", None)]
    assert cr["probabilityDecimal"] == as_percent(json_answer["cr"]["probability"])
    assert _ci(cr) == json_answer["cr"]["ci95"]
    assert scrs["probabilityDecimal"] == as_percent(json_answer["severe_crs"]["probability"])
    assert _ci(scrs) == json_answer["severe_crs"]["ci95"]
    assert scrs["qualitativeRisk"]["coding"][0]["code"] == json_answer["severe_crs"]["band"][
        "subgroup"]
    for name, code in (("efs", "event-free-survival"), ("os", "overall-survival")):
        for months in (6, 12, 24):
            expected = survival_at(json_answer[name], months)
            if expected is None:
                assert (code, months) not in predictions
                continue
            item = predictions[(code, months)]
            assert item["probabilityDecimal"] == as_percent(expected["survival"])
            assert _ci(item) == [expected["lower"], expected["upper"]]
            assert item["whenRange"]["high"] == {"value": months, "unit": "months",
                                                 "system": UCUM, "code": "mo"}
    notes = " ".join(note["text"] for note in resource["note"])
    assert "Research use only" in notes and "reconstructed" in notes
    assert "NCT03919240" in notes


def test_json_input_answers_a_risk_assessment_when_asked(client, json_answer):
    answer = client.post(PREDICT, json=EXAMPLE_AS_JSON, headers={"Accept": FHIR})
    assert answer.status_code == 200 and answer.mimetype == FHIR
    resource = answer.get_json()
    assert "display" in resource["subject"] and "reference" not in resource["subject"]
    contained = {item["code"]["coding"][0]["code"]: item for item in resource["contained"]}
    assert contained["marrow-blasts-pct"]["valueQuantity"]["value"] == 12
    assert _by_outcome(resource)[("complete-remission", None)]["probabilityDecimal"] == \
        as_percent(json_answer["cr"]["probability"])


def test_a_risk_assessments_inputs_can_be_sent_back(client, json_answer):
    """The contained Observations are coded as the calculator reads them: sent back, same numbers."""
    resource = client.post(PREDICT, json=EXAMPLE_AS_JSON, headers={"Accept": FHIR}).get_json()
    parameters = {"resourceType": "Parameters", "parameter": [
        {"name": "observation", "resource": {k: v for k, v in item.items() if k != "id"}}
        for item in resource["contained"]]}
    again = post_fhir(client, parameters, accept="application/json")
    assert again.status_code == 200, again.get_data(as_text=True)
    expected = client.post(PREDICT, json={k: v for k, v in EXAMPLE_AS_JSON.items()
                                          if k != "sex"}).get_json()
    assert again.get_json() == expected


def test_age_in_months_is_converted(client, json_answer):
    body = example_parameters()
    body["parameter"][0]["resource"].pop("birthDate")
    body["parameter"].append({"name": "observation", "resource": observation(
        "age-at-infusion", valueQuantity={"value": 360, "system": UCUM, "code": "mo"})})
    answer = post_fhir(client, body, accept="application/json")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json() == json_answer


def test_entered_in_error_observations_are_ignored(client, json_answer):
    body = example_parameters()
    wrong = observation("marrow-blasts-pct",
                        valueQuantity={"value": 80, "system": UCUM, "code": "%"})
    wrong["status"] = "entered-in-error"
    body["parameter"].append({"name": "observation", "resource": wrong})
    answer = post_fhir(client, body, accept="application/json")
    assert answer.get_json() == json_answer


def test_the_command_line_prints_a_risk_assessment(trained_bundle_path, capsys, json_answer):
    from fhir.resources.R4B.riskassessment import RiskAssessment

    from calculator.cli import main

    options = ["--blasts", "12", "--mrd-positive", "true", "--age-years", "30", "--sex", "M",
               "--ph-positive", "false", "--prior-hsct", "false", "--relapsed", "true"]
    assert main(["predict", "--bundle", str(trained_bundle_path), *options, "--fhir"]) == 0
    resource = json.loads(capsys.readouterr().out)
    RiskAssessment.model_validate(resource)
    cr = _by_outcome(resource)[("complete-remission", None)]
    assert cr["probabilityDecimal"] == as_percent(json_answer["cr"]["probability"])


def test_the_input_code_system_lists_every_code(client):
    from fhir.resources.R4B.codesystem import CodeSystem

    from calculator.interop.fhir_codes import OBSERVATIONS

    answer = client.get("/fhir/CodeSystem/cart-risk-input")
    assert answer.status_code == 200 and answer.mimetype == FHIR
    resource = answer.get_json()
    CodeSystem.model_validate(resource)
    assert resource["url"] == INPUT
    assert [concept["code"] for concept in resource["concept"]] == [
        entry.code for entry in OBSERVATIONS]


# --------------------------------------------------------------------------- OperationOutcome


def _set(body: dict, code: str, **changes) -> dict:
    for parameter in body["parameter"]:
        resource = parameter["resource"]
        if resource["resourceType"] == "Observation" and \
                resource["code"]["coding"][0]["code"] == code:
            resource.update(changes)
    return body


def _drop(body: dict, code: str) -> dict:
    body["parameter"] = [p for p in body["parameter"]
                         if p["resource"].get("code", {}).get("coding", [{}])[0].get("code")
                         != code]
    return body


def _add(body: dict, resource: dict, name: str = "observation") -> dict:
    body["parameter"].append({"name": name, "resource": resource})
    return body


BAD_INPUTS = {
    "malformed observation (no status)": (
        lambda b: (b["parameter"][2]["resource"].pop("status"), b)[1],
        400, "structure", "parameter[2].resource", "'status' is required"),
    "malformed value (a number as text that is no number)": (
        lambda b: _set(b, "marrow-blasts-pct", valueQuantity={
            "value": "twelve", "system": UCUM, "code": "%"}),
        400, "structure", "parameter[1].resource.valueQuantity.value", "not valid FHIR"),
    "not a Parameters or Bundle": (
        lambda b: b["parameter"][0]["resource"], 400, "structure", None, "Parameters or Bundle"),
    "unknown resource type in a Bundle": (
        lambda b: {"resourceType": "Bundle", "type": "collection",
                   "entry": [{"resource": {"resourceType": "NoSuchThing"}}]},
        400, "structure", "Bundle", "unknown resource type"),
    "wrong unit": (
        lambda b: _set(b, "marrow-blasts-pct", valueQuantity={
            "value": 12, "unit": "mg", "system": UCUM, "code": "mg"}),
        422, "value", "Parameters.parameter[1].resource.valueQuantity", "marrow_blasts_pct"),
    "unit without the UCUM system": (
        lambda b: _set(b, "marrow-blasts-pct", valueQuantity={"value": 12, "unit": "%"}),
        422, "value", "Parameters.parameter[1].resource.valueQuantity", "expected UCUM"),
    "age in a non-time unit": (
        lambda b: _add(b, observation("age-at-infusion", valueQuantity={
            "value": 30, "system": UCUM, "code": "kg"})),
        422, "value", "Parameters.parameter[6].resource.valueQuantity", "age_years"),
    "unknown code": (
        lambda b: _add(b, {"resourceType": "Observation", "status": "final", "code": {
            "coding": [{"system": "http://loinc.org", "code": "26464-8"}]},
            "valueQuantity": {"value": 12, "system": UCUM, "code": "%"}}),
        422, "code-invalid", "Parameters.parameter[6].resource.code", "http://loinc.org|26464-8"),
    "missing observation": (
        lambda b: _drop(b, "mrd-positive"), 422, "required", None, "mrd_positive"),
    "missing marrow blasts": (
        lambda b: _drop(b, "marrow-blasts-pct"), 422, "required", None,
        "marrow_blasts_pct"),
    "conflicting observations": (
        lambda b: _add(b, observation("marrow-blasts-pct", valueQuantity={
            "value": 30, "system": UCUM, "code": "%"})),
        422, "business-rule", "Parameters.parameter[1].resource", "conflicting"),
    "age conflicting with birthDate": (
        lambda b: _add(b, observation("age-at-infusion", valueQuantity={
            "value": 50, "system": UCUM, "code": "a"})),
        422, "business-rule", "Parameters.parameter[0].resource.birthDate", "conflicts"),
    "boolean as text": (
        lambda b: _set(b, "mrd-positive", valueBoolean="yes"),
        422, "value", "Parameters.parameter[2].resource.valueBoolean", "mrd_positive"),
    "boolean in the wrong value type": (
        lambda b: (b["parameter"][2]["resource"].pop("valueBoolean"),
                   _set(b, "mrd-positive", valueString="positive"))[1],
        422, "value", "Parameters.parameter[2].resource", "carries valueString"),
    "value out of range": (
        lambda b: _set(b, "marrow-blasts-pct", valueQuantity={
            "value": 150, "system": UCUM, "code": "%"}),
        422, "value", "Parameters.parameter[1].resource", "between 0 and 100"),
    "outside the modelled population": (
        lambda b: _set(_set(b, "marrow-blasts-pct", valueQuantity={
            "value": 0, "system": UCUM, "code": "%"}), "mrd-positive", valueBoolean=False),
        422, "value", None, "marrow_blasts_pct"),
    "observation about another patient": (
        lambda b: _set(b, "relapsed", subject={"reference": "Patient/someone-else"}),
        422, "business-rule", "Parameters.parameter[5].resource.subject", "someone-else"),
    "two patients": (
        lambda b: _add(b, {"resourceType": "Patient", "id": "p2"}, "patient"),
        422, "business-rule", "Parameters.parameter[6].resource", "more than one Patient"),
    "unknown parameter": (
        lambda b: _add(b, {"resourceType": "Observation", "status": "final",
                           "code": {"text": "x"}}, "lab"),
        422, "not-supported", "Parameters.parameter[6].name", "'lab'"),
    "unsupported resource in a Bundle": (
        lambda b: (lambda bundle: (bundle["entry"].append({"resource": {
            "resourceType": "Condition", "subject": {"reference": "Patient/example-patient"}}}),
            bundle)[1])(as_bundle(b)),
        422, "not-supported", "Bundle.entry[6].resource", "'Condition'"),
    "tb_assessed with an unknown code": (
        lambda b: _add(b, observation("tb-assessed", valueCodeableConcept={
            "coding": [{"system": INPUT, "code": "during-fc"}]})),
        422, "code-invalid", "Parameters.parameter[6].resource.valueCodeableConcept",
        "tb_assessed"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_unusable_input_gets_an_operation_outcome_naming_the_problem(client, case):
    from fhir.resources.R4B.operationoutcome import OperationOutcome

    change, status, code, expression, words = BAD_INPUTS[case]
    body = change(copy.deepcopy(example_parameters()))
    answer = post_fhir(client, body)
    assert answer.status_code == status, answer.get_data(as_text=True)
    assert answer.mimetype == FHIR
    outcome = answer.get_json()
    OperationOutcome.model_validate(outcome)
    issues = [issue for issue in outcome["issue"] if words in issue["diagnostics"]]
    assert issues, outcome
    assert issues[0]["severity"] == "error" and issues[0]["code"] == code, outcome
    if expression is not None:
        assert any(expression in path for issue in issues
                   for path in issue.get("expression", [])), outcome
    for issue in outcome["issue"]:  # every expression is a FHIRPath into the body sent
        for path in issue.get("expression", []):
            assert FHIRPATH.match(path), (path, outcome)


def test_text_that_is_not_json_gets_an_operation_outcome(client):
    answer = client.post(PREDICT, data=b"{not json", content_type=FHIR)
    assert answer.status_code == 400 and answer.mimetype == FHIR
    assert "not valid JSON" in answer.get_json()["issue"][0]["diagnostics"]


def test_json_input_errors_come_as_an_operation_outcome_when_fhir_is_asked(client):
    answer = client.post(PREDICT, json={**EXAMPLE_AS_JSON, "marrow_blasts_pct": 150},
                         headers={"Accept": FHIR})
    assert answer.status_code == 422 and answer.mimetype == FHIR
    (issue,) = answer.get_json()["issue"]
    assert "expression" not in issue  # a JSON body has no FHIRPath; the message names the field
    assert issue["diagnostics"].startswith("marrow_blasts_pct:") and "100" in issue["diagnostics"]


def test_fhir_input_errors_come_as_the_apis_errors_when_json_is_asked(client):
    body = _drop(example_parameters(), "mrd-positive")
    answer = post_fhir(client, body, accept="application/json")
    assert answer.status_code == 422 and answer.mimetype == "application/json"
    assert "mrd_positive" in answer.get_json()["errors"][0]["message"]


def test_every_problem_is_reported_at_once(client):
    body = _drop(_drop(example_parameters(), "mrd-positive"), "relapsed")
    issues = post_fhir(client, body).get_json()["issue"]
    named = " ".join(issue["diagnostics"] for issue in issues)
    assert "mrd_positive" in named and "relapsed" in named


def test_the_openapi_document_describes_the_fhir_exchange(client):
    document = client.get("/api/v1/openapi.json").get_json()
    predict = document["paths"]["/api/v1/predict"]["post"]
    assert FHIR in predict["requestBody"]["content"]
    assert FHIR in predict["responses"]["200"]["content"]
    assert FHIR in predict["responses"]["422"]["content"]
    for path in ("/fhir/CodeSystem/{name}", "/fhir/StructureDefinition/{name}", "/cds-services",
                 "/cds-services/{service_id}", "/r/{token}"):
        assert path in document["paths"]


def test_the_docs_name_every_code(loaded_bundle):
    from calculator.interop.fhir_codes import OBSERVATIONS

    text = Path(REPO / "docs" / "fhir.md").read_text()
    for entry in OBSERVATIONS:
        assert f"| `{entry.code}` | `{entry.field}` |" in text


# --------------------------------------------------------------------------- generated input


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12)
    | st.sampled_from(["%", "mg", "a", "final", "Patient", "Observation", "male", "1990-13-01",
                       INPUT, UCUM, "marrow-blasts-pct", "yes", ""]),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["resourceType", "code", "coding", "system", "value",
                                       "valueQuantity", "valueBoolean", "status", "subject",
                                       "reference", "resource", "name", "x"]),
                      children, max_size=3),
    max_leaves=12)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, prefix + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, prefix + (index,))


@st.composite
def damaged_examples(draw):
    """The example (as Parameters or Bundle) with one to three elements replaced or removed."""
    body = example_parameters()
    if draw(st.booleans()):
        body = as_bundle(body)
    for _ in range(draw(st.integers(1, 3))):
        paths = [path for path in _paths(body) if path]
        if not paths:  # every element already removed: nothing left to damage
            break
        path = draw(st.sampled_from(paths))
        parent = body
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JSON_VALUES)
    return body


@settings(max_examples=120, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=damaged_examples())
def test_damaged_fhir_gets_a_risk_assessment_or_an_operation_outcome_never_a_500(client, body):
    from fhir.resources.R4B.operationoutcome import OperationOutcome
    from fhir.resources.R4B.riskassessment import RiskAssessment

    answer = post_fhir(client, body)
    assert answer.status_code in (200, 400, 422), answer.get_data(as_text=True)
    assert answer.mimetype == FHIR
    resource = json.loads(answer.get_data(), parse_constant=lambda c: pytest.fail(c))
    if answer.status_code == 200:
        RiskAssessment.model_validate(resource)
    else:
        OperationOutcome.model_validate(resource)
        assert all(issue["diagnostics"] for issue in resource["issue"])


def test_survival_is_read_from_either_shape_of_the_answers_at(json_answer):
    """``at`` may hold numbers (the curve then gives the band) or {survival, lower, upper}."""
    from calculator.interop.fhir_output import survival_at

    curve = json_answer["efs"]
    from_numbers = survival_at(curve, 12)
    index = max(i for i, month in enumerate(curve["months"]) if month <= 12)
    assert from_numbers == {"survival": curve["at"]["12"], "lower": curve["lower"][index],
                            "upper": curve["upper"][index]}
    as_objects = {**curve, "at": {"12": {"survival": 0.5, "lower": 0.4, "upper": 0.6},
                                  "24": None}}
    assert survival_at(as_objects, 12) == {"survival": 0.5, "lower": 0.4, "upper": 0.6}
    assert survival_at(as_objects, 24) is None and survival_at(None, 12) is None


# --------------------------------------------------------------------------- issue 22, item 7


def test_probabilities_are_percentages_as_r4_defines_them(client, json_answer):
    """R4 ras-2: probabilityDecimal is at most 100 (a percentage); the format is tagged 2."""
    resource = post_fhir(client, example_parameters()).get_json()
    values = [item["probabilityDecimal"] for item in resource["prediction"]]
    assert all(0 <= value <= 100 for value in values) and max(values) > 1
    cr = _by_outcome(resource)[("complete-remission", None)]
    assert cr["probabilityDecimal"] == as_percent(json_answer["cr"]["probability"])
    assert {"system": "https://cart-risk.example/fhir/CodeSystem/cart-risk-output-format",
            "code": "2", "display": "probabilities in percent (0-100)"} in resource["meta"]["tag"]


def _uris(value) -> set[str]:
    """Every code system and extension URL a resource names."""
    found = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("system", "url") and isinstance(item, str):
                found.add(item)
            found |= _uris(item)
    elif isinstance(value, list):
        for item in value:
            found |= _uris(item)
    return found


def test_every_code_system_and_extension_written_can_be_looked_up(client):
    from fhir.resources.R4B.codesystem import CodeSystem
    from fhir.resources.R4B.structuredefinition import StructureDefinition

    resource = post_fhir(client, example_parameters()).get_json()
    cds = client.post("/cds-services/cart-risk-patient-view",
                      data=(REPO / "docs" / "examples" / "cds-hooks-patient-view.json").read_text(),
                      content_type="application/json").get_json()
    ours = sorted(uri for uri in _uris(resource) | _uris(cds)
                  if uri.startswith("https://cart-risk.example/fhir/"))
    assert len(ours) >= 6  # five code systems and the interval extension
    for uri in ours:
        path = uri.removeprefix("https://cart-risk.example")
        answer = client.get(path)
        assert answer.status_code == 200 and answer.mimetype == FHIR, uri
        served = answer.get_json()
        model = CodeSystem if served["resourceType"] == "CodeSystem" else StructureDefinition
        model.model_validate(served)
        assert served["url"] == uri
    assert client.get("/fhir/CodeSystem/no-such-thing").status_code == 404


def test_every_code_written_is_in_its_served_code_system(client):
    resource = post_fhir(client, example_parameters()).get_json()
    codings = []

    def collect(value):
        if isinstance(value, dict):
            if "system" in value and "code" in value and \
                    value["system"].startswith("https://cart-risk.example/fhir/CodeSystem/"):
                codings.append((value["system"], value["code"]))
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    collect(resource)
    assert codings
    for system, code in codings:
        served = client.get(system.removeprefix("https://cart-risk.example")).get_json()
        assert code in [concept["code"] for concept in served["concept"]], (system, code)


def test_outputs_carry_a_narrative(client):
    resource = post_fhir(client, example_parameters()).get_json()
    div = resource["text"]["div"]
    assert resource["text"]["status"] == "generated"
    assert div.startswith('<div xmlns="http://www.w3.org/1999/xhtml">')
    assert "Complete remission" in div and " %" in div
    outcome = post_fhir(client, _drop(example_parameters(), "mrd-positive")).get_json()
    assert "mrd_positive: missing" in outcome["text"]["div"]
    hostile = _set(example_parameters(), "marrow-blasts-pct", valueQuantity={
        "value": 12, "unit": "<script>x</script>", "system": UCUM, "code": "<b>"})
    div = post_fhir(client, hostile).get_json()["text"]["div"]
    assert "<script>" not in div and "<b>" not in div.replace("<p><b>", "")


def test_the_method_names_each_models_own_fitting_method(client, loaded_bundle):
    resource = post_fhir(client, example_parameters()).get_json()
    text = resource["method"]["text"]
    for name, record in loaded_bundle.manifest["models"].items():
        assert record["method"]["label"] in text
    assert "ridge" not in resource["method"]["coding"][0]["display"]
