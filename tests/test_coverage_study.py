"""The direct coverage study (Amendment 4): its two truths, its intervals, its plumbing on tiny
sizes (identical for any number of workers and on a dask cluster), and the feature-set candidates
of the method study."""
import numpy as np
import pandas as pd
import pytest

from calculator.cli import main
from model.features import RCS_KNOTS, design_matrix, restricted_cubic_term
from training.simulation import dgp, truths
from training.simulation.coverage import (OUTPUTS, PANEL, Construction, interval, run_coverage,
                               summarize_coverage, verdict)
from training.simulation.feature_sets import NoModelFit, no_model_cox
from training.simulation.study import run_study, select_method, summarize

DRAWS = 20_000  # Monte Carlo draws behind the tests' survival truths (500,000 in the study)
BLASTS_ONLY = {o: ("log10_blasts",) for o in ("cr", "severe_crs", "efs", "os")}
TINY = Construction("tiny", BLASTS_ONLY, {"logistic": "mle", "cox": "mle"}, B=5)


def test_smooth_truth_has_the_step_truths_subgroup_averages():
    A = truths.knot_matrix()
    assert np.allclose(A.sum(axis=1), 1.0) and (A >= 0).all()
    params = truths.smooth_parameters(DRAWS)
    rates = {"cr": dgp.CR_RATE, "severe_crs": dgp.SEVERE_CRS_RATE}
    for outcome in ("cr", "severe_crs"):
        expected = [rates[outcome][s] for s in dgp.SUBGROUPS]
        assert A @ params[outcome] == pytest.approx(expected, abs=1e-12)
        assert 0 <= params[outcome].min() and params[outcome].max() <= 1
    for outcome, S in truths.subgroup_survival(DRAWS).items():
        assert np.max(np.abs(A @ params[outcome] - S)) < 1e-3  # the repair changes little
        assert (np.diff(params[outcome], axis=1) <= 0).all()
    # risk is continuous in log blasts: no jump at the 5 % boundary, where the step truth jumps
    near = np.array([4.99, 5.0])
    smooth = truths.true_risk("smooth", "severe_crs", near, [False, False])
    step = truths.true_risk("step", "severe_crs", near, [False, False])
    assert abs(smooth[1] - smooth[0]) < 1e-3 and step[1] - step[0] > 0.1


def test_step_truth_is_the_subgroups_rate():
    blasts = np.array([0.0, 3.0, 12.0, 35.0, 80.0])
    got = truths.true_risk("step", "cr", blasts, [True, False, False, False, False])
    assert got == pytest.approx([dgp.CR_RATE[s] for s in "abcde"])


def test_smooth_cohorts_follow_the_smooth_risks():
    df = truths.sample_smooth(np.random.default_rng(5), 10_000, draws=DRAWS)
    high = df["marrow_blasts_pct"] >= 50
    expected = truths.true_risk("smooth", "severe_crs", df.loc[high, "marrow_blasts_pct"],
                                np.zeros(high.sum(), bool)).mean()
    assert df.loc[high, "severe_crs"].mean() == pytest.approx(expected, abs=0.04)
    assert df["efs_months"].max() <= truths.rec.MAX_FOLLOW_UP + 0.01
    # every patient is followed beyond 12 months, so the 12-month event share is the risk
    for outcome in ("efs", "os"):
        risk = truths.true_risk("smooth", outcome, df["marrow_blasts_pct"], df["burden_subgroup"] == "a",
                                12, draws=DRAWS).mean()
        observed = ((df[f"{outcome}_months"] <= 12) & (df[f"{outcome}_event"] == 1)).mean()
        assert observed == pytest.approx(risk, abs=0.015)


def test_percentile_interval_is_numpys_and_contains_the_point():
    boot = np.random.default_rng(1).normal(size=(200, 3))
    point = np.array([0.0, 5.0, -5.0])
    lower, upper = interval(point, boot, "percentile")
    q = np.quantile(boot, [0.025, 0.975], axis=0)
    assert lower[0] == q[0, 0] and upper[0] == q[1, 0]
    assert upper[1] == 5.0 and lower[2] == -5.0  # widened to the point
    # bias-corrected: a point at the refits' median gives the percentile interval
    median = np.median(boot[:199, :1], axis=0)
    bc = interval(median, boot[:199, :1], "bias_corrected")
    pc = interval(median, boot[:199, :1], "percentile")
    assert bc[0] == pytest.approx(pc[0], abs=0.02) and bc[1] == pytest.approx(pc[1], abs=0.02)


@pytest.fixture(scope="module")
def tiny_rows():
    return run_coverage(TINY, 2, draws=DRAWS)


def test_tiny_study_scores_every_output_and_patient(tiny_rows):
    assert len(tiny_rows) == 2 * 2 * len(OUTPUTS) * len(PANEL)
    assert (tiny_rows["lower"] <= tiny_rows["point"]).all() and (tiny_rows["point"] <= tiny_rows["upper"]).all()
    summary = summarize_coverage(tiny_rows)
    assert len(summary) == 2 * len(OUTPUTS) * len(PANEL)
    assert summary["coverage"].between(0, 1).all() and (summary["cohorts"] == 2).all()
    v = verdict(summary)["tiny"]
    assert set(v) == {"step", "smooth"}
    assert v["step"]["average_coverage"] == pytest.approx(
        summary[summary.truth == "step"]["coverage"].mean())


def test_tiny_study_is_the_same_for_any_number_of_workers(tiny_rows):
    again = run_coverage(TINY, 2, draws=DRAWS, jobs=2)
    pd.testing.assert_frame_equal(tiny_rows, again)


def test_tiny_study_on_a_dask_cluster_is_the_local_run(tiny_rows):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster.scheduler_address):
        on_cluster = run_coverage(TINY, 2, draws=DRAWS, jobs=2, backend="dask")
    pd.testing.assert_frame_equal(tiny_rows, on_cluster)


def test_new_features_split_and_spline():
    data = {"marrow_blasts_pct": np.array([0.0, 4.9, 5.0, 80.0, 95.0])}
    split = design_matrix(data, ["blasts_ge_5"])[:, 0]
    assert split.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
    x = np.linspace(-2, 3, 501)
    term = restricted_cubic_term(x)
    assert term[0] == 0.0
    beyond = x > RCS_KNOTS[2]
    assert np.allclose(np.diff(term[beyond], 2), 0.0, atol=1e-12)  # linear past the last knot


def test_no_model_comparator_is_kaplan_meier():
    time = np.array([1.0, 2.0, 3.0, 4.0, 20.0])
    event = np.array([1, 0, 1, 1, 0])
    fit = no_model_cox(time, event)
    risk = -np.expm1(-fit.cumulative_hazard0(np.array([12.0]))[0])
    assert risk == pytest.approx(1 - (4 / 5) * (2 / 3) * (1 / 2))
    assert NoModelFit(rate=0.3).predict_proba(np.zeros((4, 0))).tolist() == [0.3] * 4


def test_feature_sets_in_the_study_and_the_beat_no_model_step():
    rows = run_study(2, sizes=(40,), feature_sets=("blasts", "none"), methods=("mle",),
                     outcomes=("cr", "efs"), validation_n=500)
    assert set(rows["features"]) == {"blasts", "none"}
    assert set(rows.loc[rows.features == "none", "method"]) == {"none"}
    summary = summarize(rows)
    fake = summary.copy()
    fake["outcome"] = fake["outcome"].replace({"cr": "severe_crs"})
    both = pd.concat([summary, fake], ignore_index=True)
    both.loc[both.features == "blasts", "rmse_mean"] = 1.0  # worse than no model everywhere
    with pytest.raises(ValueError, match="no-covariate"):
        select_method(both, "logistic", n=40)


def test_cli_refuses_a_coverage_study_without_cohorts(tmp_path, capsys):
    code = main(["simulate", "--study", "coverage", "--cohorts", "0", "--out", str(tmp_path)])
    assert code != 0 and "--cohorts" in capsys.readouterr().err
