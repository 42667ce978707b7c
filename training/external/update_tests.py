"""Update methods of a prediction model and the closed testing procedure that chooses one.

Four nested models for a center's cohort (Vergouwe et al. 2017, Stat Med 36:4529; Steyerberg,
Clinical Prediction Models, 2nd ed., ch. 20):

====  ===============  ==========================================  ===============================
 k    method           logistic (lp = the bundle's log-odds)       Cox (lp = log relative hazard)
====  ===============  ==========================================  ===============================
 0    none             logit p = lp                                H(t|x) = H0(t) exp(lp)
 1    intercept        logit p = a + lp                            baseline hazard times exp(a)
 2    recalibrate      logit p = a + b lp                          exp(a) H0(t) exp(b lp)
 3    refit            every coefficient re-estimated              every coefficient re-estimated
====  ===============  ==========================================  ===============================

The closed test compares the refit with each smaller model in turn by a likelihood-ratio test at
level ``alpha``: refit vs none (df p + 1); if significant, refit vs intercept (df p); if
significant, refit vs recalibrate (df p - 1); the first non-significant test chooses the smaller
model, and three significant tests choose the refit. Testing always against the largest model
keeps the overall type I error near ``alpha``.

Logistic likelihoods are Bernoulli; the refit's is the unpenalized maximum likelihood. For Cox
models the same four models are Poisson regressions of the event indicator (follow-up truncated at
the model's last follow-up) with offset log H0(T_i) (Crowson, Atkinson & Therneau 2016, SMMR
25:1692): the partial likelihood cannot see a change in the baseline hazard, this full
likelihood can, and in it the four models are nested exactly as above.
"""
from __future__ import annotations

import numpy as np
from scipy import stats
from scipy.special import expit

from training.fitting.newton import maximize
from training.fitting.recalibration import logistic_mle

METHODS = ("none", "intercept", "recalibrate", "refit")
LABELS = {"none": "original model (no update)", "intercept": "re-estimated intercept / baseline",
          "recalibrate": "recalibration (intercept and slope)", "refit": "refit of every coefficient"}
ALPHA = 0.05


def bernoulli_loglik(y: np.ndarray, eta: np.ndarray) -> float:
    """Log-likelihood of 0/1 outcomes ``y`` under log-odds ``eta`` (NaN for a NaN estimate)."""
    if not np.all(np.isfinite(eta)):
        return float("nan")
    return float(np.sum(y * eta - np.logaddexp(0.0, eta)))


def poisson_mle(D: np.ndarray, d: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Poisson regression of counts ``d`` on columns ``D`` with ``offset`` (NaN if no finite MLE)."""
    theta = np.zeros(D.shape[1])
    if d.sum() > 0:
        theta[0] = np.log(d.sum() / np.exp(offset).sum()) if np.all(D[:, 0] == 1) else 0.0

    def objective(estimate: np.ndarray):
        return poisson_loglik(d, offset + D @ estimate), None

    def direction(estimate: np.ndarray, _state):
        mu = np.exp(offset + D @ estimate)
        try:
            return np.linalg.solve((D * mu[:, None]).T @ D, D.T @ (d - mu))
        except np.linalg.LinAlgError:
            return None

    theta, converged = maximize(objective, direction, theta, tol=1e-10, max_iter=100, bound=50.0)
    return theta if converged else np.full(D.shape[1], np.nan)


def poisson_loglik(d: np.ndarray, log_mu: np.ndarray) -> float:
    """Poisson log-likelihood without the terms that do not depend on the model."""
    if not np.all(np.isfinite(log_mu)):
        return float("nan")
    return float(np.sum(d * log_mu - np.exp(log_mu)))


def _standardized(Z: np.ndarray) -> np.ndarray:
    sd = Z.std(axis=0)
    return (Z - Z.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def logistic_logliks(y: np.ndarray, lp: np.ndarray, Z: np.ndarray) -> tuple[list[float], dict]:
    """Log-likelihoods of models 0-3 and the update parameters (a, b) of models 1 and 2."""
    y = np.asarray(y, dtype=float)
    ones = np.ones((y.size, 1))
    a1 = logistic_mle(ones, y, lp)[0]
    a2, b2 = logistic_mle(np.column_stack([ones, lp]), y, np.zeros_like(lp))
    D3 = np.column_stack([ones, _standardized(Z)])
    theta3 = logistic_mle(D3, y, np.zeros_like(lp))
    ll = [bernoulli_loglik(y, lp), bernoulli_loglik(y, a1 + lp), bernoulli_loglik(y, a2 + b2 * lp),
          bernoulli_loglik(y, D3 @ theta3)]
    return ll, {"intercept": {"intercept_shift": float(a1), "slope": 1.0},
                "recalibrate": {"intercept_shift": float(a2), "slope": float(b2)}}


def cox_logliks(d: np.ndarray, log_H0: np.ndarray, lp: np.ndarray,
                Z: np.ndarray) -> tuple[list[float], dict]:
    """Poisson log-likelihoods of models 0-3 and the parameters (a, b) of models 1 and 2.

    Parameters
    ----------
    d : (n,) 1 for an event within the model's follow-up
    log_H0 : (n,) log baseline cumulative hazard at each patient's (truncated) follow-up
    lp : (n,) the model's linear predictor
    Z : (n, p) the model's columns
    """
    d = np.asarray(d, dtype=float)
    ones = np.ones((d.size, 1))
    a1 = poisson_mle(ones, d, log_H0 + lp)[0]
    a2, b2 = poisson_mle(np.column_stack([ones, lp]), d, log_H0)
    D3 = np.column_stack([ones, _standardized(Z)])
    theta3 = poisson_mle(D3, d, log_H0)
    ll = [poisson_loglik(d, log_H0 + lp), poisson_loglik(d, log_H0 + a1 + lp),
          poisson_loglik(d, log_H0 + a2 + b2 * lp), poisson_loglik(d, log_H0 + D3 @ theta3)]
    return ll, {"intercept": {"intercept_shift": float(a1), "slope": 1.0},
                "recalibrate": {"intercept_shift": float(a2), "slope": float(b2)}}


def closed_test(loglik: list[float], n_features: int, alpha: float = ALPHA) -> dict:
    """Choose an update method by the closed testing procedure (see the module docstring).

    Parameters
    ----------
    loglik : log-likelihoods of models 0 (none), 1 (intercept), 2 (recalibrate), 3 (refit)
    n_features : p, the model's number of predictor columns
    alpha : level of each likelihood-ratio test

    Returns
    -------
    dict with ``chosen`` (one of :data:`METHODS`), ``decided_by`` (a sentence naming the test),
    and ``tests`` (each with ``compare``, ``lr``, ``df``, ``p``, ``significant``).
    """
    params = [0, 1, 2, n_features + 1]
    tests = []
    if not np.all(np.isfinite(loglik)):
        return {"chosen": "none", "tests": tests, "alpha": alpha,
                "decided_by": "an update model has no finite maximum-likelihood estimate in this "
                              "cohort (one outcome class, no events, or separation), so the "
                              "closed test cannot run; no update"}
    for smaller in (0, 1, 2):
        df = params[3] - params[smaller]
        lr = max(0.0, 2.0 * (loglik[3] - loglik[smaller]))
        p = float(stats.chi2.sf(lr, df)) if df > 0 else 1.0
        test = {"compare": f"refit vs {METHODS[smaller]}", "lr": lr, "df": df, "p": p,
                "significant": bool(p < alpha)}
        tests.append(test)
        if not test["significant"]:
            return {"chosen": METHODS[smaller], "tests": tests, "alpha": alpha,
                    "decided_by": f"refit vs {METHODS[smaller]}: LR {lr:.2f} on {df} df, "
                                  f"p = {p:.3g} >= {alpha:g}, so {LABELS[METHODS[smaller]]}"}
    last = tests[-1]
    return {"chosen": "refit", "tests": tests, "alpha": alpha,
            "decided_by": f"refit vs recalibrate: LR {last['lr']:.2f} on {last['df']} df, "
                          f"p = {last['p']:.3g} < {alpha:g}, so {LABELS['refit']}"}


def logistic_update_fit(y: np.ndarray, lp: np.ndarray, method: str) -> tuple[float, float]:
    """(a, b) of an intercept (b = 1) or recalibration update; NaNs when not estimable."""
    y = np.asarray(y, dtype=float)
    ones = np.ones((y.size, 1))
    if method == "intercept":
        return float(logistic_mle(ones, y, lp)[0]), 1.0
    a, b = logistic_mle(np.column_stack([ones, lp]), y, np.zeros_like(lp))
    return float(a), float(b)


def cox_update_fit(d: np.ndarray, log_H0: np.ndarray, lp: np.ndarray, method: str) -> tuple[float, float]:
    """(a, b) of a baseline (b = 1) or recalibration update of a Cox model (Poisson MLE)."""
    d = np.asarray(d, dtype=float)
    ones = np.ones((d.size, 1))
    if method == "intercept":
        return float(poisson_mle(ones, d, log_H0 + lp)[0]), 1.0
    a, b = poisson_mle(np.column_stack([ones, lp]), d, log_H0)
    return float(a), float(b)


def updated_probability(lp: np.ndarray, a: float, b: float) -> np.ndarray:
    return expit(a + b * np.asarray(lp, dtype=float))
