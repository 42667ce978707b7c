"""The candidate fitting methods of the logistic and Cox models, behind one name each.

Every method returns the same fit object (:class:`training.fitting.logistic.LogisticFit` /
:class:`training.fitting.cox.CoxFit`), so prediction, metrics, the bootstrap and the bundle do not care
which one made it. The methods (``docs/method-selection.md`` says which one ships and why):

``aic_ridge``
    Ridge penalty chosen by AIC with effective degrees of freedom (Gray 1992) over a grid that is
    extended until AIC turns (:mod:`training.fitting.tuning`).
``cv_ridge``
    Ridge penalty chosen by :data:`CV_FOLDS`-fold cross-validated deviance over the same extended
    grid: held-out binomial deviance (logistic) or -2 x the cross-validated partial likelihood of
    Verweij & Van Houwelingen (1993, Stat Med 12:2305) (Cox). Folds are stratified by outcome and
    fixed by :data:`CV_SEED`, so a fit is a deterministic function of its data.
``firth``
    Firth's penalized likelihood l(b) + 1/2 log det I(b) (Firth 1993; Heinze & Schemper 2002 for
    logistic, 2001 for Cox); the logistic intercept is penalized too, as in R's logistf.
``heuristic_shrinkage``
    The maximum likelihood fit with every coefficient multiplied by Van Houwelingen & Le Cessie's
    (1990) heuristic shrinkage factor s = (LR - df) / LR, LR the model likelihood-ratio
    chi-square and df the number of coefficients (s = 0 when LR <= df); the logistic intercept is
    then re-estimated with the shrunken linear predictor as offset, the Cox baseline hazard is
    re-estimated at the shrunken coefficients.
``mle``
    The unpenalized maximum likelihood fit.

Logistic only (round 2 of the study, Amendment 1 of ``docs/method-selection.md``):

``heuristic_shrinkage_fallback``
    ``heuristic_shrinkage`` where the maximum likelihood fit exists; where it does not
    (separation), the same shrinkage applied to Firth's fit, with LR the penalized
    likelihood-ratio statistic 2 [l*(b_F) - l*(b_F0)] (l* Firth's penalized log-likelihood, b_F0
    its maximizer over the intercept alone with the full model's penalty; the statistic R's
    logistf reports).
``firth_heuristic_shrinkage``
    Firth's fit always, shrunk by s = (LR - df) / LR with the penalized LR above, the intercept
    re-estimated with the shrunken linear predictor as offset.

Logistic only (round 3, Amendment 2):

``bootstrap_shrinkage``
    The maximum likelihood fit with every coefficient multiplied by the bootstrap calibration
    slope (Van Houwelingen & Le Cessie 1990; Steyerberg et al. 2001): the mean, over
    :data:`BOOTSTRAP_RESAMPLES` resamples of the cohort (fixed seed :data:`BOOTSTRAP_SEED`), of
    the calibration slope on the cohort of the maximum likelihood fit to the resample, capped to
    [0, 1]; resamples without a fit are dropped (:func:`bootstrap_slopes`). The intercept is then
    re-estimated with the shrunken linear predictor as offset.

Methods that need the unpenalized estimate (``heuristic_shrinkage``, ``bootstrap_shrinkage``,
``mle``) raise
:class:`training.fitting.logistic.FitError` under separation / monotone likelihood.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from training.fitting import cox, logistic
from training.fitting.firth import firth_cox, firth_logistic, firth_lr, intercept_with_offset, shrinkage_factor
from training.fitting.logistic import FitError
from training.evaluation.metrics import calibration_slope_of_log_odds
from training.fitting.ridge import to_all_columns
from training.fitting.tuning import search_grid

#: Methods for both model kinds.
METHODS = ("aic_ridge", "cv_ridge", "firth", "heuristic_shrinkage", "mle")
#: Logistic-only methods added by rounds 2 and 3 of the study (docs/method-selection.md,
#: Amendments 1 and 2).
LOGISTIC_ONLY = ("heuristic_shrinkage_fallback", "firth_heuristic_shrinkage", "bootstrap_shrinkage")
#: The methods of each model kind.
METHODS_BY_KIND = {"logistic": METHODS + LOGISTIC_ONLY, "cox": METHODS}
CV_FOLDS = 10
CV_SEED = 20170201
#: ``bootstrap_shrinkage`` (Amendment 2): resamples, their seed (fixed, so a fit is a function of
#: its data), and the share of them that must have a fit.
BOOTSTRAP_RESAMPLES = 200
BOOTSTRAP_SEED = 20170201
MIN_RESAMPLE_SHARE = 0.5

LABELS = {
    "aic_ridge": "ridge, penalty by AIC (effective df), extended grid",
    "cv_ridge": f"ridge, penalty by {CV_FOLDS}-fold cross-validated deviance, extended grid",
    "firth": "Firth's penalized likelihood (Jeffreys prior)",
    "heuristic_shrinkage": "maximum likelihood x Van Houwelingen-Le Cessie heuristic shrinkage",
    "mle": "unpenalized maximum likelihood",
    "heuristic_shrinkage_fallback": ("maximum likelihood (Firth's fit under separation) x Van "
                                     "Houwelingen-Le Cessie heuristic shrinkage"),
    "firth_heuristic_shrinkage": "Firth's penalized likelihood x Van Houwelingen-Le Cessie heuristic shrinkage",
    "bootstrap_shrinkage": "maximum likelihood x bootstrap calibration-slope shrinkage",
}


def _check(method: str, kind: str) -> None:
    allowed = METHODS_BY_KIND[kind]
    if method not in allowed:
        raise ValueError(f"method must be one of {', '.join(allowed)} for the {kind} models; "
                         f"got {method!r}")


def _folds(strata: np.ndarray, k: int = CV_FOLDS) -> np.ndarray:
    """Fold number of every row, stratified by ``strata`` (0/1), fixed by :data:`CV_SEED`."""
    rng = np.random.default_rng(CV_SEED)
    fold = np.empty(strata.size, dtype=int)
    offset = 0
    for value in np.unique(strata):
        rows = np.flatnonzero(strata == value)
        fold[rng.permutation(rows)] = (np.arange(rows.size) + offset) % k
        offset += rows.size
    return fold


# --------------------------------------------------------------------------- logistic


def _logistic_design(X):
    center, scale, Z, active = logistic.standardize(X)
    return center, scale, Z, active, np.column_stack([np.ones(Z.shape[0]), Z[:, active]])


def _logistic_fit_from(X, y, est, cov, method, shrinkage=1.0, grid=None, criterion=None,
                       lam=0.0, edge=False) -> logistic.LogisticFit:
    center, scale, Z, active, D = _logistic_design(X)
    n = Z.shape[0]
    y = np.asarray(y, dtype=float)
    coef, full = to_all_columns(est[1:], cov, active, intercept=True)
    return logistic.LogisticFit(
        center=center, scale=scale, intercept=float(est[0]), coef=coef, lam=float(lam),
        df=float(active.sum() + 1) * shrinkage if "firth" not in method else float(active.sum() + 1),
        loglik=logistic.loglik(D, y, est), loglik_null=logistic.null_loglik(y), cov=full,
        grid=np.asarray(grid if grid is not None else [lam], dtype=float),
        aic=np.asarray(criterion if criterion is not None else [np.nan], dtype=float),
        df_grid=np.full(1 if grid is None else len(grid), np.nan), n=n, n_events=int(y.sum()),
        active=active, edge=edge, method=method, shrinkage=float(shrinkage))


def _cv_logistic(X, y, grid):
    _, _, _, active, D = _logistic_design(X)
    fold = _folds(y.astype(int))
    warm: dict[int, np.ndarray] = {}
    phi = y.mean()

    def evaluate(lam):
        deviance = 0.0
        for k in range(CV_FOLDS):
            train, test = fold != k, fold == k
            if not test.any():
                continue
            if y[train].min() == y[train].max():
                return None
            start = warm.get(k, np.r_[np.log(phi / (1 - phi)), np.zeros(D.shape[1] - 1)])
            est, ok = logistic.newton_fit(D[train], y[train], lam, start)
            if not ok:
                return None
            warm[k] = est
            deviance -= 2.0 * logistic.loglik(D[test], y[test], est)
        return deviance, None

    return search_grid(logistic.LAMBDA_GRID, evaluate)


def _shrunken_logistic(X, y, coef_active, cov, s, method) -> logistic.LogisticFit:
    """Coefficients x the factor ``s``, intercept re-estimated with them as offset."""
    _, _, Z, active, _ = _logistic_design(X)
    offset = Z[:, active] @ (s * coef_active)
    est = np.r_[intercept_with_offset(y, offset), s * coef_active]
    intercept_variance = cov[0, 0]
    cov = cov * s * s
    cov[0, 0] = intercept_variance
    return _logistic_fit_from(X, y, est, cov, method, shrinkage=s)


def _shrunken_firth(X, y, method) -> logistic.LogisticFit:
    _, _, _, active, D = _logistic_design(X)
    est, cov = firth_logistic(D, y)
    s = shrinkage_factor(firth_lr(D, y, est), int(active.sum()))
    return _shrunken_logistic(X, y, est[1:], cov, s, method)


def bootstrap_slopes(X: np.ndarray, y: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES,
                     seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """Calibration slope on the cohort (X, y) of the maximum likelihood fit to each bootstrap
    resample of it (Amendment 2 of docs/method-selection.md).

    Resample b is the b-th draw of n row indices (with replacement) of one generator seeded with
    ``seed``. Its slope is NaN when the resample has no maximum likelihood fit (one outcome class,
    separation, no convergence), when a column is constant in it (the fit would drop that
    predictor), or when the slope of the fit's log-odds on the cohort's outcomes does not exist.

    Returns
    -------
    (resamples,) slopes, NaN for the failed resamples
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    active = logistic.standardize(X)[3]
    rng = np.random.default_rng(seed)
    slopes = np.full(resamples, np.nan)
    for b in range(resamples):
        rows = rng.integers(0, y.size, y.size)
        try:
            fit = logistic.fit_unpenalized(X[rows], y[rows])
        except FitError:
            continue
        if np.array_equal(fit.active, active):
            slopes[b] = calibration_slope_of_log_odds(y, fit.linear_predictor(X))
    return slopes


def bootstrap_factor(slopes: np.ndarray) -> float:
    """Mean of the resamples' slopes that exist, capped to [0, 1]; :class:`FitError` when fewer
    than :data:`MIN_RESAMPLE_SHARE` of them exist."""
    slopes = np.asarray(slopes, dtype=float)
    fitted = slopes[np.isfinite(slopes)]
    if fitted.size < MIN_RESAMPLE_SHARE * slopes.size:
        raise FitError(f"only {fitted.size} of {slopes.size} bootstrap resamples have a maximum "
                       "likelihood fit")
    return float(min(1.0, max(0.0, fitted.mean())))


def fit_logistic_method(method: str, X: np.ndarray, y: np.ndarray) -> logistic.LogisticFit:
    """Fit the logistic model of outcome ``y`` (0/1) on ``X`` (original scale) by ``method``."""
    _check(method, "logistic")
    y = np.asarray(y, dtype=float)
    if method == "aic_ridge":
        return logistic.fit_logistic(X, y)
    if y.min() == y.max():
        raise FitError("the outcome has a single class")
    if method == "cv_ridge":
        search = _cv_logistic(X, y, logistic.LAMBDA_GRID)
        if search.best < 0:
            raise FitError("no penalty gives a finite cross-validated fit")
        lam = float(search.grid[search.best])
        fit = logistic.fit_logistic(X, y, grid=(lam,), extend=False)
        if search.null_limit:  # infimum at lambda -> infinity: the intercept-only model
            fit = replace(fit, intercept=float(np.log(y.mean() / (1 - y.mean()))),
                          coef=np.zeros_like(fit.coef), loglik=fit.loglik_null, df=1.0)
        return replace(fit, grid=search.grid, aic=search.criterion,
                       df_grid=np.full(search.grid.size, np.nan), edge=search.edge,
                       null_limit=search.null_limit, method="cv_ridge")
    if method == "firth":
        _, _, _, _, D = _logistic_design(X)
        est, cov = firth_logistic(D, y)
        return _logistic_fit_from(X, y, est, cov, "firth")
    if method == "firth_heuristic_shrinkage":
        return _shrunken_firth(X, y, method)
    try:
        mle = logistic.fit_unpenalized(X, y)
    except FitError:
        if method == "heuristic_shrinkage_fallback":  # separation: Firth's fit always exists
            return _shrunken_firth(X, y, method)
        raise
    if method == "mle":
        return replace(mle, method="mle")
    keep = np.r_[0, 1 + np.flatnonzero(mle.active)]
    if method == "bootstrap_shrinkage":
        s = bootstrap_factor(bootstrap_slopes(X, y))
    else:
        s = shrinkage_factor(2.0 * (mle.loglik - mle.loglik_null), int(mle.active.sum()))
    return _shrunken_logistic(X, y, mle.coef[mle.active], mle.cov[np.ix_(keep, keep)], s, method)


# --------------------------------------------------------------------------- Cox


def _cox_fit_from(X, time, event, beta, cov, method, ties="efron", shrinkage=1.0, grid=None,
                  criterion=None, lam=0.0, edge=False) -> cox.CoxFit:
    center, scale, Z, active = logistic.standardize(X)
    time, event = cox.check_survival(time, event, Z.shape[0])
    rs = cox.RiskSets(Z[:, active], time, event, ties)
    coef, full = to_all_columns(beta, cov, active, intercept=False)
    return cox.CoxFit(
        center=center, scale=scale, coef=coef, lam=float(lam), df=float(active.sum()),
        loglik=rs.evaluate(beta, hessian=False)[0],
        loglik_null=rs.evaluate(np.zeros(beta.size), hessian=False)[0], cov=full,
        grid=np.asarray(grid if grid is not None else [lam], dtype=float),
        aic=np.asarray(criterion if criterion is not None else [np.nan], dtype=float),
        df_grid=np.full(1 if grid is None else len(grid), np.nan),
        event_times=rs.event_times, cumhaz0=np.cumsum(rs.baseline_jumps(beta)),
        max_follow_up=float(time.max()), n=Z.shape[0], n_events=int(event.sum()), ties=ties,
        active=active, edge=edge, method=method, shrinkage=float(shrinkage))


def _cv_cox(Z, time, event, ties):
    full = cox.RiskSets(Z, time, event, ties)
    fold = _folds(event.astype(int))
    parts = []
    for k in range(CV_FOLDS):
        train = fold != k
        if not event[train].any():
            return None
        parts.append(cox.RiskSets(Z[train], time[train], event[train], ties))
    warm: dict[int, np.ndarray] = {}

    def evaluate(lam):
        cvl = 0.0
        for k, rs in enumerate(parts):
            est, ok = cox.newton_fit(rs, lam, warm.get(k, np.zeros(Z.shape[1])))
            if not ok:
                return None
            warm[k] = est
            cvl += full.evaluate(est, hessian=False)[0] - rs.evaluate(est, hessian=False)[0]
        return -2.0 * cvl, None

    return search_grid(logistic.LAMBDA_GRID, evaluate)


def fit_cox_method(method: str, X: np.ndarray, time: np.ndarray, event: np.ndarray,
                   ties: str = "efron") -> cox.CoxFit:
    """Fit the Cox model of (time, event) on ``X`` (original scale) by ``method``."""
    _check(method, "cox")
    if method == "aic_ridge":
        return cox.fit_cox(X, time, event, ties=ties)
    center, scale, Z, active = logistic.standardize(X)
    time_arr, event_arr = cox.check_survival(time, event, Z.shape[0])
    if method == "cv_ridge":
        search = _cv_cox(Z[:, active], time_arr, event_arr, ties)
        if search is None or search.best < 0:
            raise FitError("no penalty gives a finite cross-validated fit")
        lam = float(search.grid[search.best])
        fit = cox.fit_cox(X, time, event, grid=(lam,), ties=ties, extend=False)
        if search.null_limit:  # infimum at lambda -> infinity: no covariate effects
            q = int(active.sum())
            null = _cox_fit_from(X, time, event, np.zeros(q), fit.cov[np.ix_(active, active)],
                                 "cv_ridge", ties, lam=lam)
            fit = replace(fit, coef=null.coef, loglik=null.loglik, cumhaz0=null.cumhaz0, df=0.0)
        return replace(fit, grid=search.grid, aic=search.criterion,
                       df_grid=np.full(search.grid.size, np.nan), edge=search.edge,
                       null_limit=search.null_limit, method="cv_ridge")
    if method == "firth":
        rs = cox.RiskSets(Z[:, active], time_arr, event_arr, ties)
        beta, cov = firth_cox(rs, int(active.sum()))
        return _cox_fit_from(X, time, event, beta, cov, "firth", ties)
    mle = cox.fit_unpenalized(X, time, event, ties=ties)
    if method == "mle":
        return replace(mle, method="mle")
    lr = 2.0 * (mle.loglik - mle.loglik_null)
    df = int(mle.active.sum())
    s = shrinkage_factor(lr, df)
    cov = mle.cov[np.ix_(active, active)] * s * s
    return _cox_fit_from(X, time, event, s * mle.coef[active], cov, "heuristic_shrinkage", ties,
                         shrinkage=s)
