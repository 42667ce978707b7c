"""The candidate fitting methods (training/development/methods.py): each checked against its definition."""
import numpy as np
import pytest
from scipy.special import expit

from training.fitting import cox, logistic
from training.development.methods import METHODS, _folds, fit_cox_method, fit_logistic_method


def binary(seed: int, n: int = 90):
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.normal(size=n), rng.normal(40, 12, n)])
    y = rng.binomial(1, expit(-0.5 + 0.9 * X[:, 0]))
    return X, y


def survival(seed: int, n: int = 90):
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.normal(size=n), rng.binomial(1, 0.4, n), rng.normal(40, 12, n)])
    T = rng.exponential(12 * np.exp(-0.6 * X[:, 0]))
    C = rng.uniform(6, 30, n)
    return X, np.ceil(np.minimum(T, C)), (T <= C).astype(int)  # whole months: tied times


def test_firth_logistic_is_the_half_added_odds_ratio_for_a_binary_covariate():
    # One binary covariate: Firth's estimate is the log odds ratio with 0.5 added to each cell.
    x = np.r_[np.ones(30), np.zeros(40)]
    y = np.r_[np.ones(30), np.ones(12), np.zeros(28)]  # 30/30 events vs 12/40: separation
    fit = fit_logistic_method("firth", x[:, None], y)
    a, b, c, d = 30 + 0.5, 0 + 0.5, 12 + 0.5, 28 + 0.5
    assert fit.coef_original[0] == pytest.approx(np.log(a * d / (b * c)), abs=1e-7)
    with pytest.raises(logistic.FitError):
        fit_logistic_method("mle", x[:, None], y)  # the MLE does not exist here


def test_heuristic_shrinkage_logistic():
    X, y = binary(1)
    mle = logistic.fit_unpenalized(X, y)
    fit = fit_logistic_method("heuristic_shrinkage", X, y)
    lr = 2 * (mle.loglik - mle.loglik_null)
    assert fit.shrinkage == pytest.approx((lr - 2) / lr)
    np.testing.assert_allclose(fit.coef, fit.shrinkage * mle.coef, atol=1e-12)
    # the re-estimated intercept makes the mean prediction the observed rate
    assert fit.predict_proba(X).mean() == pytest.approx(y.mean(), abs=1e-9)


def test_cv_ridge_chooses_the_minimum_of_its_criterion_and_is_deterministic():
    X, y = binary(2)
    first, second = fit_logistic_method("cv_ridge", X, y), fit_logistic_method("cv_ridge", X, y)
    assert first.lam == second.lam and first.method == "cv_ridge"
    finite = np.isfinite(first.aic)
    assert first.aic[first.grid == first.lam][0] == first.aic[finite].min()
    reference = logistic.fit_logistic(X, y, grid=(first.lam,), extend=False)
    np.testing.assert_allclose(first.coef, reference.coef, atol=1e-12)


def test_folds_are_stratified():
    strata = np.r_[np.ones(13), np.zeros(65)].astype(int)
    fold = _folds(strata, 10)
    per_fold = np.bincount(fold[strata == 1], minlength=10)
    assert per_fold.max() - per_fold.min() <= 1 and np.bincount(fold).min() >= 7


def test_firth_cox_maximizes_the_penalized_partial_likelihood():
    X, time, event = survival(3)
    fit = fit_cox_method("firth", X, time, event)
    _, _, Z, active = logistic.standardize(X)
    rs = cox.RiskSets(Z, time, event.astype(bool), "efron")

    def objective(b):
        ll, _, info = rs.evaluate(b)
        return ll + 0.5 * np.linalg.slogdet(info)[1]

    h = 1e-5
    gradient = [(objective(fit.coef + h * e) - objective(fit.coef - h * e)) / (2 * h) for e in np.eye(3)]
    np.testing.assert_allclose(gradient, 0.0, atol=1e-5)
    mle = cox.fit_unpenalized(X, time, event)
    assert np.max(np.abs(fit.coef - mle.coef)) > 1e-4  # the penalty moves the estimate


def test_heuristic_shrinkage_cox_rebuilds_the_baseline():
    X, time, event = survival(4)
    mle = cox.fit_unpenalized(X, time, event)
    fit = fit_cox_method("heuristic_shrinkage", X, time, event)
    lr = 2 * (mle.loglik - mle.loglik_null)
    assert fit.shrinkage == pytest.approx(max(0.0, (lr - 3) / lr))
    np.testing.assert_allclose(fit.coef, fit.shrinkage * mle.coef, atol=1e-12)
    fixed = cox.fit_cox(X, time, event, grid=(1e12,), extend=False)  # all coefficients ~0
    if fit.shrinkage == 0:
        np.testing.assert_allclose(fit.cumhaz0, fixed.cumhaz0, rtol=1e-6)
    else:
        assert not np.allclose(fit.cumhaz0, mle.cumhaz0)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_returns_the_common_fit_objects(method):
    X, y = binary(5)
    lfit = fit_logistic_method(method, X, y)
    assert lfit.method == method and lfit.predict_proba(X).shape == y.shape
    Xs, time, event = survival(5)
    cfit = fit_cox_method(method, Xs, time, event)
    assert cfit.method == method and np.all(np.diff(cfit.cumhaz0) >= 0)


def test_unknown_method_is_refused():
    X, y = binary(6)
    with pytest.raises(ValueError, match="method must be one of"):
        fit_logistic_method("lasso", X, y)
