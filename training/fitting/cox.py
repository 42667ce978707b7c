"""Ridge-penalized Cox proportional hazards model.

Objective (standardized scale, see :func:`training.fitting.logistic.standardize`):

    l(b) - lambda / 2 * ||b||^2

with ``l`` the log partial likelihood. This is exactly lifelines' ``CoxPHFitter(penalizer=lambda/n,
l1_ratio=0)``: lifelines (0.30, ``_newton_raphson_for_efron_model``) subtracts
``n * penalizer * 0.5 * ||b||^2`` from the *summed* log partial likelihood, after standardizing the
columns itself with the mean and the ddof=1 SD -- which leaves our already standardized columns
unchanged. lifelines handles tied event times with Efron's method only, so the numpy solver here
defaults to ``ties="efron"`` to be the same objective; ``ties="breslow"`` is available (checked
against statsmodels ``PHReg(ties="breslow")``). Without tied event times the two coincide.

Two implementations: :func:`fit_cox` (vectorized numpy Newton-Raphson, used for the predictor and
inside the bootstrap) and :func:`fit_lifelines` (lifelines refit of the chosen model, the audit
estimator; ``tests/test_cox.py`` checks agreement to 1e-6). lambda is chosen as for the logistic
model: minimum AIC with effective df trace(I (I + lambda I)^-1) over the grid (no intercept).

The baseline cumulative hazard at z = 0 (the mean training patient) is the estimator that belongs
to the tie method: with Efron ties (the default) the Efron estimator, H0(t) = sum over event times
t_k <= t of sum_{r=0}^{d_k-1} 1 / (S0_k - r / d_k * S0_tied_k), which is what R's ``survfit``
returns for an Efron ``coxph`` fit (``tests/test_cox.py`` pins R's values); with Breslow ties
Breslow's d_k / S0_k. They differ only at tied event times (lifelines' ``baseline_cumulative_hazard_``
is Breslow's whatever the ties).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.fitting.newton import maximize
from training.fitting.ridge import (
    DIVERGENCE_BOUND, LAMBDA_GRID, FitError, RidgeFit, ridge_path, standardize, to_all_columns,
    wald_table,
)

_TOL = 1e-10
_MAX_ITER = 200


class RiskSets:
    """Sorted data and tie structure, computed once per data set.

    The risk-set sums of w, w z and w z z' at each event time are reverse cumulative sums over
    the event-time segments of the sorted data: one pass over the n rows per evaluation, on the
    packed columns [1, z, upper triangle of z z'] (p (p + 1) / 2 products instead of p^2).
    """

    def __init__(self, Z: np.ndarray, time: np.ndarray, event: np.ndarray, ties: str):
        if ties not in ("efron", "breslow"):
            raise ValueError("ties must be 'efron' or 'breslow'")
        order = np.argsort(time, kind="stable")
        self.time, self.event, self.Z = time[order], event[order], Z[order]
        ev_time = self.time[self.event]
        self.event_times, first, self.d = np.unique(ev_time, return_index=True, return_counts=True)
        self.start = np.searchsorted(self.time, self.event_times, side="left")
        self.group = np.repeat(np.arange(self.d.size), self.d)  # event -> its event time
        self.first_event = first  # position of each group's first event among the events
        within = np.arange(ev_time.size) - first[self.group]
        self.frac = within / self.d[self.group] if ties == "efron" else np.zeros(ev_time.size)
        p = self.Z.shape[1]
        self.upper = np.triu_indices(p)
        self.packed = np.column_stack([np.ones(self.Z.shape[0]), self.Z,
                                       self.Z[:, self.upper[0]] * self.Z[:, self.upper[1]]])

    def evaluate(self, beta: np.ndarray, hessian: bool = True):
        """Log partial likelihood, score and information (negative Hessian) at ``beta``."""
        eta = self.Z @ beta
        shift = eta.max() if eta.size else 0.0
        w = np.exp(eta - shift)
        ev = self.event
        p = beta.size
        columns = self.packed if hessian else self.packed[:, :p + 1]
        weighted = w[:, None] * columns
        # sums over the risk set {j: T_j >= t_k} and over the events tied at t_k
        risk = np.cumsum(np.add.reduceat(weighted, self.start, axis=0)[::-1], axis=0)[::-1]
        tied = np.add.reduceat(weighted[ev], self.first_event, axis=0)
        g, f = self.group, self.frac[:, None]
        efron = risk[g] - f * tied[g]  # (events, columns)
        phi = efron[:, 0]
        n1 = efron[:, 1:p + 1]
        loglik = float(np.sum(eta[ev] - shift) - np.sum(np.log(phi)))
        mean1 = n1 / phi[:, None]
        score = self.Z[ev].sum(axis=0) - mean1.sum(axis=0)
        if not hessian:
            return loglik, score, None
        second = (efron[:, p + 1:] / phi[:, None]).sum(axis=0)
        info = np.empty((p, p))
        info[self.upper] = second
        info[self.upper[::-1]] = second
        return loglik, score, info - mean1.T @ mean1

    def baseline_jumps(self, beta: np.ndarray) -> np.ndarray:
        """Cumulative-hazard increments at ``event_times``, at z = 0, matching the tie method.

        Breslow ties: d_k / S0_k (Breslow's estimator). Efron ties: the Efron estimator,
        sum over r = 0..d_k-1 of 1 / (S0_k - r / d_k * S0_tied_k), S0_tied_k the summed risk of
        the d_k tied events -- what R's ``survfit`` computes for an Efron ``coxph`` fit
        (``ctype = 2``, the default for ``ties = "efron"``). Without ties both are Breslow's.
        """
        eta = self.Z @ beta
        shift = eta.max()
        w = np.exp(eta - shift)
        s0 = np.cumsum(w[::-1])[::-1][self.start]
        tied = np.add.reduceat(w[self.event], self.first_event)
        g = self.group
        terms = 1.0 / (s0[g] - self.frac * tied[g])
        return np.bincount(g, weights=terms, minlength=self.d.size) * np.exp(-shift)


def newton_fit(rs: RiskSets, lam: float, beta0: np.ndarray, *, tol: float = _TOL,
               max_iter: int = _MAX_ITER, bound: float = DIVERGENCE_BOUND) -> tuple[np.ndarray, bool]:
    """Maximize l(b) - lam/2 ||b||^2 by Newton-Raphson with step halving.

    Parameters
    ----------
    rs : the data's risk sets
    lam : penalty, >= 0
    beta0 : (q,) starting coefficients
    tol, max_iter, bound : see :func:`training.fitting.newton.maximize`

    Returns
    -------
    (beta, converged)
    """
    p = beta0.size

    def objective(b: np.ndarray):
        ll, score, info = rs.evaluate(b)
        return ll - 0.5 * lam * b @ b, (score, info)

    def direction(b: np.ndarray, state) -> np.ndarray | None:
        score, info = state
        try:
            return np.linalg.solve(info + lam * np.eye(p), score - lam * b)
        except np.linalg.LinAlgError:
            return None

    return maximize(objective, direction, beta0, tol=tol, max_iter=max_iter, bound=bound)


@dataclass(frozen=True)
class CoxFit(RidgeFit):
    """A fitted ridge Cox model: the :class:`training.fitting.ridge.RidgeFit` attributes and

    Attributes
    ----------
    event_times : (K,) distinct event times, ascending (same unit as ``time``, here months)
    cumhaz0 : (K,) Breslow cumulative baseline hazard at z = 0 just after each event time
    max_follow_up : largest observed time
    ties : "efron" or "breslow"

    Here ``coef`` are log hazard ratios per SD, ``lam`` is lifelines' ``penalizer * n``,
    ``loglik`` / ``loglik_null`` are log partial likelihoods (at the estimate / at b = 0),
    ``cov`` is (p, p) and ``n_events`` counts events.
    """

    event_times: np.ndarray
    cumhaz0: np.ndarray
    max_follow_up: float
    ties: str

    def linear_predictor(self, X: np.ndarray) -> np.ndarray:
        """z @ coef for each row of ``X`` (0 for the mean training patient)."""
        Z = (np.asarray(X, dtype=float) - self.center) / self.scale
        return Z @ self.coef

    def cumulative_hazard0(self, times: np.ndarray) -> np.ndarray:
        """Baseline cumulative hazard H0(t) at z = 0, a right-continuous step function of t."""
        idx = np.searchsorted(self.event_times, np.asarray(times, dtype=float), side="right")
        return np.r_[0.0, self.cumhaz0][idx]


def check_survival(time: np.ndarray, event: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    time = np.asarray(time, dtype=float).ravel()
    event = np.asarray(event).ravel()
    if time.shape[0] != n or event.shape[0] != n:
        raise ValueError("time and event must have one value per row of X")
    if not np.all(np.isfinite(time)) or np.any(time < 0):
        raise ValueError("time must be finite and >= 0")
    if not np.all((event == 0) | (event == 1)):
        raise ValueError("event must be 0/1")
    event = event.astype(bool)
    if not event.any():
        raise FitError("no events")
    return time, event


def fit_cox(X: np.ndarray, time: np.ndarray, event: np.ndarray,
            grid: tuple[float, ...] = LAMBDA_GRID, ties: str = "efron", extend: bool = True) -> CoxFit:
    """Ridge Cox regression with lambda chosen by AIC with effective df over ``grid``.

    Parameters
    ----------
    X : (n, p) predictor columns, original scale
    time : (n,) follow-up time, >= 0 (months in this project)
    event : (n,) 1 = event observed, 0 = censored
    ties : "efron" (default, = lifelines) or "breslow"
    grid, extend : the penalties and their extension, as for :func:`training.fitting.ridge.ridge_path`
        (a single value fits that penalty; the fit's ``edge`` says whether AIC never turned)

    Raises
    ------
    FitError
        No events, or no grid point gives a finite fit (lambda = 0 with monotone likelihood).
    """
    center, scale, Z, active = standardize(X)
    n = Z.shape[0]
    time, event = check_survival(time, event, n)
    rs = RiskSets(Z[:, active], time, event, ties)
    q = int(active.sum())
    loglik_null = rs.evaluate(np.zeros(q), hessian=False)[0]

    def measure(est: np.ndarray) -> tuple[float, np.ndarray]:
        ll, _, info = rs.evaluate(est)
        return ll, info

    path = ridge_path(grid, lambda lam, beta: newton_fit(rs, lam, beta), measure, np.zeros(q),
                      np.ones(q, dtype=bool), extend)
    search, est, ll, cov_active, df_best = path.search, path.estimate, path.loglik, path.cov, path.df
    if search.null_limit:  # the criterion's infimum is lambda -> infinity: no covariate effects
        est, ll, df_best = np.zeros(q), loglik_null, 0.0
    coef, cov = to_all_columns(est, cov_active, active, intercept=False)
    return CoxFit(
        center=center, scale=scale, coef=coef, lam=path.lam, df=float(df_best), loglik=ll,
        loglik_null=loglik_null, cov=cov, grid=search.grid, aic=search.criterion,
        df_grid=path.df_grid,
        event_times=rs.event_times, cumhaz0=np.cumsum(rs.baseline_jumps(est)),
        max_follow_up=float(time.max()), n=n, n_events=int(event.sum()), ties=ties, active=active,
        edge=search.edge, null_limit=search.null_limit,
    )


def fit_unpenalized(X: np.ndarray, time: np.ndarray, event: np.ndarray, ties: str = "efron") -> CoxFit:
    """Partial-likelihood MLE (lambda = 0); raises :class:`FitError` under monotone likelihood."""
    return fit_cox(X, time, event, grid=(0.0,), ties=ties)


def baseline_survival(fit: CoxFit, month_grid: np.ndarray) -> np.ndarray:
    """S0(t) = exp(-H0(t)) at z = 0 on ``month_grid``; flat (not extrapolated) past the last event."""
    return np.exp(-fit.cumulative_hazard0(month_grid))


def predict_survival(fit: CoxFit, X: np.ndarray, horizon: float) -> np.ndarray:
    """S(horizon | x) = S0(horizon) ** exp(z @ coef) for each row of ``X``, in [0, 1]."""
    return np.exp(-fit.cumulative_hazard0(np.array([horizon]))[0] * np.exp(fit.linear_predictor(X)))


def restandardize(fit: CoxFit, center: np.ndarray, scale: np.ndarray,
                  month_grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coef, baseline survival on ``month_grid``) of ``fit`` for another ``center`` / ``scale``.

    Bootstrap refits standardize with their resample's mean and SD; re-expressed on the training
    cohort's, the baseline is the refit's survival curve of the training mean patient. Predictions
    are unchanged: ``S0' ** exp(((x - center) / scale) @ coef') == S(t | x)`` of ``fit``.
    """
    weights = fit.coef_original
    shift = float((np.asarray(center, dtype=float) - fit.center) @ weights)
    return weights * scale, np.exp(-fit.cumulative_hazard0(month_grid) * np.exp(shift))


def hazard_ratios(fit: CoxFit, level: float = 0.95, scale: str = "original") -> dict[str, np.ndarray]:
    """Wald intervals for log hazard ratios and hazard ratios.

    Variance = inverse penalized Hessian (as lifelines' ``variance_matrix_``); see
    :func:`training.fitting.logistic.wald_intervals` for the rationale.

    Returns
    -------
    dict of (p,) arrays: estimate, se, lower, upper, hazard_ratio, hazard_ratio_lower,
    hazard_ratio_upper (per unit of each column for scale="original", per SD for "standardized").
    """
    if scale not in ("original", "standardized"):
        raise ValueError("scale must be 'original' or 'standardized'")
    divisor = fit.scale if scale == "original" else np.ones_like(fit.scale)
    return wald_table(fit.coef / divisor, np.sqrt(np.diag(fit.cov)) / divisor, level, "hazard_ratio")


def _lifelines_frame(fit: CoxFit, X: np.ndarray, time: np.ndarray, event: np.ndarray,
                     names: list[str] | None):
    import pandas as pd

    p = fit.coef.size
    names = list(names) if names is not None else [f"x{j}" for j in range(p)]
    if len(names) != p:
        raise ValueError(f"{len(names)} names for {p} columns")
    Z = (np.asarray(X, dtype=float) - fit.center) / fit.scale
    kept = [name for name, a in zip(names, fit.active) if a]
    frame = pd.DataFrame(Z[:, fit.active], columns=kept)
    frame["__time__"] = np.asarray(time, dtype=float)
    frame["__event__"] = np.asarray(event, dtype=int)
    return frame


def fit_lifelines(fit: CoxFit, X: np.ndarray, time: np.ndarray, event: np.ndarray,
                  names: list[str] | None = None):
    """Refit the chosen model with lifelines (the audit estimator).

    The estimator is fitted on the standardized columns (constant columns dropped) with
    ``penalizer = fit.lam / n`` and tight Newton tolerances. Requires ``fit.ties == "efron"``.

    Returns
    -------
    lifelines.CoxPHFitter, columns named by ``names`` (default x0, x1, ...)
    """
    from lifelines import CoxPHFitter

    if fit.ties != "efron":
        raise ValueError("lifelines implements Efron ties only")
    frame = _lifelines_frame(fit, X, time, event, names)
    cph = CoxPHFitter(penalizer=fit.lam / len(frame), l1_ratio=0.0)
    return cph.fit(frame, duration_col="__time__", event_col="__event__",
                   fit_options={"precision": 1e-12, "r_precision": 1e-15, "max_steps": 500})
