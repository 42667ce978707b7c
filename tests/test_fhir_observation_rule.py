"""Which Observations describe the patient (issue 22, items 1-4 and 12): one subject or none,
usable statuses, no modifier extensions, no comparator, no value with a dataAbsentReason, numbers
no float holds, equal values in other spellings or units, and the latest result by instant."""
from __future__ import annotations

import copy
import json

import pytest

from conftest import REPO
from test_cds_hooks import SERVICE, blasts_observation, example_call, only_card, plain
from test_fhir import FHIR, INPUT, UCUM, as_bundle, example_parameters, observation, post_fhir

ABOUT = {"reference": "Patient/example-patient"}


def without_patient(body: dict) -> dict:
    body["parameter"] = [p for p in body["parameter"] if p["name"] != "patient"]
    body["parameter"].append({"name": "observation", "resource": observation(
        "age-at-infusion", valueQuantity={"value": 30, "system": UCUM, "code": "a"})})
    return body


def issues_of(answer) -> str:
    assert answer.mimetype == FHIR, answer.get_data(as_text=True)
    return " ".join(issue["diagnostics"] for issue in answer.get_json()["issue"])


def blasts_of(body: dict) -> dict:
    return next(p["resource"] for p in body["parameter"]
                if p["resource"].get("code", {}).get("coding", [{}])[0].get("code")
                == "marrow-blasts-pct")


# --------------------------------------------------------------------------- item 1: one subject


@pytest.mark.parametrize("shape", ["Parameters", "Bundle"])
def test_observations_about_different_patients_are_refused_without_a_patient(client, shape):
    body = without_patient(example_parameters())
    for index, parameter in enumerate(body["parameter"]):
        parameter["resource"]["subject"] = {"reference": f"Patient/p{index % 6}"}
    if shape == "Bundle":
        body = as_bundle(body)
    answer = post_fhir(client, body)
    assert answer.status_code == 422
    assert "different patients" in issues_of(answer)


def test_observations_about_one_patient_without_a_patient_resource_are_used(client):
    body = without_patient(example_parameters())
    for parameter in body["parameter"]:
        parameter["resource"]["subject"] = {"reference": "Patient/p1"}
    answer = post_fhir(client, body)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json()["subject"] == {"reference": "Patient/p1"}


def test_a_patient_without_an_id_cannot_vouch_for_an_observations_subject(client):
    body = example_parameters()
    body["parameter"][0]["resource"].pop("id")
    blasts_of(body)["subject"] = {"reference": "Patient/someone"}
    answer = post_fhir(client, body)
    assert answer.status_code == 422 and "no id or fullUrl" in issues_of(answer)


# --------------------------------------------------------------------------- item 2: huge numbers


HUGE = 10 ** 400


@pytest.mark.parametrize("unit", ["mo", "a"])
def test_a_400_digit_age_is_a_422_not_a_500(client, unit):
    body = example_parameters()  # has a birthDate: with "a", the age is compared with it
    body["parameter"].append({"name": "observation", "resource": observation(
        "age-at-infusion", valueQuantity={"value": HUGE, "system": UCUM, "code": unit})})
    answer = client.post("/api/v1/predict", data=json.dumps(body), content_type=FHIR)
    assert answer.status_code == 422, answer.get_data(as_text=True)
    assert "far outside any plausible range" in issues_of(answer)


def test_a_400_digit_age_in_a_chart_gets_a_card_not_a_500(client):
    call = example_call()
    age = observation("age-at-infusion", valueQuantity={"value": HUGE, "system": UCUM,
                                                       "code": "mo"})
    call["prefetch"]["observations"]["entry"].append({"resource": {**age, "subject": ABOUT}})
    card = only_card(client.post(SERVICE, data=json.dumps(call), content_type="application/json"))
    assert card["summary"].startswith("cart-risk: no estimate") and "Age" in card["summary"]


# --------------------------------------------------------------------------- item 3: meaning


@pytest.mark.parametrize("comparator", [">", "<", ">=", "<="])
def test_a_comparator_is_refused_not_dropped(client, comparator):
    body = example_parameters()
    blasts_of(body)["valueQuantity"]["comparator"] = comparator
    answer = post_fhir(client, body)
    assert answer.status_code == 422
    assert f"bound ('{comparator}' 12)" in issues_of(answer)


@pytest.mark.parametrize("resource_index", [0, 1])  # the Patient, an Observation
def test_a_modifier_extension_is_refused(client, resource_index):
    body = example_parameters()
    body["parameter"][resource_index]["resource"]["modifierExtension"] = [
        {"url": "https://ehr.example/negated", "valueBoolean": True}]
    answer = post_fhir(client, body)
    assert answer.status_code == 422
    assert "https://ehr.example/negated" in issues_of(answer)
    expression = answer.get_json()["issue"][0]["expression"][0]
    assert expression == f"Parameters.parameter[{resource_index}].resource.modifierExtension"


@pytest.mark.parametrize("status", ["preliminary", "registered", "entered-in-error", "unknown"])
def test_a_result_that_is_not_final_is_not_used_and_the_answer_says_so(client, status):
    body = example_parameters()
    blasts_of(body)["status"] = status
    answer = post_fhir(client, body)
    assert answer.status_code == 422
    text = issues_of(answer)
    assert "marrow_blasts_pct: missing" in text and f"status '{status}'" in text


@pytest.mark.parametrize("status", ["amended", "corrected"])
def test_amended_and_corrected_results_are_used(client, status):
    body = example_parameters()
    blasts_of(body)["status"] = status
    assert post_fhir(client, body).status_code == 200


def test_a_value_with_a_data_absent_reason_is_refused(client):
    body = example_parameters()
    blasts_of(body)["dataAbsentReason"] = {"text": "sample clotted"}
    answer = post_fhir(client, body)
    assert answer.status_code == 422 and "obs-6" in issues_of(answer)


# --------------------------------------------------------------------------- item 12: agreement


@pytest.mark.parametrize("first, second", [
    ({"value": 12, "code": "%"}, {"value": 12.0, "code": "%"}),
])
def test_the_same_number_spelled_twice_is_no_conflict(client, first, second):
    body = example_parameters()
    for quantity in (first, second):
        body["parameter"].append({"name": "observation", "resource": observation(
            "marrow-blasts-pct", valueQuantity={**quantity, "system": UCUM})})
    answer = post_fhir(client, body)
    assert answer.status_code == 200, answer.get_data(as_text=True)


def test_thirty_years_and_360_months_are_no_conflict(client):
    body = example_parameters()
    for value, unit in ((30, "a"), (360, "mo")):
        body["parameter"].append({"name": "observation", "resource": observation(
            "age-at-infusion", valueQuantity={"value": value, "system": UCUM, "code": unit})})
    answer = post_fhir(client, body, accept="application/json")
    assert answer.status_code == 200, answer.get_data(as_text=True)


def test_an_absolute_subject_on_the_calls_fhir_server_is_the_patient(client):
    call = example_call()
    server = call["fhirServer"]
    for entry in call["prefetch"]["observations"]["entry"]:
        entry["resource"]["subject"] = {"reference": f"{server}/Patient/example-patient"}
    card = only_card(client.post(SERVICE, json=call))
    assert card["summary"].startswith("CR ")


def test_an_absolute_subject_on_another_server_is_refused(client):
    call = example_call()
    call["prefetch"]["observations"]["entry"][0]["resource"]["subject"] = {
        "reference": "https://elsewhere.example/fhir/Patient/example-patient"}
    card = only_card(client.post(SERVICE, json=call))
    assert "no estimate" in card["summary"] and "elsewhere.example" in plain(card["detail"])


# --------------------------------------------------------------------------- item 4: latest


def _chart_with_blasts(*observations: dict) -> dict:
    call = example_call()
    entries = [entry for entry in call["prefetch"]["observations"]["entry"]
               if entry["resource"]["id"] != "blasts"]
    call["prefetch"]["observations"]["entry"] = [{"resource": item} for item in observations] \
        + entries
    return call


def _card_blasts(client, call, app) -> str:
    """The card's CR figure, compared with the API's for 40 % and 2 % blasts."""
    from calculator.results import percent

    from test_cds_hooks import EXAMPLE_AS_JSON

    card = only_card(client.post(SERVICE, json=call))
    for value in (40, 2):
        expected = app.test_client().post(
            "/api/v1/predict", json={**EXAMPLE_AS_JSON, "marrow_blasts_pct": value}).get_json()
        if card["summary"].startswith(f"CR {percent(expected['cr']['probability'])} "):
            return str(value)
    return card["summary"]


def test_the_latest_result_is_chosen_by_instant_with_time_zones(client, app):
    # 23:00 at -10:00 is 09:00 UTC on 2 June: later than 01:00 UTC on 2 June
    call = _chart_with_blasts(blasts_observation(40, "2026-06-01T23:00:00-10:00", "b40"),
                              blasts_observation(2, "2026-06-02T01:00:00+00:00", "b2"))
    assert _card_blasts(client, call, app) == "40"


def test_an_effective_period_dates_the_result(client, app):
    dated_by_period = blasts_observation(40, "", "b40")
    dated_by_period.pop("effectiveDateTime")
    dated_by_period["effectivePeriod"] = {"start": "2026-06-03T08:00:00Z",
                                          "end": "2026-06-03T09:00:00Z"}
    call = _chart_with_blasts(dated_by_period, blasts_observation(2, "2026-06-02", "b2"))
    assert _card_blasts(client, call, app) == "40"


def test_instants_are_read_as_fhir_writes_them():
    from calculator.interop.fhir_observations import parse_instant

    assert parse_instant("2026-06-01T23:00:00-10:00").isoformat() == "2026-06-02T09:00:00+00:00"
    assert parse_instant("2026-06").isoformat() == "2026-06-01T00:00:00+00:00"
    assert parse_instant("2026-06-01T10:00:00.5Z").microsecond == 500000
    assert parse_instant("June 1st") is None and parse_instant("2026-13-01") is None
