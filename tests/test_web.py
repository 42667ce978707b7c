"""The web calculator without a browser: form, errors by their fields, result page, figures, card."""
from __future__ import annotations

import re
import subprocess
import sys
from html.parser import HTMLParser

import pytest

from model.patient import PATIENT_FIELDS


class Page(HTMLParser):
    """The parts of an HTML page the tests look at: elements by id, attributes, text."""

    def __init__(self, html: str):
        super().__init__()
        self.elements: list[tuple[str, dict]] = []
        self.text_parts: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text_parts.append(data)

    @property
    def text(self) -> str:
        return re.sub(r"\s+", " ", " ".join(self.text_parts))

    def find(self, tag: str | None = None, **attrs) -> list[dict]:
        return [a for t, a in self.elements if (tag is None or t == tag)
                and all(a.get(k.rstrip("_")) == v for k, v in attrs.items())]

    def by_id(self, element_id: str) -> dict:
        found = self.find(id=element_id)
        assert len(found) == 1, f"{element_id}: {len(found)} elements"
        return found[0]


def form_data(patient: dict) -> dict[str, str]:
    """A patient as the browser submits it (text)."""
    return {name: ("true" if value else "false") if isinstance(value, bool) else str(value)
            for name, value in patient.items()}


def field_block(html: str, name: str) -> str:
    """The HTML of one field's block on the form (label, control, error, help)."""
    start = html.index(f'id="field-{name}"')
    end = html.find('<div class="field', start + 1)
    return html[start:end if end != -1 else len(html)]


# --------------------------------------------------------------------------- form


def test_form_has_every_needed_field_with_unit_range_and_help(client, loaded_bundle):
    html = client.get("/").get_data(as_text=True)
    page = Page(html)
    for name in loaded_bundle.predictor.required_fields:
        spec = PATIENT_FIELDS[name]
        control = page.by_id(name)
        assert control["name"] == name  # form names are the API names
        block = field_block(html, name)
        assert spec.label in block and spec.help.split("(")[0].strip() in block
        if spec.kind == "number":
            assert f"Accepted {spec.minimum:g}\u2013{spec.maximum:g}" in block
            assert "training cohort" in block
        if spec.unit:
            assert f"({spec.unit})" in block
    assert page.find("form")[0]["action"] == "/result"
    assert page.find("form")[0]["method"] == "post"


def test_pages_have_no_script_no_inline_style_and_no_data_uris(client, patient):
    pages = [client.get("/"), client.post("/result", data=form_data(patient)),
             client.get("/about")]
    for answer in pages:
        html = answer.get_data(as_text=True)
        assert "<script" not in html.lower()
        assert "data:" not in html
        assert " style=" not in html
        for tag, attrs in Page(html).elements:
            for key in ("src", "href"):
                value = attrs.get(key) or ""
                assert not value.startswith(("http://", "https://", "//")), value


def test_print_stylesheet_is_linked_and_served(client):
    page = Page(client.get("/").get_data(as_text=True))
    (link,) = page.find("link", media="print")
    with client.get(link["href"]) as css:  # a file response: close it
        assert css.status_code == 200 and "@page" in css.get_data(as_text=True)


def test_form_prefills_from_the_query(client):
    html = client.get("/?marrow_blasts_pct=7&relapsed=yes").get_data(as_text=True)
    assert Page(html).by_id("marrow_blasts_pct")["value"] == "7"
    assert '<option value="true" selected>' in field_block(html, "relapsed")


# --------------------------------------------------------------------------- errors


def test_out_of_range_blasts_show_the_error_by_the_field_and_keep_values(client, patient):
    answer = client.post("/result", data=form_data({**patient, "marrow_blasts_pct": 150}))
    assert answer.status_code == 422
    html = answer.get_data(as_text=True)
    assert "must be between 0 and 100 (got 150)" in field_block(html, "marrow_blasts_pct")
    assert "must be between" not in field_block(html, "age_years")
    page = Page(html)
    assert page.by_id("marrow_blasts_pct")["value"] == "150"
    assert page.by_id("marrow_blasts_pct")["aria-invalid"] == "true"
    assert page.by_id("age_years")["value"] == "30"
    for name, text in form_data(patient).items():
        if PATIENT_FIELDS[name].kind != "number":
            assert f'<option value="{text}" selected>' in field_block(html, name), name
    assert 'href="#marrow_blasts_pct"' in html  # the summary links to the field


@pytest.mark.parametrize("change, field, message", [
    ({"marrow_blasts_pct": "12,5"}, "marrow_blasts_pct", "use a dot as the decimal separator"),
    ({"age_years": ""}, "age_years", "is required"),
    ({"marrow_blasts_pct": "0", "mrd_positive": "false"}, "marrow_blasts_pct",
     "outside the population the models describe"),
    ({"target_marrow_blasts_pct": "20"}, "target_marrow_blasts_pct",
     "must be below the current marrow blasts"),
    ({"target_marrow_blasts_pct": "x"}, "target_marrow_blasts_pct", "must be a number"),
])
def test_each_error_is_shown_next_to_its_field(client, patient, change, field, message):
    answer = client.post("/result", data={**form_data(patient), **change})
    assert answer.status_code == 422
    html = answer.get_data(as_text=True)
    assert message in field_block(html, field)
    for name, value in change.items():
        assert Page(html).by_id(name).get("value", value) == value


def test_unknown_form_fields_are_reported(client, patient):
    answer = client.post("/result", data={**form_data(patient), "agee": "30"})
    assert answer.status_code == 422
    assert "agee" in answer.get_data(as_text=True)


# --------------------------------------------------------------------------- result


@pytest.fixture()
def result_html(client, patient) -> str:
    answer = client.post("/result", data=form_data(patient))
    assert answer.status_code == 200
    return answer.get_data(as_text=True)


def test_result_shows_the_api_answer(client, patient, result_html):
    api = client.post("/api/v1/predict", json=patient).get_json()
    page = Page(result_html)
    assert float(page.by_id("cr-probability")["value"]) == api["cr"]["probability"]
    assert [float(v) for v in page.by_id("cr-ci95")["value"].split(",")] == api["cr"]["ci95"]
    assert float(page.by_id("scrs-probability")["value"]) == api["severe_crs"]["probability"]
    assert page.by_id("scrs-subgroup")["value"] == api["severe_crs"]["band"]["subgroup"] == "c"
    assert f"{round(api['cr']['probability'] * 100)} %" in page.text
    for name in ("efs", "os"):
        for months in ("6", "12", "24"):
            assert float(page.by_id(f"{name}-{months}")["value"]) == api[name]["at"][months]


def test_result_lists_all_five_bands_and_highlights_the_patients(result_html, loaded_bundle):
    rows = re.findall(r"<tr( class=\"current\"[^>]*)?>\s*<th scope=\"row\">(\w)", result_html)
    assert [letter for _, letter in rows][:5] == list("abcde")
    assert [letter for current, letter in rows if current] == ["c"]
    band = loaded_bundle.predictor.scrs_bands["c"]
    assert f"{band['events']}/{band['n']}" in result_html


def test_result_has_inline_figures_dosing_and_basis(client, result_html, loaded_bundle):
    page = Page(result_html)
    assert not page.find("img")  # figures travel inside the page: no image request at all
    figures = {attrs.get("id") for tag, attrs in page.elements if tag == "svg"}
    assert figures == {"efs-figure", "os-figure", "window-figure", "bands-figure"}
    text = page.text
    assert "cannot estimate a dose effect" in text and "10 %, 30 % and 60 %" in text
    assert "not a proven effect of debulking" in text
    assert page.by_id("bundle-id")["title"] == loaded_bundle.id
    assert page.by_id("provenance-notice")
    assert "reconstructed cohort" in text
    assert page.find("a", href="/about")
    c_index = loaded_bundle.manifest["models"]["cr"]["optimism_corrected"]["c_index"]
    assert f"{c_index:.2f}" in text


def test_target_blasts_show_the_predicted_change(client, patient):
    html = client.post("/result", data={**form_data(patient),
                                        "target_marrow_blasts_pct": "3"}).get_data(as_text=True)
    api = client.post("/api/v1/predict", json={**patient, "marrow_blasts_pct": 3}).get_json()
    page = Page(html)
    assert float(page.by_id("target-cr")["value"]) == api["cr"]["probability"]
    assert float(page.by_id("target-scrs")["value"]) == api["severe_crs"]["probability"]
    assert "model association, not a proven effect of debulking" in page.text.lower()
    change = {attrs["name"]: attrs["value"] for attrs in page.find("input", type="hidden")}
    assert change["target_marrow_blasts_pct"] == "3"  # "Change inputs" keeps the target


def test_get_result_goes_back_to_the_empty_form(client):
    answer = client.get("/result?marrow_blasts_pct=5")
    assert answer.status_code == 302 and answer.location == "/"


# --------------------------------------------------------------------------- change inputs


def test_change_inputs_posts_the_values_back_to_the_form(client, result_html, patient,
                                                       loaded_bundle):
    from model.patient import parse_form

    page = Page(result_html)
    forms = page.find("form", id="change-inputs")
    assert len(forms) == 1 and forms[0]["method"] == "post" and forms[0]["action"] == "/"
    carried = {attrs["name"]: attrs["value"] for attrs in page.find("input", type="hidden")}
    values = {name: text for name, text in carried.items() if name != "csrf_token"}
    assert parse_form(values, required=loaded_bundle.predictor.required_fields) == patient
    form = Page(client.post("/", data=carried).get_data(as_text=True))
    for name, value in values.items():
        control = form.by_id(name)
        if "value" in control:
            assert control["value"] == value, name
        else:  # a list: the chosen option is selected
            assert [o for o in form.find("option", value=value) if "selected" in o], name


def test_figure_urls_no_longer_exist(client, patient):
    query = "&".join(f"{k}={v}" for k, v in form_data(patient).items())
    assert client.get(f"/plot/survival.svg?{query}").status_code == 404


# --------------------------------------------------------------------------- model card


def test_about_is_the_model_card(client, loaded_bundle):
    text = Page(client.get("/about").get_data(as_text=True)).text
    for phrase in ("ssCART-19", "fludarabine", "relapsed or refractory", "Intended users",
                   "February 2017", "May 2020", "CTCAE v4.03", "ASTCT", "Known limitations",
                   "Validation results", "Method in plain language", "not patient data"):
        assert phrase in text, phrase
    for name, card in loaded_bundle.manifest["models"].items():
        assert card["outcome"] in text
        corrected = card["optimism_corrected"]["c_index"]
        assert f"{corrected:.3f}" in text
    assert loaded_bundle.id in text


def test_unknown_pages_get_an_html_404(client):
    answer = client.get("/nothing-here")
    assert answer.status_code == 404 and answer.mimetype == "text/html"


# --------------------------------------------------------------------------- partial bundles


@pytest.fixture(scope="module")
def bundle_without_survival(tmp_path_factory):
    """A bundle from a centre cohort that lacks the survival columns (only CR and sCRS models)."""
    import csv

    from training.reproduce import default_cohort_path
    from training.train import train

    folder = tmp_path_factory.mktemp("no-survival")
    with open(default_cohort_path(), newline="") as handle:
        rows = list(csv.DictReader(handle))
    kept = [c for c in rows[0] if c not in ("efs_months", "efs_event", "os_months", "os_event")]
    cohort = folder / "cohort.csv"
    with open(cohort, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=kept, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    train(cohort, folder / "bundle", bootstrap=5, seed=1, jobs=1, progress=False)
    return folder / "bundle"


def test_a_bundle_without_survival_models_still_serves(bundle_without_survival, patient):
    from calculator import create_app

    client = create_app({"BUNDLE_PATH": str(bundle_without_survival), "TESTING": True}) \
        .test_client()
    api = client.post("/api/v1/predict", json=patient).get_json()
    assert api["efs"] is None and api["os"] is None
    assert any("no efs model" in warning for warning in api["warnings"])
    html = client.post("/result", data=form_data(patient)).get_data(as_text=True)
    assert "This bundle has no survival models" in html
    assert 'id="efs-figure"' not in html and 'id="window-figure"' in html
    assert 'id="provenance-notice"' not in html  # a centre cohort: no reconstruction notice
    assert client.get("/about").status_code == 200
