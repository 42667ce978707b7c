"""Internal validation of the pooled model an ensemble bundle serves (not of its members).

Design: an optimism bootstrap of the whole ensemble procedure (docs/ensemble.md, "Validation of
the pooled model"). Replicate b = 1..B draws one resample of the row positions and applies it to
every member cohort k (the reconstructions are versions of the same patients, so a replicate
carries the information of one cohort, not of K; :func:`training.train_ensemble.validation_seed`),
refits every member with the shipped method, and pools the K refits exactly as the bundle pools
the original fits (mean of the parameters on one common centre and scale; Cox: mean log
cumulative baseline hazard). The pooled replicate P_b is scored on every member's resample
(apparent_b) and on every member's original cohort (test_b). For member cohort k and metric m:

    apparent_k   = m(P, D_k)                       P the served pooled model
    optimism_k   = mean over b of m(P_b, D_k^b) - m(P_b, D_k)   (Efron-Gong; finite b only)
    corrected_k  = apparent_k - optimism_k

The card shows the median over the K reconstructions of apparent_k and corrected_k with their
interquartile range: each reconstruction is one admissible version of the 78 patients, so the IQR
is reconstruction uncertainty, never averaged away. No slope is averaged across members' fits:
every figure is of one pooled model on one cohort.

Flat fits: a fit whose coefficients are all 0 (heuristic shrinkage s <= 0: the likelihood-ratio
chi-square does not exceed its degrees of freedom) has no predictor effect; its C is 0.5 by ties
and its calibration slope does not exist. They are counted (members, refits, pooled replicates),
and a flat pooled model is reported as "no predictor effect: C 0.5, slope undefined".
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
from scipy.special import expit

from training.evaluation.metrics import METRICS, binary_metrics, loess, survival_calibration_curve, survival_metrics
from training.fitting import cox, logistic

#: Replicates of the whole ensemble procedure (each refits every member once). 200 keeps the
#: Monte Carlo standard error of every headline figure below 0.01 (C) / 0.03 (slope); the
#: manifest records the measured one.
VALIDATION_REPLICATES = 200
#: Points of the stored calibration curve of the pooled model (predicted risk grid).
CURVE_POINTS = 25
FLAT_TEXT = "no predictor effect: C 0.5, slope undefined"


def is_flat(fit) -> bool:
    """True when every coefficient is 0: the fit predicts the same risk for every patient."""
    return bool(np.all(np.asarray(fit.coef, float) == 0.0))


class PooledModel:
    """One pooled parameter set on a common centre / scale, scored like the served predictor."""

    def __init__(self, kind: str, center, scale, coef, intercept=None, grid=None, cumhaz=None,
                 horizon: float = 12.0):
        self.kind, self.center, self.scale = kind, np.asarray(center, float), np.asarray(scale, float)
        self.coef, self.intercept = np.asarray(coef, float), intercept
        self.grid, self.cumhaz, self.horizon = grid, cumhaz, horizon

    @property
    def flat(self) -> bool:
        return bool(np.all(self.coef == 0.0))

    def linear_predictor(self, X: np.ndarray) -> np.ndarray:
        lp = ((np.asarray(X, float) - self.center) / self.scale) @ self.coef
        return lp + self.intercept if self.kind == "logistic" else lp

    def metrics(self, data: dict, rows: np.ndarray | None = None) -> np.ndarray:
        """Metrics (order of :data:`METRICS`) on ``data`` (or its ``rows``)."""
        take = (lambda a: a) if rows is None else (lambda a: a[rows])
        lp = self.linear_predictor(take(data["X"]))
        if self.kind == "logistic":
            out = binary_metrics(take(data["y"]), expit(lp))
        else:
            out = survival_metrics(take(data["time"]), take(data["event"]), lp, self.grid,
                                   self.cumhaz, self.horizon)
        return np.array([out[m] for m in METRICS], float)

    def risks(self, X: np.ndarray) -> np.ndarray:
        """Predicted risk (logistic: of the outcome; Cox: of the event by the horizon), 0-1."""
        lp = self.linear_predictor(X)
        if self.kind == "logistic":
            return expit(lp)
        H = np.interp(self.horizon, self.grid, self.cumhaz)
        return -np.expm1(-H * np.exp(lp))


def _parameters(kind, fits, center, scale, grid):
    """Each fit's parameters on the common centre and scale: (intercepts or None, coef, log H0)."""
    if kind == "logistic":
        parts = [logistic.restandardize(f, center, scale) for f in fits]
        return np.array([p[0] for p in parts]), np.array([p[1] for p in parts]), None
    parts = [cox.restandardize(f, center, scale, grid) for f in fits]
    with np.errstate(divide="ignore"):
        log_h = np.log(-np.log(np.clip(np.array([p[1] for p in parts]), 1e-300, 1.0)))
    return None, np.array([p[0] for p in parts]), log_h


def pool(kind, intercepts, coefs, log_h, center, scale, grid, horizon) -> PooledModel:
    """The pooled model of K members' parameters (first axis), as the bundle pools them."""
    if kind == "logistic":
        return PooledModel(kind, center, scale, coefs.mean(axis=0), float(intercepts.mean()),
                           horizon=horizon)
    return PooledModel(kind, center, scale, coefs.mean(axis=0), grid=grid,
                       cumhaz=np.exp(log_h.mean(axis=0)), horizon=horizon)


def _replicates(models: Sequence[PooledModel], data: Sequence[dict], samples: np.ndarray):
    """(apparent, test) arrays (R, K, M) for pooled replicates ``models`` (R of them);
    ``samples`` (K, R, n) the rows of member k's resample in each replicate."""
    apparent = np.empty((len(models), len(data), len(METRICS)))
    test = np.empty_like(apparent)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for r, model in enumerate(models):
            for k, member in enumerate(data):
                apparent[r, k] = model.metrics(member, samples[k, r])
                test[r, k] = model.metrics(member)
    return apparent, test


def _quartiles(values: np.ndarray) -> dict:
    finite = values[np.isfinite(values)]
    if not finite.size:
        return {"median": None, "iqr": None, "n": 0}
    q1, q2, q3 = np.quantile(finite, [0.25, 0.5, 0.75])
    return {"median": float(q2), "iqr": [float(q1), float(q3)], "n": int(finite.size)}


def _calibration_curve(model: PooledModel, data: Sequence[dict]) -> dict:
    """Observed against predicted risk of the pooled model on each member cohort (loess for a
    binary outcome, the hazard regression of the ICI at the horizon for survival), on a common
    grid: median and range over the members."""
    risks = [model.risks(d["X"]) for d in data]
    low = float(np.quantile(np.concatenate(risks), 0.02))
    high = float(np.quantile(np.concatenate(risks), 0.98))
    grid = np.linspace(low, high, CURVE_POINTS) if high > low else np.array([low])
    curves = []
    for d, p in zip(data, risks):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            observed = (loess(p, np.asarray(d["y"], float)) if model.kind == "logistic" else
                        survival_calibration_curve(d["time"], d["event"], p, model.horizon))
        if observed is None or np.ptp(p) == 0:
            continue
        order = np.argsort(p)
        curve = np.interp(grid, p[order], observed[order], left=np.nan, right=np.nan)
        curves.append(np.clip(curve, 0.0, 1.0))
    if not curves:
        return {"predicted": grid.tolist(), "observed_median": None, "members": 0}
    stack = np.array(curves)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return {"predicted": grid.tolist(),
                "observed_median": np.nanmedian(stack, axis=0).tolist(),
                "observed_min": np.nanmin(stack, axis=0).tolist(),
                "observed_max": np.nanmax(stack, axis=0).tolist(),
                "members": len(curves),
                "horizon_months": model.horizon if model.kind == "cox" else None}


def validate_pooled(kind: str, member_fits: Sequence, member_refits: Sequence[Sequence],
                    samples: np.ndarray, data: Sequence[dict], center, scale, grid=None,
                    horizon: float = 12.0, jobs: int = 1) -> dict:
    """The ``validation`` block of a pooled model card (docs/bundle-format.md).

    Parameters
    ----------
    kind : "logistic" or "cox"
    member_fits : K fits on the member cohorts (the served pool's parts)
    member_refits : K lists of R refits, refit r of member k fitted on rows ``samples[k, r]``
        (the same positions in every member, but for redraws after a failed fit)
    samples : (K, R, n) int rows of each member's resamples
    data : K dicts of member data: ``X`` and ``y`` (logistic) or ``time`` / ``event`` (Cox)
    center, scale : the common standardization of the pooled parameters
    grid : months of the pooled Cox baseline (from 0)
    horizon : months at which Cox metrics are taken
    jobs : worker processes for scoring the replicates

    Returns
    -------
    dict
        ``metrics`` (metric -> apparent / corrected medians with IQR over members, Monte Carlo
        SE, estimable replicates), ``flat`` (counts), ``calibration_curve``, design facts.
    """
    from joblib import Parallel, delayed

    K, R = len(member_fits), min(len(r) for r in member_refits)
    point = pool(kind, *_parameters(kind, member_fits, center, scale, grid), center, scale, grid, horizon)
    per_member = [_parameters(kind, refits[:R], center, scale, grid) for refits in member_refits]
    replicates = []
    for r in range(R):
        intercepts = None if kind == "cox" else np.array([m[0][r] for m in per_member])
        log_h = None if kind == "logistic" else np.array([m[2][r] for m in per_member])
        replicates.append(pool(kind, intercepts, np.array([m[1][r] for m in per_member]), log_h,
                               center, scale, grid, horizon))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        apparent = np.array([point.metrics(d) for d in data])  # (K, M)
    chunks = np.array_split(np.arange(R), max(1, min(jobs, R)))
    if jobs == 1:
        parts = [_replicates(replicates, data, samples)]
    else:
        parts = Parallel(n_jobs=jobs)(delayed(_replicates)([replicates[r] for r in c], data,
                                                           samples[:, c]) for c in chunks)
    boot_apparent = np.concatenate([p[0] for p in parts])
    boot_test = np.concatenate([p[1] for p in parts])
    diff = boot_apparent - boot_test  # (R, K, M)
    finite = np.isfinite(diff)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        optimism = np.nanmean(diff, axis=0)  # (K, M)
        optimism_median = np.nanmedian(diff, axis=0)
        mc_se = np.nanstd(diff, axis=0, ddof=1) / np.sqrt(np.maximum(finite.sum(axis=0), 1))
    corrected = apparent - optimism
    corrected_median = apparent - optimism_median
    metrics = {}
    for j, name in enumerate(METRICS):
        metrics[name] = {
            "apparent": _quartiles(apparent[:, j]),
            "corrected": _quartiles(corrected[:, j]),
            "corrected_by_bootstrap_median": _quartiles(corrected_median[:, j]),
            "optimism": _quartiles(optimism[:, j]),
            "monte_carlo_se": (float(np.nanmedian(mc_se[:, j])) if np.isfinite(mc_se[:, j]).any()
                               else None),
            "estimable_replicates": int(finite[:, :, j].sum(axis=0).min()),
        }
    refits_flat = sum(is_flat(f) for refits in member_refits for f in refits[:R])
    return {
        "design": ("optimism bootstrap of the whole ensemble procedure: each replicate draws one "
                   "resample of the row positions, applies it to every reconstruction, refits each "
                   "and pools the refits as the bundle pools its fits; the pooled replicate is "
                   "scored on the resamples (apparent) and on every reconstruction's original "
                   "cohort (test)"),
        "summary": ("median over the reconstructions of the pooled model's figure on each, with "
                    "the interquartile range across them; optimism per reconstruction = Efron-Gong "
                    "mean over the replicates"),
        "replicates": R, "members": K,
        "pooled_flat": point.flat,
        "flat": {"members": int(sum(is_flat(f) for f in member_fits)), "members_of": K,
                 "refits": int(refits_flat), "refits_of": int(K * R),
                 "pooled_replicates": int(sum(m.flat for m in replicates)), "pooled_replicates_of": R,
                 "rule": "a fit whose coefficients are all 0 (heuristic shrinkage <= 0) has no "
                         "predictor effect: C 0.5 by ties, calibration slope undefined"},
        "metrics": metrics,
        "calibration_curve": _calibration_curve(point, data),
    }


def headline(validation: dict) -> tuple[dict, dict, dict]:
    """(apparent, corrected, corrected by the bootstrap median) medians per metric, for the
    card's flat ``apparent`` / ``optimism_corrected`` blocks. A flat pooled model keeps C 0.5
    and has no slope (None)."""
    apparent, corrected, median = {}, {}, {}
    for name, block in validation["metrics"].items():
        apparent[name] = block["apparent"]["median"]
        corrected[name] = block["corrected"]["median"]
        median[name] = block["corrected_by_bootstrap_median"]["median"]
    if validation["pooled_flat"]:
        for out in (apparent, corrected, median):
            out["c_index"], out["calibration_slope"] = 0.5, None
    return apparent, corrected, median
