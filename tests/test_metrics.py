"""Metrics: independent brute-force counts, statsmodels / lifelines references, exact identities."""
import itertools

import numpy as np
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st
from lifelines import KaplanMeierFitter
from lifelines.utils import concordance_index
from statsmodels.nonparametric.smoothers_lowess import lowess

from training.fitting import cox, logistic
from training.evaluation.metrics import (
    METRICS, auc, binary_metrics, brier, brier_ipcw, calibration_intercept, calibration_slope,
    LOESS_POINTS, censoring_survival, cox_calibration_slope, evaluate_cox, evaluate_logistic, harrell_c,
    ici_binary, loess, survival_metrics,
)


def binary_data(seed: int, n: int = 80):
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.normal(size=n), rng.binomial(1, 0.4, n), rng.normal(50, 15, n)])
    eta = -0.8 + 0.9 * X[:, 0] + 0.8 * X[:, 1] + 0.03 * (X[:, 2] - 50)
    return X, rng.binomial(1, 1 / (1 + np.exp(-eta)))


def survival_data(seed: int, n: int = 80, tied: bool = False):
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.normal(size=n), rng.binomial(1, 0.4, n), rng.normal(50, 15, n)])
    lp = 0.7 * X[:, 0] + 0.6 * X[:, 1] + 0.02 * (X[:, 2] - 50)
    T, C = rng.exponential(15.0 * np.exp(-lp)), rng.uniform(6, 36, n)
    time = np.ceil(np.minimum(T, C)) if tied else np.minimum(T, C)
    return X, time, (T <= C).astype(int)


def brute_force_harrell(time, event, risk):
    """Harrell's C by explicit pair loop: the earlier time must be an event; a censoring at the
    same time as an event is taken to outlive it; risk ties score 1/2."""
    concordant = usable = 0.0
    for i, j in itertools.permutations(range(len(time)), 2):
        if not event[i]:
            continue
        if time[i] < time[j] or (time[i] == time[j] and not event[j]):
            usable += 1
            concordant += 1.0 if risk[i] > risk[j] else 0.5 if risk[i] == risk[j] else 0.0
    return concordant / usable


def brute_force_auc(y, p):
    pairs = [(a, b) for a in p[y == 1] for b in p[y == 0]]
    return np.mean([1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs])


@pytest.mark.parametrize("tied", [False, True])
def test_harrell_c_matches_brute_force(tied):
    X, time, event = survival_data(1, n=60, tied=tied)
    risk = np.round(X[:, 0], 1)  # ties in the risk score too
    assert harrell_c(time, event, risk) == pytest.approx(brute_force_harrell(time, event, risk), abs=1e-12)


def test_harrell_c_matches_brute_force_with_many_ties():
    rng = np.random.default_rng(13)
    time = rng.integers(1, 15, 300).astype(float)  # ~20 subjects a time: tied events and censorings
    event = rng.binomial(1, 0.6, 300)
    risk = rng.integers(0, 8, 300).astype(float)
    assert harrell_c(time, event, risk) == pytest.approx(brute_force_harrell(time, event, risk),
                                                         abs=1e-12)


@pytest.mark.parametrize("tied", [False, True])
def test_harrell_c_matches_lifelines(tied):
    X, time, event = survival_data(2, tied=tied)
    risk = np.round(X @ np.array([0.7, 0.6, 0.02]), 1)
    assert harrell_c(time, event, risk) == pytest.approx(concordance_index(time, -risk, event), abs=1e-12)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.integers(1, 6), st.booleans(), st.integers(0, 3)), min_size=2, max_size=12))
def test_harrell_c_property(rows):
    time, event, risk = (np.array(v) for v in zip(*rows))
    if not any(event[i] and (time[i] < time[j] or (time[i] == time[j] and not event[j]))
               for i, j in itertools.permutations(range(len(rows)), 2)):
        assert np.isnan(harrell_c(time, event, risk))
    else:
        assert harrell_c(time, event, risk) == pytest.approx(brute_force_harrell(time, event, risk))


def test_auc_matches_brute_force():
    X, y = binary_data(3)
    p = np.round(1 / (1 + np.exp(-X[:, 0])), 2)
    assert auc(y, p) == pytest.approx(brute_force_auc(y, p), abs=1e-12)
    assert np.isnan(auc(np.ones(5), np.linspace(0, 1, 5)))


def test_binary_calibration_on_own_unpenalized_training_data():
    X, y = binary_data(4)
    fit = logistic.fit_unpenalized(X, y)
    p = fit.predict_proba(X)
    assert calibration_slope(y, p) == pytest.approx(1.0, abs=1e-6)
    assert calibration_intercept(y, p) == pytest.approx(0.0, abs=1e-6)


def test_binary_calibration_matches_statsmodels_glm():
    X, y = binary_data(5)
    p = 1 / (1 + np.exp(-(0.3 + 1.7 * (X[:, 0] - 0.2))))  # miscalibrated on purpose
    lp = np.log(p / (1 - p))
    slope = sm.GLM(y, sm.add_constant(lp), family=sm.families.Binomial()).fit().params[1]
    citl = sm.GLM(y, np.ones((len(y), 1)), family=sm.families.Binomial(), offset=lp).fit().params[0]
    assert calibration_slope(y, p) == pytest.approx(slope, abs=1e-8)
    assert calibration_intercept(y, p) == pytest.approx(citl, abs=1e-8)


def test_calibration_slope_nan_under_separation():
    y = np.array([0, 0, 0, 1, 1, 1])
    assert np.isnan(calibration_slope(y, np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8])))


def test_brier():
    assert brier(np.array([0, 1, 1]), np.array([0.0, 0.5, 1.0])) == pytest.approx(0.25 / 3)


def test_loess_degree1_matches_statsmodels_lowess():
    rng = np.random.default_rng(6)
    x = rng.uniform(size=80)
    y = rng.binomial(1, x).astype(float)
    ref = lowess(y, x, frac=0.75, it=0, delta=0.0, return_sorted=False)
    np.testing.assert_allclose(loess(x, y, span=0.75, degree=1), ref, atol=1e-10)


def direct_loess(x, y, span=0.75):
    """Local quadratic weighted least squares at every x_i, one point at a time."""
    q = int(np.floor(span * x.size))
    fitted = []
    for x0 in x:
        dist = np.abs(x - x0)
        w = (1 - np.minimum(dist / np.sort(dist)[q - 1], 1) ** 3) ** 3
        basis = np.column_stack([np.ones_like(x), x - x0, (x - x0) ** 2]) * np.sqrt(w)[:, None]
        fitted.append(np.linalg.lstsq(basis, y * np.sqrt(w), rcond=None)[0][0])
    return np.array(fitted)


def binary_calibration_data(n, seed):
    rng = np.random.default_rng(seed)
    p = 1 / (1 + np.exp(-rng.normal(0.8, 1.2, n)))
    return p, rng.binomial(1, np.clip(1.1 * p - 0.05, 0, 1)).astype(float)


def test_loess_is_the_direct_fit_up_to_loess_points():
    p, y = binary_calibration_data(LOESS_POINTS, 14)
    np.testing.assert_allclose(loess(p, y), direct_loess(p, y), atol=1e-10)


def test_loess_interpolation_error_beyond_loess_points():
    p, y = binary_calibration_data(2000, 15)
    approximate, exact = loess(p, y), loess(p, y, max_points=None)
    assert np.max(np.abs(approximate - exact)) < 2e-3
    gap_approximate, gap_exact = np.abs(approximate - p), np.abs(exact - p)
    assert ici_binary(y, p)["ici"] == pytest.approx(gap_approximate.mean(), abs=1e-15)
    assert gap_approximate.mean() == pytest.approx(gap_exact.mean(), abs=5e-5)  # ICI
    for q in (0.5, 0.9):  # E50, E90
        assert np.quantile(gap_approximate, q) == pytest.approx(np.quantile(gap_exact, q), abs=5e-4)


def test_loess_quadratic_reproduces_quadratic_and_handles_ties():
    x = np.linspace(0, 1, 40)
    np.testing.assert_allclose(loess(x, 1 + 2 * x - 3 * x**2), 1 + 2 * x - 3 * x**2, atol=1e-9)
    tied = np.repeat([0.1, 0.4], 20)  # two distinct predictions only
    assert np.all(np.isfinite(loess(tied, np.tile([0.0, 1.0], 20))))


def test_ici_zero_when_observed_equals_predicted_curve():
    p = np.linspace(0.05, 0.95, 50)
    assert ici_binary(p, p)["ici"] == pytest.approx(0.0, abs=1e-12)
    X, y = binary_data(7)
    out = binary_metrics(y, logistic.fit_logistic(X, y).predict_proba(X))
    assert tuple(out) == METRICS and 0 <= out["e50"] <= out["e90"]


def test_cox_calibration_on_own_unpenalized_training_data():
    X, time, event = survival_data(8, tied=True)
    fit = cox.fit_unpenalized(X, time, event, ties="breslow")
    out = evaluate_cox(fit, X, time, event, horizon=12.0)
    assert out["calibration_slope"] == pytest.approx(1.0, abs=1e-6)
    # Breslow ties and baseline: predicted cumulative hazards sum to the observed events exactly
    assert out["calibration_intercept"] == pytest.approx(0.0, abs=1e-10)
    assert tuple(out) == METRICS


def test_cox_calibration_slope_detects_overfitting():
    X, time, event = survival_data(9)
    lp = 2.0 * cox.fit_unpenalized(X, time, event).linear_predictor(X)  # twice too extreme
    assert cox_calibration_slope(time, event, lp) == pytest.approx(0.5, abs=1e-6)


def test_censoring_survival_matches_lifelines_reverse_km():
    X, time, event = survival_data(10, tied=True)
    grid = np.linspace(0, 40, 81)
    ref = KaplanMeierFitter().fit(time, 1 - event).survival_function_at_times(grid).to_numpy()
    np.testing.assert_allclose(censoring_survival(time, event, grid), ref, atol=1e-12)


def test_ipcw_brier_without_censoring_is_plain_brier():
    rng = np.random.default_rng(11)
    time = rng.exponential(10, 80)
    event = np.ones(80, dtype=int)
    surv = rng.uniform(size=80)
    expected = np.mean(((time > 12).astype(float) - surv) ** 2)
    assert brier_ipcw(time, event, surv, 12.0) == pytest.approx(expected, abs=1e-12)


def test_ipcw_brier_by_hand_with_censoring():
    time = np.array([2.0, 3.0, 5.0, 8.0, 13.0, 15.0])
    event = np.array([1, 0, 1, 0, 1, 0])
    surv = np.array([0.2, 0.5, 0.4, 0.6, 0.7, 0.9])
    # reverse KM: censorings at 3 (5 at risk) and 8 (3 at risk)
    g3, g8 = 4 / 5, 4 / 5 * 2 / 3
    terms = [0.2**2 / 1.0, 0.0, 0.4**2 / g3, 0.0, (1 - 0.7) ** 2 / g8, (1 - 0.9) ** 2 / g8]
    assert brier_ipcw(time, event, surv, 12.0) == pytest.approx(np.mean(terms))


def test_survival_metrics_reasonable_on_penalized_fit():
    X, time, event = survival_data(12)
    fit = cox.fit_cox(X, time, event)
    out = survival_metrics(time, event, fit.linear_predictor(X), fit.event_times, fit.cumhaz0, 12.0)
    assert 0.5 < out["c_index"] < 1 and 0 < out["brier"] < 0.25
    assert 0 <= out["ici"] < 0.1 and out["e50"] <= out["e90"]
    assert evaluate_logistic(logistic.fit_logistic(*binary_data(12)), *binary_data(12))["brier"] < 0.25
