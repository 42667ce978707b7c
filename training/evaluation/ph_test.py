"""Proportional-hazards test as R's ``survival::cox.zph`` (survival >= 3.0) computes it.

The test (Grambsch & Therneau 1994, as implemented since survival 3.0): augment the covariates
x with g(t) x, g a transform of time centred on the event times, and compute the score test of
the extra coefficients at (beta_hat, 0), beta_hat the *unpenalized* partial-likelihood estimate,
with the full information matrix of the augmented model:

* score U_g = sum over events i of g(t_i) (x_i - xbar(t_i));
* information blocks I_11 = sum V(t_i), I_12 = sum g(t_i) V(t_i), I_22 = sum g(t_i)^2 V(t_i),
  V the risk-set weighted covariance of x (with Efron's tie correction: each of d tied events
  uses the risk set with r/d of the tied events' weight removed, r = 0..d-1, as the fit does);
* per covariate j: chi-square (1 df) = u' M^-1 u with u = (0, U_g[j]) and M the information
  restricted to the first block plus the j-th time-interaction row and column; global: the same
  with all of U_g and the whole matrix (p df).

The score of the first block is zero at the MLE, so the test is U_g' (I_22 - I_21 I_11^-1
I_12)^-1 U_g restricted accordingly. Transforms, as R:

* ``"km"`` (R's default): g(t) = 1 - KM(t-), the Kaplan-Meier estimate of the whole sample just
  before t (``findInterval(..., left.open = TRUE)``);
* ``"rank"``: g(t) = rank of t among *all* observed times (censored included), ties averaged
  (R's ``rank``), so tied times get the same value whatever the row order;
* ``"identity"``: g(t) = t.

g is centred by its mean over the event rows. ``tests/test_ph_test.py`` pins R 4.2.2 /
survival 3.5.3 figures (``tests/reference/cox_reference.R``) to 1e-6.
"""
from __future__ import annotations

import numpy as np
from scipy import stats
from scipy.stats import rankdata

from training.fitting.cox import RiskSets, fit_unpenalized
from training.fitting.logistic import FitError

TRANSFORMS = ("km", "rank", "identity")
#: The transform the bundle reports (R's default).
DEFAULT_TRANSFORM = "km"


def time_transform(time: np.ndarray, event: np.ndarray, transform: str) -> np.ndarray:
    """g(t) for every row, before centring (see the module docstring)."""
    time = np.asarray(time, dtype=float)
    if transform == "identity":
        return time.copy()
    if transform == "rank":
        return rankdata(time)  # average ranks over all rows, as R's rank()
    if transform == "km":
        event = np.asarray(event).astype(bool)
        times = np.unique(time[event])
        at_risk = time.size - np.searchsorted(np.sort(time), times, side="left")
        failed = np.bincount(np.searchsorted(times, time[event]), minlength=times.size)
        surv = np.cumprod(1.0 - failed / at_risk)
        idx = np.searchsorted(times, time, side="left")  # number of event times strictly before t
        return 1.0 - np.r_[1.0, surv][idx]
    raise ValueError(f"transform must be one of {TRANSFORMS}, got {transform!r}")


def zph_statistics(Z: np.ndarray, time: np.ndarray, event: np.ndarray, beta: np.ndarray,
                   g: np.ndarray, ties: str = "efron") -> tuple[np.ndarray, float]:
    """Per-covariate and global score statistics at ``beta`` for the centred transform ``g``.

    Parameters
    ----------
    Z : (n, p) covariates (any location and scale: the test is invariant to both)
    time, event : (n,) follow-up and 0/1 event indicator
    beta : (p,) the unpenalized estimate for Z
    g : (n,) centred time transform of each row (only event rows are used)
    ties : "efron" or "breslow", as the fit

    Returns
    -------
    per_covariate : (p,) chi-square statistics (1 df each)
    global_statistic : float (p df)
    """
    event = np.asarray(event).astype(bool)
    rs = RiskSets(np.asarray(Z, dtype=float), np.asarray(time, dtype=float), event, ties)
    order = np.argsort(np.asarray(time, dtype=float), kind="stable")
    g_events = np.asarray(g, dtype=float)[order][rs.event]
    p = beta.size
    eta = rs.Z @ beta
    w = np.exp(eta - eta.max())
    weighted = w[:, None] * rs.packed
    risk = np.cumsum(np.add.reduceat(weighted, rs.start, axis=0)[::-1], axis=0)[::-1]
    tied = np.add.reduceat(weighted[rs.event], rs.first_event, axis=0)
    sums = risk[rs.group] - rs.frac[:, None] * tied[rs.group]  # one row per event
    mean = sums[:, 1:p + 1] / sums[:, :1]
    second = np.zeros((sums.shape[0], p, p))
    upper = sums[:, p + 1:] / sums[:, :1]
    second[:, rs.upper[0], rs.upper[1]] = upper
    second[:, rs.upper[1], rs.upper[0]] = upper
    V = second - mean[:, :, None] * mean[:, None, :]
    U = (g_events[:, None] * (rs.Z[rs.event] - mean)).sum(axis=0)
    info = np.zeros((2 * p, 2 * p))
    info[:p, :p] = V.sum(axis=0)
    info[:p, p:] = info[p:, :p] = np.tensordot(g_events, V, axes=1)
    info[p:, p:] = np.tensordot(g_events ** 2, V, axes=1)
    u = np.r_[np.zeros(p), U]
    global_statistic = float(u @ np.linalg.solve(info, u))
    per = np.empty(p)
    for j in range(p):
        keep = np.r_[np.arange(p), p + j]
        uj = u[keep]
        per[j] = float(uj @ np.linalg.solve(info[np.ix_(keep, keep)], uj))
    return per, global_statistic


def cox_zph(X: np.ndarray, time: np.ndarray, event: np.ndarray, names: list[str] | None = None,
            transform: str = DEFAULT_TRANSFORM, ties: str = "efron") -> dict:
    """``survival::cox.zph(coxph(Surv(time, event) ~ X, ties = ties), transform)``.

    The test is of the unpenalized fit, whatever penalty the reported model uses: the score test's
    null distribution is that of the maximum likelihood estimate, and a ridge estimate with its
    penalized variance roughly halves the statistic.

    Parameters
    ----------
    X : (n, p) covariates, original scale (constant columns are left out of the test)
    time, event : (n,) follow-up (months) and 0/1 event indicator
    names : column names (default x0, x1, ...)
    transform : "km" (default, as R), "rank" or "identity"
    ties : "efron" (default, as R's coxph) or "breslow"

    Returns
    -------
    dict: {"method", "fit", "time_transform", "ties", "covariates": {name: {"statistic", "p",
    "df"}}, "global": {"statistic", "p", "df"}}; plain floats. When the unpenalized estimate
    does not exist (monotone likelihood) the statistics are None and "error" says why.
    """
    X = np.asarray(X, dtype=float)
    names = list(names) if names is not None else [f"x{j}" for j in range(X.shape[1])]
    if transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of {TRANSFORMS}, got {transform!r}")
    out = {"method": "score test of g(t) x terms at the unpenalized estimate, full information "
                     "matrix (Grambsch & Therneau 1994; R survival::cox.zph, survival >= 3.0)",
           "fit": "unpenalized partial likelihood", "time_transform": transform, "ties": ties}
    try:
        fit = fit_unpenalized(X, time, event, ties=ties)
    except FitError as problem:
        none = {"statistic": None, "p": None, "df": 1}
        return {**out, "error": f"not computable: {problem}",
                "covariates": {name: dict(none) for name in names},
                "global": {**none, "df": int(X.shape[1])}}
    active = fit.active
    Z = (X - fit.center) / fit.scale
    event_arr = np.asarray(event).astype(bool)
    g = time_transform(time, event_arr, transform)
    g = g - g[event_arr].mean()
    per, total = zph_statistics(Z[:, active], time, event_arr, fit.coef[active], g, ties)
    covariates, k = {}, 0
    for name, is_active in zip(names, active):
        if is_active:
            covariates[name] = {"statistic": float(per[k]), "p": float(stats.chi2.sf(per[k], 1)),
                                "df": 1}
            k += 1
        else:
            covariates[name] = {"statistic": None, "p": None, "df": 1}
    dof = int(active.sum())
    out["covariates"] = covariates
    out["global"] = {"statistic": total, "p": float(stats.chi2.sf(total, dof)), "df": dof}
    return out
