"""External validation (training/external/validation.py) on data whose truth is known."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lifelines import KaplanMeierFitter

from model.bundle import TRAINING_DATA
from model.cohort import read_cohort
from training.development import bundle_models as bm
from training.paper.analyses import derive
from training.external.center_simulation import Miscalibration, simulate_center
from training.external.validation import (binary_validation, delong_auc, km_at,
                                          survival_validation, uno_c, validate_models)
from training.evaluation.metrics import censoring_survival
from training.validate import validation_report

REFERENCE = Path(__file__).parent / "reference"
CENTER = Path(__file__).parent / "data" / "synthetic_center_cohort.csv"


def _shared_figures(result: dict) -> dict:
    """The figures that the bundle's ``apparent`` block also holds, keyed as there."""
    if result["kind"] == "logistic":
        return {"c_index": result["c_index"]["estimate"],
                "calibration_slope": result["calibration_slope"]["estimate"],
                "calibration_intercept": result["calibration_intercept"]["estimate"],
                "brier": result["brier"], "ici": result["ici"], "e50": result["e50"],
                "e90": result["e90"]}
    calibration = result["calibration"]
    return {"c_index": result["harrell_c"],
            "calibration_slope": calibration["calibration_slope"]["estimate"],
            "calibration_intercept": calibration["log_observed_expected"]["estimate"],
            "brier": result["brier"], "ici": calibration["ici"], "e50": calibration["e50"],
            "e90": calibration["e90"]}


def test_validating_on_the_training_cohort_reproduces_the_apparent_figures(trained_bundle_path,
                                                                           loaded_bundle):
    report = validation_report(trained_bundle_path, trained_bundle_path / TRAINING_DATA, raw=True)
    assert set(report["models"]) == {"cr", "severe_crs", "efs", "os"}
    for name, result in report["models"].items():
        apparent = loaded_bundle.manifest["models"][name]["apparent"]
        assert _shared_figures(result) == apparent, name  # exactly, not approximately
        assert result["n"] == loaded_bundle.manifest["models"][name]["n"]


@pytest.fixture(scope="module")
def training_cohort(trained_bundle_path):
    return read_cohort(trained_bundle_path / TRAINING_DATA)


def _covered(interval, truth) -> bool:
    return interval is not None and interval[0] <= truth <= interval[1]


@pytest.mark.parametrize("truth, model, figure, value", [
    (Miscalibration(intercept=1.0), "severe_crs", ("calibration_intercept",), 1.0),
    (Miscalibration(slope=0.5), "severe_crs", ("calibration_slope",), 0.5),
    (Miscalibration(hazard_ratio=2.0), "os", ("calibration", "log_observed_expected"), math.log(2)),
    (Miscalibration(), "cr", ("calibration_intercept",), 0.0),
])
def test_validate_recovers_a_known_miscalibration_inside_its_ci(loaded_bundle, training_cohort,
                                                                 truth, model, figure, value):
    covered = 0
    runs = 8
    for seed in range(runs):
        cohort = derive(simulate_center(loaded_bundle.params, training_cohort, 400, seed, truth,
                                        models=(model,)))
        result = validate_models(loaded_bundle.params, loaded_bundle.manifest, cohort)[model]
        block = result
        for key in figure:
            block = block[key]
        covered += _covered(block["ci95"], value)
    # A 95 % CI covers the truth in 8 of 8 runs with probability 0.66, in 6 or more with 0.994.
    assert covered >= 6, f"{model} {figure}: truth {value} covered in {covered}/{runs} simulations"


def test_models_without_their_columns_are_not_assessable(loaded_bundle, tmp_path):
    cohort = pd.read_csv(CENTER, dtype=str, keep_default_na=False)
    cohort.drop(columns=["crs_grade", "age_years"]).to_csv(tmp_path / "c.csv", index=False)
    result = validate_models(loaded_bundle.params, loaded_bundle.manifest,
                             derive(read_cohort(tmp_path / "c.csv")))
    assert result["severe_crs"] == {"assessable": False, "reason": "the cohort has no crs_grade "
                                    "column (the severe_crs outcome)"}
    assert not result["cr"]["assessable"] and "age_years" in result["cr"]["reason"]
    assert not result["os"]["assessable"] and "age_years" in result["os"]["reason"]


def test_matches_r_reference():
    """R 4.2.2, rms 6.5.0 (val.prob), survival 3.5.3.

    Inputs, R code and its output: tests/reference/validation_*.csv, validation_reference.R and
    validation_reference.txt.
    """
    binary = pd.read_csv(REFERENCE / "validation_binary_input.csv")
    y, p = binary["y"].to_numpy(), binary["p"].to_numpy()
    letters = np.array(["c"] * y.size)
    result = binary_validation(y, p, letters)
    assert result["c_index"]["estimate"] == pytest.approx(0.725160381786888, abs=1e-12)
    assert result["brier"] == pytest.approx(0.261934782993027, abs=1e-12)
    assert result["calibration_slope"]["estimate"] == pytest.approx(0.919491291042225, abs=1e-7)
    assert result["calibration_slope"]["ci95"] == pytest.approx([0.552768378409144, 1.2862142036753], abs=1e-6)
    assert result["calibration_intercept"]["estimate"] == pytest.approx(1.14111424026827, abs=1e-7)
    assert result["calibration_intercept"]["ci95"] == pytest.approx([0.795462372600322, 1.48676610793621], abs=1e-6)
    survival = pd.read_csv(REFERENCE / "validation_survival_input.csv")
    time, event, lp = (survival[c].to_numpy() for c in ("time", "event", "lp"))
    baseline = bm.BaselineHazard(np.array([1.0, 100.0]), np.array([0.05, 1.0]), 100.0, True)
    result = survival_validation(time, event, lp, baseline)
    calibration = result["calibration"]["calibration_slope"]
    assert calibration["estimate"] == pytest.approx(1.03639295968555, abs=1e-6)
    assert calibration["ci95"] == pytest.approx([0.585415653228555, 1.48737026614255], abs=1e-5)
    assert result["harrell_c"] == pytest.approx(0.618064031546334, abs=1e-12)
    rows = result["at_months"]
    assert [r["observed_survival"] for r in rows] == pytest.approx([0.79375, 0.53125, 0.284443801693326], abs=1e-12)
    assert [r["observed_ci95"][0] for r in rows] == pytest.approx([0.722414617664362, 0.451048896439366, 0.207471387459431], abs=1e-10)
    assert [r["observed_ci95"][1] for r in rows] == pytest.approx([0.848665602250768, 0.605012750565193, 0.366050355871384], abs=1e-10)
    assert [r["at_risk"] for r in rows] == [127, 85, 20]


def test_km_matches_lifelines():
    rng = np.random.default_rng(3)
    time = np.round(rng.exponential(12, 120), 1) + 0.1
    event = rng.random(120) < 0.7
    fitted = KaplanMeierFitter().fit(time, event)
    for months in (6.0, 12.0, 24.0):
        ours = km_at(time, event, months)
        assert ours["survival"] == pytest.approx(float(fitted.predict(months)), abs=1e-12)
        bounds = fitted.confidence_interval_survival_function_
        row = bounds[bounds.index <= months].iloc[-1]
        assert ours["ci95"] == pytest.approx([row.iloc[0], row.iloc[1]], abs=1e-9)


def test_uno_c_equals_its_definition_counted_pair_by_pair():
    rng = np.random.default_rng(5)
    n = 60
    time = np.round(rng.exponential(10, n), 0) + 1  # many ties
    event = rng.random(n) < 0.6
    risk = np.round(rng.normal(size=n), 1)
    tau = 15.0
    G = censoring_survival(time, event, time, left=True)
    num = den = 0.0
    for i in range(n):
        if not event[i] or time[i] >= tau:
            continue
        for j in range(n):
            if time[i] < time[j]:
                w = 1 / G[i] ** 2
                den += w
                num += w * (1.0 if risk[i] > risk[j] else 0.5 if risk[i] == risk[j] else 0.0)
    assert uno_c(time, event, risk, tau) == pytest.approx(num / den, abs=1e-12)


def test_delong_standard_error_equals_its_placement_definition():
    rng = np.random.default_rng(8)
    y = rng.random(50) < 0.4
    p = np.round(rng.random(50), 1)  # ties between classes
    pos, neg = p[y], p[~y]
    v10 = np.array([np.mean((x > neg) + 0.5 * (x == neg)) for x in pos])
    v01 = np.array([np.mean((pos > x) + 0.5 * (pos == x)) for x in neg])
    auc, se = delong_auc(y, p)
    assert auc == pytest.approx(v10.mean(), abs=1e-12)
    assert se == pytest.approx(math.sqrt(v10.var(ddof=1) / y.sum() + v01.var(ddof=1) / (~y).sum()),
                               abs=1e-12)
