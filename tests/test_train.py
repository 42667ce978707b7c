"""Training: bundle contents, determinism, band table, atomicity, missing outcomes, refits."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model.bundle import load_predictor, verify_bundle
from model.cohort import CohortError, read_cohort
from model.errors import BundleError
from model.features import design_matrix
from training.development import methods
from training.evaluation import ph_test
from training.development.fit_models import DEFAULT_METHODS
from training.paper.analyses import derive
from training.evaluation.bands import isotonic_rates, wilson_interval
from training.development.config import ConfigError, load_config
from training.train import (PROVENANCE_CENTER, PROVENANCE_RECONSTRUCTED, TrainingError, month_grid,
                            train, train_command)
from conftest import RECONSTRUCTED_COHORT, TEST_BOOTSTRAP, TEST_SEED

REPO = Path(__file__).resolve().parents[1]
COHORT = REPO / "training" / "data" / "reconstructed_cohort.csv"
B = 20
SEED = 20170201
METRIC_KEYS = {"c_index", "calibration_slope", "calibration_intercept", "brier", "ici", "e50", "e90"}


@pytest.fixture(scope="session")
def bundle(reconstructed_bundle_path) -> Path:
    """train(COHORT, bootstrap=B, seed=SEED, jobs=1): conftest trains it once for this module
    and test_report.py."""
    assert (COHORT, B, SEED) == (RECONSTRUCTED_COHORT, TEST_BOOTSTRAP, TEST_SEED)
    return reconstructed_bundle_path


def manifest_of(bundle_dir: Path) -> dict:
    return json.loads((bundle_dir / "manifest.json").read_text())


def write_csv(df: pd.DataFrame, path: Path) -> Path:
    df.to_csv(path, index=False, lineterminator="\n")
    return path


def strict_json(path: Path):
    def refuse(constant):
        raise AssertionError(f"{path.name} holds {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


# --------------------------------------------------------------------------- contents


def test_manifest_follows_the_bundle_format(bundle):
    manifest = strict_json(bundle / "manifest.json")
    assert manifest["format_version"] == 1
    assert manifest["provenance"] == PROVENANCE_RECONSTRUCTED
    assert manifest["seed"] == SEED and manifest["bootstrap"] == B
    assert manifest["training_data"]["n"] == 78
    assert manifest["crs_scale"] == "CTCAE v4.03"
    assert {"python", "numpy", "scikit-learn", "lifelines"} <= set(manifest["packages"])
    assert set(manifest["models"]) == {"cr", "severe_crs", "efs", "os"}
    for name, entry in manifest["models"].items():
        assert entry["n"] == 78 and entry["bootstrap"] == B
        for block in ("apparent", "optimism", "optimism_corrected"):
            assert set(entry[block]) == METRIC_KEYS
        assert entry["events_per_variable"] == pytest.approx(entry["events"] / len(entry["features"]))
        kind = entry["kind"]
        assert entry["method"]["name"] == DEFAULT_METHODS[kind] == manifest["methods"][kind]["name"]
        assert entry["penalty"]["method"] == entry["method"]["name"]
        if entry["penalty"]["kind"] == "ridge":
            assert entry["penalty"]["lambda"] in entry["penalty"]["grid"]
        assert entry["tuning"]["resamples"] == B
        # the card's headline is the Efron-Gong mean; the median is beside it
        assert entry["optimism_summary"] == {m: "mean" for m in METRIC_KEYS}
        for metric in METRIC_KEYS:
            if entry["optimism_corrected"][metric] is not None:
                assert entry["optimism_corrected"][metric] == pytest.approx(
                    entry["apparent"][metric] - entry["optimism"][metric])
        # one verdict on calibration: never "too extreme" next to "over-shrunk"
        text = " ".join(entry["warnings"])
        assert not ("too extreme" in text and "over-shrunk" in text), entry["warnings"]
        assert "criteria" in entry["sample_size"] and entry["sample_size"]["warning"]
        for feature in entry["features"]:
            assert feature["min"] <= feature["max"]
            assert feature["field"] in entry["field_ranges"]
        for coefficient in entry["coefficients"].values():
            assert coefficient["ratio"] == pytest.approx(np.exp(coefficient["estimate"]))
            low, high = coefficient["ratio_ci95"]
            assert low < coefficient["ratio"] < high
        if entry["kind"] == "cox":
            assert entry["horizon_months"] == 12
            assert set(entry["ph_test"]["covariates"]) == {f["name"] for f in entry["features"]}
    # EPV counts the smaller class: 13 non-responders for CR, 23 severe CRS events.
    assert manifest["models"]["cr"]["events"] == 13
    assert manifest["models"]["severe_crs"]["events"] == 23


def test_predictor_json_matches_the_manifest_and_loads(bundle):
    params = strict_json(bundle / "predictor.json")
    cohort = read_cohort(COHORT)
    last = max(cohort.efs_months.max(), cohort.os_months.max())
    grid = np.asarray(params["month_grid"])
    assert grid[0] == 0 and np.allclose(np.diff(grid), 0.5) and last - 0.5 < grid[-1] <= last
    for name, model in params["models"].items():
        assert len(model["bootstrap"]["coef"]) == B
        if model["kind"] == "cox":
            assert len(model["baseline_survival"]) == grid.size
            assert np.asarray(model["bootstrap"]["baseline_survival"]).shape == (B, grid.size)
    loaded = load_predictor(bundle)
    assert set(loaded.predictor.models) == {"cr", "severe_crs", "efs", "os"}


def test_coefficients_equal_a_refit_with_the_engine(bundle):
    manifest, params = manifest_of(bundle), strict_json(bundle / "predictor.json")
    df = derive(read_cohort(COHORT))
    for name, outcome in (("cr", "cr"), ("severe_crs", "severe_crs"), ("efs", "efs"), ("os", "os")):
        features = [f["name"] for f in manifest["models"][name]["features"]]
        X = design_matrix(df, features)
        method = manifest["models"][name]["method"]["name"]
        if name in ("cr", "severe_crs"):
            fit = methods.fit_logistic_method(method, X, df[outcome].to_numpy(int))
            assert manifest["models"][name]["intercept"] == pytest.approx(fit.intercept_original, abs=1e-10)
            assert params["models"][name]["intercept"] == pytest.approx(fit.intercept, abs=1e-10)
        else:
            fit = methods.fit_cox_method(method, X, df[f"{outcome}_months"], df[f"{outcome}_event"])
        estimates = [manifest["models"][name]["coefficients"][f]["estimate"] for f in features]
        np.testing.assert_allclose(estimates, fit.coef_original, atol=1e-10)
        np.testing.assert_allclose(params["models"][name]["coef"], fit.coef, atol=1e-10)
        assert manifest["models"][name]["penalty"]["lambda"] == fit.lam


def test_same_result_for_any_number_of_jobs(bundle, tmp_path):
    other = tmp_path / "jobs2"
    train(COHORT, other, bootstrap=B, seed=SEED, jobs=2)
    assert (bundle / "predictor.json").read_bytes() == (other / "predictor.json").read_bytes()
    first, second = manifest_of(bundle), manifest_of(other)
    for manifest in (first, second):
        manifest.pop("created")
    assert first == second
    assert (bundle / "estimators.joblib").read_bytes() == (other / "estimators.joblib").read_bytes()


# --------------------------------------------------------------------------- sCRS bands


def test_band_table_counts_and_monotone_smoothing(bundle):
    bands = manifest_of(bundle)["scrs_bands"]
    raw = pd.read_csv(COHORT)
    blasts, severe = raw["marrow_blasts_pct"], raw["crs_grade"] >= 3
    masks = {"a": blasts == 0, "b": (blasts > 0) & (blasts < 5), "c": (blasts >= 5) & (blasts < 20),
             "d": (blasts >= 20) & (blasts < 50), "e": blasts >= 50}
    assert [b["subgroup"] for b in bands] == list("abcde")
    for band in bands:
        mask = masks[band["subgroup"]]
        assert band["n"] == int(mask.sum()) and band["events"] == int(severe[mask].sum())
        assert band["rate"] == pytest.approx(band["events"] / band["n"])
    smoothed = [b["smoothed_rate"] for b in bands]
    assert all(a <= b + 1e-12 for a, b in zip(smoothed, smoothed[1:]))
    assert sum(b["n"] for b in bands) == 78
    weighted = sum(b["n"] * b["smoothed_rate"] for b in bands)
    assert weighted == pytest.approx(sum(b["events"] for b in bands))
    assert strict_json(bundle / "predictor.json")["scrs_bands"] == bands


def test_wilson_interval_matches_statsmodels():
    from statsmodels.stats.proportion import proportion_confint

    for events, n in [(0, 13), (1, 13), (3, 20), (10, 18), (18, 18), (5, 1000)]:
        expected = proportion_confint(events, n, method="wilson")
        assert wilson_interval(events, n) == pytest.approx(expected, abs=1e-12)
    assert wilson_interval(0, 0) is None


def test_isotonic_pools_a_decreasing_pair():
    smoothed = isotonic_rates(np.array([2, 1, 5]), np.array([10, 10, 10]))
    np.testing.assert_allclose(smoothed, [0.15, 0.15, 0.5])


# --------------------------------------------------------------------------- integrity


def test_a_changed_byte_in_predictor_json_is_refused(bundle, tmp_path):
    copy = tmp_path / "tampered"
    shutil.copytree(bundle, copy)
    content = bytearray((copy / "predictor.json").read_bytes())
    content[len(content) // 2] ^= 0x01
    (copy / "predictor.json").write_bytes(bytes(content))
    with pytest.raises(BundleError) as error:
        verify_bundle(copy)
    assert error.value.check == "file-hash" and error.value.file == "predictor.json"
    with pytest.raises(BundleError):
        load_predictor(copy)


def test_failure_mid_training_keeps_the_earlier_bundle(bundle, tmp_path, monkeypatch):
    out = tmp_path / "bundle"
    shutil.copytree(bundle, out)
    before = (out / "manifest.json").read_bytes()

    def boom(*args, **kwargs):
        raise RuntimeError("interrupted while testing proportional hazards")

    monkeypatch.setattr(ph_test, "cox_zph", boom)  # after both logistic models were fitted
    with pytest.raises(RuntimeError, match="interrupted"):
        train(COHORT, out, bootstrap=3, seed=1)
    assert verify_bundle(out) and (out / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["bundle"]


def test_failure_while_writing_keeps_the_earlier_bundle(bundle, tmp_path, monkeypatch):
    import joblib

    out = tmp_path / "bundle"
    shutil.copytree(bundle, out)
    before = (out / "manifest.json").read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full while testing")

    monkeypatch.setattr(joblib, "dump", boom)
    with pytest.raises(OSError, match="disk full"):
        train(COHORT, out, bootstrap=3, seed=1)
    assert verify_bundle(out) and (out / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["bundle"]


def test_invalid_cohort_is_refused_and_keeps_the_earlier_bundle(bundle, tmp_path):
    out = tmp_path / "bundle"
    shutil.copytree(bundle, out)
    raw = pd.read_csv(COHORT, dtype=str, keep_default_na=False)
    raw.loc[4, "marrow_blasts_pct"] = "150"
    with pytest.raises(CohortError, match="line 6"):
        train(write_csv(raw, tmp_path / "bad.csv"), out, bootstrap=3)
    assert verify_bundle(out)


# --------------------------------------------------------------------------- missing outcomes


def test_missing_outcome_column_drops_only_that_model(tmp_path, capsys):
    raw = pd.read_csv(COHORT, dtype=str, keep_default_na=False).drop(columns=["os_months", "os_event"])
    path = write_csv(raw, tmp_path / "no_os.csv")
    assert train_command(path, tmp_path / "bundle", bootstrap=3, seed=1) == 0
    manifest = manifest_of(tmp_path / "bundle")
    assert manifest["provenance"] == PROVENANCE_CENTER
    assert set(manifest["models"]) == {"cr", "severe_crs", "efs"}
    reason = manifest["unavailable_models"]["os"]
    assert "os model unavailable" in reason and "os_months" in reason and "os_event" in reason
    assert "os" not in strict_json(tmp_path / "bundle" / "predictor.json")["models"]
    printed = capsys.readouterr().out
    assert "not trained: os model unavailable" in printed and "cr " in printed and "EPV=" in printed


def test_missing_every_outcome_column_is_a_clear_error(tmp_path, capsys):
    raw = pd.read_csv(COHORT, dtype=str, keep_default_na=False).drop(
        columns=["response", "crs_grade", "efs_months", "efs_event", "os_months", "os_event"])
    path = write_csv(raw, tmp_path / "no_outcomes.csv")
    with pytest.raises(TrainingError) as error:
        train(path, tmp_path / "bundle", bootstrap=3)
    message = str(error.value)
    for text in ("no model can be fitted", "response", "crs_grade", "efs_months", "os_event"):
        assert text in message
    assert not (tmp_path / "bundle").exists()
    assert train_command(path, tmp_path / "bundle", bootstrap=3) == 1
    assert "cart-risk train: " in capsys.readouterr().err


# --------------------------------------------------------------------------- configuration


def test_default_config_is_the_documented_feature_set():
    """Round 5 of the method study (Amendment 4): log10 blasts alone for every model."""
    config = load_config()
    assert config.models == {name: ("log10_blasts",) for name in ("cr", "severe_crs", "efs", "os")}


def test_a_default_bundle_asks_only_blasts_and_mrd_status(tmp_path):
    from model.bundle import load_predictor
    from model.patient_schema import patient_json_schema
    from training.reproduce import default_cohort_path

    train(default_cohort_path(), tmp_path / "b", bootstrap=2, seed=1, jobs=1, progress=False)
    required = list(load_predictor(tmp_path / "b").predictor.required_fields)
    assert required == ["marrow_blasts_pct", "mrd_positive"]
    assert patient_json_schema(required)["required"] == required  # what OpenAPI documents


@pytest.mark.parametrize("text, key", [
    ('[models.cr]\nfeatures = ["log10_blasts", "age"]\n', "models.cr.features[1]"),
    ('[models.crs]\nfeatures = ["log10_blasts"]\n', "models.crs"),
    ('[models.cr]\nfeatures = ["log10_blasts"]\npenalty = 1\n', "models.cr.penalty"),
    ('[model.cr]\nfeatures = ["log10_blasts"]\n', "model"),
    ('[models.cr]\nfeatures = ["age_years", "age_years"]\n', "models.cr.features[1]"),
])
def test_config_errors_name_file_and_key(tmp_path, text, key):
    path = tmp_path / "features.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value).startswith(f"{path}: {key}:")


def test_a_center_config_trains_only_its_models(tmp_path):
    path = tmp_path / "features.toml"
    path.write_text('[models.severe_crs]\nfeatures = ["log10_blasts"]\n')
    manifest = train(COHORT, tmp_path / "bundle", bootstrap=3, features_path=path)
    assert list(manifest["models"]) == ["severe_crs"]
    assert [f["name"] for f in manifest["models"]["severe_crs"]["features"]] == ["log10_blasts"]
    assert "not configured" in manifest["unavailable_models"]["cr"]
    assert manifest["features_config"]["source"] == str(path)


def test_bootstrap_must_be_positive(tmp_path):
    with pytest.raises(TrainingError, match="bootstrap"):
        train(COHORT, tmp_path / "bundle", bootstrap=0)


def test_month_grid_stops_at_the_last_follow_up():
    assert month_grid(2.2).tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert month_grid(2.0).tolist()[-1] == 2.0
