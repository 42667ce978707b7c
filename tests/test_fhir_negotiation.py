"""Content negotiation of the FHIR answer, and FHIR requests' errors as OperationOutcomes
(issue 22, item 8)."""
from __future__ import annotations

import json

import pytest

from test_fhir import FHIR, PREDICT, example_parameters

EXAMPLE = {"marrow_blasts_pct": 12, "mrd_positive": True, "age_years": 30, "sex": "M",
           "ph_positive": False, "prior_hsct": False, "relapsed": True}


@pytest.mark.parametrize("accept, expected", [
    ("application/fhir+json; fhirVersion=4.0", FHIR),
    ("application/fhir+json;fhirVersion=4.0.1", FHIR),
    ("application/fhir+json; charset=utf-8", FHIR),
    ('application/fhir+json; charset="UTF-8"; fhirVersion=4.0', FHIR),
    ("application/fhir+json; fhirVersion=5.0, application/json;q=0.5", "application/json"),
    ("application/fhir+json;q=0, application/json", "application/json"),
    ("application/json;q=0, */*", FHIR),
    ("application/json;q=0.2, application/*;q=0.8", FHIR),
    ("application/json", "application/json"),
])
def test_the_answer_follows_the_accept_header(client, accept, expected):
    answer = client.post(PREDICT, json=EXAMPLE, headers={"Accept": accept})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.mimetype == expected


def test_q_zero_for_fhir_refuses_fhir_even_for_a_fhir_body(client):
    answer = client.post(PREDICT, data=json.dumps(example_parameters()), content_type=FHIR,
                         headers={"Accept": "application/fhir+json;q=0, application/json"})
    assert answer.status_code == 200 and answer.mimetype == "application/json"


def test_the_415_names_both_media_types(client):
    for headers in ({}, {"Accept": FHIR}):
        answer = client.post(PREDICT, data="x", content_type="text/plain", headers=headers)
        assert answer.status_code == 415
        text = answer.get_data(as_text=True)
        assert "application/json" in text and "application/fhir+json" in text


def test_a_too_large_fhir_body_gets_an_operation_outcome(client):
    body = json.dumps({"resourceType": "Parameters", "parameter": [],
                       "id": "x" * 200_000})
    answer = client.post(PREDICT, data=body, content_type=FHIR)
    assert answer.status_code == 413 and answer.mimetype == FHIR
    outcome = answer.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "too-costly"
    plain = client.post(PREDICT, data=body, content_type="application/json")
    assert plain.status_code == 413 and plain.mimetype == "application/json"


def test_an_unexpected_failure_on_a_fhir_request_is_an_operation_outcome(trained_bundle_path):
    """A 500 (here: a view that fails, added to a real app) is an OperationOutcome for FHIR."""
    from calculator import create_app

    app = create_app({"BUNDLE_PATH": str(trained_bundle_path)})

    def broken():
        raise RuntimeError("failure inside a view")

    app.add_url_rule("/api/v1/broken", "broken", broken, methods=["GET"])
    client = app.test_client()
    answer = client.get("/api/v1/broken", headers={"Accept": FHIR})
    assert answer.status_code == 500 and answer.mimetype == FHIR
    (issue,) = answer.get_json()["issue"]
    assert issue["code"] == "exception" and "reference" in issue["diagnostics"]
    plain = client.get("/api/v1/broken")
    assert plain.status_code == 500 and plain.get_json()["errors"][0]["field"] == "server"
