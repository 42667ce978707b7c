"""The CDS Hooks patient-view service: discovery, the specification's request shapes, the card,
the "what is missing" card, and the result link that carries no patient value."""
from __future__ import annotations

import base64
import copy
import html
import json
import re
import time
import urllib.parse

import pytest

from conftest import REPO

SERVICE = "/cds-services/cart-risk-patient-view"
INPUT = "https://cart-risk.example/fhir/CodeSystem/cart-risk-input"
UCUM = "http://unitsofmeasure.org"
#: The patient of docs/examples/cds-hooks-patient-view.json, as the JSON API's patient.
EXAMPLE_AS_JSON = {"marrow_blasts_pct": 12, "mrd_positive": True, "age_years": 30, "sex": "M",
                   "ph_positive": False, "prior_hsct": False, "relapsed": True}
#: The specification's example call, verbatim (cds-hooks/docs, docs/specification/current.md,
#: "Calling a CDS Service", Example): its prefetch is another service's (patientToGreet).
SPEC_EXAMPLE_CALL = {
    "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
    "fhirServer": "http://hooks.smarthealthit.org:9080",
    "hook": "patient-view",
    "fhirAuthorization": {"access_token": "some-opaque-fhir-access-token",
                          "token_type": "Bearer", "expires_in": 300,
                          "scope": "patient/Patient.read patient/Observation.read",
                          "subject": "cds-service4"},
    "context": {"userId": "Practitioner/example", "patientId": "1288992",
                "encounterId": "89284"},
    "prefetch": {"patientToGreet": {"resourceType": "Patient", "gender": "male",
                                    "birthDate": "1925-12-23", "id": "1288992",
                                    "active": True}},
}


def example_call() -> dict:
    """The specification's call shape with this service's prefetch (docs/examples)."""
    return json.loads((REPO / "docs" / "examples" / "cds-hooks-patient-view.json").read_text())


def observations(call: dict) -> list[dict]:
    return [entry["resource"] for entry in call["prefetch"]["observations"]["entry"]]


def blasts_observation(value: float, when: str, id_: str) -> dict:
    return {"resourceType": "Observation", "id": id_, "status": "final",
            "subject": {"reference": "Patient/example-patient"}, "effectiveDateTime": when,
            "code": {"coding": [{"system": INPUT, "code": "marrow-blasts-pct"}]},
            "valueQuantity": {"value": value, "unit": "%", "system": UCUM, "code": "%"}}


def plain(markdown: str) -> str:
    """A card's Markdown as the text it shows (backslash escapes and entities undone)."""
    return html.unescape(re.sub(r"\\(.)", r"\1", markdown))


def only_card(answer) -> dict:
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.mimetype == "application/json"
    (card,) = answer.get_json()["cards"]
    assert len(card["summary"]) < 140
    assert card["indicator"] in ("info", "warning", "critical")
    assert card["source"]["label"]
    return card


@pytest.fixture(scope="module")
def json_answer(app) -> dict:
    return app.test_client().post("/api/v1/predict", json=EXAMPLE_AS_JSON).get_json()


def test_discovery_lists_the_service_with_prefetch_for_every_input(client):
    from calculator.interop.fhir_codes import OBSERVATIONS

    answer = client.get("/cds-services")
    assert answer.status_code == 200
    (service,) = answer.get_json()["services"]
    assert service["hook"] == "patient-view" and service["id"] == "cart-risk-patient-view"
    assert service["description"] and "reconstructed" in service["description"]
    prefetch = service["prefetch"]
    assert prefetch["patient"] == "Patient/{{context.patientId}}"
    query = prefetch["observations"]
    assert query.startswith("Observation?patient={{context.patientId}}&code=")
    codes = urllib.parse.parse_qs(query.split("?", 1)[1])["code"][0].split(",")
    assert codes == [f"{INPUT}|{entry.code}" for entry in OBSERVATIONS]


def test_the_specifications_example_call_without_this_services_prefetch_gets_412(client):
    """CDS Hooks: a service that cannot get its data SHALL answer 412 Precondition Failed."""
    answer = client.post(SERVICE, json=SPEC_EXAMPLE_CALL)
    assert answer.status_code == 412 and answer.mimetype == "application/json"
    (error,) = answer.get_json()["errors"]
    assert error["field"] == "prefetch" and "patient, observations" in error["message"]


def test_a_call_with_the_prefetch_gets_one_card_with_the_json_apis_numbers(client, json_answer):
    from calculator.interop.fhir_output import survival_at
    from calculator.results import percent, percent_interval

    card = only_card(client.post(SERVICE, json=example_call()))
    cr, scrs = json_answer["cr"], json_answer["severe_crs"]
    efs, os_ = survival_at(json_answer["efs"], 12), survival_at(json_answer["os"], 12)
    assert card["summary"] == (f"CR {percent(cr['probability'])} | severe CRS "
                               f"{percent(scrs['probability'])} (burden "
                               f"{scrs['band']['subgroup']}) | 12-mo EFS "
                               f"{percent(efs['survival'])}, OS {percent(os_['survival'])} "
                               "| research use only")
    assert f"{percent(cr['probability'])} (95 % CI {percent_interval(cr['ci95'])})" in \
        plain(card["detail"])
    assert f"{scrs['band']['observed']['events']} of {scrs['band']['observed']['n']}" in \
        plain(card["detail"])
    assert percent_interval([os_["lower"], os_["upper"]]) in plain(card["detail"])
    assert "Research use only" in plain(card["detail"])
    assert card["indicator"] == "info"  # research use is said in text; indicator is urgency
    assert "research use" in card["source"]["label"] and "reconstructed" in card["source"][
        "label"]
    assert card["source"]["topic"]["code"] == "research-use-reconstructed-cohort"
    assert card["source"]["url"].endswith("/about")


def _link(card: dict) -> str:
    (link,) = card["links"]
    assert link["type"] == "absolute"
    return link["url"]


def test_the_result_link_carries_no_patient_value(client):
    call = example_call()
    url = _link(only_card(client.post(SERVICE, json=call)))
    parts = urllib.parse.urlsplit(url)
    assert parts.query == "" and parts.fragment == ""
    token = re.fullmatch(r"/r/([A-Za-z0-9_=-]+)", parts.path).group(1)
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    # Only strings long enough not to turn up in random ciphertext by chance (a 2-byte value
    # such as b"12" does so about once in 300 tokens).
    for value in (b"marrow", b"mrd_positive", b"example-patient", b"1996-"):
        assert value not in raw[9:-32]  # the ciphertext (after version and time stamp)
    assert "example-patient" not in url and "blasts" not in url


def test_the_result_link_opens_the_full_result_page(client, json_answer):
    from calculator.results import percent

    url = _link(only_card(client.post(SERVICE, json=example_call())))
    page = client.get(urllib.parse.urlsplit(url).path)
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert f'<data id="cr-probability" value="{json_answer["cr"]["probability"]}">' in html
    assert percent(json_answer["cr"]["probability"]) in html
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer"


def test_an_altered_or_foreign_token_is_not_found(client):
    url = _link(only_card(client.post(SERVICE, json=example_call())))
    path = urllib.parse.urlsplit(url).path
    altered = path[:-5] + ("A" if path[-5] != "A" else "B") + path[-4:]
    for bad in (altered, "/r/not-a-token", "/r/" + "A" * 3000):
        answer = client.get(bad)
        assert answer.status_code == 404 and answer.mimetype == "text/html"


def test_an_expired_link_is_gone(app):
    from werkzeug.exceptions import Gone

    from calculator.result_links import RESULT_LINK_LIFETIME_SECONDS, make_token, read_token

    with app.test_request_context("/"):
        token = make_token(EXAMPLE_AS_JSON)
        assert read_token(token, now=time.time() + RESULT_LINK_LIFETIME_SECONDS - 60) == \
            EXAMPLE_AS_JSON
        with pytest.raises(Gone, match="expired"):
            read_token(token, now=time.time() + RESULT_LINK_LIFETIME_SECONDS + 60)


def test_a_link_made_under_another_key_is_not_found(app, trained_bundle_path, client):
    from calculator import create_app
    from calculator.result_links import make_token

    other = create_app({"BUNDLE_PATH": str(trained_bundle_path), "TESTING": True,
                        "SECRET_KEY": "another key " * 4})
    with other.test_request_context("/"):
        token = make_token(EXAMPLE_AS_JSON)
    assert client.get(f"/r/{token}").status_code == 404


# --------------------------------------------------------------------------- missing data


def _missing_card(client, call) -> dict:
    card = only_card(client.post(SERVICE, json=call))
    assert card["summary"].startswith("cart-risk: no estimate")
    assert card["indicator"] == "info"
    assert "/r/" not in json.dumps(card)
    return card


def test_a_chart_without_observations_gets_a_card_saying_what_is_missing(client):
    call = example_call()
    call["prefetch"]["observations"] = None  # the client found no data for the template
    card = _missing_card(client, call)
    assert "Marrow blasts" in card["summary"] and "MRD positive" in card["summary"]
    assert f"{INPUT}|marrow-blasts-pct" in plain(card["detail"])


def test_a_missing_observation_is_named(client):
    call = example_call()
    entries = call["prefetch"]["observations"]["entry"]
    call["prefetch"]["observations"]["entry"] = [
        entry for entry in entries if entry["resource"]["id"] != "mrd"]
    card = _missing_card(client, call)
    assert "MRD positive" in card["summary"] and "Marrow blasts" not in card["summary"]


def test_a_wrong_unit_in_the_chart_is_named(client):
    call = example_call()
    observations(call)[0]["valueQuantity"]["code"] = "10*9/L"
    card = _missing_card(client, call)
    assert "Marrow blasts" in card["summary"] and "10*9/L" in plain(card["detail"])


def test_the_latest_observation_of_a_history_is_used(client, app):
    call = example_call()
    entries = call["prefetch"]["observations"]["entry"]
    entries.insert(0, {"resource": blasts_observation(60, "2025-01-10", "old-blasts")})
    card = only_card(client.post(SERVICE, json=call))
    expected = app.test_client().post("/api/v1/predict", json=EXAMPLE_AS_JSON).get_json()
    from calculator.results import percent

    assert f"CR {percent(expected['cr']['probability'])}" in card["summary"]


def test_two_different_values_at_the_latest_time_are_a_conflict(client):
    call = example_call()
    call["prefetch"]["observations"]["entry"].append(
        {"resource": blasts_observation(30, "2026-06-01", "other-blasts")})
    card = _missing_card(client, call)
    assert "Marrow blasts" in card["summary"] and "conflicting" in plain(card["detail"])


def test_data_about_another_patient_is_refused(client):
    call = example_call()
    call["context"]["patientId"] = "someone-else"
    card = _missing_card(client, call)
    assert "someone-else" in plain(card["detail"])


def test_a_patient_outside_the_modelled_population_gets_a_card_saying_so(client):
    call = example_call()
    for resource in observations(call):
        if resource["id"] == "blasts":
            resource["valueQuantity"]["value"] = 0
        if resource["id"] == "mrd":
            resource["valueBoolean"] = False
    card = _missing_card(client, call)
    assert "Marrow blasts" in card["summary"]


def test_a_malformed_prefetch_resource_is_named_in_the_card(client):
    call = example_call()
    call["prefetch"]["patient"] = {"resourceType": "Patient", "gender": 7}
    card = _missing_card(client, call)
    assert "prefetch.patient.gender" in plain(card["detail"])


# --------------------------------------------------------------------------- bad calls


@pytest.mark.parametrize("change, field", [
    (lambda call: call.update(hook="order-select"), "hook"),
    (lambda call: call.pop("hookInstance"), "hookInstance"),
    (lambda call: call["context"].pop("patientId"), "context.patientId"),
    (lambda call: call.update(context="1288992"), "context"),
    (lambda call: call.update(prefetch=["patient"]), "prefetch"),
])
def test_an_invalid_call_gets_400_naming_the_field(client, change, field):
    call = copy.deepcopy(example_call())
    change(call)
    answer = client.post(SERVICE, json=call)
    assert answer.status_code == 400 and answer.mimetype == "application/json"
    assert field in [error["field"] for error in answer.get_json()["errors"]]


@pytest.mark.parametrize("body, content_type, status", [
    (b"{not json", "application/json", 400),
    (b"[]", "application/json", 422),
    (json.dumps(SPEC_EXAMPLE_CALL).encode(), "text/plain", 415),
])
def test_a_body_that_is_no_hook_call_gets_a_json_error(client, body, content_type, status):
    answer = client.post(SERVICE, data=body, content_type=content_type)
    assert answer.status_code == status and answer.mimetype == "application/json"
    assert answer.get_json()["errors"][0]["message"]


def test_unknown_services_and_methods_answer_json(client):
    answer = client.post("/cds-services/no-such-service", json=example_call())
    assert answer.status_code == 404 and answer.get_json()["errors"][0]["field"] == "path"
    answer = client.get(SERVICE)
    assert answer.status_code == 405 and answer.mimetype == "application/json"


def test_the_service_needs_no_csrf_token_and_allows_browser_clients(trained_bundle_path):
    """As served (CSRF on): a CDS client posts JSON with no token; CORS lets a browser read it."""
    from calculator import create_app

    secure = create_app({"BUNDLE_PATH": str(trained_bundle_path)}).test_client()
    answer = secure.post(SERVICE, json=example_call())
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert answer.headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
    preflight = secure.options(SERVICE, headers={
        "Origin": "https://sandbox.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, authorization"})
    assert preflight.status_code == 200
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in preflight.headers["Access-Control-Allow-Headers"]


def test_under_gunicorn_the_link_and_fhir_work_across_workers(trained_bundle_path, tmp_path):
    """Served as in production (gunicorn, two sync workers sharing the home's secret key): the
    link from the card opens on eight new connections (which the two workers take in turn as
    they are free, so both almost surely serve some), and FHIR goes through end to end."""
    import urllib.request

    from conftest import start_calculator, stop_process

    server, base_url = start_calculator(trained_bundle_path, tmp_path / "serve.log", workers=2)
    try:
        request = urllib.request.Request(
            base_url + SERVICE, data=json.dumps(example_call()).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            (card,) = json.loads(answer.read())["cards"]
        url = _link(card)
        assert url.startswith(base_url + "/r/")
        for _ in range(8):
            with urllib.request.urlopen(url, timeout=30) as page:
                assert page.status == 200
                assert 'id="cr-probability"' in page.read().decode()
        fhir = urllib.request.Request(
            base_url + "/api/v1/predict",
            data=(REPO / "docs" / "examples" / "fhir-parameters.json").read_bytes(),
            headers={"Content-Type": "application/fhir+json"})
        with urllib.request.urlopen(fhir, timeout=30) as answer:
            assert answer.headers["Content-Type"].startswith("application/fhir+json")
            assert json.loads(answer.read())["resourceType"] == "RiskAssessment"
    finally:
        stop_process(server)
