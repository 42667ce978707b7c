"""Ridge logistic regression: cross-checks against statsmodels and scikit-learn, penalty rule."""
import numpy as np
import pytest
import statsmodels.api as sm

from training.fitting.logistic import (
    LAMBDA_GRID, FitError, effective_df, fit_logistic, fit_unpenalized, restandardize, select_lambda,
    standardize,
    to_sklearn, wald_intervals,
)


def simulate(seed: int, n: int = 80, strength: float = 1.0):
    """Three covariates on different scales (continuous, binary, age-like)."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.normal(size=n), rng.binomial(1, 0.4, n), rng.normal(50, 15, n)])
    eta = -0.8 + strength * (0.9 * X[:, 0] + 0.8 * X[:, 1] + 0.03 * (X[:, 2] - 50))
    y = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    return X, y


def test_unpenalized_matches_statsmodels_logit():
    X, y = simulate(1)
    fit = fit_unpenalized(X, y)
    ref = sm.Logit(y, sm.add_constant(X)).fit(method="newton", disp=0, tol=1e-12)
    ours = np.r_[fit.intercept_original, fit.coef_original]
    np.testing.assert_allclose(ours, ref.params, rtol=0, atol=1e-4)
    assert fit.lam == 0.0
    assert fit.loglik == pytest.approx(ref.llf, abs=1e-8)
    assert fit.loglik_null == pytest.approx(ref.llnull, abs=1e-8)
    # lambda = 0: the inverse Hessian is the usual ML covariance
    se = wald_intervals(fit)["se"]
    np.testing.assert_allclose(se, ref.bse[1:], rtol=1e-6)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_numpy_solver_matches_sklearn_at_chosen_penalty(seed):
    X, y = simulate(seed, strength=0.7)
    fit = fit_logistic(X, y)
    model = to_sklearn(fit, X, y)
    np.testing.assert_allclose(model.coef_.ravel(), fit.coef, atol=1e-6)
    assert model.intercept_[0] == pytest.approx(fit.intercept, abs=1e-6)
    np.testing.assert_allclose(
        model.predict_proba((X - fit.center) / fit.scale)[:, 1], fit.predict_proba(X), atol=1e-7)


def test_sklearn_unpenalized_uses_c_inf():
    X, y = simulate(4)
    fit = fit_unpenalized(X, y)
    model = to_sklearn(fit, X, y)
    assert np.isinf(model.C) and model.l1_ratio == 0.0
    np.testing.assert_allclose(model.coef_.ravel(), fit.coef, atol=1e-5)


def test_penalty_larger_without_signal_than_with_strong_signal():
    lams_null = [fit_logistic(*simulate(seed, strength=0.0)).lam for seed in range(5)]
    lams_strong = [fit_logistic(*simulate(seed, strength=2.0)).lam for seed in range(5)]
    assert np.median(lams_null) > np.median(lams_strong)
    assert min(lams_null) > max(lams_strong)


def test_aic_grid_and_effective_df():
    X, y = simulate(5)
    fit = fit_logistic(X, y)
    assert fit.grid.tolist() == list(LAMBDA_GRID)
    assert fit.df_grid[0] == pytest.approx(X.shape[1] + 1)
    order = np.argsort(fit.grid)
    assert np.all(np.diff(fit.df_grid[order]) < 0)  # more penalty, fewer effective df
    assert fit.df_grid.min() > 1.0  # the unpenalized intercept always counts
    assert fit.lam == fit.grid[np.argmin(fit.aic)]
    assert fit.df == fit.df_grid[np.argmin(fit.aic)]


def test_effective_df_and_select_lambda_helpers():
    info = np.diag([4.0, 1.0])
    assert effective_df(info, 0.0, np.array([True, True])) == 2.0
    assert effective_df(info, 1.0, np.array([False, True])) == pytest.approx(1.0 + 0.5)
    grid = np.array([0.0, 1.0, 10.0])
    assert select_lambda(grid, np.array([3.0, 2.0, 2.0])) == 2  # tie -> larger penalty
    assert select_lambda(grid, np.array([np.inf, 2.0, 5.0])) == 1
    with pytest.raises(FitError):
        select_lambda(grid, np.full(3, np.inf))


def test_separation_makes_mle_infeasible_but_ridge_fits():
    X, y = simulate(6)
    y = (X[:, 0] > 0.3).astype(int)  # complete separation on the first column
    with pytest.raises(FitError):
        fit_unpenalized(X, y)
    fit = fit_logistic(X, y)
    assert np.isinf(fit.aic[fit.grid == 0.0]).all()
    assert fit.lam > 0 and np.all(np.isfinite(fit.coef))


def test_single_class_raises():
    X, _ = simulate(7)
    with pytest.raises(FitError):
        fit_logistic(X, np.zeros(len(X)))


def test_constant_column_gets_zero_coefficient():
    X, y = simulate(8)
    X_const = np.column_stack([X, np.full(len(X), 3.0)])
    with_const, without = fit_logistic(X_const, y), fit_logistic(X, y)
    assert with_const.coef[-1] == 0.0 and with_const.scale[-1] == 1.0
    np.testing.assert_allclose(with_const.coef[:-1], without.coef, atol=1e-12)
    assert np.isnan(wald_intervals(with_const)["se"][-1])
    np.testing.assert_allclose(with_const.predict_proba(X_const), without.predict_proba(X), atol=1e-12)


def test_original_scale_reproduces_predictions_and_intervals():
    X, y = simulate(9)
    fit = fit_logistic(X, y)
    lp = fit.intercept_original + X @ fit.coef_original
    np.testing.assert_allclose(lp, fit.linear_predictor(X), atol=1e-12)
    orig, std = wald_intervals(fit), wald_intervals(fit, scale="standardized")
    np.testing.assert_allclose(orig["estimate"] * fit.scale, std["estimate"])
    np.testing.assert_allclose(np.log(orig["odds_ratio_upper"]), orig["upper"])
    assert np.all(orig["lower"] < orig["estimate"]) and np.all(orig["estimate"] < orig["upper"])


def test_standardize_uses_sample_sd():
    X, _ = simulate(10)
    center, scale, Z, active = standardize(X)
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(Z.std(axis=0, ddof=1), 1)
    assert active.all()


def test_restandardize_keeps_predictions():
    X, y = simulate(11)
    rng = np.random.default_rng(11)
    boot = fit_logistic(X[rng.integers(0, len(X), len(X))], y[rng.integers(0, len(X), len(X))])
    reference = fit_logistic(X, y)
    intercept, coef = restandardize(boot, reference.center, reference.scale)
    lp = intercept + ((X - reference.center) / reference.scale) @ coef
    np.testing.assert_allclose(lp, boot.linear_predictor(X), atol=1e-12)
