"""The ridge path shared by the logistic and Cox fits, and the helpers both model kinds use.

:func:`ridge_path` fits a model at every penalty of a grid, largest first, each solution
warm-starting the next, extends the grid past a best end point (:func:`training.fitting.tuning.search_grid`)
and chooses the penalty with the smallest AIC(lambda) = -2 l(theta_lambda) + 2 df(lambda), df the
effective degrees of freedom trace(I (I + lambda P)^-1) (Gray 1992, JASA 87:942; Verweij & Van
Houwelingen 1994, Stat Med 13:2427). A grid point whose fit does not converge, or whose inverse
penalized information is singular or has a variance above :data:`MAX_VARIANCE`, gets AIC = +inf.
:mod:`training.fitting.logistic` and :mod:`training.fitting.cox` supply the solver and the likelihood.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from scipy import stats

from training.fitting.tuning import GridSearch, best_index, search_grid

#: Penalty grid: 0 (unpenalized) plus 16 points evenly spaced on log10 from 1e-3 to 1e2
#: (three per decade). lambda is on the scale of the summed (not averaged) log-likelihood.
LAMBDA_GRID: tuple[float, ...] = (0.0, *(float(v) for v in np.logspace(-3.0, 2.0, 16)))

#: A coefficient beyond this (standardized scale, |b| per SD) means the unpenalized MLE does
#: not exist (separation / monotone likelihood) and the Newton iterates diverge; a penalized fit
#: beyond it (possible for the smallest penalties under separation) is rejected the same way.
DIVERGENCE_BOUND = 50.0

#: Largest variance of a standardized coefficient (inverse penalized Hessian) accepted as a fit.
#: Under quasi-separation / monotone likelihood the iterates can stall at a large finite value
#: where the likelihood is flat to machine precision; a variance this large (SE > 100 per SD)
#: flags that the estimate is not identified. (I + lambda P)^-1 <= 1 / lambda, so this can only
#: reject penalties below 1e-4, in practice lambda = 0.
MAX_VARIANCE = 1e4

class FitError(RuntimeError):
    """A model cannot be fitted to these data (one outcome class, no events, no finite fit)."""


def standardize(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Center and scale columns.

    Parameters
    ----------
    X : array, shape (n, p)

    Returns
    -------
    center : (p,) column means
    scale : (p,) sample standard deviations (ddof=1), 1.0 for constant columns
    Z : (n, p) standardized matrix (constant columns become exactly 0)
    active : (p,) bool, False for constant columns (their coefficient is fixed at 0)
    """
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D, got shape {X.shape}")
    center = X.mean(axis=0)
    active = np.ptp(X, axis=0) > 0
    scale = np.ones(X.shape[1])
    if X.shape[0] > 1:
        scale[active] = X[:, active].std(axis=0, ddof=1)
    Z = (X - center) / scale
    Z[:, ~active] = 0.0
    return center, scale, Z, active


def effective_df(info: np.ndarray, lam: float, penalized: np.ndarray) -> float:
    """Effective degrees of freedom trace(I (I + lam P)^-1) of a ridge fit.

    Parameters
    ----------
    info : (q, q) unpenalized information matrix at the penalized estimate
    lam : penalty, >= 0
    penalized : (q,) bool, which parameters carry the penalty (P = diag(penalized))
    """
    if lam == 0.0 or info.size == 0:
        return float(info.shape[0])
    return float(np.trace(np.linalg.solve(info + lam * np.diag(penalized.astype(float)), info)))


def penalized_covariance(info: np.ndarray, lam: float, penalized: np.ndarray) -> np.ndarray | None:
    """(I + lam P)^-1, or None when it is singular or a variance exceeds :data:`MAX_VARIANCE`."""
    try:
        cov = np.linalg.inv(info + lam * np.diag(penalized.astype(float)))
    except np.linalg.LinAlgError:
        return None
    diag = np.diag(cov)
    if not np.all(np.isfinite(cov)) or np.any(diag > MAX_VARIANCE) or np.any(diag < 0):
        return None
    return cov


def select_lambda(grid: np.ndarray, aic: np.ndarray) -> int:
    """Index of the grid point with the smallest AIC; ties (within 1e-9) go to the larger lambda."""
    best = best_index(grid, aic)
    if best < 0:
        raise FitError("no penalty on the grid gives a finite fit")
    return best


def wald_table(estimate: np.ndarray, se: np.ndarray, level: float, ratio: str) -> dict[str, np.ndarray]:
    """Wald intervals estimate +- z se and their exponentials, named ``ratio`` (odds / hazard ratio).

    Parameters
    ----------
    estimate, se : (p,) log-scale estimates and standard errors
    level : confidence level in (0, 1)
    ratio : key prefix of the exponentiated columns ("odds_ratio", "hazard_ratio")
    """
    if not 0.0 < level < 1.0:
        raise ValueError("level must be in (0, 1)")
    z = stats.norm.ppf(0.5 + level / 2.0)
    lower, upper = estimate - z * se, estimate + z * se
    return {
        "estimate": estimate, "se": se, "lower": lower, "upper": upper,
        ratio: np.exp(estimate), f"{ratio}_lower": np.exp(lower), f"{ratio}_upper": np.exp(upper),
    }


def to_all_columns(coef_active: np.ndarray, cov_active: np.ndarray, active: np.ndarray,
                   intercept: bool) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients and covariance of the fitted (non-constant) columns placed among all columns.

    Parameters
    ----------
    coef_active : (q,) coefficients of the active columns (no intercept)
    cov_active : covariance of [intercept,] active coefficients
    active : (p,) bool, the columns that were fitted
    intercept : whether ``cov_active`` starts with an intercept row / column

    Returns
    -------
    coef : (p,) with 0 for constant columns
    cov : (p+1, p+1) or (p, p) with NaN rows / columns for constant columns
    """
    p = active.size
    coef = np.zeros(p)
    coef[active] = coef_active
    keep = np.r_[0, 1 + np.flatnonzero(active)] if intercept else active
    size = p + 1 if intercept else p
    cov = np.full((size, size), np.nan)
    cov[np.ix_(keep, keep)] = cov_active
    return coef, cov


@dataclass(frozen=True, kw_only=True)
class RidgeFit:
    """What every fitted model of training/ carries (:class:`training.fitting.logistic.LogisticFit`,
    :class:`training.fitting.cox.CoxFit` add their own parts).

    Attributes
    ----------
    center, scale : (p,) standardization (scale 1.0 where the column is constant)
    coef : (p,) log odds / hazard ratios per SD of each column (0 for constant columns)
    lam : chosen penalty
    df : effective degrees of freedom at ``lam``
    loglik, loglik_null : unpenalized (partial) log-likelihood at the estimate / the null model
    cov : inverse penalized Hessian, standardized scale (NaN rows for constant columns)
    grid, aic, df_grid : the penalty grid with AIC (+inf where no fit) and effective df
    n, n_events : sample size and number of events (y == 1 for a binary outcome)
    active : (p,) bool, False for columns that were constant in the training data
    edge : the chosen penalty is an end point of the (extended) grid: the criterion never turned
    null_limit : the criterion fell to the grid's cap: the chosen model has no predictor effects
    method : fitting method (see :mod:`training.development.methods`)
    shrinkage : uniform shrinkage factor applied after fitting (1.0 = none)
    """

    center: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    lam: float
    df: float
    loglik: float
    loglik_null: float
    cov: np.ndarray
    grid: np.ndarray
    aic: np.ndarray
    df_grid: np.ndarray
    n: int
    n_events: int
    active: np.ndarray
    edge: bool = False
    null_limit: bool = False
    method: str = "aic_ridge"
    shrinkage: float = 1.0

    @property
    def coef_original(self) -> np.ndarray:
        """Log odds / hazard ratios per unit of each original column."""
        return self.coef / self.scale


@dataclass(frozen=True)
class RidgePath:
    """The chosen point of a :func:`ridge_path`.

    Attributes
    ----------
    search : the grid search (penalties, AIC, edge / null-limit flags)
    lam : chosen penalty
    estimate : (q,) parameters at ``lam`` (solver scale: active columns, intercept first if any)
    loglik : unpenalized log-likelihood at ``estimate``
    cov : (q, q) inverse penalized information at ``estimate``
    df : effective degrees of freedom at ``lam``
    df_grid : (m,) effective df at every grid point (NaN where no fit)
    """

    search: GridSearch
    lam: float
    estimate: np.ndarray
    loglik: float
    cov: np.ndarray
    df: float
    df_grid: np.ndarray


def ridge_path(grid, solve: Callable[[float, np.ndarray], tuple[np.ndarray, bool]],
               measure: Callable[[np.ndarray], tuple[float, np.ndarray]], start: np.ndarray,
               penalized: np.ndarray, extend: bool = True) -> RidgePath:
    """Fit over ``grid`` with warm starts and choose the penalty by AIC with effective df.

    Parameters
    ----------
    grid : penalties to try (>= 0); a single value fits that penalty
    solve : (lam, start) -> (estimate, converged), the penalized maximum likelihood fit
    measure : estimate -> (unpenalized log-likelihood, unpenalized information matrix)
    start : starting parameters for the largest penalty
    penalized : (q,) bool, which parameters carry the penalty
    extend : extend the grid past a best end point until AIC turns

    Raises
    ------
    ValueError
        ``grid`` is empty, not 1-D or has a negative penalty.
    FitError
        No grid point gives a finite fit.
    """
    grid_arr = np.asarray(grid, dtype=float)
    if grid_arr.ndim != 1 or grid_arr.size == 0 or np.any(grid_arr < 0):
        raise ValueError("grid must be a non-empty sequence of penalties >= 0")
    warm = {"theta": start}

    def evaluate(lam: float) -> tuple[float, Any] | None:
        est, ok = solve(lam, warm["theta"])
        loglik, info = measure(est)
        cov = penalized_covariance(info, lam, penalized) if ok else None
        if cov is None:
            return None
        warm["theta"] = est  # each solution warm-starts the next, smaller penalty
        df = effective_df(info, lam, penalized)
        return -2.0 * loglik + 2.0 * df, (est, loglik, cov, df)

    search = search_grid(grid_arr, evaluate, extend=extend and grid_arr.size > 1)
    if search.best < 0:
        raise FitError("no penalty on the grid gives a finite fit")
    est, loglik, cov, df = search.results[search.best]
    df_grid = np.array([search.results[i][3] if i in search.results else np.nan
                        for i in range(search.grid.size)])
    return RidgePath(search=search, lam=float(search.grid[search.best]), estimate=est,
                     loglik=loglik, cov=cov, df=df, df_grid=df_grid)
