"""Discrimination and calibration metrics (pure functions of arrays).

Binary outcome (:func:`binary_metrics`):

* C statistic = AUC (Mann-Whitney, ties in p count 1/2).
* Calibration slope = b in logit P(y=1) = a + b logit(p); calibration intercept =
  calibration-in-the-large, a in logit P(y=1) = a + offset(logit(p)) (Van Calster et al. 2016,
  J Clin Epidemiol 74:167). Both by a numpy Newton-Raphson maximum likelihood fit (equivalent to
  statsmodels ``GLM(..., offset=...)``, checked in the tests); p is clipped to [1e-12, 1 - 1e-12].
* Brier score = mean (y - p)^2.
* ICI / E50 / E90 = mean / median / 90th percentile of |s(p_i) - p_i|, s = loess smooth of y on p
  (Austin & Steyerberg 2019, Stat Med 38:4051): local quadratic, tricube weights, span 0.75, no
  robustness iterations -- R's ``loess(y ~ p)`` defaults, with exact (``surface = "direct"``)
  local fits. With at most :data:`LOESS_POINTS` distinct predictions (every cohort of up to 200
  patients) the curve is fitted exactly at each of them. With more, it is fitted exactly at
  :data:`LOESS_POINTS` quantiles of the predictions and linearly interpolated in between: O(n)
  time and memory instead of O(n^2), and, like R's default ``surface = "interpolate"``, an
  approximation of the direct fit. On simulated cohorts of 300 to 8,000 patients the interpolated
  curve was within 1e-3 of the direct one (probability scale), ICI within 2e-5 and E50 / E90
  within 2e-4, far below their bootstrap uncertainty (``tests/test_metrics.py`` checks n = 2,000).
  The direct curve has a kink wherever a point enters a neighbourhood, so more points or cubic
  interpolation shrink this error only slowly.

Time-to-event outcome at a horizon t (:func:`survival_metrics`, default 12 months):

* C statistic = Harrell's C over all usable pairs (earlier time an event; ties in risk 1/2;
  a censoring tied with an event time counts as surviving longer), counted in O(n log^2 n).
* Calibration slope = coefficient of the linear predictor in a Cox model (Van Houwelingen 2000,
  Stat Med 19:3401); the same slope as regressing on log(-log(1 - F(t|x))) = log H0(t) + lp.
* Calibration intercept = log(O / E) with follow-up truncated at t: O = events by t,
  E = sum of predicted cumulative hazards H(min(T_i, t) | x_i) (Poisson calibration-in-the-large,
  Crowson, Atkinson & Therneau 2016, SMMR 25:1692). 0 = calibrated in the large.
* Brier score at t with inverse probability of censoring weights (Graf et al. 1999, Stat Med
  18:2529), G the Kaplan-Meier estimate of the censoring distribution.
* ICI / E50 / E90 at t (Austin, Harrell & van Klaveren 2020, Stat Med 39:2714): observed risk =
  1 - S(t) from a Cox model of the outcome on a restricted cubic spline (3 knots at the 10/50/90th
  percentiles) of log(-log(1 - F(t|x))); falls back to the linear term when the knots coincide.

A metric that cannot be estimated (one outcome class, diverging recalibration fit under
separation, G(t) = 0, no events by t) is NaN rather than an exception, so bootstrap summaries can
count and skip it.
"""
from __future__ import annotations

import numpy as np
from scipy.special import logit

from training.evaluation.concordance import auc, harrell_c  # noqa: F401 -- part of this module's API
from training.fitting.cox import RiskSets
from training.fitting.recalibration import cox_mle, logistic_mle

METRICS = ("c_index", "calibration_slope", "calibration_intercept", "brier", "ici", "e50", "e90")
#: Most points at which the calibration loess is fitted exactly (see the module docstring).
LOESS_POINTS = 200
_EPS = 1e-12


def brier(y: np.ndarray, p: np.ndarray) -> float:
    """Mean squared difference between 0/1 outcome and predicted probability, in [0, 1]."""
    return float(np.mean((np.asarray(y, dtype=float) - np.asarray(p, dtype=float)) ** 2))


def calibration_slope(y: np.ndarray, p: np.ndarray) -> float:
    """Slope b of logit P(y = 1) = a + b logit(p); 1 = ideal, < 1 = predictions too extreme."""
    return calibration_slope_of_log_odds(y, logit(np.clip(np.asarray(p, dtype=float), _EPS, 1 - _EPS)))


def calibration_slope_of_log_odds(y: np.ndarray, lp: np.ndarray) -> float:
    """Slope b of logit P(y = 1) = a + b lp for 0/1 ``y`` and predicted log-odds ``lp`` (no
    clipping); NaN when it does not exist (one outcome class, constant lp, separation)."""
    y = np.asarray(y, dtype=float)
    lp = np.asarray(lp, dtype=float)
    sd = lp.std()
    if y.min() == y.max() or np.ptp(lp) == 0:  # ptp, not sd: the sd of equal floats can be 1e-17
        return float("nan")
    # Fitted on the standardized logit so that the identifiability check is scale-free.
    z = (lp - lp.mean()) / sd
    return float(logistic_mle(np.column_stack([np.ones_like(z), z]), y, np.zeros_like(z))[1] / sd)


def calibration_intercept(y: np.ndarray, p: np.ndarray) -> float:
    """Calibration-in-the-large a in logit P(y = 1) = a + offset(logit p); 0 = ideal."""
    y = np.asarray(y, dtype=float)
    if y.min() == y.max():
        return float("nan")
    lp = logit(np.clip(np.asarray(p, dtype=float), _EPS, 1 - _EPS))
    return float(logistic_mle(np.ones((lp.size, 1)), y, lp)[0])


def loess(x: np.ndarray, y: np.ndarray, span: float = 0.75, degree: int = 2,
          max_points: int | None = LOESS_POINTS) -> np.ndarray:
    """Loess fitted values at the data points.

    Parameters
    ----------
    x, y : (n,) arrays
    span : fraction of points in each neighbourhood (q = floor(span * n))
    degree : local polynomial degree, 1 or 2
    max_points : int or None
        Fit exactly at every distinct ``x`` when there are at most this many (or always, with
        None); otherwise fit exactly at ``max_points`` quantiles of ``x`` (min and max included)
        and interpolate linearly. See the module docstring for the error this makes.

    Returns
    -------
    (n,) fitted values. Rank-deficient neighbourhoods (few distinct x) use the pseudo-inverse.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    distinct, inverse = np.unique(x, return_inverse=True)
    if max_points is None or distinct.size <= max_points:
        return loess_at(x, y, distinct, span, degree)[inverse.ravel()]
    at = np.unique(np.quantile(x, np.linspace(0.0, 1.0, max_points)))
    return np.interp(x, at, loess_at(x, y, at, span, degree))


def loess_at(x: np.ndarray, y: np.ndarray, at: np.ndarray, span: float = 0.75,
             degree: int = 2) -> np.ndarray:
    """Direct loess fit of ``y`` on ``x`` evaluated at the points ``at``.

    Each value is the local polynomial fit at that point: tricube weights over the q = floor(span
    * n) nearest ``x`` (R's ``surface = "direct"``). O(len(at) * n) time and memory.

    Parameters
    ----------
    x, y : (n,) arrays
    at : (m,) evaluation points
    span, degree : as for :func:`loess`

    Returns
    -------
    (m,) fitted values
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    at = np.asarray(at, dtype=float)
    n = x.size
    q = min(n, max(degree + 1, int(np.floor(span * n + 1e-10))))
    dx = x[None, :] - at[:, None]  # (m, n)
    dist = np.abs(dx)
    h = np.partition(dist, q - 1, axis=1)[:, q - 1]
    h = np.where(h > 0, h, 1.0)
    w = (1.0 - np.minimum(dist / h[:, None], 1.0) ** 3) ** 3
    # X'WX of the local polynomial is a Hankel matrix of the weighted moments sum_j w dx^k.
    moments = np.empty((at.size, 2 * degree + 1))
    xtwy = np.empty((at.size, degree + 1))
    term = w
    for k in range(2 * degree + 1):
        if k:
            term = term * dx
        moments[:, k] = term.sum(axis=1)
        if k <= degree:
            xtwy[:, k] = term @ y
    xtwx = moments[:, np.add.outer(np.arange(degree + 1), np.arange(degree + 1))]
    return np.einsum("ikl,il->ik", np.linalg.pinv(xtwx, hermitian=True), xtwy)[:, 0]


def _ici_summary(observed: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    diff = np.abs(observed - predicted)
    if not np.all(np.isfinite(diff)):
        return {"ici": float("nan"), "e50": float("nan"), "e90": float("nan")}
    return {"ici": float(diff.mean()), "e50": float(np.median(diff)), "e90": float(np.quantile(diff, 0.9))}


def ici_binary(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ICI, E50 and E90 (probability scale, in [0, 1]) from a loess calibration curve."""
    p = np.asarray(p, dtype=float)
    return _ici_summary(loess(p, np.asarray(y, dtype=float)), p)


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """All binary metrics, keyed as in the bundle's ``apparent`` block (see :data:`METRICS`)."""
    return {"c_index": auc(y, p), "calibration_slope": calibration_slope(y, p),
            "calibration_intercept": calibration_intercept(y, p), "brier": brier(y, p),
            **ici_binary(y, p)}


# --- time to event -------------------------------------------------------------------------


def cox_calibration_slope(time: np.ndarray, event: np.ndarray, lp: np.ndarray, ties: str = "efron") -> float:
    """Coefficient of the linear predictor in a Cox model of the outcome; 1 = ideal."""
    lp = np.asarray(lp, dtype=float)
    return float(cox_mle(np.asarray(time, dtype=float), event, lp[:, None], ties)[0])


def cox_calibration_intercept(time: np.ndarray, event: np.ndarray, cumhaz_followup: np.ndarray,
                              horizon: float) -> float:
    """log(O / E) with follow-up truncated at ``horizon``; ``cumhaz_followup`` = H(min(T_i, t) | x_i)."""
    time = np.asarray(time, dtype=float)
    observed = float(np.sum(np.asarray(event).astype(bool) & (time <= horizon)))
    expected = float(np.sum(cumhaz_followup))
    if observed == 0 or expected <= 0:
        return float("nan")
    return float(np.log(observed / expected))


def censoring_survival(time: np.ndarray, event: np.ndarray, at: np.ndarray, left: bool = False) -> np.ndarray:
    """Kaplan-Meier estimate G of the censoring survival function at ``at``.

    The reverse Kaplan-Meier estimator: censorings are its events, everyone with T >= u is at
    risk at u (as ``KaplanMeierFitter().fit(time, 1 - event)``). ``left=True`` gives G(t-).
    """
    time = np.asarray(time, dtype=float)
    censored = ~np.asarray(event).astype(bool)
    u = np.unique(time[censored])
    at_risk = time.size - np.searchsorted(np.sort(time), u, side="left")
    n_cens = np.bincount(np.searchsorted(u, time[censored]), minlength=u.size)
    G = np.cumprod(1.0 - n_cens / at_risk)
    idx = np.searchsorted(u, np.asarray(at, dtype=float), side="left" if left else "right")
    return np.r_[1.0, G][idx]


def brier_ipcw(time: np.ndarray, event: np.ndarray, surv_at_horizon: np.ndarray, horizon: float) -> float:
    """Graf's IPCW Brier score at ``horizon`` for predicted survival S(t | x_i) (>= 0, lower is better)."""
    time = np.asarray(time, dtype=float)
    event = np.asarray(event).astype(bool)
    S = np.asarray(surv_at_horizon, dtype=float)
    G_t = censoring_survival(time, event, np.array([horizon]))[0]
    G_i = censoring_survival(time, event, time, left=True)
    died = event & (time <= horizon)
    alive = time > horizon
    if G_t <= 0 or np.any(G_i[died] <= 0):
        return float("nan")
    terms = np.zeros_like(S)
    terms[died] = S[died] ** 2 / G_i[died]
    terms[alive] = (1.0 - S[alive]) ** 2 / G_t
    return float(terms.mean())


def _rcs3(x: np.ndarray) -> np.ndarray | None:
    """Restricted cubic spline basis, knots at the 10/50/90th percentiles (Harrell's scaling)."""
    k1, k2, k3 = np.quantile(x, [0.1, 0.5, 0.9])
    if not k1 < k2 < k3:
        return None

    def cube(v):
        return np.maximum(v, 0.0) ** 3

    spline = (cube(x - k1) - cube(x - k2) * (k3 - k1) / (k3 - k2)
              + cube(x - k3) * (k2 - k1) / (k3 - k2)) / (k3 - k1) ** 2
    return np.column_stack([x, spline])


def ici_survival(time: np.ndarray, event: np.ndarray, risk_at_horizon: np.ndarray, horizon: float,
                 ties: str = "efron") -> dict[str, float]:
    """ICI / E50 / E90 at ``horizon`` for predicted risks F(t | x_i) = 1 - S(t | x_i)."""
    F = np.asarray(risk_at_horizon, dtype=float)
    observed = survival_calibration_curve(time, event, F, horizon, ties)
    if observed is None:
        return {"ici": float("nan"), "e50": float("nan"), "e90": float("nan")}
    return _ici_summary(observed, F)


def survival_calibration_curve(time: np.ndarray, event: np.ndarray, risk_at_horizon: np.ndarray,
                               horizon: float, ties: str = "efron") -> np.ndarray | None:
    """Observed risk by ``horizon`` for each patient, from the hazard regression of
    :func:`ici_survival` (Austin, Harrell & van Klaveren 2020); None when it cannot be estimated.

    Parameters
    ----------
    time, event : (n,) follow-up and 0/1 event indicator
    risk_at_horizon : (n,) predicted risks F(t | x_i), each in (0, 1)

    Returns
    -------
    (n,) observed risks in [0, 1], paired with ``risk_at_horizon``; or None.
    """
    time = np.asarray(time, dtype=float)
    event = np.asarray(event).astype(bool)
    F = np.asarray(risk_at_horizon, dtype=float)
    if np.any(F <= 0) or np.any(F >= 1) or not event.any():
        return None
    cll = np.log(-np.log1p(-F))
    basis = _rcs3(cll)
    if basis is None:
        basis = cll[:, None]
    basis = basis - basis.mean(axis=0)
    beta = cox_mle(time, event, basis, ties)
    if not np.all(np.isfinite(beta)):
        return None
    rs = RiskSets(basis, time, event, ties)
    H0 = np.sum(rs.baseline_jumps(beta)[rs.event_times <= horizon])
    return -np.expm1(-H0 * np.exp(basis @ beta))


def survival_metrics(time: np.ndarray, event: np.ndarray, lp: np.ndarray, event_times: np.ndarray,
                     cumhaz0: np.ndarray, horizon: float = 12.0, ties: str = "efron") -> dict[str, float]:
    """All time-to-event metrics at ``horizon``, keyed as :data:`METRICS`.

    Parameters
    ----------
    time, event : (n,) follow-up (months) and 0/1 event indicator of the evaluation data
    lp : (n,) linear predictor z @ coef of the model being evaluated
    event_times, cumhaz0 : the model's baseline cumulative hazard step function (H0 just after
        each time; see :class:`training.fitting.cox.CoxFit`)
    horizon : prediction time, same unit as ``time``
    ties : tie handling of the recalibration Cox fits
    """
    time = np.asarray(time, dtype=float)
    lp = np.asarray(lp, dtype=float)
    steps = np.r_[0.0, np.asarray(cumhaz0, dtype=float)]
    event_times = np.asarray(event_times, dtype=float)
    H_followup = steps[np.searchsorted(event_times, np.minimum(time, horizon), side="right")] * np.exp(lp)
    H_t = steps[np.searchsorted(event_times, horizon, side="right")] * np.exp(lp)
    surv = np.exp(-H_t)
    return {
        "c_index": harrell_c(time, event, lp),
        "calibration_slope": cox_calibration_slope(time, event, lp, ties),
        "calibration_intercept": cox_calibration_intercept(time, event, H_followup, horizon),
        "brier": brier_ipcw(time, event, surv, horizon),
        **ici_survival(time, event, -np.expm1(-H_t), horizon, ties),
    }


def evaluate_logistic(fit, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """:func:`binary_metrics` of a :class:`training.fitting.logistic.LogisticFit` on (X, y)."""
    return binary_metrics(y, fit.predict_proba(X))


def evaluate_cox(fit, X: np.ndarray, time: np.ndarray, event: np.ndarray,
                 horizon: float = 12.0) -> dict[str, float]:
    """:func:`survival_metrics` of a :class:`training.fitting.cox.CoxFit` on (X, time, event)."""
    return survival_metrics(time, event, fit.linear_predictor(X), fit.event_times, fit.cumhaz0,
                            horizon, fit.ties)
