"""The pooled model's validation, the coefficient table for shrunk fits, and the card's words.

R cross-check: tests/reference/ensemble_member_validation.R (inputs by
tests/reference/ensemble_member_inputs.py) recomputes one member's optimism bootstrap on our
resamples and runs rms::validate with five seeds; the figures are pinned in
tests/reference/ensemble_member_validation.out, so no R is needed here.
"""
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest

from model import card_text
from model.bundle import load_predictor, verify_bundle
from model.cohort import read_cohort
from model.predictor import predict_points
from training.development.bootstrap import bootstrap_refits, optimism_bootstrap
from training.development.pooling import merged_warnings, pooled_coefficients
from training.evaluation.concordance import auc
from training.paper.analyses import derive
from training.paper.ensemble import read_index

REFERENCE = Path(__file__).parent / "reference"


def _inputs():
    spec = importlib.util.spec_from_file_location("ensemble_member_inputs",
                                                  REFERENCE / "ensemble_member_inputs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _r_output() -> tuple[dict, np.ndarray]:
    same, seeds = {}, []
    for line in (REFERENCE / "ensemble_member_validation.out").read_text().splitlines():
        words = line.split()
        if words[0] == "same_resamples":
            same.update({words[i]: float(words[i + 1]) for i in range(1, len(words), 2)})
        elif words[0] == "rms_validate":
            seeds.append((float(words[4]), float(words[6])))
    return same, np.array(seeds)


@pytest.fixture(scope="module")
def member0():
    inputs = _inputs()
    return inputs, inputs.mle_bootstrap()


def test_member_bootstrap_equals_r_on_the_same_resamples(member0):
    inputs, result = member0
    rows = np.loadtxt(REFERENCE / "ensemble_member0_resamples.csv", delimiter=",", dtype=int)
    np.testing.assert_array_equal(result.samples + 1, rows)  # the pinned resamples are ours
    X, y = inputs.member0_cr()
    data = np.loadtxt(REFERENCE / "ensemble_member0_cr.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(data[:, :2], X)
    np.testing.assert_array_equal(data[:, 2], y)
    same, _ = _r_output()
    assert result.apparent["c_index"] == pytest.approx(same["apparent_C"], abs=1e-9)
    assert result.optimism_corrected["c_index"] == pytest.approx(same["corrected_C"], abs=1e-5)
    assert result.optimism_corrected["calibration_slope"] == pytest.approx(same["corrected_slope"], abs=1e-6)


def test_member_bootstrap_agrees_with_rms_validate_within_its_monte_carlo_noise(member0):
    _, result = member0
    _, seeds = _r_output()
    for column, metric in ((0, "c_index"), (1, "calibration_slope")):
        values = seeds[:, column]
        assert abs(result.optimism_corrected[metric] - values.mean()) < 4 * values.std(ddof=1) + 1e-3


def test_more_refits_continue_the_bootstrap_sequence(member0):
    inputs, _ = member0
    X, y = inputs.member0_cr()
    data = {"X": X, "y": y}
    first = optimism_bootstrap(inputs._fit, inputs._evaluate, data, 3, 11)
    whole = optimism_bootstrap(inputs._fit, inputs._evaluate, data, 6, 11)
    fits, rows = bootstrap_refits(inputs._fit, data, 11, 3, 6)
    np.testing.assert_array_equal(whole.samples, np.concatenate([first.samples, rows]))
    np.testing.assert_allclose([f.coef for f in fits], [f.coef for f in whole.fits[3:]])


def _member_cohorts(directory):
    _, paths = read_index(directory)
    return [derive(read_cohort(p)) for p in paths]


def test_the_card_validates_the_served_pooled_model(ensemble_bundle_path, small_ensemble_dir):
    """Apparent figures are the served predictor's on each reconstruction, summarized by median."""
    bundle = load_predictor(ensemble_bundle_path)
    card = bundle.manifest["models"]["cr"]
    validation = card["validation"]
    cohorts = _member_cohorts(small_ensemble_dir)
    served = [auc(c["cr"].to_numpy(int), predict_points(bundle, {f: c[f].to_numpy() for f in c})["cr"])
              for c in cohorts]
    block = validation["metrics"]["c_index"]["apparent"]
    assert block["median"] == pytest.approx(float(np.median(served)), abs=1e-9)
    assert block["iqr"] == pytest.approx(np.quantile(served, [0.25, 0.75]).tolist(), abs=1e-9)
    assert validation["replicates"] == bundle.manifest["ensemble"]["validation_replicates"] == 12
    corrected = validation["metrics"]["c_index"]["corrected"]
    assert corrected["iqr"][0] <= corrected["median"] <= corrected["iqr"][1]
    assert card["optimism_corrected"]["c_index"] == corrected["median"]
    assert validation["metrics"]["c_index"]["estimable_replicates"] <= 12


def test_flat_fits_are_counted_and_a_flat_pooled_model_has_no_numbers(ensemble_bundle_path):
    manifest = verify_bundle(ensemble_bundle_path)
    for name, card in manifest["models"].items():
        flat = card["validation"]["flat"]
        shrinkage = card["penalty"]["shrinkage_by_member"]
        if card["method"]["name"] == "heuristic_shrinkage":
            assert flat["members"] == sum(s <= 0 for s in shrinkage), name
        assert 0 <= flat["refits"] <= flat["refits_of"] == 3 * 12
        if card["validation"]["pooled_flat"]:
            assert card_text.validation_text(card, "c_index", "corrected") == card_text.FLAT_TEXT
            assert card["optimism_corrected"]["calibration_slope"] is None
        else:
            assert re.fullmatch(r"-?\d\.\d{3} \(IQR -?\d\.\d{3} to -?\d\.\d{3}\)",
                                card_text.validation_text(card, "c_index", "corrected"))
    flat_card = {"validation": {"pooled_flat": True, "metrics": {}}}
    assert card_text.validation_text(flat_card, "calibration_slope", "apparent") == card_text.FLAT_TEXT


def test_card_fields_of_one_member_are_labelled(ensemble_bundle_path):
    manifest = verify_bundle(ensemble_bundle_path)
    for card in manifest["models"].values():
        assert "reconstruction 1" in card["penalty"]["of"] and "reconstruction 1" in card["sample_size"]["of"]
        assert len(card["penalty"]["shrinkage_by_member"]) == 3
        assert card["tuning"]["resamples"] == 3 * 4  # summed over the members' kept refits
        if card["kind"] == "cox":
            assert "reconstruction 1" in card["ph_test"]["of"]


def test_no_zero_width_interval_for_a_coefficient_shrunk_to_zero():
    coefficient = {"estimate": 0.0, "ci95": [0.0, 0.0], "ratio": 1.0, "ratio_ci95": [1.0, 1.0],
                   "shrunk_to_zero": True, "unshrunk_ci95": [-0.5, 0.25]}
    text = card_text.coefficient_text(coefficient)
    assert text == f"{card_text.SHRUNK_TEXT}; unshrunk 95 % CI {np.exp(-0.5):.2f} to {np.exp(0.25):.2f}"
    assert "1.00 to 1.00" not in text


def test_pooled_se_does_not_treat_flat_members_as_certain():
    # two members flat (0), one with an effect; refits spread around both
    member = np.array([[0.0], [0.0], [-0.6]])
    boot = np.array([[0.0]] * 50 + [[-0.3]] * 25 + [[-0.9]] * 25)
    out = pooled_coefficients(["x"], member, boot, np.array([1.0]), [{}, {}, {}], "odds_ratio")["x"]
    assert out["se"] == pytest.approx(boot[:, 0].std(ddof=1))
    assert out["refits_at_no_effect"] == 0.5
    assert out["across_members"]["no_effect"] == 2 and out["across_members"]["with_effect_range"] == [-0.6, -0.6]
    assert not out["shrunk_to_zero"]
    all_flat = pooled_coefficients(["x"], np.zeros((2, 1)), np.zeros((10, 1)), np.array([2.0]),
                                   [{"x": [-0.2, 0.1]}, {"x": [-0.4, 0.3]}], "hazard_ratio")["x"]
    assert all_flat["shrunk_to_zero"] and all_flat["unshrunk_ci95"] == [-0.4, 0.3]


def test_an_interval_ending_at_zero_through_flat_refits_says_so():
    coefficient = {"estimate": -0.5, "ci95": [-0.9, 0.0], "ratio": np.exp(-0.5),
                   "ratio_ci95": [np.exp(-0.9), 1.0], "refits_at_no_effect": 0.1,
                   "across_members": {"no_effect": 0, "with_effect_range": [-0.92, -0.28]}}
    text = card_text.coefficient_text(coefficient)
    assert "every reconstruction estimates an effect (-0.92 to -0.28 per unit)" in text
    assert "10 % of refits shrunk to zero" in text
    both_signs = {**coefficient, "across_members": {"no_effect": 0, "with_effect_range": [-0.04, 0.05]}}
    assert "every reconstruction" not in card_text.coefficient_text(both_signs)


def test_member_warnings_merge_into_one_line_with_ranges():
    lines = merged_warnings([["13 events: 6.5 per variable.", "PH p = 0.017 < 0.05."],
                             ["23 events: 11.5 per variable."], ["13 events: 6.5 per variable."]])
    assert lines == ["13-23 events: 6.5-11.5 per variable.", "PH p = 0.017 < 0.05. (in 1 of 3 reconstructions)"]


def test_limitations_one_line_per_kind_with_the_detail_folded(ensemble_bundle_path):
    manifest = verify_bundle(ensemble_bundle_path)
    lines, detail = card_text.limitations(manifest)
    assert len(lines) <= card_text.MAX_LIMITATION_LINES
    assert len(detail) == sum(len(card["warnings"]) for card in manifest["models"].values())
    kinds = [line.split(":")[0] for line in lines]
    assert len(kinds) == len(set(kinds))  # no kind twice
    headline = card_text.headline(manifest)
    assert 3 <= len(headline) <= card_text.MAX_HEADLINE_LINES
    assert "78 patients in each of 3 reconstructed cohorts" in headline[0]


def test_about_and_report_show_the_pooled_validation(ensemble_bundle_path, tmp_path):
    from calculator import create_app
    from training.report.page import render_report

    app = create_app({"BUNDLE_PATH": str(ensemble_bundle_path), "TESTING": True})
    page = app.test_client().get("/about").get_data(as_text=True)
    assert 'id="in-short"' in page and 'id="limitation-detail"' in page
    assert "replicates of the whole ensemble procedure" in page
    assert "(IQR " in page and "prediction interval" not in page
    items = re.search(r'<ul id="limitation-lines">(.*?)</ul>', page, re.S).group(1)
    assert items.count("<li>") <= card_text.MAX_LIMITATION_LINES
    report = render_report(ensemble_bundle_path)
    assert 'id="fig-pooled-calibration-cr"' in report and 'id="in-short"' in report
    assert "Wald" not in report.split('id="coefficients-cr"')[0].rsplit("<h3>Coefficients</h3>", 1)[1]


def test_validation_replicates_resample_the_same_positions_in_every_member(small_ensemble_dir):
    from training.train_ensemble import _fit_member, matched_order, validation_seed

    cohorts = _member_cohorts(small_ensemble_dir)[:2]
    features = ("log10_blasts", "age_years")
    runs = [_fit_member("cr", c, features, 2, 5, 100 + k, validation_seed(100), None, {"method": "mle"})
            for k, c in enumerate(cohorts)]
    assert runs[0][2].shape == (5, 78)
    orders = [matched_order(c) for c in cohorts]
    positions = [np.argsort(order)[rows] for order, rows in zip(orders, (r[2] for r in runs))]
    np.testing.assert_array_equal(positions[0], positions[1])  # shared positions (no redraws here)
    for column in ("cr", "severe_crs"):  # published counts by burden group: the same cells line up
        cells = [(c.iloc[o]["marrow_blasts_pct"] < 5).astype(str) + c.iloc[o][column].astype(str)
                 for c, o in zip(cohorts, orders)]
        assert (cells[0].to_numpy() == cells[1].to_numpy()).mean() > 0.9
    assert not np.array_equal(runs[0][0].result.samples, runs[1][0].result.samples)  # served: own


def test_an_updated_copy_of_a_pooled_card_shows_its_own_validation(ensemble_bundle_path):
    card = dict(verify_bundle(ensemble_bundle_path)["models"]["cr"])
    assert card_text.pooled_validation(card) is not None
    card["optimism_corrected"] = {**card["optimism_corrected"], "c_index": 0.61234}  # re-validated
    assert card_text.pooled_validation(card) is None
    assert card_text.validation_text(card, "c_index", "corrected") == "0.612"
