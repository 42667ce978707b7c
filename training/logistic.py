"""Ridge-penalized logistic regression with a data-driven, deterministic penalty choice.

Model (standardized scale). Columns are standardized with the training mean and the sample
standard deviation (``ddof=1``; 1.0 where a column is constant), ``z = (x - center) / scale``,
and the fit maximizes the penalized log-likelihood

    l(a, b) - lambda / 2 * ||b||^2            (intercept ``a`` unpenalized)

which is scikit-learn's ``LogisticRegression(C=1/lambda, l1_ratio=0)`` objective. The fit itself
is a numpy Newton-Raphson solver (exact Hessian, step halving), because the bootstrap refits the
whole grid 200 times per model; :func:`to_sklearn` refits the chosen model with scikit-learn for
the audit estimator and ``tests/test_logistic.py`` checks that both agree.

Penalty choice: lambda minimizes AIC(lambda) = -2 l(a_lambda, b_lambda) + 2 df(lambda) over
:data:`LAMBDA_GRID`, with the effective degrees of freedom of the ridge fit
df = trace(I (I + lambda P)^-1), I the unpenalized Fisher information at the penalized estimate
and P = diag(0, 1, ..., 1) (Gray 1992, JASA 87:942; Verweij & Van Houwelingen 1994, Stat Med
13:2427). AIC ties go to the larger lambda. A grid point whose fit does not exist (lambda = 0 under
separation) gets AIC = +inf.

The shared helpers (:data:`LAMBDA_GRID`, :class:`FitError`, :func:`standardize`,
:func:`effective_df`, :func:`penalized_covariance`, :func:`select_lambda`) are reused by
:mod:`training.cox` and :mod:`training.metrics`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.special import expit

from training.tuning import search_grid

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

_TOL = 1e-10
_MAX_ITER = 200


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
    finite = np.isfinite(aic)
    if not finite.any():
        raise FitError("no penalty on the grid gives a finite fit")
    best = np.min(aic[finite])
    candidates = np.flatnonzero(finite & (aic <= best + 1e-9))
    return int(candidates[np.argmax(grid[candidates])])


@dataclass(frozen=True)
class LogisticFit:
    """A fitted ridge logistic model.

    Attributes
    ----------
    center, scale : (p,) standardization (scale 1.0 where the column is constant)
    intercept : float, standardized scale (log-odds at the mean patient)
    coef : (p,) log odds ratios per SD of each column (0 for constant columns)
    lam : chosen penalty (summed log-likelihood scale; sklearn ``C = 1 / lam``)
    df : effective degrees of freedom at ``lam`` (intercept included)
    loglik, loglik_null : unpenalized log-likelihood at the estimate / intercept-only
    cov : (p+1, p+1) inverse penalized Hessian, standardized scale, order [intercept, coef...]
    grid, aic, df_grid : the penalty grid with AIC (+inf where no fit) and effective df
    n, n_events : sample size and number of y == 1
    active : (p,) bool, False for columns that were constant in the training data
    edge : the chosen penalty is an end point of the (extended) grid: the criterion never turned
    null_limit : the criterion fell to the grid's cap: the chosen model has no predictor effects
    method : fitting method (see :mod:`training.methods`)
    shrinkage : uniform shrinkage factor applied after fitting (1.0 = none)
    """

    center: np.ndarray
    scale: np.ndarray
    intercept: float
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
        """Log odds ratios per unit of each original column."""
        return self.coef / self.scale

    @property
    def intercept_original(self) -> float:
        """Intercept for the original (unstandardized) columns."""
        return float(self.intercept - np.sum(self.coef * self.center / self.scale))

    def linear_predictor(self, X: np.ndarray) -> np.ndarray:
        """Log-odds for each row of ``X`` (original scale columns)."""
        Z = (np.asarray(X, dtype=float) - self.center) / self.scale
        return self.intercept + Z @ self.coef

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Predicted probability of y == 1 for each row of ``X``, in [0, 1]."""
        return expit(self.linear_predictor(X))


def _loglik(D: np.ndarray, y: np.ndarray, theta: np.ndarray) -> float:
    eta = D @ theta
    return float(np.sum(y * eta - np.logaddexp(0.0, eta)))


def _newton(D: np.ndarray, y: np.ndarray, lam: float, theta0: np.ndarray) -> tuple[np.ndarray, bool]:
    """Maximize l(theta) - lam/2 ||theta[1:]||^2; returns (theta, converged)."""
    pen = np.ones(D.shape[1])
    pen[0] = 0.0
    theta = theta0.copy()

    def objective(t: np.ndarray) -> float:
        return _loglik(D, y, t) - 0.5 * lam * float(np.sum(pen * t * t))

    current = objective(theta)
    for _ in range(_MAX_ITER):
        mu = expit(D @ theta)
        grad = D.T @ (y - mu) - lam * pen * theta
        hess = (D * (mu * (1.0 - mu))[:, None]).T @ D + lam * np.diag(pen)
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            return theta, False
        t = 1.0
        while True:
            candidate = theta + t * step
            value = objective(candidate)
            if value >= current - 1e-12 * max(1.0, abs(current)) or t < 1e-8:
                break
            t *= 0.5
        theta, current = candidate, value
        if np.max(np.abs(theta[1:]), initial=0.0) > DIVERGENCE_BOUND:
            return theta, False
        if np.max(np.abs(t * step)) < _TOL:
            return theta, True
    return theta, False


def _information(D: np.ndarray, theta: np.ndarray) -> np.ndarray:
    mu = expit(D @ theta)
    return (D * (mu * (1.0 - mu))[:, None]).T @ D


def _check_outcome(y: np.ndarray, n: int) -> np.ndarray:
    y = np.asarray(y, dtype=float).ravel()
    if y.shape[0] != n:
        raise ValueError(f"y has {y.shape[0]} values for {n} rows of X")
    if not np.all((y == 0.0) | (y == 1.0)):
        raise ValueError("y must be 0/1")
    if y.min() == y.max():
        raise FitError("the outcome has a single class")
    return y


def fit_logistic(X: np.ndarray, y: np.ndarray, grid: tuple[float, ...] = LAMBDA_GRID,
                 extend: bool = True) -> LogisticFit:
    """Ridge logistic regression with lambda chosen by AIC with effective df over ``grid``.

    Parameters
    ----------
    X : (n, p) predictor columns, original scale
    y : (n,) outcome, 0/1
    grid : penalties to try (>= 0); a single value fits that penalty
    extend : extend the grid past a best end point until AIC turns
        (:func:`training.tuning.search_grid`); the fit's ``edge`` says whether it never did

    Returns
    -------
    LogisticFit

    Raises
    ------
    FitError
        One outcome class, or no grid point gives a finite fit.
    """
    center, scale, Z, active = standardize(X)
    y = _check_outcome(y, Z.shape[0])
    n, p = Z.shape
    D = np.column_stack([np.ones(n), Z[:, active]])
    grid_arr = np.asarray(grid, dtype=float)
    if grid_arr.ndim != 1 or grid_arr.size == 0 or np.any(grid_arr < 0):
        raise ValueError("grid must be a non-empty sequence of penalties >= 0")
    phi = y.mean()
    loglik_null = float(n * (phi * np.log(phi) + (1 - phi) * np.log1p(-phi)))
    start = np.zeros(D.shape[1])
    start[0] = np.log(phi / (1 - phi))
    penalized = np.r_[False, np.ones(D.shape[1] - 1, dtype=bool)]
    warm = {"theta": start}

    def evaluate(lam: float):
        est, ok = _newton(D, y, lam, warm["theta"])
        info = _information(D, est)
        cov_i = penalized_covariance(info, lam, penalized) if ok else None
        if cov_i is None:
            return None
        warm["theta"] = est  # each solution warm-starts the next, smaller penalty
        df = effective_df(info, lam, penalized)
        return -2.0 * _loglik(D, y, est) + 2.0 * df, (est, cov_i, df)

    search = search_grid(grid_arr, evaluate, extend=extend and grid_arr.size > 1)
    if search.best < 0:
        raise FitError("no penalty on the grid gives a finite fit")
    est, cov_active, df_best = search.results[search.best]
    lam = float(search.grid[search.best])
    if search.null_limit:  # the criterion's infimum is lambda -> infinity: the intercept-only model
        est = np.r_[np.log(phi / (1 - phi)), np.zeros(D.shape[1] - 1)]
        df_best = 1.0
    df_grid = np.array([search.results[i][2] if i in search.results else np.nan
                        for i in range(search.grid.size)])
    keep = np.r_[0, 1 + np.flatnonzero(active)]
    cov = np.full((p + 1, p + 1), np.nan)
    cov[np.ix_(keep, keep)] = cov_active
    coef = np.zeros(p)
    coef[active] = est[1:]
    return LogisticFit(
        center=center, scale=scale, intercept=float(est[0]), coef=coef, lam=lam,
        df=float(df_best), loglik=_loglik(D, y, est), loglik_null=loglik_null, cov=cov,
        grid=search.grid, aic=search.criterion, df_grid=df_grid, n=n, n_events=int(y.sum()),
        active=active, edge=search.edge, null_limit=search.null_limit,
    )


def fit_unpenalized(X: np.ndarray, y: np.ndarray) -> LogisticFit:
    """Maximum-likelihood logistic fit (lambda = 0); raises :class:`FitError` under separation."""
    return fit_logistic(X, y, grid=(0.0,))


def restandardize(fit: LogisticFit, center: np.ndarray, scale: np.ndarray) -> tuple[float, np.ndarray]:
    """(intercept, coef) of ``fit`` for columns standardized with another ``center`` / ``scale``.

    Bootstrap refits standardize with their resample's mean and SD; the predictor evaluates every
    parameter set with the training cohort's, so the refits are re-expressed on it. Predictions
    are unchanged: ``intercept + ((x - center) / scale) @ coef == fit.linear_predictor(x)``.
    """
    weights = fit.coef_original
    return float(fit.intercept_original + np.asarray(center, dtype=float) @ weights), weights * scale


def wald_intervals(fit: LogisticFit, level: float = 0.95, scale: str = "original") -> dict[str, np.ndarray]:
    """Wald-type intervals for the coefficients and odds ratios.

    The variance is the inverse penalized Hessian (I + lambda P)^-1 at the estimate, the
    covariance lifelines also reports for penalized Cox fits; it is the posterior covariance under
    the Gaussian prior the ridge penalty corresponds to and is wider than the sandwich
    (I + lambda P)^-1 I (I + lambda P)^-1 (Gray 1992), i.e. the conservative choice. Intervals
    are centred on the shrunken estimate; no bias correction.

    Parameters
    ----------
    fit : LogisticFit
    level : confidence level in (0, 1)
    scale : "original" (per unit of each column) or "standardized" (per SD)

    Returns
    -------
    dict of (p,) arrays: estimate, se, lower, upper, odds_ratio, odds_ratio_lower,
    odds_ratio_upper. Constant columns have estimate 0 and NaN se / bounds.
    """
    if scale not in ("original", "standardized"):
        raise ValueError("scale must be 'original' or 'standardized'")
    divisor = fit.scale if scale == "original" else np.ones_like(fit.scale)
    return _wald(fit.coef / divisor, np.sqrt(np.diag(fit.cov)[1:]) / divisor, level, "odds_ratio")


def _wald(estimate: np.ndarray, se: np.ndarray, level: float, ratio: str) -> dict[str, np.ndarray]:
    if not 0.0 < level < 1.0:
        raise ValueError("level must be in (0, 1)")
    z = stats.norm.ppf(0.5 + level / 2.0)
    lower, upper = estimate - z * se, estimate + z * se
    return {
        "estimate": estimate, "se": se, "lower": lower, "upper": upper,
        ratio: np.exp(estimate), f"{ratio}_lower": np.exp(lower), f"{ratio}_upper": np.exp(upper),
    }


def to_sklearn(fit: LogisticFit, X: np.ndarray, y: np.ndarray, tol: float = 1e-10,
               max_iter: int = 100_000):
    """Refit the chosen model with scikit-learn, for the audit estimator.

    The estimator is fitted on the *standardized* columns ``(X - fit.center) / fit.scale`` with
    ``C = 1 / fit.lam`` (``C = inf`` when lam = 0) and ``l1_ratio = 0`` (scikit-learn >= 1.8
    deprecates ``penalty``), so its ``coef_`` / ``intercept_`` are comparable to ``fit.coef`` /
    ``fit.intercept``. Constant columns are passed as zeros and get coefficient 0.

    Returns
    -------
    sklearn.linear_model.LogisticRegression
    """
    from sklearn.linear_model import LogisticRegression

    Z = (np.asarray(X, dtype=float) - fit.center) / fit.scale
    Z[:, ~fit.active] = 0.0
    C = np.inf if fit.lam == 0.0 else 1.0 / fit.lam
    model = LogisticRegression(C=C, l1_ratio=0.0, solver="lbfgs", tol=tol, max_iter=max_iter)
    return model.fit(Z, np.asarray(y, dtype=int))
