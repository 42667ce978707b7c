"""The reconstruction ensemble: packaged data, pooling, the ensemble bundle and how it is shown."""
import json
import subprocess
from pathlib import Path
import sys

import numpy as np
import pytest

from model.bundle import load_predictor, verify_bundle
from model.cohort import read_cohort, write_cohort
from model.predictor import predict_points, prediction_answer
from training.fitting import cox, logistic
from training.paper.ensemble import (INDEX_FILE, EnsembleError, build_member, default_ensemble_dir,
                               read_index, unmatched)
from training.development.pooling import merged_warnings, pool_cox, pool_logistic
from training.train_ensemble import PANEL_BLASTS, panel

from conftest import EXAMPLE_PATIENT, TEST_ENSEMBLE_MEMBERS


def test_packaged_ensemble_index_and_hashes():
    index, paths = read_index(default_ensemble_dir())
    assert index["members"] == len(paths) == 20
    splits = [record["assumptions"]["split_index"] for record in index["cohorts"]]
    assert len(set(splits)) == 20  # stratified over the A1 splits: no two members share one


@pytest.mark.slow
def test_packaged_members_reproduce_every_statistic_and_regenerate_byte_for_byte(tmp_path):
    index, paths = read_index(default_ensemble_dir())
    for k in (7,):
        record = index["cohorts"][k]
        assert unmatched(read_cohort(paths[k])) == []
        member = build_member(k, record["seed"], record["assumptions"]["split_index"])
        write_cohort(member.cohort, tmp_path / "again.csv")
        assert (tmp_path / "again.csv").read_bytes() == paths[k].read_bytes()
        assert json.loads(json.dumps(member.assumptions.as_record())) == record["assumptions"]


def test_a_tampered_member_is_refused_naming_the_file(small_ensemble_dir, tmp_path):
    import shutil
    copy = tmp_path / "ensemble"
    shutil.copytree(small_ensemble_dir, copy)
    member = copy / json.loads((copy / INDEX_FILE).read_text())["cohorts"][1]["file"]
    member.write_text(member.read_text().replace("R001", "R999", 1))
    with pytest.raises(EnsembleError, match=member.name):
        read_index(copy)


def _random_logistic(seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(80, 2)) * [1.0, 10.0] + [0.0, 40.0]
    y = (rng.random(80) < 1 / (1 + np.exp(-(0.8 * X[:, 0] + 0.05 * (X[:, 1] - 40))))).astype(int)
    return X, logistic.fit_logistic(X, y)


def test_pooled_logistic_point_is_the_mean_member_linear_predictor():
    members = [_random_logistic(seed) for seed in (1, 2, 3)]
    fits = [fit for _, fit in members]
    center, scale = fits[0].center, fits[0].scale
    pooled = pool_logistic(fits, [[fit] for fit in fits], center, scale)
    x = np.array([[0.5, 35.0], [-1.0, 55.0]])
    own = np.mean([fit.intercept_original + x @ fit.coef_original for fit in fits], axis=0)
    mine = pooled["intercept"] + ((x - center) / scale) @ np.array(pooled["coef"])
    np.testing.assert_allclose(mine, own, rtol=1e-10)
    assert len(pooled["bootstrap"]["coef"]) == 3


def test_pooled_cox_baseline_is_the_mean_log_cumulative_hazard():
    rng = np.random.default_rng(4)
    fits = []
    for _ in range(3):
        X = rng.normal(size=(60, 2))
        time = rng.exponential(10 * np.exp(-0.5 * X[:, 0]))
        event = (rng.random(60) < 0.8).astype(int)
        fits.append(cox.fit_cox(X, time, event))
    grid = np.arange(0, 8.5, 0.5)
    center, scale = fits[0].center, fits[0].scale
    pooled = pool_cox(fits, [[f] for f in fits], center, scale, grid)
    baselines = [cox.restandardize(f, center, scale, grid)[1] for f in fits]
    with np.errstate(divide="ignore"):
        expected = np.exp(-np.exp(np.mean([np.log(-np.log(b)) for b in baselines], axis=0)))
    np.testing.assert_allclose(pooled["baseline_survival"], expected, rtol=1e-10)
    assert pooled["baseline_survival"][0] == 1.0


def test_member_warnings_are_merged_with_their_counts():
    merged = merged_warnings([["slope 1.5 > 1.25", "EPV 6.5"], ["slope 1.7 > 1.25", "EPV 6.5"], ["EPV 6.5"]])
    assert merged == ["slope 1.5-1.7 > 1.25 (in 2 of 3 reconstructions)", "EPV 6.5"]


def test_ensemble_bundle_verifies_and_keeps_the_predictor_format(ensemble_bundle_path):
    manifest = verify_bundle(ensemble_bundle_path)
    ensemble = manifest["ensemble"]
    assert ensemble["members"] == TEST_ENSEMBLE_MEMBERS
    bundle = load_predictor(ensemble_bundle_path)
    for name, spec in bundle.params["models"].items():
        assert len(spec["bootstrap"]["coef"]) == ensemble["bootstrap_per_member"] * TEST_ENSEMBLE_MEMBERS
    assert manifest["training_data"]["members"] == TEST_ENSEMBLE_MEMBERS
    assert manifest["training_data"]["n"] == 78


def test_pooled_points_lie_between_the_members_and_inside_the_interval(ensemble_bundle_path):
    manifest = verify_bundle(ensemble_bundle_path)
    rows = manifest["ensemble"]["outputs"]["rows"]
    assert [row["marrow_blasts_pct"] for row in rows] == list(PANEL_BLASTS)
    for row in rows:
        for key in ("cr", "severe_crs", "efs_12mo", "os_12mo"):
            cell = row[key]
            assert cell["members_min"] - 1e-9 <= cell["pooled"] <= cell["members_max"] + 1e-9
            assert cell["pooled_ci95"][0] <= cell["pooled"] <= cell["pooled_ci95"][1]
    shipped = predict_points(load_predictor(ensemble_bundle_path), panel(), intervals=True)
    np.testing.assert_allclose([r["cr"]["pooled"] for r in rows], shipped["cr"])


def test_noise_covariates_show_their_spread_across_reconstructions(ensemble_bundle_path):
    card = verify_bundle(ensemble_bundle_path)["models"]["efs"]
    for name in ("ph_positive", "prior_hsct", "relapsed"):
        coefficient = card["coefficients"][name]
        low, high = coefficient["ci95"]
        assert low <= coefficient["estimate"] <= high
        spread = coefficient["across_members"]
        assert spread["min"] <= coefficient["estimate"] <= spread["max"]
        assert coefficient["se"] > 0 and "mixture" in coefficient["se_rule"]  # never 0 from flat members


def test_bands_show_the_range_across_reconstructions_beside_the_published_groups(ensemble_bundle_path):
    bundle = load_predictor(ensemble_bundle_path)
    answer = prediction_answer(bundle, {**EXAMPLE_PATIENT, "mrd_positive": True})
    band = answer["severe_crs"]["band"]
    assert band["subgroup"] == "c"
    assert band["published"]["events"] == 19 and band["published"]["n"] == 45
    low, high = band["reconstructed"]["rate_range"]
    ci_low, ci_high = band["observed"]["ci95"]
    assert ci_low <= low <= high <= ci_high  # the interval shown covers every reconstruction
    assert band["reconstructed"]["reconstructions"] == TEST_ENSEMBLE_MEMBERS
    assert "assumed" in answer["model"]["evidence"]["severe_crs.band"]
    assert answer["model"]["evidence"]["severe_crs.band.published"].startswith("published")
    assert list(answer) == ["cr", "severe_crs", "efs", "os", "warnings", "model"]
    assert answer["model"]["reconstructions"] == TEST_ENSEMBLE_MEMBERS
    rows = {row["subgroup"]: row for row in bundle.predictor.scrs_bands.values()}
    assert rows["a"]["published_group"]["events"] == 4 and rows["a"]["published_group"]["n"] == 33


def test_result_page_never_calls_a_reconstructed_count_observed(ensemble_bundle_path):
    from calculator import create_app

    app = create_app({"BUNDLE_PATH": str(ensemble_bundle_path), "TESTING": True,
                      "WTF_CSRF_ENABLED": False})
    client = app.test_client()
    about = client.get("/about").get_data(as_text=True)
    assert "Published (two groups)" in about and "Observed" not in about
    answer = client.post("/api/v1/predict", json=EXAMPLE_PATIENT)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json()["severe_crs"]["band"]["published"]["n"] == 45


def test_cli_refuses_a_bad_ensemble_directory_naming_the_file(tmp_path, capsys):
    from calculator.cli import main

    assert main(["train", "--ensemble", str(tmp_path / "nowhere"), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "ensemble.json" in err and "Traceback" not in err
    assert not (tmp_path / "b").exists()


def test_cli_text_shows_the_band_range_and_the_evidence(ensemble_bundle_path):
    options = [item for name, value in EXAMPLE_PATIENT.items()
               for item in ("--" + name.replace("_", "-"),
                            str(value).lower() if isinstance(value, bool) else str(value))]
    done = subprocess.run([sys.executable, "-m", "calculator.cli", "predict", "--bundle",
                           str(ensemble_bundle_path), *options], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "across 3 reconstructions (assumed subgroup split, not observed)" in done.stdout
    assert "published: severe CRS in 19 of 45" in done.stdout
    assert "Evidence:" in done.stdout and "cohort patients" not in done.stdout


def test_about_page_and_report_show_the_spread_and_the_uninformative_inputs(ensemble_bundle_path):
    from calculator import create_app
    from training.report.page import render_report

    client = create_app({"BUNDLE_PATH": str(ensemble_bundle_path), "TESTING": True}).test_client()
    about = client.get("/about").get_data(as_text=True)
    assert 'id="ensemble-table"' in about and 'id="noise-note"' in about
    report = render_report(ensemble_bundle_path)
    for anchor in ('id="ensemble-outputs"', 'id="informative-inputs"', 'id="scrs-bands"'):
        assert anchor in report
    assert "observed rate" not in report
    assert "unrelated to outcome by construction (A6)" in report


def test_result_page_labels_the_evidence_of_each_number(ensemble_bundle_path):
    from calculator import create_app

    app = create_app({"BUNDLE_PATH": str(ensemble_bundle_path), "TESTING": True,
                      "WTF_CSRF_ENABLED": False})
    page = app.test_client().post("/result", data={key: str(value).lower() if isinstance(value, bool)
                                             else str(value) for key, value in EXAMPLE_PATIENT.items()})
    text = page.get_data(as_text=True)
    assert page.status_code == 200, text[:500]
    assert 'id="evidence"' in text and 'id="scrs-band-range"' in text and 'id="scrs-band-published"' in text
    assert "Observed in cohort" not in text and "model output" in text


def test_an_ensemble_of_other_cohorts_is_not_labelled_reconstructed(small_ensemble_dir, tmp_path):
    import shutil

    from training.train_ensemble import ensemble_provenance

    _, paths = read_index(small_ensemble_dir)
    assert ensemble_provenance(paths) == "reconstructed-from-published-aggregates"
    changed = tmp_path / paths[0].name
    shutil.copy(paths[0], changed)
    cohort = read_cohort(changed)
    cohort.loc[0, "sex"] = "F" if cohort.loc[0, "sex"] == "M" else "M"  # Table 1 counts no longer match
    write_cohort(cohort, changed)
    assert ensemble_provenance([changed, *paths[1:]]) == "center-cohort"


def test_one_reconstruction_is_not_called_observed_either(trained_bundle_path, capsys):
    from calculator import create_app
    from calculator.cli import main
    from training.report.page import render_report

    options = [item for name, value in EXAMPLE_PATIENT.items()
               for item in ("--" + name.replace("_", "-"),
                            str(value).lower() if isinstance(value, bool) else str(value))]
    assert main(["predict", "--bundle", str(trained_bundle_path), *options]) == 0
    assert "patients of the reconstructed cohort (assumed subgroup split)" in capsys.readouterr().out
    assert "observed rate" not in render_report(trained_bundle_path)
    client = create_app({"BUNDLE_PATH": str(trained_bundle_path), "TESTING": True}).test_client()
    about = client.get("/about").get_data(as_text=True)
    assert "Count (assumed split)" in about


@pytest.mark.slow
def test_every_packaged_member_reproduces_every_published_statistic():
    _, paths = read_index(default_ensemble_dir())
    assert {path.name: unmatched(read_cohort(path)) for path in paths} == {path.name: [] for path in paths}


def _broken_ensemble(small_ensemble_dir, tmp_path, edit) -> Path:
    """A copy of the small ensemble whose index is rewritten by ``edit(index, directory)``."""
    import hashlib
    import shutil

    copy = tmp_path / "broken"
    shutil.copytree(small_ensemble_dir, copy)
    index = json.loads((copy / INDEX_FILE).read_text())
    edit(index, copy)
    for record in index["cohorts"] if isinstance(index.get("cohorts"), list) else []:
        path = copy / str(record.get("file", "")) if isinstance(record, dict) else None
        if path is not None and path.is_file() and path.parent == copy:
            record["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (copy / INDEX_FILE).write_text(json.dumps(index))
    return copy


def _longer_member(index, directory):
    member = directory / index["cohorts"][1]["file"]
    lines = member.read_text().splitlines()
    extra = lines[1].split(",")
    extra[0] = "R999"
    member.write_text("\n".join(lines + [",".join(extra)]) + "\n")


def _fewer_columns(index, directory):
    member = directory / index["cohorts"][2]["file"]
    cohort = read_cohort(member)
    write_cohort(cohort.drop(columns=["neurotox_grade"]), member)


def _outside(index, directory):
    index["cohorts"][1]["file"] = "../elsewhere.csv"


def _absolute(index, directory):
    index["cohorts"][0]["file"] = str((directory / index["cohorts"][0]["file"]).resolve())


def _malformed(index, directory):
    index["cohorts"] = ["member_00.csv"]


@pytest.mark.parametrize("edit, message", [
    (_longer_member, r"member 1 has 79 patients but member 0 has 78"),
    (_fewer_columns, r"member 2 has other columns than member 0 \(missing: neurotox_grade"),
    (_outside, r"member 1 \('\.\./elsewhere\.csv'\): member files must lie inside the ensemble"),
    (_absolute, r"member 0 \('/.*'\): member files must lie inside the ensemble folder"),
    (_malformed, r"member 0 has no 'file' name"),
])
def test_train_ensemble_refuses_inconsistent_members_and_keeps_the_existing_bundle(
        small_ensemble_dir, ensemble_bundle_path, tmp_path, capsys, edit, message):
    import re
    import shutil

    from calculator.cli import main

    broken = _broken_ensemble(small_ensemble_dir, tmp_path, edit)
    out = tmp_path / "bundle"
    shutil.copytree(ensemble_bundle_path, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code = main(["train", "--ensemble", str(broken), "--out", str(out), "--bootstrap", "3"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and re.search(message, err), err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken", "bundle"]


def test_a_bundle_that_would_not_load_never_replaces_one_that_does(trained_bundle_path, tmp_path):
    """The content check a load makes runs on the staged bundle, before the swap."""
    import shutil

    from model.bundle import PREDICTOR, load_predictor, write_bundle
    from model.errors import BundleError

    out = tmp_path / "bundle"
    shutil.copytree(trained_bundle_path, out)
    good = load_predictor(out)
    manifest = json.loads(json.dumps(good.manifest))
    manifest["models"]["cr"]["events"] = 83  # of 78 patients: what mismatched members produced
    for key in ("files", "packages", "created"):
        manifest.pop(key)
    params = json.loads((out / PREDICTOR).read_text())
    with pytest.raises(BundleError, match=r"events.*83.*the new bundle would not load, so it was "
                                          r"not written and .* was left as it was"):
        write_bundle(out, manifest, params, {}, out / "training_cohort.csv")
    assert load_predictor(out).id == good.id
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_the_stacked_training_cohort_is_never_read_as_one_cohort(ensemble_bundle_path, tmp_path,
                                                                  capsys):
    from calculator.cli import main
    from model.bundle import load_predictor, read_training_members

    bundle = load_predictor(ensemble_bundle_path)
    members = read_training_members(bundle)
    assert [len(m) for m in members] == [78] * TEST_ENSEMBLE_MEMBERS
    assert "reconstruction" not in members[0].columns
    stacked = ensemble_bundle_path / "training_cohort.csv"
    for command in (["train", "--cohort", str(stacked), "--out", str(tmp_path / "t")],
                    ["update", "--bundle", str(ensemble_bundle_path), "--cohort", str(stacked),
                     "--out", str(tmp_path / "u")],
                    ["validate", "--bundle", str(ensemble_bundle_path), "--cohort", str(stacked)]):
        assert main(command) == 2
        assert f"stacks {TEST_ENSEMBLE_MEMBERS} reconstructions" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
