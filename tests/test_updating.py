"""Updating a bundle on a center's cohort (training/updating.py, training/external/update_tests.py)."""
from __future__ import annotations

import hashlib
import json
import math
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from calculator.cli import main
from model.bundle import TRAINING_DATA, load_predictor
from model.cohort import read_cohort
from model.predictor import prediction_answer
from training.development import bundle_models as bm
from training.paper.analyses import derive
from training.external.center_simulation import Miscalibration, simulate_center
from training.external.validation import validate_models
from training.fitting.logistic import fit_logistic
from training.external.update_tests import closed_test
from training.updating import NothingToUpdate, _decide, update_bundle

from conftest import start_calculator, stop_process

CENTER = Path(__file__).parent / "data" / "synthetic_center_cohort.csv"
PATIENT = {"marrow_blasts_pct": 12.0, "mrd_positive": True, "age_years": 30.0,
           "ph_positive": False, "prior_hsct": False, "relapsed": True}


@pytest.fixture(scope="module")
def training_cohort(trained_bundle_path):
    return read_cohort(trained_bundle_path / TRAINING_DATA)


def test_closed_test_walks_from_the_largest_model_down():
    # p = 2 features: refit has 3 parameters more than "none", 2 more than "intercept", 1 more
    # than "recalibrate". Log-likelihoods built so that only the last test is not significant.
    loglik = [-100.0, -95.0, -92.0, -91.5]
    test = closed_test(loglik, n_features=2)
    assert [t["df"] for t in test["tests"]] == [3, 2, 1]
    assert test["tests"][0]["p"] == pytest.approx(stats.chi2.sf(17.0, 3))
    assert test["chosen"] == "recalibrate"
    assert test["decided_by"].startswith("refit vs recalibrate: LR 1.00 on 1 df")
    assert closed_test([-100.0, -99.9, -99.8, -99.0], 2)["chosen"] == "none"
    assert closed_test([-100.0, -80.0, -79.9, -79.0], 2)["chosen"] == "intercept"
    assert closed_test([-100.0, -80.0, -70.0, -60.0], 2)["chosen"] == "refit"


@pytest.mark.parametrize("truth, model, n, expected", [
    (Miscalibration(), "severe_crs", 300, "none"),
    (Miscalibration(intercept=1.0), "severe_crs", 300, "intercept"),
    (Miscalibration(slope=0.5), "severe_crs", 1000, "recalibrate"),
    (Miscalibration(), "os", 300, "none"),
    (Miscalibration(hazard_ratio=2.0), "os", 300, "intercept"),
])
def test_auto_picks_the_matching_update_in_most_simulations(loaded_bundle, training_cohort,
                                                            truth, model, n, expected):
    """10 simulations each (bench/bench_updating.py runs 200): the matching method >= 7 times."""
    spec = loaded_bundle.params["models"][model]
    chosen = Counter()
    for seed in range(10):
        cohort = derive(simulate_center(loaded_bundle.params, training_cohort, n, 100 + seed,
                                        truth, models=(model,)))
        chosen[_decide(model, spec, cohort, "auto", loaded_bundle.params["month_grid"])["method"]] += 1
    assert chosen[expected] >= 7, dict(chosen)


@pytest.fixture(scope="module")
def updated(trained_bundle_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("updated") / "bundle"
    manifest = update_bundle(trained_bundle_path, CENTER, out, "auto", bootstrap=5, seed=3)
    return out, manifest


def test_updated_bundle_records_its_lineage(trained_bundle_path, loaded_bundle, updated):
    out, manifest = updated
    lineage = manifest["lineage"]
    assert lineage["parent"]["id"] == loaded_bundle.id
    assert lineage["parent"]["provenance"] == loaded_bundle.manifest["provenance"]
    assert lineage["update_cohort"] == {
        "file": CENTER.name, "sha256": hashlib.sha256(CENTER.read_bytes()).hexdigest(),
        "n": len(read_cohort(CENTER)), "bytes": CENTER.stat().st_size}
    assert lineage["method"] == "auto"
    for name, record in lineage["models"].items():
        assert record["method"] in ("none", "intercept", "recalibrate", "refit")
        assert record["decided_by"] == record["closed_test"]["decided_by"]
    bundle = load_predictor(out)
    answer = prediction_answer(bundle, PATIENT)
    assert answer["model"]["trained_on"] == (f"78 patients, updated on {len(read_cohort(CENTER))} "
                                             "center patients")
    assert answer["model"]["lineage"] == {
        "parent_id": loaded_bundle.id, "parent_provenance": loaded_bundle.manifest["provenance"],
        "update_cohort_sha256": lineage["update_cohort"]["sha256"],
        "update_cohort_n": lineage["update_cohort"]["n"],
        "methods": {name: r["method"] for name, r in lineage["models"].items()}}


def test_intercept_update_is_calibrated_in_the_large_on_its_own_cohort(trained_bundle_path,
                                                                       tmp_path):
    out = tmp_path / "intercept"
    update_bundle(trained_bundle_path, CENTER, out, "intercept", bootstrap=5)
    before = load_predictor(trained_bundle_path)
    after = load_predictor(out)
    cohort = derive(read_cohort(CENTER))
    old = validate_models(before.params, before.manifest, cohort)
    new = validate_models(after.params, after.manifest, cohort)
    for name in ("cr", "severe_crs"):
        shift = after.manifest["lineage"]["models"][name]["parameters"]["intercept_shift"]
        assert shift == pytest.approx(old[name]["calibration_intercept"]["estimate"], abs=1e-8)
        assert new[name]["calibration_intercept"]["estimate"] == pytest.approx(0.0, abs=1e-8)
        # An intercept changes no ranking: the C statistic stays exactly the same.
        assert new[name]["c_index"]["estimate"] == old[name]["c_index"]["estimate"]
    for name in ("efs", "os"):
        factor = math.exp(after.manifest["lineage"]["models"][name]["parameters"]["intercept_shift"])
        assert np.asarray(after.params["models"][name]["baseline_survival"]) == pytest.approx(
            np.asarray(before.params["models"][name]["baseline_survival"]) ** factor)
        assert new[name]["harrell_c"] == old[name]["harrell_c"]


def test_recalibration_gives_slope_one_on_its_own_cohort(trained_bundle_path, tmp_path):
    out = tmp_path / "recalibrated"
    update_bundle(trained_bundle_path, CENTER, out, "recalibrate", bootstrap=5)
    after = load_predictor(out)
    new = validate_models(after.params, after.manifest, derive(read_cohort(CENTER)))
    for name in ("cr", "severe_crs"):
        assert new[name]["calibration_slope"]["estimate"] == pytest.approx(1.0, abs=1e-6)


def test_refit_is_the_training_procedure_on_the_center_cohort(trained_bundle_path, tmp_path):
    out = tmp_path / "refit"
    manifest = update_bundle(trained_bundle_path, CENTER, out, "refit", bootstrap=5)
    after = load_predictor(out)
    cohort = derive(read_cohort(CENTER))
    spec = after.params["models"]["severe_crs"]
    fit = fit_logistic(bm.standardized(spec, cohort) * spec["scale"] + spec["center"],
                       cohort["severe_crs"].to_numpy())
    assert spec["coef"] == pytest.approx(fit.coef.tolist(), abs=1e-10)
    assert manifest["models"]["severe_crs"]["n"] == len(cohort)
    assert manifest["provenance"] == "center-cohort"


def test_update_refuses_a_bad_cohort_and_writes_nothing(trained_bundle_path, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    text = CENTER.read_text().splitlines()
    fields = text[3].split(",")
    fields[11] = "150"  # marrow_blasts_pct
    bad.write_text("\n".join(text[:3] + [",".join(fields)] + text[4:]) + "\n")
    out = tmp_path / "never"
    code = main(["update", "--bundle", str(trained_bundle_path), "--cohort", str(bad),
                 "--out", str(out), "--bootstrap", "2"])
    err = capsys.readouterr().err
    assert code == 2
    assert "line 4 (patient_id SIM-0003), marrow_blasts_pct: must be between 0 and 100" in err
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]


def test_the_calculator_serves_an_updated_bundle(updated, tmp_path):
    out, manifest = updated
    server, base = start_calculator(out, tmp_path / "serve.log")
    try:
        request = urllib.request.Request(f"{base}/api/v1/predict", data=json.dumps(PATIENT).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            body = json.load(answer)
        with urllib.request.urlopen(f"{base}/about", timeout=10) as page:
            about = page.read().decode()
    finally:
        stop_process(server)
    assert body["model"]["lineage"]["parent_id"] == manifest["lineage"]["parent"]["id"]
    assert 'id="lineage"' in about and manifest["lineage"]["update_cohort"]["sha256"] in about
    assert "78 patients were rebuilt from the paper" in " ".join(about.split())


def test_report_shows_the_lineage(updated, tmp_path):
    out, manifest = updated
    assert main(["report", "--bundle", str(out), "--out", str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text()
    assert 'id="lineage"' in page and manifest["lineage"]["parent"]["id"] in page
    assert "trained on a cohort of 78 patients" in page


def test_an_update_that_cannot_be_estimated_is_refused_and_auto_keeps_the_model(
        trained_bundle_path, tmp_path, capsys):
    tiny = tmp_path / "tiny.csv"
    tiny.write_text("\n".join(CENTER.read_text().splitlines()[:4]) + "\n")  # 3 patients
    out = tmp_path / "recalibrated"
    code = main(["update", "--bundle", str(trained_bundle_path), "--cohort", str(tiny),
                 "--out", str(out), "--method", "recalibrate", "--bootstrap", "2"])
    assert code == 1 and not out.exists()
    assert ("cr: the recalibrate update cannot be estimated on this cohort (not estimable on "
            "these patients" in capsys.readouterr().err)
    with pytest.raises(NothingToUpdate) as kept:
        update_bundle(trained_bundle_path, tiny, tmp_path / "auto", "auto", bootstrap=2)
    assert not (tmp_path / "auto").exists()
    assert all(" none " in line for line in kept.value.lines[1:])


def test_an_update_that_changes_no_model_writes_nothing_and_says_so(trained_bundle_path, tmp_path,
                                                                     capsys):
    tiny = tmp_path / "one.csv"
    tiny.write_text("\n".join(CENTER.read_text().splitlines()[:2]) + "\n")  # 1 patient
    out = tmp_path / "kept"
    code = main(["update", "--bundle", str(trained_bundle_path), "--cohort", str(tiny),
                 "--out", str(out), "--bootstrap", "2"])
    printed = capsys.readouterr().out
    assert code == 0 and not out.exists()
    assert f"nothing written: no model changed" in printed and str(out) in printed


def test_an_update_cohort_outside_the_training_range_is_warned_about_and_recorded(
        trained_bundle_path, loaded_bundle, tmp_path, capsys):
    from model.cohort import write_cohort

    cohort = read_cohort(CENTER)
    high = cohort.index[:20]
    cohort.loc[high, "marrow_blasts_pct"] = 97.0  # above every training patient (max 92.5-95 %)
    wide = tmp_path / "wide.csv"
    write_cohort(cohort, wide)
    parent_high = loaded_bundle.manifest["models"]["cr"]["field_ranges"]["marrow_blasts_pct"][1]
    assert parent_high < 97
    out = tmp_path / "updated"
    assert main(["update", "--bundle", str(trained_bundle_path), "--cohort", str(wide), "--out",
                 str(out), "--method", "intercept", "--bootstrap", "2"]) == 0
    err = capsys.readouterr().err
    assert (f"warning: cr: marrow_blasts_pct: the cohort spans 0-97, outside the training range "
            f"0-{parent_high:g} (20 patients outside)") in err
    manifest = load_predictor(out).manifest
    assert manifest["models"]["cr"]["field_ranges"]["marrow_blasts_pct"] == [0.0, 97.0]
    assert manifest["lineage"]["range_warnings"]["cr"]
    assert manifest["models"]["cr"]["warnings"][0].startswith(
        "The update cohort lies outside the parent's training range")
    assert main(["validate", "--bundle", str(trained_bundle_path), "--cohort", str(wide)]) == 0
    printed = capsys.readouterr().out
    assert "warning: the cohort lies outside the model's training range: marrow_blasts_pct" in printed
