"""What the survival estimates rest on: numbers at risk, the flat tail, few-at-risk warnings,
and the 95 % intervals of the 6 / 12 / 24-month values, in the API answer and on the page."""
from __future__ import annotations

import csv
import re

import numpy as np
import pytest
from lifelines import KaplanMeierFitter

from model.survival import few_at_risk, kaplan_meier, number_at_risk
from test_web import Page, form_data, result_html  # noqa: F401 (result_html: a fixture)

HORIZONS = ("6", "12", "24")


def cohort_rows(path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_numbers_at_risk_match_lifelines(trained_bundle_path):
    rows = cohort_rows(trained_bundle_path / "training_cohort.csv")
    for outcome in ("efs", "os"):
        time = np.array([float(row[f"{outcome}_months"]) for row in rows])
        event = np.array([int(float(row[f"{outcome}_event"])) for row in rows])
        table = KaplanMeierFitter().fit(time, event).event_table
        observed = table.index.to_numpy(float)
        assert np.array_equal(number_at_risk(time, observed), table["at_risk"].to_numpy())
        km = kaplan_meier(time, event)
        assert km.last_event_months == time[event == 1].max()
        assert np.array_equal(km.at_risk([0, 24]), [time.size, (time >= 24).sum()])


def test_few_at_risk_is_below_ten_percent_or_ten_patients():
    assert list(few_at_risk([9, 10, 11], 78)) == [True, False, False]  # 10 patients rule
    assert list(few_at_risk([29, 30, 31], 300)) == [True, False, False]  # 10 % rule


def test_api_gives_intervals_and_numbers_at_risk_beside_at(client, patient, trained_bundle_path):
    answer = client.post("/api/v1/predict", json=patient).get_json()
    rows = cohort_rows(trained_bundle_path / "training_cohort.csv")
    for name in ("efs", "os"):
        curve = answer[name]
        times = np.array([float(row[f"{name}_months"]) for row in rows])
        assert set(curve["at_ci95"]) == set(curve["at_risk"]) == set(HORIZONS)
        for horizon in HORIZONS:
            column = max(i for i, month in enumerate(curve["months"]) if month <= int(horizon))
            assert curve["at"][horizon] == curve["survival"][column]
            assert curve["at_ci95"][horizon] == [curve["lower"][column], curve["upper"][column]]
            low, high = curve["at_ci95"][horizon]
            assert low <= curve["at"][horizon] <= high
            assert curve["at_risk"][horizon] == int((times >= int(horizon)).sum())
    # the default cohort keeps more than 10 patients at risk at 24 months: no warning
    assert not any("at risk" in warning for warning in answer["warnings"])


def test_openapi_documents_the_new_keys(client):
    document = client.get("/api/v1/openapi.json").get_json()
    survival = document["components"]["schemas"]["Prediction"]["properties"]["efs"]["oneOf"][0]
    assert {"at", "at_ci95", "at_risk"} <= set(survival["properties"])


def test_survival_figures_show_numbers_at_risk_and_the_flat_tail(result_html, trained_bundle_path):
    rows = cohort_rows(trained_bundle_path / "training_cohort.csv")
    for name in ("efs", "os"):
        figure = re.search(rf'<svg[^>]*id="{name}-figure".*?</svg>', result_html, re.S).group(0)
        times = np.array([float(row[f"{name}_months"]) for row in rows])
        events = np.array([float(row[f"{name}_event"]) for row in rows]) == 1
        counts = [int(c) for c in re.findall(r'class="risk-count"[^>]*>(\d+)<', figure)]
        ticks = np.arange(0, times.max() + 1e-9, 6)
        blasts = np.array([float(row["marrow_blasts_pct"]) for row in rows])
        expected = [*(int((times >= t).sum()) for t in ticks),
                    *(int((times[blasts < 5] >= t).sum()) for t in ticks),
                    *(int((times[blasts >= 5] >= t).sum()) for t in ticks)]
        assert counts == expected
        assert 'class="flat-tail"' in figure
        assert f"events after {times[events].max():.0f} mo" in figure
        assert ('class="few-at-risk"' in figure) == bool(few_at_risk(
            (times >= times.max()).sum(), times.size))
        assert "Number at risk" in figure
    times = np.array([float(row["efs_months"]) for row in rows])
    assert f'id="efs-24-at-risk">{int((times >= 24).sum())} at risk<' in result_html


# --------------------------------------------------------------------------- short follow-up


@pytest.fixture(scope="module")
def short_follow_up_bundle(tmp_path_factory):
    """A centre-like cohort followed for 20 months but for 8 patients: few at risk at 24 months."""
    from training.reproduce import default_cohort_path
    from training.train import train

    folder = tmp_path_factory.mktemp("short-follow-up")
    rows = cohort_rows(default_cohort_path())
    for index, row in enumerate(rows):
        if index % 10 == 0:
            continue  # 8 of 78 patients keep their full follow-up
        for name in ("efs", "os"):
            if float(row[f"{name}_months"]) > 20:
                row[f"{name}_months"], row[f"{name}_event"] = "20", "0"
    cohort = folder / "cohort.csv"
    with open(cohort, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    train(cohort, folder / "bundle", bootstrap=5, seed=1, jobs=1, progress=False)
    return folder / "bundle", cohort


def test_few_at_risk_warns_in_the_api_and_on_the_page(short_follow_up_bundle, patient):
    from calculator import create_app

    bundle, cohort = short_follow_up_bundle
    rows = cohort_rows(cohort)
    client = create_app({"BUNDLE_PATH": str(bundle), "TESTING": True}).test_client()
    answer = client.post("/api/v1/predict", json=patient).get_json()
    warned = [w for w in answer["warnings"] if "at risk" in w]
    expected = []
    for name in ("efs", "os"):
        times = np.array([float(row[f"{name}_months"]) for row in rows])
        for horizon in (6, 12, 24):
            count = int((times >= horizon).sum())
            if answer[name]["at"][str(horizon)] is not None and count < 10:
                expected.append((name, horizon, count))
    assert [(name, 24) for name, _, _ in expected] == [("efs", 24), ("os", 24)]
    assert len(warned) == len(expected)
    for (name, horizon, count), warning in zip(expected, warned):
        assert warning.startswith(f"{name} at {horizon} months: only {count} of the 78 ")
        assert answer[name]["at_risk"][str(horizon)] == count
    html = client.post("/result", data=form_data(patient)).get_data(as_text=True)
    page = Page(html)
    assert page.by_id("few-at-risk")
    note = html[html.index('id="few-at-risk"'):]
    assert all(warning in note for warning in warned)
    assert not page.find(id="warnings")  # not mixed with "Check these inputs"
    for name in ("efs", "os"):
        figure = re.search(rf'<svg[^>]*id="{name}-figure".*?</svg>', html, re.S).group(0)
        assert 'class="few-at-risk"' in figure and "&lt; 10 at risk" in figure
