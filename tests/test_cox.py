"""Ridge Cox model: numpy solver vs statsmodels PHReg and lifelines, baseline, PH test."""
import json

import numpy as np
import pandas as pd
import pytest
from statsmodels.duration.hazard_regression import PHReg

from training.fitting.cox import (
    FitError, baseline_survival, fit_cox, fit_lifelines, fit_unpenalized, hazard_ratios,
    predict_survival, restandardize,
)


def simulate(seed: int, n: int = 80, strength: float = 1.0, tied: bool = False):
    """Exponential event times, uniform censoring; ``tied`` rounds times up to whole months."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.normal(size=n), rng.binomial(1, 0.4, n), rng.normal(50, 15, n)])
    lp = strength * (0.7 * X[:, 0] + 0.6 * X[:, 1] + 0.02 * (X[:, 2] - 50))
    T = rng.exponential(15.0 * np.exp(-lp))
    C = rng.uniform(6, 36, n)
    time = np.minimum(T, C)
    if tied:
        time = np.ceil(time)
    return X, time, (T <= C).astype(int)


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("ties", ["breslow", "efron"])
def test_unpenalized_matches_statsmodels_phreg(tied, ties):
    X, time, event = simulate(1, tied=tied)
    assert not tied or len(np.unique(time[event == 1])) < event.sum()  # really tied
    fit = fit_unpenalized(X, time, event, ties=ties)
    ref = PHReg(time, X, status=event, ties=ties).fit()
    np.testing.assert_allclose(fit.coef_original, ref.params, rtol=0, atol=1e-4)
    assert fit.loglik == pytest.approx(ref.llf, abs=1e-8)
    np.testing.assert_allclose(hazard_ratios(fit)["se"], ref.bse, rtol=1e-6)


@pytest.mark.parametrize("tied", [False, True])
def test_numpy_solver_matches_lifelines_penalized(tied):
    X, time, event = simulate(2, tied=tied)
    fit = fit_cox(X, time, event)
    assert fit.lam > 0
    cph = fit_lifelines(fit, X, time, event, names=["a", "b", "c"])
    assert cph.penalizer == pytest.approx(fit.lam / len(X))
    np.testing.assert_allclose(cph.params_.to_numpy(), fit.coef, rtol=0, atol=1e-6)
    np.testing.assert_allclose(cph.variance_matrix_.to_numpy(), fit.cov, atol=1e-6)
    if not tied:  # lifelines' baseline is Breslow's; ours is Efron's (= R survfit) under ties
        lifelines_s0 = cph.baseline_survival_
        np.testing.assert_allclose(baseline_survival(fit, lifelines_s0.index.to_numpy()),
                                   lifelines_s0.to_numpy().ravel(), atol=1e-6)


@pytest.mark.parametrize("lam", [0.01, 1.0, 30.0])
def test_numpy_solver_matches_lifelines_at_fixed_penalties(lam):
    X, time, event = simulate(3, tied=True)
    fit = fit_cox(X, time, event, grid=(lam,))
    cph = fit_lifelines(fit, X, time, event)
    np.testing.assert_allclose(cph.params_.to_numpy(), fit.coef, rtol=0, atol=1e-6)


def test_penalty_larger_without_signal_than_with_strong_signal():
    lams_null = [fit_cox(*simulate(seed, strength=0.0)).lam for seed in range(5)]
    lams_strong = [fit_cox(*simulate(seed, strength=2.0)).lam for seed in range(5)]
    assert min(lams_null) > max(lams_strong)


def test_aic_grid():
    X, time, event = simulate(4)
    fit = fit_cox(X, time, event)
    assert fit.df_grid[fit.grid == 0.0][0] == pytest.approx(3.0)
    order = np.argsort(fit.grid)
    assert np.all(np.diff(fit.df_grid[order]) < 0)
    assert fit.lam == fit.grid[np.argmin(fit.aic)]


def test_baseline_survival_and_prediction():
    X, time, event = simulate(5)
    fit = fit_cox(X, time, event)
    grid = np.arange(0.0, 60.5, 0.5)
    s0 = baseline_survival(fit, grid)
    assert s0[0] == 1.0 and np.all(np.diff(s0) <= 0) and np.all(s0 > 0)
    assert np.all(s0[grid >= fit.max_follow_up] == s0[-1])  # flat past the last event
    # the mean patient (z = 0) has the baseline curve
    mean_patient = fit.center[None, :]
    assert predict_survival(fit, mean_patient, 12.0)[0] == pytest.approx(baseline_survival(fit, [12.0])[0])
    s12 = predict_survival(fit, X, 12.0)
    np.testing.assert_allclose(s12, baseline_survival(fit, [12.0])[0] ** np.exp(fit.linear_predictor(X)))


def test_monotone_likelihood_and_no_events():
    X, time, event = simulate(6)
    X = np.column_stack([X, event.astype(float)])  # perfectly predicts the event
    with pytest.raises(FitError):
        fit_unpenalized(X, time, event)
    fit = fit_cox(X, time, event)
    assert fit.lam > 0 and np.isinf(fit.aic[fit.grid == 0.0]).all()
    with pytest.raises(FitError):
        fit_cox(X, time, np.zeros_like(event))


def test_hazard_ratios_scales():
    X, time, event = simulate(7)
    fit = fit_cox(X, time, event)
    orig, std = hazard_ratios(fit), hazard_ratios(fit, scale="standardized")
    np.testing.assert_allclose(orig["estimate"] * fit.scale, std["estimate"])
    np.testing.assert_allclose(orig["hazard_ratio"], np.exp(fit.coef_original))
    assert np.all(orig["hazard_ratio_lower"] < orig["hazard_ratio"])


def test_constant_column():
    X, time, event = simulate(9)
    X_const = np.column_stack([X, np.ones(len(X))])
    a, b = fit_cox(X_const, time, event), fit_cox(X, time, event)
    assert a.coef[-1] == 0.0
    np.testing.assert_allclose(a.coef[:-1], b.coef, atol=1e-12)
    cph = fit_lifelines(a, X_const, time, event)
    assert list(cph.params_.index) == ["x0", "x1", "x2"]


def test_restandardize_keeps_predictions():
    X, time, event = simulate(10)
    idx = np.random.default_rng(10).integers(0, len(X), len(X))
    boot, reference = fit_cox(X[idx], time[idx], event[idx]), fit_cox(X, time, event)
    grid = np.array([0.0, 3.0, 6.0, 12.0, 24.0])
    coef, s0 = restandardize(boot, reference.center, reference.scale, grid)
    z = (X - reference.center) / reference.scale
    for j, t in enumerate(grid):
        np.testing.assert_allclose(s0[j] ** np.exp(z @ coef), predict_survival(boot, X, t), atol=1e-12)
