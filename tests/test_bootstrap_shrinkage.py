"""``bootstrap_shrinkage`` (docs/method-selection.md, Amendment 2) against a direct computation
with independent fitters: scikit-learn's unpenalized logistic regression on each resample and
statsmodels' GLM for the calibration slope on the cohort, on the same resample indices."""
import warnings
from pathlib import Path

import numpy as np
import pytest
import statsmodels.api as sm
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from model.features import design_matrix
from training.simulation import dgp
from training.fitting import logistic
from training.development.config import load_config
from training.fitting.logistic import FitError
from training.development.methods import (BOOTSTRAP_SEED, bootstrap_factor, bootstrap_slopes,
                              fit_logistic_method)

RESAMPLES = 12


@pytest.fixture(scope="module")
def cohort():
    data = dgp.sample_patients(np.random.default_rng([20170201, 78, 3]), 78)
    X = design_matrix(data, dict(load_config(None).models)["cr"])
    return X, data["cr"].to_numpy(float)


def _direct_slopes(X, y, resamples, seed):
    rng = np.random.default_rng(seed)
    slopes = []
    for _ in range(resamples):
        rows = rng.integers(0, y.size, y.size)
        model = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(X[rows], y[rows])
        lp = model.decision_function(X)
        glm = sm.GLM(y, sm.add_constant(lp), family=sm.families.Binomial()).fit(tol=1e-12)
        slopes.append(glm.params[1])
    return np.array(slopes)


def test_resample_slopes_and_factor_match_a_direct_computation(cohort):
    X, y = cohort
    ours = bootstrap_slopes(X, y, resamples=RESAMPLES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs on the unstandardized columns: convergence notes
        direct = _direct_slopes(X, y, RESAMPLES, BOOTSTRAP_SEED)
    np.testing.assert_allclose(ours, direct, rtol=2e-4)
    assert bootstrap_factor(ours) == pytest.approx(min(1.0, direct.mean()), rel=2e-4)
    assert np.ptp(ours) > 0.05  # resamples differ: the slopes are not one repeated number


def test_shrunken_fit_is_the_ml_fit_times_the_factor_with_a_refitted_intercept(cohort):
    X, y = cohort
    fit = fit_logistic_method("bootstrap_shrinkage", X, y)
    mle = logistic.fit_unpenalized(X, y)
    s = bootstrap_factor(bootstrap_slopes(X, y))
    assert 0.0 < s < 1.0 and fit.shrinkage == s
    np.testing.assert_allclose(fit.coef, s * mle.coef, rtol=1e-12)
    assert expit(fit.linear_predictor(X)).mean() == pytest.approx(y.mean(), abs=1e-8)
    assert fit.method == "bootstrap_shrinkage"


def test_factor_is_capped_and_fails_when_most_resamples_have_no_fit():
    assert bootstrap_factor(np.array([1.2, 1.4, np.nan])) == 1.0
    assert bootstrap_factor(np.array([-0.3, 0.1, np.nan, 0.0])) == 0.0
    assert bootstrap_factor(np.array([0.5, 0.7, np.nan, np.nan])) == pytest.approx(0.6)
    with pytest.raises(FitError, match="1 of 3"):
        bootstrap_factor(np.array([0.5, np.nan, np.nan]))


def test_separated_resamples_are_dropped_and_too_many_fail_the_fit():
    # x separates y but for four overlapping points: the cohort has a maximum likelihood fit,
    # most resamples miss enough of the overlap to be separated
    x = np.r_[np.linspace(-2, -0.5, 10), -0.2, 0.2, -0.1, 0.1, np.linspace(0.5, 2, 10)]
    y = np.r_[np.zeros(10), 1.0, 0.0, 1.0, 0.0, np.ones(10)]
    X = np.column_stack([x, np.random.default_rng(1).normal(size=x.size)])
    logistic.fit_unpenalized(X, y)  # exists
    slopes = bootstrap_slopes(X, y, resamples=RESAMPLES)
    for b in np.flatnonzero(np.isnan(slopes)):  # each dropped resample really has no fit
        rows = np.random.default_rng(BOOTSTRAP_SEED).integers(0, y.size, (b + 1, y.size))[b]
        with pytest.raises(FitError):
            logistic.fit_unpenalized(X[rows], y[rows])
    assert 0 < np.isfinite(slopes).sum() < RESAMPLES / 2
    with pytest.raises(FitError, match="bootstrap resamples"):
        fit_logistic_method("bootstrap_shrinkage", X, y)


# R 4.2.2 (base stats, glm) on the same data and resamples: tests/reference/
# bootstrap_shrinkage_reference.R, output tests/reference/bootstrap_shrinkage_reference.out.
R_REFERENCE = dict(failed=[39], first_slopes=(1.28029420119474, 1.37349160782503, 0.487980334311488,
                                             0.724743619747921, 1.2853570675866),
                   factor=0.852320133401164, intercept=3.0499793808365,
                   coef=(-1.14319510539742, -0.013413430116557))


def test_full_method_matches_r_glm_on_the_same_resamples():
    import pandas as pd

    from training.development.methods import BOOTSTRAP_RESAMPLES

    reference = Path(__file__).parent / "reference"
    data = pd.read_csv(reference / "bootstrap_shrinkage_data.csv")
    X, y = data[["log10_blasts", "age_years"]].to_numpy(), data["cr"].to_numpy(float)
    rows = np.loadtxt(reference / "bootstrap_shrinkage_resamples.csv", delimiter=",", dtype=int)
    rng = np.random.default_rng(BOOTSTRAP_SEED)  # the file holds the method's own resamples
    assert rows.shape == (BOOTSTRAP_RESAMPLES, y.size)
    assert all(np.array_equal(rng.integers(0, y.size, y.size), r - 1) for r in rows)
    slopes = bootstrap_slopes(X, y)
    assert list(np.flatnonzero(np.isnan(slopes)) + 1) == R_REFERENCE["failed"]
    np.testing.assert_allclose(slopes[:5], R_REFERENCE["first_slopes"], rtol=1e-8)
    fit = fit_logistic_method("bootstrap_shrinkage", X, y)
    assert fit.shrinkage == pytest.approx(R_REFERENCE["factor"], rel=1e-9)
    assert fit.intercept_original == pytest.approx(R_REFERENCE["intercept"], rel=1e-8)
    np.testing.assert_allclose(fit.coef_original, R_REFERENCE["coef"], rtol=1e-8)
