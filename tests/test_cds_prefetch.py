"""A prefetch sized for real charts (issue 22, item 5): the template asks for the newest
Observations with ``_count``, and the body limit fits that many realistic ones, still bounded."""
from __future__ import annotations

import json

from test_cds_hooks import SERVICE, example_call, only_card

BASE = "http://hooks.smarthealthit.org:9080"


def realistic(resource: dict, index: int) -> dict:
    """An Observation as an EHR sends it: identifiers, categories, text, performer, meta."""
    return {**resource, "id": f"{resource['id']}-{index}",
            "meta": {"versionId": "3", "lastUpdated": "2026-06-01T10:15:30.123+02:00",
                     "source": "#lab-system-7f3a9c"},
            "identifier": [{"use": "official", "system": "urn:oid:1.2.840.114350.1.13.0.1.7.2.798268",
                            "value": f"LAB-2026-{index:08d}"},
                           {"system": "https://lims.hospital.example/accession",
                            "value": f"ACC{index:010d}"}],
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                                "observation-category",
                                      "code": "laboratory", "display": "Laboratory"}],
                          "text": "Laboratory"}],
            "text": {"status": "generated",
                     "div": '<div xmlns="http://www.w3.org/1999/xhtml">Result reviewed by the '
                            'haematology laboratory; sample received 08:12, reported 10:15.</div>'},
            "performer": [{"reference": "Organization/haematology-lab",
                           "display": "Haematology laboratory, main campus"}],
            "issued": "2026-06-01T10:15:30.123+02:00"}


def chart_call(copies: int) -> dict:
    """The example call with each Observation repeated ``copies`` times (identical values)."""
    call = example_call()
    entries = call["prefetch"]["observations"]["entry"]
    call["prefetch"]["observations"]["entry"] = [
        {"fullUrl": f"{BASE}/Observation/{entry['resource']['id']}-{index}",
         "resource": realistic(entry["resource"], index)}
        for index in range(copies) for entry in entries]
    return call


def test_the_template_asks_for_the_newest_observations_with_a_count(client):
    from calculator.interop.cds_hooks import PREFETCH_COUNT

    (service,) = client.get("/cds-services").get_json()["services"]
    template = service["prefetch"]["observations"]
    assert "&_sort=-date" in template and f"&_count={PREFETCH_COUNT}" in template


def test_twenty_realistic_observations_get_a_card(client):
    """Before: 17.9 KB over the 16 KB cap, 413 and no card."""
    call = chart_call(4)
    call["prefetch"]["observations"]["entry"] = call["prefetch"]["observations"]["entry"][:20]
    body = json.dumps(call)
    assert len(body) > 16 * 1024
    card = only_card(client.post(SERVICE, data=body, content_type="application/json"))
    assert card["summary"].startswith("CR ")


def test_a_full_page_of_the_template_fits_the_limit(client):
    from calculator.interop import MAX_CHART_BYTES
    from calculator.interop.cds_hooks import PREFETCH_COUNT

    call = chart_call(9)
    call["prefetch"]["observations"]["entry"] = \
        call["prefetch"]["observations"]["entry"][:PREFETCH_COUNT]
    body = json.dumps(call)
    assert len(body) < MAX_CHART_BYTES / 2  # room for EHRs twice as verbose
    assert only_card(client.post(SERVICE, data=body, content_type="application/json"))


def test_a_chart_past_the_limit_is_refused_in_json(client):
    from calculator.interop import MAX_CHART_BYTES

    call = chart_call(30)
    body = json.dumps(call)
    assert len(body) > MAX_CHART_BYTES
    answer = client.post(SERVICE, data=body, content_type="application/json")
    assert answer.status_code == 413 and answer.mimetype == "application/json"
    assert answer.get_json()["errors"][0]["field"] == "body"


def test_the_json_api_keeps_its_small_limit(client):
    answer = client.post("/api/v1/predict", data=json.dumps({"x": "y" * 20_000}),
                         content_type="application/json")
    assert answer.status_code == 413
