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

The grid / AIC / warm-start loop is :func:`training.fitting.ridge.ridge_path` and the solver
:func:`training.fitting.newton.maximize`, both shared with :mod:`training.fitting.cox`; the helpers both model
kinds use (:data:`LAMBDA_GRID`, :class:`FitError`, :func:`standardize`, ...) live in
:mod:`training.fitting.ridge` and are re-exported here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from training.fitting.newton import maximize
from training.fitting.ridge import (  # noqa: F401 -- re-exported: the shared helpers' historical home
    DIVERGENCE_BOUND, LAMBDA_GRID, MAX_VARIANCE, FitError, RidgeFit, effective_df,
    penalized_covariance, ridge_path, select_lambda, standardize, to_all_columns, wald_table,
)

_TOL = 1e-10
_MAX_ITER = 200

@dataclass(frozen=True)
class LogisticFit(RidgeFit):
    """A fitted ridge logistic model: the :class:`training.fitting.ridge.RidgeFit` attributes and

    Attributes
    ----------
    intercept : float, standardized scale (log-odds at the mean patient)

    Here ``coef`` are log odds ratios per SD, ``lam`` is on the summed log-likelihood scale
    (sklearn ``C = 1 / lam``), ``df`` includes the intercept, ``loglik_null`` is the
    intercept-only log-likelihood, ``cov`` is (p+1, p+1) in the order [intercept, coef...] and
    ``n_events`` counts y == 1.
    """

    intercept: float

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


def _linear(D: np.ndarray, theta: np.ndarray, offset: np.ndarray | None) -> np.ndarray:
    return D @ theta if offset is None else offset + D @ theta


def loglik(D: np.ndarray, y: np.ndarray, theta: np.ndarray, offset: np.ndarray | None = None) -> float:
    """Bernoulli log-likelihood of 0/1 ``y`` at log-odds ``offset + D @ theta`` (<= 0)."""
    eta = _linear(D, theta, offset)
    return float(np.sum(y * eta - np.logaddexp(0.0, eta)))


def null_loglik(y: np.ndarray) -> float:
    """Log-likelihood of the intercept-only model, n [phi log phi + (1 - phi) log(1 - phi)]."""
    phi = y.mean()
    return float(y.size * (phi * np.log(phi) + (1 - phi) * np.log1p(-phi)))


def information(D: np.ndarray, theta: np.ndarray, offset: np.ndarray | None = None) -> np.ndarray:
    """Fisher information D' W D, W = diag(mu (1 - mu)), of the logistic model at ``theta``."""
    mu = expit(_linear(D, theta, offset))
    return (D * (mu * (1.0 - mu))[:, None]).T @ D


def newton_fit(D: np.ndarray, y: np.ndarray, lam: float, theta0: np.ndarray,
               offset: np.ndarray | None = None, *, tol: float = _TOL, max_iter: int = _MAX_ITER,
               bound: float = DIVERGENCE_BOUND, bounded_from: int = 1) -> tuple[np.ndarray, bool]:
    """Maximize l(theta) - lam/2 ||theta[1:]||^2 (column 0 of ``D`` the unpenalized intercept).

    Parameters
    ----------
    D : (n, q) design, intercept column first
    y : (n,) outcome, 0/1
    lam : penalty, >= 0
    theta0 : (q,) starting parameters
    offset : (n,) fixed term added to the log-odds, or None
    tol, max_iter, bound, bounded_from : see :func:`training.fitting.newton.maximize`; the defaults are
        the ridge fit's (the divergence bound leaves the intercept free)

    Returns
    -------
    (theta, converged)
    """
    pen = np.ones(D.shape[1])
    pen[0] = 0.0

    def objective(t: np.ndarray) -> tuple[float, None]:
        return loglik(D, y, t, offset) - 0.5 * lam * float(np.sum(pen * t * t)), None

    def direction(t: np.ndarray, _state: None) -> np.ndarray | None:
        mu = expit(_linear(D, t, offset))
        grad = D.T @ (y - mu) - lam * pen * t
        hess = (D * (mu * (1.0 - mu))[:, None]).T @ D + lam * np.diag(pen)
        try:
            return np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            return None

    return maximize(objective, direction, theta0, tol=tol, max_iter=max_iter, bound=bound,
                    bounded_from=bounded_from)


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
    grid, extend : the penalties and their extension, as for :func:`training.fitting.ridge.ridge_path`
        (a single value fits that penalty; the fit's ``edge`` says whether AIC never turned)

    Raises
    ------
    FitError
        One outcome class, or no grid point gives a finite fit.
    """
    center, scale, Z, active = standardize(X)
    y = _check_outcome(y, Z.shape[0])
    n = Z.shape[0]
    D = np.column_stack([np.ones(n), Z[:, active]])
    phi = y.mean()
    loglik_null = null_loglik(y)
    start = np.zeros(D.shape[1])
    start[0] = np.log(phi / (1 - phi))
    penalized = np.r_[False, np.ones(D.shape[1] - 1, dtype=bool)]
    path = ridge_path(grid, lambda lam, theta: newton_fit(D, y, lam, theta),
                      lambda est: (loglik(D, y, est), information(D, est)), start, penalized, extend)
    search, est, cov_active, df_best = path.search, path.estimate, path.cov, path.df
    if search.null_limit:  # the criterion's infimum is lambda -> infinity: the intercept-only model
        est = np.r_[np.log(phi / (1 - phi)), np.zeros(D.shape[1] - 1)]
        df_best = 1.0
    coef, cov = to_all_columns(est[1:], cov_active, active, intercept=True)
    return LogisticFit(
        center=center, scale=scale, intercept=float(est[0]), coef=coef, lam=path.lam,
        df=float(df_best), loglik=loglik(D, y, est), loglik_null=loglik_null, cov=cov,
        grid=search.grid, aic=search.criterion, df_grid=path.df_grid, n=n, n_events=int(y.sum()),
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
    return wald_table(fit.coef / divisor, np.sqrt(np.diag(fit.cov)[1:]) / divisor, level, "odds_ratio")


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
