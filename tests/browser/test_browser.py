"""The calculator in a real browser: Debian's chromium driven by Playwright, against gunicorn.

Skipped, with the reason, when the ``playwright`` package or ``/usr/bin/chromium`` is missing
(Playwright's own browser downloads are not used). Screenshots go to ``test-artifacts/``.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CART_RISK_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

sync_api = pytest.importorskip("playwright.sync_api",
                               reason="the playwright package is not installed "
                                      "(pip install playwright)")
if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)) and not shutil.which(CHROMIUM):
    pytest.skip(f"chromium not found at {CHROMIUM} (apt-get install chromium)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def fill_form(page, patient: dict) -> None:
    """Type a patient into the form as a person would: text boxes and yes/no lists."""
    for name, value in patient.items():
        control = page.locator(f"#{name}")
        if control.evaluate("element => element.tagName") == "SELECT":
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            control.select_option(value=text)
        else:
            control.fill(str(value))


#: Rendered size (CSS px) of the smallest text in each figure: font-size x displayed/viewBox width.
SMALLEST_FIGURE_TEXT = """() => [...document.querySelectorAll('svg.figure')].map(svg => {
  const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
  const sizes = [...svg.querySelectorAll('text')].map(t => parseFloat(t.getAttribute('font-size')));
  return [svg.id, Math.min(...sizes) * scale];
})"""


def test_result_page_matches_the_api(page, served_calculator, live_api, patient):
    assert patient["marrow_blasts_pct"] == 12.0
    page.goto(served_calculator + "/")
    fill_form(page, patient)
    page.locator("button[type=submit]").click()
    page.wait_for_load_state("networkidle")
    assert page.url.endswith("/result")
    status, api = live_api(patient)
    assert status == 200
    assert float(page.locator("#cr-probability").get_attribute("value")) == \
        api["cr"]["probability"]
    shown = page.locator("#cr-probability").inner_text()
    assert shown == f"{round(api['cr']['probability'] * 100)} %"
    assert float(page.locator("#scrs-probability").get_attribute("value")) == \
        api["severe_crs"]["probability"]
    assert page.locator("#scrs-subgroup").inner_text() == api["severe_crs"]["band"]["subgroup"]
    assert api["severe_crs"]["band"]["subgroup"] == "c"
    highlighted = page.locator("tr.current th").inner_text()
    assert highlighted.startswith("c") and "this patient" in highlighted
    for figure in ("#efs-figure", "#os-figure", "#window-figure", "#bands-figure"):
        assert page.locator(figure).is_visible(), figure
    assert page.locator("#efs-figure").bounding_box()["width"] > 300
    screenshot(page, "result")


def submit(page, base_url: str, patient: dict) -> list[str]:
    """Fill and send the form; every URL the browser requested on the way."""
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(base_url + "/")
    fill_form(page, patient)
    page.locator("button[type=submit]").click()
    page.wait_for_load_state("networkidle")
    return requested


@pytest.mark.parametrize("width", [390, 1280])
def test_result_page_fits_the_screen_with_legible_figures(browser, served_calculator, patient,
                                                          width):
    context = browser.new_context(viewport={"width": width, "height": 844})
    page = context.new_page()
    try:
        distinct = {**patient, "marrow_blasts_pct": 12.3456, "target_marrow_blasts_pct": 2.7183}
        requested = submit(page, served_calculator, distinct)
        assert page.locator("#cr-probability").is_visible()
        # the page itself never scrolls sideways; wide tables scroll inside their own box
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        for figure in ("efs-figure", "os-figure", "window-figure", "bands-figure"):
            box = page.locator(f"#{figure}").bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= width, figure
        for figure in ("efs-figure", "os-figure", "window-figure"):
            assert page.locator(f"#{figure}").bounding_box()["width"] >= min(300, width - 60)
        smallest = dict(page.evaluate(SMALLEST_FIGURE_TEXT))
        assert min(smallest.values()) >= 8.5, smallest  # CSS px: readable on a phone
        for table in page.locator("table").all():
            right = table.evaluate("t => t.closest('.table-scroll') ? 0 : "
                                   "t.getBoundingClientRect().right")
            assert right <= width
        screenshot(page, f"result-{width}px")
        # nothing the browser asked for carried a patient value
        assert requested and not any("12.3456" in url or "2.7183" in url for url in requested)
        page.locator("#change-inputs button").click()
        page.wait_for_load_state("networkidle")
        assert "?" not in page.url and "12.3456" not in page.url
        assert page.locator("#marrow_blasts_pct").input_value() == "12.3456"
        assert page.locator("#target_marrow_blasts_pct").input_value() == "2.7183"
    finally:
        context.close()


def test_result_prints_on_one_page(page, served_calculator, patient):
    page.goto(served_calculator + "/")
    fill_form(page, {**patient, "target_marrow_blasts_pct": 3})
    page.locator("button[type=submit]").click()
    page.wait_for_load_state("networkidle")
    assert page.locator("#target-table").is_visible()
    pdf = page.pdf(format="A4", print_background=True)
    (ARTIFACTS / "result.pdf").parent.mkdir(exist_ok=True)
    (ARTIFACTS / "result.pdf").write_bytes(pdf)
    assert len(re.findall(rb"/Type\s*/Page[^s]", pdf)) == 1
    page.emulate_media(media="print")
    page.set_viewport_size({"width": 718, "height": 1047})  # A4 less the print margins
    screenshot(page, "result-print")


def test_invalid_blasts_show_the_field_error_and_keep_values(page, served_calculator, patient):
    page.goto(served_calculator + "/")
    fill_form(page, {**patient, "marrow_blasts_pct": 150})
    page.locator("button[type=submit]").click()
    page.wait_for_load_state("networkidle")
    error = page.locator("#field-marrow_blasts_pct .field-error")
    assert "must be between 0 and 100 (got 150)" in error.inner_text()
    assert error.is_visible()
    assert page.locator("#field-age_years .field-error").count() == 0
    assert page.locator("#marrow_blasts_pct").input_value() == "150"
    for name, value in patient.items():
        if name == "marrow_blasts_pct":
            continue
        expected = ("true" if value else "false") if isinstance(value, bool) else f"{value:g}" \
            if isinstance(value, float) else str(value)
        assert page.locator(f"#{name}").input_value() == expected, name
    screenshot(page, "form-error")


def test_the_model_card_reads_for_a_physician(page, served_calculator):
    page.goto(served_calculator + "/about")
    text = page.locator("main").inner_text()
    for phrase in ("Intended use", "ssCART-19", "February 2017", "CTCAE v4.03", "ASTCT",
                   "Known limitations", "Validation results"):
        assert phrase in text
    screenshot(page, "about")


# --------------------------------------------------------------------------- accessibility


def _serious_violations(page) -> list[str]:
    """axe-core's serious and critical violations on the page (axe-playwright-python's copy of
    axe.min.js, injected by Playwright; the page's own CSP allows no script)."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [f"{violation['id']} ({violation['impact']}): {violation['help']} at "
            + ", ".join(str(node["target"]) for node in violation["nodes"][:5])
            for violation in results.response["violations"]
            if violation.get("impact") in ("serious", "critical")]


@pytest.mark.parametrize("width", [1280, 390])
def test_axe_finds_no_serious_violation(browser, served_calculator, patient, width):
    """Issue 22, item 14: the form, a result page (with the target table) and /about."""
    context = browser.new_context(viewport={"width": width, "height": 844}, bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        found = {}
        page.goto(served_calculator + "/")
        found["form"] = _serious_violations(page)
        fill_form(page, {**patient, "target_marrow_blasts_pct": 3})
        page.locator("button[type=submit]").click()
        page.wait_for_load_state("networkidle")
        assert page.url.endswith("/result")
        found["result"] = _serious_violations(page)
        page.goto(served_calculator + "/about")
        found["about"] = _serious_violations(page)
        assert not any(found.values()), found
    finally:
        context.close()
