"""Round-2 logistic candidates (docs/method-selection.md, Amendment 1) against an independent
computation in R: tests/reference/firth_shrinkage_reference.R (R 4.2.2, base stats: Firth's
penalized likelihood maximized by optim BFGS, the intercept re-estimated by glm with an offset),
on the data in tests/reference/firth_shrinkage_data.csv. Its output, pinned below, is
tests/reference/firth_shrinkage_reference.out."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.fitting import logistic
from training.development.fit_models import parse_methods
from training.fitting.firth import firth_lr
from training.development.methods import METHODS_BY_KIND, fit_cox_method, fit_logistic_method

REFERENCE = Path(__file__).parent / "reference"

# R output: shrinkage factor s, re-estimated intercept, shrunken coefficients (x1, x2), original
# units; and the penalized likelihood-ratio statistic of the Firth fit.
R_FIRTH_SHRUNKEN = {
    "y_separated": dict(lr=5.5277110179969, s=0.638186585100328, intercept=0.389324469250396,
                        coef=(1.5954856835921527, 0.0174432890493276)),
    "y_overlapping": dict(lr=2.04461359471384, s=0.0218200616630881, intercept=0.774963142925943,
                          coef=(0.019541489707969779, -0.000263195090191434)),
}
R_MLE_SHRUNKEN = dict(s=0.206542822790776, intercept=0.821289738406049,
                      coef=(0.22603334362420832, -0.00259636967026343))


@pytest.fixture(scope="module")
def data():
    return pd.read_csv(REFERENCE / "firth_shrinkage_data.csv")


def _check(fit, ref, X, y, tol=1e-6):
    assert fit.shrinkage == pytest.approx(ref["s"], abs=tol)
    assert fit.intercept_original == pytest.approx(ref["intercept"], abs=tol)
    np.testing.assert_allclose(fit.coef_original, ref["coef"], rtol=1e-5, atol=tol)
    # the intercept makes the cohort's mean prediction its outcome rate
    assert fit.predict_proba(X).mean() == pytest.approx(y.mean(), abs=1e-9)


@pytest.mark.parametrize("outcome", ["y_separated", "y_overlapping"])
def test_firth_heuristic_shrinkage_matches_the_independent_r_computation(data, outcome):
    X, y = data[["x1", "x2"]].to_numpy(float), data[outcome].to_numpy(int)
    fit = fit_logistic_method("firth_heuristic_shrinkage", X, y)
    _check(fit, R_FIRTH_SHRUNKEN[outcome], X, y)
    D = np.column_stack([np.ones(len(y)), X])  # the statistic does not depend on column units
    firth = fit_logistic_method("firth", X, y)
    theta = np.r_[firth.intercept_original, firth.coef_original]
    assert firth_lr(D, y, theta) == pytest.approx(R_FIRTH_SHRUNKEN[outcome]["lr"], abs=1e-5)
    assert firth_lr(D * np.r_[1, 10, 0.1], y, theta / np.r_[1, 10, 0.1]) == pytest.approx(
        R_FIRTH_SHRUNKEN[outcome]["lr"], abs=1e-5)


def test_fallback_uses_firth_only_under_separation(data):
    X = data[["x1", "x2"]].to_numpy(float)
    separated, overlapping = data["y_separated"].to_numpy(int), data["y_overlapping"].to_numpy(int)
    with pytest.raises(logistic.FitError):
        fit_logistic_method("heuristic_shrinkage", X, separated)  # every x1 = 1 has the event
    fallback = fit_logistic_method("heuristic_shrinkage_fallback", X, separated)
    _check(fallback, R_FIRTH_SHRUNKEN["y_separated"], X, separated)
    assert fallback.method == "heuristic_shrinkage_fallback"
    # where the maximum likelihood fit exists it is exactly heuristic_shrinkage (R: glm)
    fallback = fit_logistic_method("heuristic_shrinkage_fallback", X, overlapping)
    plain = fit_logistic_method("heuristic_shrinkage", X, overlapping)
    _check(fallback, R_MLE_SHRUNKEN, X, overlapping, tol=1e-8)
    np.testing.assert_array_equal(fallback.coef, plain.coef)
    assert fallback.intercept == plain.intercept


def test_round2_and_round3_methods_are_logistic_only():
    assert set(METHODS_BY_KIND["logistic"]) - set(METHODS_BY_KIND["cox"]) == {
        "heuristic_shrinkage_fallback", "firth_heuristic_shrinkage", "bootstrap_shrinkage"}
    with pytest.raises(ValueError, match="cox"):
        fit_cox_method("firth_heuristic_shrinkage", np.zeros((5, 1)), np.ones(5), np.ones(5))
    assert parse_methods(["logistic=heuristic_shrinkage_fallback"])["logistic"] == \
        "heuristic_shrinkage_fallback"
    with pytest.raises(ValueError, match="cox=heuristic_shrinkage_fallback"):
        parse_methods(["cox=heuristic_shrinkage_fallback"])


def test_intercept_re_estimation_converges_for_a_wide_offset():
    # The undamped Newton iteration from 0 diverged here (round 1's heuristic_shrinkage
    # "failures"); the root of sum(y - expit(a + offset)) is checked by bisection's bracket.
    from scipy.optimize import brentq
    from scipy.special import expit as sigmoid

    from training.fitting.firth import intercept_with_offset as _intercept_with_offset

    rng = np.random.default_rng(5)
    offset = np.r_[rng.uniform(-5, -3, 8), rng.uniform(5, 11, 70)]
    y = np.r_[np.zeros(8), np.ones(70)]
    y[:2] = 1
    a = _intercept_with_offset(y, offset)
    root = brentq(lambda v: np.sum(y - sigmoid(v + offset)), -50, 50, xtol=1e-13)
    assert a == pytest.approx(root, abs=1e-9)
    assert sigmoid(a + offset).mean() == pytest.approx(y.mean(), abs=1e-12)
