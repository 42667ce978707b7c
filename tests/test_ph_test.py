"""The PH test and the Efron baseline against R (survival::cox.zph, survfit.coxph).

Reference values: ``tests/reference/cox_reference.out``, written by
``Rscript tests/reference/cox_reference.R`` with R 4.2.2 Patched (2022-11-10 r83330) and
survival 3.5.3, on the committed reconstructed cohort with the default survival features.
"""
from pathlib import Path

import numpy as np
import pytest

from model.cohort import read_cohort
from model.features import design_matrix
from training.fitting import cox
from training.paper.analyses import derive
from training.evaluation.ph_test import cox_zph, time_transform

REFERENCE = Path(__file__).with_name("reference") / "cox_reference.out"
COHORT = Path(__file__).resolve().parents[1] / "training" / "data" / "reconstructed_cohort.csv"
FEATURES = ("log10_blasts", "age_years", "ph_positive", "prior_hsct", "relapsed")


def r_reference() -> dict:
    """{(outcome, transform): {term: (chisq, p)}} and {outcome: (times, surv)} from R's output."""
    zph, surv, coef = {}, {}, {}
    for line in REFERENCE.read_text().splitlines():
        parts = line.split()
        if parts[1] == "surv":
            bar = parts.index("|")
            surv[parts[0]] = (np.array(parts[2:bar], float), np.array(parts[bar + 1:], float))
        elif parts[1] == "coef":
            coef[parts[0]] = np.array(parts[2:], float)
        elif parts[1] in ("km", "rank", "identity"):
            zph.setdefault((parts[0], parts[1]), {})[parts[2]] = (float(parts[3]), float(parts[4]))
    return {"zph": zph, "surv": surv, "coef": coef}


@pytest.fixture(scope="module")
def data():
    df = derive(read_cohort(COHORT))
    X = design_matrix(df, FEATURES)
    return {o: (X, df[f"{o}_months"].to_numpy(float), df[f"{o}_event"].to_numpy(int))
            for o in ("efs", "os")}


@pytest.mark.parametrize("outcome", ["efs", "os"])
@pytest.mark.parametrize("transform", ["km", "rank", "identity"])
def test_cox_zph_matches_r(data, outcome, transform):
    ref = r_reference()["zph"][(outcome, transform)]
    got = cox_zph(*data[outcome], names=list(FEATURES), transform=transform)
    assert got["fit"] == "unpenalized partial likelihood" and got["time_transform"] == transform
    for name in FEATURES:
        assert got["covariates"][name]["statistic"] == pytest.approx(ref[name][0], abs=1e-6)
        assert got["covariates"][name]["p"] == pytest.approx(ref[name][1], abs=1e-6)
    assert got["global"]["statistic"] == pytest.approx(ref["GLOBAL"][0], abs=1e-6)
    assert got["global"]["p"] == pytest.approx(ref["GLOBAL"][1], abs=1e-6)
    assert got["global"]["df"] == len(FEATURES)


def test_issue_figures_are_the_r_figures(data):
    """The figures quoted in issue 10, rounded as quoted, from the same R output."""
    quoted = {("efs", "rank"): 4.810, ("os", "rank"): 4.765, ("efs", "km"): 5.548, ("os", "km"): 5.514}
    for (outcome, transform), value in quoted.items():
        got = cox_zph(*data[outcome], names=list(FEATURES), transform=transform)
        assert got["global"]["statistic"] == pytest.approx(value, abs=1e-3)


def test_rank_transform_gives_tied_times_one_value():
    time = np.array([3.0, 1.0, 3.0, 2.0, 3.0])
    g = time_transform(time, np.array([1, 1, 0, 1, 1]), "rank")
    assert g[0] == g[2] == g[4] == 4.0  # average rank, whatever the row order


def test_km_transform_is_left_continuous():
    time = np.array([1.0, 2.0, 2.0, 3.0])
    g = time_transform(time, np.array([1, 1, 0, 1]), "km")
    # KM: 3/4 after t=1, then 3/4 * (1 - 1/3) = 1/2 after t=2; g = 1 - KM(t-)
    np.testing.assert_allclose(g, [0.0, 0.25, 0.25, 0.5])


def test_no_mle_reports_not_computable():
    X = np.array([[0.0], [0.0], [1.0], [1.0]])
    out = cox_zph(X, np.array([1.0, 2.0, 3.0, 4.0]), np.array([1, 1, 0, 0]), names=["a"])
    assert out["global"]["statistic"] is None and out["error"].startswith("not computable")


@pytest.mark.parametrize("outcome", ["efs", "os"])
def test_efron_baseline_and_coefficients_match_r_survfit(data, outcome):
    ref = r_reference()
    fit = cox.fit_unpenalized(*data[outcome])
    np.testing.assert_allclose(fit.coef_original, ref["coef"][outcome], atol=1e-7)
    times, surv = ref["surv"][outcome]
    np.testing.assert_allclose(cox.baseline_survival(fit, times), surv, atol=1e-8)


def test_breslow_ties_keep_breslow_baseline():
    X, time, event = np.array([[0.0], [1.0], [0.0], [1.0]]), np.array([1.0, 1.0, 2.0, 3.0]), np.array([1, 1, 1, 0])
    b = cox.fit_cox(X, time, event, grid=(0.5,), ties="breslow")
    e = cox.fit_cox(X, time, event, grid=(0.5,), ties="efron")
    lp = (X[:, 0] - b.center[0]) / b.scale[0] * b.coef[0]
    assert b.cumhaz0[0] == pytest.approx(2.0 / np.exp(lp).sum())
    lp = (X[:, 0] - e.center[0]) / e.scale[0] * e.coef[0]
    w = np.exp(lp)
    assert e.cumhaz0[0] == pytest.approx(1 / w.sum() + 1 / (w.sum() - 0.5 * w[:2].sum()))
