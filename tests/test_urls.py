"""No patient value in any URL the calculator emits: pages, redirects and API answers.

URLs end up in browser history, proxy logs and screenshots of the address bar. The figures
are inline SVG and "Change inputs" posts, so a page's links, form actions, image sources and
SVG references hold no patient field; neither does a redirect or any string in an API answer.
"""
from __future__ import annotations

import re

import pytest

from model.patient import PATIENT_FIELDS

#: Distinctive values: found in a URL only if a patient value was copied into it.
DISTINCT = {"marrow_blasts_pct": "37.4159", "age_years": "61.2718"}
TARGET = "3.14159"
URL_ATTRIBUTE = re.compile(r'\s(?:href|src|srcset|action|formaction|xlink:href|poster|cite|'
                           r'background|data|ping)\s*=\s*"([^"]*)"', re.I)
CSS_URL = re.compile(r"url\(([^)]*)\)")


def urls_in_html(html: str) -> list[str]:
    return URL_ATTRIBUTE.findall(html) + CSS_URL.findall(html)


def urls_in_json(value) -> list[str]:
    if isinstance(value, dict):
        return [url for item in value.values() for url in urls_in_json(item)]
    if isinstance(value, list):
        return [url for item in value for url in urls_in_json(item)]
    if isinstance(value, str) and re.match(r"(https?://|/|\?)", value):
        return [value]
    return []


def assert_patient_free(url: str, where: str) -> None:
    for value in (*DISTINCT.values(), TARGET):
        assert value not in url, f"{where}: {url}"
    for name in (*PATIENT_FIELDS, "target_marrow_blasts_pct"):  # "#age_years" may link a field
        assert not re.search(rf"[?&;/]{name}[=/]", url), f"{where}: {url}"


@pytest.fixture()
def distinct_patient(patient) -> dict:
    return {**patient, "marrow_blasts_pct": float(DISTINCT["marrow_blasts_pct"]),
            "age_years": float(DISTINCT["age_years"])}


def as_form(patient: dict) -> dict[str, str]:
    return {name: ("true" if value else "false") if isinstance(value, bool) else str(value)
            for name, value in patient.items()}


def test_no_page_emits_a_url_with_a_patient_value(client, distinct_patient):
    form = {**as_form(distinct_patient), "target_marrow_blasts_pct": TARGET}
    pages = {
        "form": client.get("/"),
        "result": client.post("/result", data=form),
        "result 422": client.post("/result", data={**form, "age_years": "x"}),
        "change inputs": client.post("/", data=form),
        "about": client.get("/about"),
        "404": client.get("/nothing"),
    }
    result_html = pages["result"].get_data(as_text=True)
    assert DISTINCT["marrow_blasts_pct"] in result_html  # the values are on the page ...
    scanned = 0
    for where, answer in pages.items():
        assert answer.status_code in (200, 404, 422), where
        for url in urls_in_html(answer.get_data(as_text=True)):
            assert_patient_free(url, where)  # ... but in no URL
            scanned += 1
    assert scanned > 10 and len(urls_in_html(result_html)) >= 5
    redirect = client.get("/result?" + "&".join(f"{k}={v}" for k, v in form.items()))
    assert redirect.status_code == 302
    assert_patient_free(redirect.location, "GET /result redirect")


def test_no_api_answer_holds_a_url_with_a_patient_value(client, distinct_patient):
    answers = {
        "predict": client.post("/api/v1/predict", json=distinct_patient),
        "predict 422": client.post("/api/v1/predict", json={**distinct_patient, "sex": "x"}),
        "openapi": client.get("/api/v1/openapi.json"),
        "healthz": client.get("/healthz"),
    }
    assert answers["predict"].status_code == 200
    for where, answer in answers.items():
        for url in urls_in_json(answer.get_json()):
            assert_patient_free(url, where)
        for header in ("Location", "Content-Location", "Link"):
            assert_patient_free(answer.headers.get(header, ""), f"{where} {header}")


def test_the_scanner_finds_a_patient_value_in_a_url():
    html = '<a href="/?marrow_blasts_pct=37.4159">x</a><path marker-end="url(#a)"/>'
    assert urls_in_html(html) == ["/?marrow_blasts_pct=37.4159", "#a"]
    with pytest.raises(AssertionError):
        assert_patient_free(urls_in_html(html)[0], "example")
    assert urls_in_json({"a": ["/plot?age_years=61.2718", "text"]}) == ["/plot?age_years=61.2718"]
