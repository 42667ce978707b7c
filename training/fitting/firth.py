"""Firth's penalized likelihood fits and the heuristic-shrinkage helpers of :mod:`training.development.methods`.

Every fit here runs on the shared Newton solver (:func:`training.fitting.newton.maximize`) with its own
rules: Firth's logistic fit converges at steps below :data:`_TOL` with no divergence bound,
Firth's Cox fit at 1e-7 with :data:`training.fitting.ridge.DIVERGENCE_BOUND`, and the intercept
re-estimation tests the full proposed step before its line search.
"""
from __future__ import annotations

import numpy as np
from scipy.special import expit

from training.fitting.cox import RiskSets
from training.fitting.newton import maximize
from training.fitting.ridge import DIVERGENCE_BOUND, FitError

_TOL = 1e-9
_MAX_ITER = 100


def firth_logistic(D: np.ndarray, y: np.ndarray, free: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Firth estimate and inverse information (Heinze & Schemper 2002's modified score).

    ``free`` (boolean mask) maximizes over those coefficients only, the others held at 0, with
    the full design's information in the penalty (logistf.fit's ``col.fit``).
    """
    free = np.ones(D.shape[1], dtype=bool) if free is None else np.asarray(free, dtype=bool)

    def objective(t):
        value = _firth_value(D, y, t)
        return (-np.inf if value is None else value), None

    def direction(theta, _state):
        mu = expit(D @ theta)
        w = mu * (1 - mu)
        info = (D * w[:, None]).T @ D
        inv = np.linalg.inv(info)
        h = w * np.einsum("ij,jk,ik->i", D, inv, D)
        score = D.T @ (y - mu + h * (0.5 - mu))
        step = np.zeros_like(theta)
        step[free] = np.linalg.solve(info[np.ix_(free, free)], score[free])
        return step

    theta, converged = maximize(objective, direction, np.zeros(D.shape[1]), tol=_TOL,
                                max_iter=_MAX_ITER)
    if not converged:
        raise FitError("Firth's logistic fit did not converge")
    mu = expit(D @ theta)
    return theta, np.linalg.inv((D * (mu * (1 - mu))[:, None]).T @ D)


def _firth_value(D: np.ndarray, y: np.ndarray, theta: np.ndarray) -> float | None:
    """l(theta) + 1/2 log det I(theta), or None where I(theta) is not positive definite."""
    eta = D @ theta
    mu = expit(eta)
    sign, logdet = np.linalg.slogdet((D * (mu * (1 - mu))[:, None]).T @ D)
    if sign <= 0:
        return None
    return float(np.sum(y * eta - np.logaddexp(0.0, eta)) + 0.5 * logdet)


def firth_loglik(D: np.ndarray, y: np.ndarray, theta: np.ndarray) -> float:
    """Firth's penalized log-likelihood l(theta) + 1/2 log det I(theta) of design ``D``."""
    value = _firth_value(D, y, theta)
    if value is None:
        raise FitError("Firth's penalized likelihood: singular information")
    return value


def firth_lr(D: np.ndarray, y: np.ndarray, theta: np.ndarray) -> float:
    """Penalized likelihood-ratio statistic 2 [l*(theta) - l*(theta_0)] of the model.

    theta_0 maximizes the same l* (the full design's information in the penalty) over the
    intercept alone, every other coefficient 0: R logistf's null model (``col.fit`` = intercept)
    and model test (Heinze & Schemper 2002). Unlike a separately penalized intercept-only model,
    this statistic does not depend on the units of the columns.
    """
    free = np.zeros(D.shape[1], dtype=bool)
    free[0] = True
    null, _ = firth_logistic(D, y, free=free)
    return 2.0 * (firth_loglik(D, y, theta) - firth_loglik(D, y, null))


def shrinkage_factor(lr: float, df: int) -> float:
    """Van Houwelingen & Le Cessie's heuristic factor max(0, (LR - df) / LR); 0 when LR <= 0."""
    return max(0.0, (lr - df) / lr) if lr > 0 else 0.0


def intercept_with_offset(y: np.ndarray, offset: np.ndarray) -> float:
    """Maximum likelihood intercept with ``offset`` fixed: mean prediction = outcome rate.

    Newton's method with step halving on the (strictly concave) log-likelihood: an undamped
    step from 0 diverges when the offset spans a wide range (docs/method-selection.md,
    Amendment 1, addendum). A step is halved only while it lowers the log-likelihood beyond
    rounding.
    """
    def objective(a):
        eta = a + offset
        return float(np.sum(y * eta - np.logaddexp(0.0, eta))), None

    def direction(a, _state):
        mu = expit(a + offset)
        return np.array([np.sum(y - mu) / max(np.sum(mu * (1 - mu)), 1e-300)])

    a, converged = maximize(objective, direction, np.zeros(1), tol=_TOL, max_iter=_MAX_ITER,
                            min_step=1e-10, test_proposed_step=True)
    if not converged:
        raise FitError("intercept re-estimation did not converge")
    return float(a[0])


def firth_cox(rs: RiskSets, q: int) -> tuple[np.ndarray, np.ndarray]:
    """Firth estimate l(b) + 1/2 log det I(b), by Newton steps I^-1 U* (numerical d log det)."""
    h = 1e-5

    def objective(b):
        ll, _, info = rs.evaluate(b)
        sign, logdet = np.linalg.slogdet(info)
        return (ll + 0.5 * logdet if sign > 0 else -np.inf), None

    def direction(beta, _state):
        _, score, info = rs.evaluate(beta)
        grad = np.array([(np.linalg.slogdet(rs.evaluate(beta + h * e)[2])[1]
                          - np.linalg.slogdet(rs.evaluate(beta - h * e)[2])[1]) / (4 * h)
                         for e in np.eye(q)])
        try:
            return np.linalg.solve(info, score + grad)
        except np.linalg.LinAlgError as problem:
            raise FitError("Firth's Cox fit: singular information") from problem

    beta, converged = maximize(objective, direction, np.zeros(q), tol=1e-7, max_iter=_MAX_ITER,
                               bound=DIVERGENCE_BOUND)
    if not converged:
        raise FitError("Firth's Cox fit did not converge")
    return beta, np.linalg.inv(rs.evaluate(beta)[2])
