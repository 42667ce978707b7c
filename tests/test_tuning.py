"""Penalty grids that never bind silently (training/fitting/tuning.py) and their use by the fits."""
import numpy as np
import pytest

from training.fitting import logistic
from training.development.fit_models import _fit_logistic
from training.fitting.tuning import GRID_CAP, GRID_STEP, search_grid

GRID = logistic.LAMBDA_GRID


def test_minimum_beyond_the_grid_is_reached_and_not_an_edge():
    search = search_grid(GRID, lambda lam: ((np.log10(lam + 1e-9) - np.log10(700.0)) ** 2, lam))
    chosen = search.grid[search.best]
    assert 700.0 / GRID_STEP < chosen < 700.0 * GRID_STEP
    assert search.extended >= 3 and not search.edge and not search.null_limit
    assert np.all(np.diff(search.grid) > 0)  # ascending, extensions in place


def test_criterion_falling_to_the_cap_is_the_no_effect_limit():
    search = search_grid(GRID, lambda lam: (-np.log1p(lam), None))
    assert search.grid[search.best] == pytest.approx(GRID_CAP)
    assert search.null_limit and not search.edge


def test_separation_extends_down_and_flags_the_edge():
    def evaluate(lam):  # no fit below 1e-4; criterion still falling as lambda -> 0
        return None if lam < 1e-4 else (lam, None)

    search = search_grid(GRID, evaluate)
    assert search.grid[search.best] < 1e-3 and search.edge
    assert np.isinf(search.criterion[search.grid < search.grid[search.best]]).all()


def test_interior_minimum_is_left_alone():
    search = search_grid(GRID, lambda lam: ((np.log10(lam + 1e-9) - 0.0) ** 2, None))
    assert search.grid[search.best] == 1.0 and search.extended == 0 and not search.edge


def test_fixed_penalty_is_never_an_edge():
    search = search_grid((5.0,), lambda lam: (1.0, None), extend=False)
    assert search.best == 0 and not search.edge and search.extended == 0


def test_cr_bootstrap_resamples_never_choose_a_grid_edge():
    """The old grid (upper end 100) bound in 30 of 200 CR resamples; the extended one never does."""
    from model.cohort import read_cohort
    from model.features import design_matrix
    from training.paper.analyses import derive
    from training.paper.reconstruction import DEFAULT_PATH

    df = derive(read_cohort(DEFAULT_PATH))
    X, y = design_matrix(df, ("log10_blasts", "age_years")), df["cr"].to_numpy(int)
    rng = np.random.default_rng(7)
    fits = []
    while len(fits) < 40:
        idx = rng.integers(0, len(y), len(y))
        try:
            fits.append(_fit_logistic({"X": X[idx], "y": y[idx]}, "aic_ridge"))
        except logistic.FitError:
            continue
    assert not any(f.edge for f in fits)
    for fit in fits:  # every choice is an interior minimum of AIC or its no-effect limit
        best = int(np.flatnonzero(fit.grid == fit.lam)[0])
        assert fit.null_limit or (fit.aic[best + 1] > fit.aic[best] if best + 1 < fit.grid.size else False)


def test_no_effect_limit_returns_the_intercept_only_model():
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(60, 2)), rng.binomial(1, 0.3, 60)  # pure noise
    for seed in range(20):
        idx = np.random.default_rng(seed).integers(0, 60, 60)
        fit = logistic.fit_logistic(X[idx], y[idx])
        if fit.null_limit:
            assert np.all(fit.coef == 0) and np.ptp(fit.predict_proba(X)) == 0
            assert fit.intercept == pytest.approx(np.log(y[idx].mean() / (1 - y[idx].mean())))
            return
    pytest.fail("no noise resample reached the no-effect limit")
