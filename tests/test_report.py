"""The HTML report: provenance, model tables, figures, self-containment, escaping, refusal."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from training.report.page import markdown_to_html, report_command, write_report
from training.train import train

REPO = Path(__file__).resolve().parents[1]
COHORT = REPO / "training" / "data" / "reconstructed_cohort.csv"
MODELS = ("cr", "severe_crs", "efs", "os")


@pytest.fixture(scope="session")
def bundle(reconstructed_bundle_path) -> Path:
    """The reconstructed cohort's bundle, B = 20 (trained once in conftest, shared with
    test_train.py)."""
    return reconstructed_bundle_path


@pytest.fixture(scope="session")
def page(bundle, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("report-html") / "report.html"
    write_report(bundle, out)
    return out.read_text(encoding="utf-8")


def image_ids(page: str) -> dict[str, str]:
    """figure id -> src of its image."""
    return dict(re.findall(r'<figure id="([^"]+)"><img src="([^"]+)"', page))


def test_provenance_notice_comes_first(page):
    notice = page.index('id="provenance"')
    assert notice < page.index("<h2")
    assert "Synthetic data" in page and "not patient data" in page
    assert "reconstructed from the published" in page


def test_every_model_has_its_tables(page):
    for name in MODELS:
        for ident in (f"table-{name}", f"coefficients-{name}", f"riley-{name}"):
            assert f'id="{ident}"' in page, ident
    for name in ("efs", "os"):
        assert f'id="ph-{name}"' in page
    for ident in ("cohort-table", "validation-table", "scrs-bands", "audit-table"):
        assert f'id="{ident}"' in page
    for metric in ("ICI", "E50", "E90", "Brier", "calibration slope"):
        assert metric in page


def test_figures_are_embedded(page):
    images = image_ids(page)
    for ident in ("fig-calibration-cr", "fig-calibration-severe_crs", "fig-decision-cr",
                  "fig-decision-severe_crs", "fig-roc-cr", "fig-roc-severe_crs", "fig-km-efs",
                  "fig-km-os"):
        assert images[ident].startswith("data:image/svg+xml;base64,"), ident


def test_page_is_self_contained(page):
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert "@import" not in page


def test_assumptions_are_embedded_for_the_reconstructed_cohort(page):
    assumptions = (REPO / "training" / "data" / "ASSUMPTIONS.md").read_text(encoding="utf-8")
    headings = [line.lstrip("#").strip() for line in assumptions.splitlines() if line.startswith("#")]
    assert 'id="assumptions"' in page
    for heading in headings:
        assert markdown_to_html(f"# {heading}").split(">", 1)[1].split("<", 1)[0] in page


def test_audit_shows_estimators_agree(page):
    audit = page[page.index('id="audit-table"'):]
    audit = audit[:audit.index("</table>")]
    for name, kind in (("cr", "LogisticRegression"), ("efs", "CoxPHFitter")):
        assert f"<td>{name}</td><td>{kind}</td>" in audit
    differences = [float(v) for v in re.findall(r"<td>(\d\.\d\de[-+]\d+)</td>", audit)]
    assert differences and max(differences) < 1e-5


def test_center_cohort_report_escapes_text_and_omits_assumptions(tmp_path):
    raw = pd.read_csv(COHORT, dtype=str, keep_default_na=False)
    raw.loc[0, "patient_id"] = "C001"  # other bytes than the packaged cohort: a center cohort
    path = tmp_path / "<i>center&co.csv"
    raw.to_csv(path, index=False, lineterminator="\n")
    out = tmp_path / "bundle"
    train(path, out, bootstrap=3, seed=1)
    write_report(out, tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<i>center" not in page and "&lt;i&gt;center&amp;co.csv" in page
    assert "center-cohort" in page and 'id="assumptions"' not in page


def test_a_tampered_bundle_gets_no_report(bundle, tmp_path, capsys):
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    content = (copy / "estimators.joblib").read_bytes()
    (copy / "estimators.joblib").write_bytes(content[:-1] + bytes([content[-1] ^ 1]))
    out = tmp_path / "report.html"
    assert report_command(copy, out) == 1
    assert not out.exists()
    assert "estimators.joblib" in capsys.readouterr().err


def test_report_command_writes_the_file(bundle, tmp_path, capsys):
    out = tmp_path / "report.html"
    assert report_command(bundle, out) == 0
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert str(out) in capsys.readouterr().out


def test_markdown_renders_headings_lists_and_escapes():
    html = markdown_to_html("# Title\n\n- one **bold**\n  continued `x<y`\n- two\n\nText & more\n")
    assert "<h3>Title</h3>" in html
    assert "<li>one <strong>bold</strong> continued <code>x&lt;y</code></li><li>two</li>" in html
    assert "<p>Text &amp; more</p>" in html


def test_method_choice_and_the_simulation_study_are_shown(page, bundle):
    import json

    section = page[page.index('id="method-choice"'):]
    assert 'id="simulation-table"' in section and "fig-simulation-slopes" in image_ids(page)
    manifest = json.loads((bundle / "manifest.json").read_text())
    for name in MODELS:
        method = manifest["models"][name]["method"]["name"]
        assert f"{name} <code>{method}</code>" in section


def test_a_default_single_cohort_bundle_shows_the_direct_study_it_was_trained_like(page):
    """The report's bundle has the default features and methods, those of the direct study's
    shipped construction: its table, no end-to-end table, and no note that they differ."""
    import json

    section = page[page.index('id="honest-intervals"'):page.index('<h2 id="model-')]
    meta = json.loads((REPO / "training" / "data" / "simulation" / "coverage.json").read_text())
    assert 'id="coverage-table"' in section and 'id="end-to-end-table"' not in section
    assert 'id="direct-note"' not in section
    assert meta["command"] in section


def test_validation_table_headlines_the_mean_with_the_median_beside_it(page, bundle):
    import json

    table = page[page.index('id="validation-table"'):]
    table = table[:table.index("</table>")]
    assert "optimism-corrected (mean)" in table and "corrected (median)" in table
    entry = json.loads((bundle / "manifest.json").read_text())["models"]["severe_crs"]
    mean = entry["optimism_corrected"]["calibration_slope"]
    median = entry["optimism_corrected_median"]["calibration_slope"]
    assert f"<strong>{mean:.3f}</strong></td><td>{median:.3f}</td>" in table
