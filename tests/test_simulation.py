"""The simulation study: its data-generating process, its plumbing, its rule, its committed result."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from calculator.cli import main
from training.simulation import dgp
from training.paper import reconstruction as rec
from training.development.fit_models import DEFAULT_METHODS
from training.simulation.study import (KINDS, SLOPE_TARGET, run_study, select_method, summarize)

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "simulation"
PACKAGED = REPO / "training" / "data" / "simulation"


@pytest.fixture(scope="module")
def big_sample():
    return dgp.sample_patients(np.random.default_rng(11), 20_000)


def test_subgroups_and_rates_follow_the_reconstruction(big_sample):
    shares = big_sample["burden_subgroup"].value_counts(normalize=True)
    for letter, size in rec.SUBGROUP_SIZES.items():
        assert shares[letter] == pytest.approx(size / 78, abs=0.012)
        rows = big_sample[big_sample.burden_subgroup == letter]
        assert rows["cr"].mean() == pytest.approx(1 - rec.SUBGROUP_NR[letter] / size, abs=0.03)
        assert rows["severe_crs"].mean() == pytest.approx(rec.SUBGROUP_SEVERE_CRS[letter] / size, abs=0.035)
        if letter != "a":
            low, high = rec.SUBGROUP_BLAST_RANGE[letter]
            assert rows["marrow_blasts_pct"].between(low, high).all()
    assert (big_sample.loc[big_sample.prior_hsct == 1, "relapsed"] == 1).all()  # A6
    assert big_sample["efs_months"].max() <= rec.MAX_FOLLOW_UP + 0.01  # administrative censoring


def test_monte_carlo_true_survival_risks_agree_with_fresh_uncensored_draws():
    sample = dgp.sample_patients(np.random.default_rng(12), 30_000, censor=False)
    risks = dgp.true_risks()
    for outcome in ("efs", "os"):
        for letter, rows in sample.groupby("burden_subgroup"):
            observed = float(np.mean(rows[f"{outcome}_months"] <= dgp.HORIZON_MONTHS))
            se = np.sqrt(observed * (1 - observed) / len(rows))
            assert abs(observed - risks[outcome][letter]) < 4 * se
    assert all(np.diff([risks["severe_crs"][s] for s in dgp.SUBGROUPS]) > 0)


def test_study_rows_and_summary_are_deterministic():
    kwargs = dict(sizes=(60,), validation_n=1500, methods=("aic_ridge", "heuristic_shrinkage"),
                  outcomes=("severe_crs", "os"))
    first, second = run_study(2, **kwargs), run_study(2, **kwargs)
    pd.testing.assert_frame_equal(first, second)
    assert len(first) == 2 * 2 * 2
    summary = summarize(first)
    assert set(summary.columns) >= {"slope_median", "rmse_mean", "edge_share", "failure_share"}
    assert (summary["rmse_mean"] > 0).all() and (summary["mae_mean"] <= summary["rmse_mean"]).all()


def test_flat_fits_count_every_fit_without_predictor_effects():
    rows = pd.DataFrame({"n": 78, "outcome": "os", "method": "m", "failed": [0, 0, 0, 0, 1],
                         "calibration_slope": [0.9, np.inf, 1.3, np.inf, np.nan],
                         "null_limit": [0, 1, 0, 0, 0], "edge": 0, "rmse": 0.1, "mae": 0.08,
                         "calibration_in_the_large": 0.0, "c_index": 0.6})
    summary = summarize(rows).iloc[0]
    # one flat fit tuned to the limit, one shrunk to nothing; the failed fit is not counted
    assert summary["flat_share"] == 0.5 and summary["null_limit_share"] == 0.25
    assert summary["slope_median"] == np.inf  # (1.3 + inf) / 2: medians count flat fits as inf


def _summary(rows):
    return pd.DataFrame([dict(zip(["n", "outcome", "method", "slope_median", "rmse_mean",
                                   "failure_share", "edge_share"], r)) for r in rows])


def test_rule_picks_the_lowest_rmse_among_the_calibrated():
    summary = _summary([
        (78, "cr", "a", 0.95, 0.080, 0, 0), (78, "severe_crs", "a", 1.05, 0.100, 0, 0),
        (78, "cr", "b", 0.70, 0.070, 0, 0), (78, "severe_crs", "b", 0.80, 0.090, 0, 0),
        (78, "cr", "c", 1.00, 0.079, 0.05, 0), (78, "severe_crs", "c", 1.00, 0.090, 0.05, 0),
        (78, "cr", "d", 1.02, 0.085, 0, 0), (78, "severe_crs", "d", 0.98, 0.101, 0, 0),
    ])
    chosen = select_method(summary, "logistic")
    assert chosen["winner"] == "a" and chosen["target_met"]  # b uncalibrated, c fails too often
    assert sorted(chosen["eligible"]) == ["a", "d"]


def test_rmse_within_one_percent_goes_to_the_slopes_closest_to_one_and_says_so():
    summary = _summary([
        (78, "cr", "a", 0.96, 0.0832, 0, 0), (78, "severe_crs", "a", 1.035, 0.1072, 0, 0),
        (78, "cr", "b", 0.95, 0.0822, 0, 0), (78, "severe_crs", "b", 1.006, 0.1069, 0, 0),
        (78, "cr", "c", 0.99, 0.0900, 0, 0), (78, "severe_crs", "c", 1.0, 0.1100, 0, 0),
    ])
    chosen = select_method(summary, "logistic")
    # b has the lowest RMSE (0.0945), a is 0.7 % above it and closer to 1 (|log 0.96| < |log 0.95|);
    # c is closest to 1 but 5 % worse
    assert chosen["winner"] == "a" and chosen["target_met"]
    assert "within 1 % of the lowest (0.0945, b)" in chosen["reason"]
    alone = select_method(summary[summary.method != "a"], "logistic")
    assert alone["winner"] == "b" and alone["reason"].startswith("lowest mean RMSE")


def test_rule_falls_back_to_the_slopes_closest_to_one():
    summary = _summary([
        (78, "efs", "a", 0.5, 0.10, 0, 0), (78, "os", "a", 0.6, 0.10, 0, 0),
        (78, "efs", "b", 1.5, 0.12, 0, 0), (78, "os", "b", 1.3, 0.12, 0, 0),
        (78, "efs", "c", np.inf, 0.09, 0, 0), (78, "os", "c", 1.0, 0.09, 0, 0),
    ])
    chosen = select_method(summary, "cox")
    assert chosen["winner"] == "b" and not chosen["target_met"]


def test_shipped_defaults_are_the_committed_studys_winners():
    meta = json.loads((PACKAGED / "selection.json").read_text())
    assert (DOCS / "selection.json").read_text() == (PACKAGED / "selection.json").read_text()
    for kind in KINDS:
        assert DEFAULT_METHODS[kind] == meta["selection"][kind]["winner"]
    summary = pd.read_csv(PACKAGED / "summary.csv")
    recomputed = {kind: select_method(summary, kind)["winner"] for kind in KINDS}
    assert recomputed == DEFAULT_METHODS  # the rule, applied again to the committed table


def test_selection_says_plainly_whether_the_slope_target_was_met():
    meta = json.loads((PACKAGED / "selection.json").read_text())
    summary = pd.read_csv(PACKAGED / "summary.csv")
    for kind, outcomes in KINDS.items():
        sel = meta["selection"][kind]
        at78 = summary[(summary.n == 78) & (summary.method == sel["winner"])].set_index("outcome")
        slopes = [float(at78.loc[o, "slope_median"]) for o in outcomes]
        met = all(SLOPE_TARGET[0] <= v <= SLOPE_TARGET[1] for v in slopes)
        assert sel["target_met"] == met
        assert ("no method reached" in sel["reason"]) == (not met)
        assert all(float(at78.loc[o, "edge_share"]) <= 0.01 for o in outcomes)


def test_cli_refuses_bad_repetitions(tmp_path, capsys):
    assert main(["simulate", "--repetitions", "0", "--out", str(tmp_path / "s")]) == 2
    assert "--repetitions" in capsys.readouterr().err
    assert main(["simulate", "--repetitions", "2", "3", "--sizes", "78", "--out",
                 str(tmp_path / "s")]) == 2
    assert not (tmp_path / "s").exists()


def test_train_refuses_an_unknown_method(tmp_path, capsys):
    cohort = REPO / "training" / "data" / "reconstructed_cohort.csv"
    code = main(["train", "--cohort", str(cohort), "--out", str(tmp_path / "b"),
                 "--method", "logistic=lasso"])
    assert code == 2 and "--method" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_round_two_reruns_reproduce_round_one_and_merge_with_it():
    from training.simulation.study import merge_rounds, reproduction_gap

    committed = pd.read_csv(DOCS / "rows.csv")
    rerun = run_study(1, sizes=(78,), methods=("heuristic_shrinkage", "firth_heuristic_shrinkage"),
                      outcomes=("cr", "efs"))
    # logistic-only candidates are not fitted to survival outcomes
    assert set(zip(rerun.outcome, rerun.method)) == {
        ("cr", "heuristic_shrinkage"), ("cr", "firth_heuristic_shrinkage"),
        ("efs", "heuristic_shrinkage")}
    gap = reproduction_gap(committed, rerun)
    assert gap["rows"] >= 2 and gap["failed_mismatch"] == 0
    assert gap["max_abs_difference"] < 1e-9  # same seed [seed, n, r]: the same fits
    merged = merge_rounds(committed, rerun)
    assert not merged.duplicated(["n", "repetition", "outcome", "method"]).any()
    assert len(merged) == len(committed) + int(
        (~rerun.set_index(["n", "repetition", "outcome", "method"]).index.isin(
            committed.set_index(["n", "repetition", "outcome", "method"]).index)).sum())


def test_an_exact_tie_goes_to_the_method_that_also_fits_under_separation():
    rows = [(78, o, m, 0.97, 0.080, 0, 0) for o in ("cr", "severe_crs")
            for m in ("heuristic_shrinkage", "heuristic_shrinkage_fallback")]
    chosen = select_method(_summary(rows), "logistic")
    assert chosen["winner"] == "heuristic_shrinkage_fallback" and chosen["target_met"]
    worse = _summary([(78, o, m, 0.97, 0.080 if m == "heuristic_shrinkage" else 0.0801, 0, 0)
                      for o in ("cr", "severe_crs")
                      for m in ("heuristic_shrinkage", "heuristic_shrinkage_fallback")])
    assert select_method(worse, "logistic")["winner"] == "heuristic_shrinkage"  # RMSE first
