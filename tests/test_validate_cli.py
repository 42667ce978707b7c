"""`cart-risk validate` on the command line: JSON, the HTML page, and bad input."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from calculator.cli import main
from training.external.validation_page import lookup

CENTER = Path(__file__).parent / "data" / "synthetic_center_cohort.csv"


def test_every_number_of_the_page_equals_the_json(trained_bundle_path, tmp_path, capsys):
    page_path = tmp_path / "validation.html"
    code = main(["validate", "--bundle", str(trained_bundle_path), "--cohort", str(CENTER),
                 "--out", str(page_path), "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    page = page_path.read_text(encoding="utf-8")
    cells = re.findall(r"<td class=num([^>]*)>([^<]*)</td>", page)
    keyed = [(re.search(r'data-key="([^"]+)"', attrs), text) for attrs, text in cells]
    # Every numeric cell either names its JSON path or is a dash (no value).
    assert all(key or text == "-" for key, text in keyed)
    checked = 0
    for key, text in keyed:
        if key:
            value = lookup(report, key.group(1))
            assert float(text) == value, (key.group(1), text, value)
            checked += 1
    assert checked > 250
    for name in ("cr", "severe_crs", "efs", "os"):
        assert f'id="model-{name}"' in page
    assert "Synthetic training data" in page
    assert "<script" not in page and "http://" not in page and "https://" not in page


def test_json_holds_the_issue_figures(trained_bundle_path, capsys):
    assert main(["validate", "--bundle", str(trained_bundle_path), "--cohort", str(CENTER),
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    crs = report["models"]["severe_crs"]
    for key in ("observed_expected", "calibration_intercept", "calibration_slope", "c_index"):
        low, high = crs[key]["ci95"]
        assert low <= crs[key]["estimate"] <= high
    assert [row["subgroup"] for row in crs["subgroups"]] == list("abcde")
    assert sum(row["n"] for row in crs["subgroups"]) == crs["n"] == 160
    assert crs["net_benefit"]["thresholds"][0] == 0.05 and crs["net_benefit"]["thresholds"][-1] == 0.5
    os_ = report["models"]["os"]
    assert [row["months"] for row in os_["at_months"]] == [6.0, 12.0, 24.0]
    assert os_["uno_c"]["estimate"] is not None and os_["harrell_c"] is not None
    assert report["cohort"]["n"] == 160 and len(report["cohort"]["sha256"]) == 64


def test_bad_rows_get_the_schema_messages_and_nothing_is_written(trained_bundle_path, tmp_path,
                                                                 capsys):
    cohort = pd.read_csv(CENTER, dtype=str, keep_default_na=False)
    cohort.loc[1, "age_years"] = "forty"
    cohort.loc[4, "os_event"] = "2"
    bad = tmp_path / "bad.csv"
    cohort.to_csv(bad, index=False)
    out = tmp_path / "page.html"
    code = main(["validate", "--bundle", str(trained_bundle_path), "--cohort", str(bad),
                 "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert "line 3 (patient_id SIM-0002), age_years: must be a number (got 'forty')" in captured.err
    assert "line 6 (patient_id SIM-0005), os_event: must be 0 or 1" in captured.err
    assert "Traceback" not in captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]


def test_missing_required_column_is_named(trained_bundle_path, tmp_path, capsys):
    cohort = pd.read_csv(CENTER, dtype=str, keep_default_na=False)
    cohort.drop(columns=["mrd_positive"]).to_csv(tmp_path / "c.csv", index=False)
    code = main(["validate", "--bundle", str(trained_bundle_path), "--cohort",
                 str(tmp_path / "c.csv"), "--json"])
    captured = capsys.readouterr()
    assert code == 2 and "missing required column 'mrd_positive'" in captured.err
    assert captured.out == ""


def test_missing_outcome_columns_make_models_not_assessable(trained_bundle_path, tmp_path, capsys):
    cohort = pd.read_csv(CENTER, dtype=str, keep_default_na=False)
    cohort.drop(columns=["efs_months", "efs_event"]).to_csv(tmp_path / "c.csv", index=False)
    out = tmp_path / "page.html"
    assert main(["validate", "--bundle", str(trained_bundle_path), "--cohort",
                 str(tmp_path / "c.csv"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "efs        not assessable: the cohort has no efs_months / efs_event column" in text
    assert "Not assessable: the cohort has no efs_months / efs_event column" in out.read_text()
