"""Unpenalized recalibration fits of :mod:`training.evaluation.metrics`: logistic with offset, and Cox.

Both are maximum likelihood fits by the shared Newton solver (:func:`training.fitting.newton.maximize`)
that return NaN instead of raising when the estimate does not exist (separation, monotone
likelihood) or is not identified (singular information), so bootstrap summaries can count and
skip them.
"""
from __future__ import annotations

import numpy as np

from training.fitting import logistic
from training.fitting.cox import RiskSets, newton_fit
from training.fitting.ridge import penalized_covariance

#: The recalibration fits' solver rules (tolerance, iteration cap, divergence bound on every
#: coefficient, intercept included).
_TOL = 1e-10
_MAX_ITER = 100
_BOUND = 1e3


def logistic_mle(D: np.ndarray, y: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Unpenalized logistic MLE of logit P(y = 1) = offset + D @ theta; NaNs when it does not exist.

    Parameters
    ----------
    D : (n, q) design
    y : (n,) outcome, 0/1
    offset : (n,) fixed term of the log-odds

    Returns
    -------
    (q,) estimate, or NaNs when the fit diverges (separation), fails or is not identified
    """
    theta, ok = logistic.newton_fit(D, y, 0.0, np.zeros(D.shape[1]), offset, tol=_TOL,
                                    max_iter=_MAX_ITER, bound=_BOUND, bounded_from=0)
    if ok:
        info = logistic.information(D, theta, offset)
        if penalized_covariance(info, 0.0, np.zeros(D.shape[1], dtype=bool)) is not None:
            return theta
    return np.full(D.shape[1], np.nan)


def cox_mle(time: np.ndarray, event: np.ndarray, F: np.ndarray, ties: str) -> np.ndarray:
    """Unpenalized Cox coefficients of the columns of ``F`` (NaN if no finite MLE).

    Parameters
    ----------
    time, event : (n,) follow-up and 0/1 event indicator
    F : (n, q) covariates (fitted standardized, so that the identifiability check is scale-free)
    ties : "efron" or "breslow"

    Returns
    -------
    (q,) coefficients per unit of each column of ``F``, or NaNs
    """
    event = np.asarray(event).astype(bool)
    sd = F.std(axis=0)
    if not event.any() or np.any(np.ptp(F, axis=0) == 0):
        return np.full(F.shape[1], np.nan)
    Z = (F - F.mean(axis=0)) / sd
    rs = RiskSets(Z, time, event, ties)
    beta, ok = newton_fit(rs, 0.0, np.zeros(F.shape[1]))
    if ok and penalized_covariance(rs.evaluate(beta)[2], 0.0, np.zeros(F.shape[1], dtype=bool)) is not None:
        return beta / sd
    return np.full(F.shape[1], np.nan)
