"""External validation: every model of a bundle on a center's own cohort (``cart-risk validate``).

Binary models (CR, severe CRS), with y the outcome and p the bundle's predicted probability:

* observed / expected = sum(y) / sum(p), 95 % CI exp(log(O/E) +/- 1.96 sqrt((1 - O/n) / O))
  (Debray et al. 2017, BMJ 356:i6460);
* calibration-in-the-large a (logit P(y) = a + offset(logit p)) and calibration slope b (logit
  P(y) = a + b logit p), by :mod:`training.evaluation.metrics`, with Wald 95 % CIs from the observed
  information (Van Calster et al. 2016);
* C (AUC) with the DeLong variance, its 95 % CI on the logit scale (so it stays inside 0-1);
* Brier, ICI / E50 / E90 (:func:`training.evaluation.metrics.binary_metrics`);
* calibration plot data: equal-size groups with Wilson CIs and the loess curve;
* net benefit against treat-all / treat-none at :data:`THRESHOLDS`;
* observed vs mean predicted by burden subgroup a-e (Wilson CIs).

Survival models (EFS, OS), with lp the linear predictor and H0 the bundle's baseline hazard:

* at 6, 12 and 24 months: Kaplan-Meier observed survival (Greenwood, log-log 95 % CI) against
  the mean predicted survival, with the number still at risk and a warning below
  :data:`SMALL_AT_RISK`;
* calibration at the model's horizon (12 months): observed (Kaplan-Meier) / expected risk with
  a 95 % CI; log(O / E) with follow-up truncated at the horizon (Poisson, 95 % CI +/- 1.96 /
  sqrt(O)); the Cox calibration slope of lp with a Wald CI; ICI / E50 / E90 and the calibration
  curve of Austin, Harrell & van Klaveren (2020); the IPCW Brier score;
* Harrell's C, and Uno's C (IPCW, truncated at :func:`uno_c`'s tau).

On the bundle's own training cohort the shared figures equal the bundle's ``apparent`` block
exactly: both come from the same functions of :mod:`training.evaluation.metrics`.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit, logit

from model.burden import SUBGROUP_LABELS, burden_subgroups
from training.development import bundle_models as bm
from training.evaluation import metrics
from training.evaluation.bands import wilson_interval
from training.fitting.cox import RiskSets
from training.fitting.recalibration import logistic_mle
from training.report.curves import calibration_bins, net_benefit

Z95 = float(stats.norm.ppf(0.975))
#: Months at which survival models are compared with the Kaplan-Meier estimate.
SURVIVAL_MONTHS = (6.0, 12.0, 24.0)
#: Fewer patients still at risk than this makes a survival figure unreliable: warn.
SMALL_AT_RISK = 10
#: External validation needs about 100 events and 100 non-events (Collins et al. 2016,
#: Stat Med 35:214); below that every figure is uncertain, and the output says so.
MIN_EVENTS = 100
#: Risk thresholds (0.05-0.50) at which the decision to act (prepare for severe CRS; change plan
#: for a patient unlikely to respond) is clinically plausible.
THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(1, 11))
_EPS = 1e-12


def _ci(estimate: float, se: float) -> list[float] | None:
    if not (math.isfinite(estimate) and math.isfinite(se)):
        return None
    return [estimate - Z95 * se, estimate + Z95 * se]


# --------------------------------------------------------------------------- binary


def delong_auc(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """AUC and its DeLong standard error (DeLong, DeLong & Clarke-Pearson 1988)."""
    y = np.asarray(y).astype(bool)
    p = np.asarray(p, dtype=float)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 < 2 or n0 < 2:
        return metrics.auc(y, p), float("nan")
    ranks = stats.rankdata(p)
    v10 = (ranks[y] - stats.rankdata(p[y])) / n0  # per event: share of non-events ranked below
    v01 = 1.0 - (ranks[~y] - stats.rankdata(p[~y])) / n1
    auc = float(v10.mean())
    return auc, float(math.sqrt(v10.var(ddof=1) / n1 + v01.var(ddof=1) / n0))


def _auc_interval(auc: float, se: float) -> list[float] | None:
    if not (math.isfinite(se) and 0 < auc < 1):
        return None
    half = Z95 * se / (auc * (1 - auc))
    return [float(expit(logit(auc) - half)), float(expit(logit(auc) + half))]


def _citl_se(y: np.ndarray, p: np.ndarray, a: float) -> float:
    mu = expit(logit(np.clip(p, _EPS, 1 - _EPS)) + a)
    info = float(np.sum(mu * (1 - mu)))
    return 1.0 / math.sqrt(info) if info > 0 else float("nan")


def _slope_se(y: np.ndarray, p: np.ndarray) -> float:
    lp = logit(np.clip(p, _EPS, 1 - _EPS))
    sd = lp.std()
    if sd == 0 or y.min() == y.max():
        return float("nan")
    z = (lp - lp.mean()) / sd
    D = np.column_stack([np.ones_like(z), z])
    theta = logistic_mle(D, y.astype(float), np.zeros_like(z))
    if not np.all(np.isfinite(theta)):
        return float("nan")
    mu = expit(D @ theta)
    cov = np.linalg.inv((D * (mu * (1 - mu))[:, None]).T @ D)
    return float(math.sqrt(cov[1, 1]) / sd)


def _estimate(value: float, ci: list[float] | None = None) -> dict:
    return {"estimate": value, "ci95": ci}


def binary_validation(y: np.ndarray, p: np.ndarray, subgroups: np.ndarray, *,
                      decide_on_no_response: bool = False) -> dict:
    """Every external-validation figure of a binary model (see the module docstring).

    Parameters
    ----------
    y : (n,) 0/1 outcomes
    p : (n,) predicted probabilities of y = 1
    subgroups : (n,) burden subgroup letters a-e
    decide_on_no_response : bool
        For CR: the decision curve is for acting on the risk of *no* response, 1 - p.
    """
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=float)
    n, events = int(y.size), int(y.sum())
    core = metrics.binary_metrics(y, p)
    expected = float(p.sum())
    oe = events / expected if expected > 0 else float("nan")
    oe_ci = None
    if 0 < events < n:
        se = math.sqrt((1 - events / n) / events)
        oe_ci = [oe * math.exp(-Z95 * se), oe * math.exp(Z95 * se)]
    a, b = core["calibration_intercept"], core["calibration_slope"]
    auc, auc_se = delong_auc(y, p)
    groups = 5 if n < 200 else 10
    order = np.argsort(p, kind="stable")
    curve = None
    if np.ptp(p) > 0 and n >= 10:
        at = np.unique(np.quantile(p, np.linspace(0, 1, 21)))
        curve = {"predicted": at.tolist(),
                 "observed": np.clip(metrics.loess_at(p[order], y[order].astype(float), at),
                                     0, 1).tolist()}
    risk, act_on = (1 - p, 1 - y) if decide_on_no_response else (p, y)
    t = np.asarray(THRESHOLDS)
    nb = net_benefit(act_on, risk, t)
    rows = []
    for letter, label in SUBGROUP_LABELS.items():
        inside = subgroups == letter
        k, m = int(y[inside].sum()), int(inside.sum())
        interval = wilson_interval(k, m)
        rows.append({"subgroup": letter, "label": label, "n": m, "events": k,
                     "observed": k / m if m else None, "ci95": list(interval) if interval else None,
                     "mean_predicted": float(p[inside].mean()) if m else None})
    warnings = []
    if min(events, n - events) < MIN_EVENTS:
        warnings.append(f"{events} events and {n - events} non-events: external validation needs "
                        f"about {MIN_EVENTS} of each (Collins et al. 2016); every figure here is "
                        "uncertain, read the confidence intervals.")
    return {
        "kind": "logistic", "n": n, "events": events,
        "observed_rate": events / n, "mean_predicted": expected / n,
        "observed_expected": _estimate(oe, oe_ci),
        "calibration_intercept": _estimate(a, _ci(a, _citl_se(y, p, a))),
        "calibration_slope": _estimate(b, _ci(b, _slope_se(y, p))),
        "c_index": _estimate(core["c_index"], _auc_interval(auc, auc_se)),
        "brier": core["brier"], "ici": core["ici"], "e50": core["e50"], "e90": core["e90"],
        "calibration_groups": [{**g, "ci95": list(g["ci95"]) if g["ci95"] else None}
                               for g in calibration_bins(y, p, groups)],
        "calibration_curve": curve,
        "net_benefit": {"acting_on": "risk of no response (1 - P(CR))" if decide_on_no_response
                        else "predicted risk", "thresholds": t.tolist(),
                        "model": nb["model"].tolist(), "treat_all": nb["all"].tolist(),
                        "treat_none": nb["none"].tolist()},
        "subgroups": rows, "warnings": warnings,
    }


# --------------------------------------------------------------------------- survival


def km_at(time: np.ndarray, event: np.ndarray, months: float) -> dict:
    """Kaplan-Meier survival at ``months`` with Greenwood log(-log) 95 % CI and the risk set.

    Returns
    -------
    dict with ``survival``, ``ci95``, ``at_risk`` (patients with follow-up >= months) and
    ``events`` (events at or before months).
    """
    time = np.asarray(time, dtype=float)
    event = np.asarray(event).astype(bool)
    times = np.unique(time[event & (time <= months)])
    at_risk = np.array([(time >= t).sum() for t in times], dtype=float)
    died = np.array([(event & (time == t)).sum() for t in times], dtype=float)
    S = float(np.prod(1 - died / at_risk)) if times.size else 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        greenwood = float(np.sum(died / (at_risk * (at_risk - died))))
    ci = None
    if 0 < S < 1 and math.isfinite(greenwood):
        se = math.sqrt(greenwood) / abs(math.log(S))
        c = math.log(-math.log(S))
        ci = sorted([math.exp(-math.exp(c + Z95 * se)), math.exp(-math.exp(c - Z95 * se))])
    return {"survival": S, "ci95": ci, "variance": S * S * greenwood,
            "at_risk": int((time >= months).sum()), "events": int((event & (time <= months)).sum())}


def uno_c(time: np.ndarray, event: np.ndarray, risk: np.ndarray, tau: float) -> float:
    """Uno's C (Uno et al. 2011, Stat Med 30:1105), truncated at ``tau``.

    C = sum_{i,j} D_i G(T_i-)^-2 1(T_i < T_j, T_i < tau) [1(r_i > r_j) + 1/2 1(r_i = r_j)] / the same
    sum without the bracket; G is the Kaplan-Meier estimate of the censoring distribution.
    """
    time = np.asarray(time, dtype=float)
    event = np.asarray(event).astype(bool)
    risk = np.asarray(risk, dtype=float)
    G = metrics.censoring_survival(time, event, time, left=True)
    cases = np.flatnonzero(event & (time < tau) & (G > 0))
    if cases.size == 0:
        return float("nan")
    numerator = denominator = 0.0
    for chunk in np.array_split(cases, max(1, cases.size // 256)):
        later = time[None, :] > time[chunk, None]
        weight = 1.0 / G[chunk] ** 2
        higher = (risk[chunk, None] > risk[None, :]) + 0.5 * (risk[chunk, None] == risk[None, :])
        numerator += float(weight @ (later * higher).sum(axis=1))
        denominator += float(weight @ later.sum(axis=1))
    return numerator / denominator if denominator else float("nan")


def _cox_slope_se(time, event, lp, slope: float) -> float:
    if not math.isfinite(slope):
        return float("nan")
    rs = RiskSets(np.asarray(lp, float)[:, None], np.asarray(time, float),
                   np.asarray(event).astype(bool), "efron")
    info = float(rs.evaluate(np.array([slope]))[2][0, 0])
    return 1.0 / math.sqrt(info) if info > 0 else float("nan")


def survival_validation(time: np.ndarray, event: np.ndarray, lp: np.ndarray,
                        baseline: bm.BaselineHazard, horizon: float = 12.0) -> dict:
    """Every external-validation figure of a survival model (see the module docstring).

    Parameters
    ----------
    time, event : (n,) follow-up (months) and 0/1 event
    lp : (n,) linear predictor of the model
    baseline : the model's baseline cumulative hazard
    horizon : months at which calibration is assessed (the model's own horizon)
    """
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=int)
    lp = np.asarray(lp, dtype=float)
    n, events = int(time.size), int(event.sum())
    warnings = []
    at = []
    for months in SURVIVAL_MONTHS:
        km = km_at(time, event, months)
        row = {"months": months, "at_risk": km["at_risk"], "events_by": km["events"],
               "observed_survival": km["survival"], "observed_ci95": km["ci95"],
               "predicted_survival": None, "warning": None}
        if months <= baseline.max_follow_up:
            row["predicted_survival"] = float(np.mean(np.exp(-baseline.at(months) * np.exp(lp))))
        else:
            row["warning"] = (f"the model predicts only up to {baseline.max_follow_up:g} months "
                              "(its training follow-up)")
        if km["at_risk"] < SMALL_AT_RISK:
            row["warning"] = "; ".join(filter(None, [row["warning"], (
                f"only {km['at_risk']} patient(s) still at risk at {months:g} months: the observed "
                "survival there is unreliable")]))
            warnings.append(f"{months:g} months: {row['warning']}")
        at.append(row)
    H_t = baseline.at(horizon) * np.exp(lp)
    risk_t = -np.expm1(-H_t)
    followup = baseline.at(np.minimum(time, horizon)) * np.exp(lp)
    core = {
        "c_index": metrics.harrell_c(time, event, lp),
        "calibration_slope": metrics.cox_calibration_slope(time, event, lp),
        "calibration_intercept": metrics.cox_calibration_intercept(time, event, followup, horizon),
        "brier": metrics.brier_ipcw(time, event, np.exp(-H_t), horizon),
        **metrics.ici_survival(time, event, risk_t, horizon),
    }
    km = km_at(time, event, horizon)
    observed_risk, expected_risk = 1 - km["survival"], float(risk_t.mean())
    oe = observed_risk / expected_risk if expected_risk > 0 else float("nan")
    oe_ci = None
    if observed_risk > 0 and km["variance"] > 0:
        se = math.sqrt(km["variance"]) / observed_risk
        oe_ci = [oe * math.exp(-Z95 * se), oe * math.exp(Z95 * se)]
    observed_by = int(np.sum((event == 1) & (time <= horizon)))
    log_oe = core["calibration_intercept"]
    curve_observed = metrics.survival_calibration_curve(time, event, risk_t, horizon)
    curve = None
    if curve_observed is not None:
        order = np.argsort(risk_t, kind="stable")
        pick = np.unique(np.linspace(0, n - 1, min(n, 25)).round().astype(int))
        curve = {"predicted": risk_t[order][pick].tolist(),
                 "observed": curve_observed[order][pick].tolist()}
    slope = core["calibration_slope"]
    tau = min(max(SURVIVAL_MONTHS), float(time.max()))
    if events < MIN_EVENTS:
        warnings.append(f"{events} events: external validation of a survival model needs about "
                        f"{MIN_EVENTS} (Collins et al. 2016); read the confidence intervals.")
    return {
        "kind": "cox", "n": n, "events": events, "horizon_months": horizon,
        "baseline": "exact Breslow steps" if baseline.exact else "0.5-month grid",
        "at_months": at,
        "calibration": {
            "observed_risk": observed_risk, "expected_risk": expected_risk,
            "observed_expected": _estimate(oe, oe_ci),
            "log_observed_expected": _estimate(
                log_oe, _ci(log_oe, 1 / math.sqrt(observed_by) if observed_by else float("nan"))),
            "calibration_slope": _estimate(slope, _ci(slope, _cox_slope_se(time, event, lp, slope))),
            "ici": core["ici"], "e50": core["e50"], "e90": core["e90"], "curve": curve,
            "at_risk": km["at_risk"]},
        "brier": core["brier"],
        "harrell_c": core["c_index"],
        "uno_c": {"estimate": uno_c(time, event, lp, tau), "tau_months": tau},
        "warnings": warnings,
    }


# --------------------------------------------------------------------------- whole bundle


def validate_models(params: dict, manifest: dict, cohort: pd.DataFrame) -> dict:
    """Validate every model of a bundle on a derived cohort (:func:`training.paper.analyses.derive`).

    Returns
    -------
    dict name -> figures (:func:`binary_validation` / :func:`survival_validation`), or
    ``{"assessable": False, "reason": ...}`` for a model the cohort lacks columns for.
    """
    subgroups = burden_subgroups(cohort["marrow_blasts_pct"], cohort["mrd_positive"])
    out = {}
    for name, spec in params["models"].items():
        reason = bm.unassessable_reason(name, spec, cohort)
        if reason:
            out[name] = {"assessable": False, "reason": reason}
            continue
        if spec["kind"] == "logistic":
            (y,) = bm.outcome(name, cohort)
            result = binary_validation(y, bm.probability(spec, cohort), subgroups,
                                       decide_on_no_response=name == "cr")
        else:
            time, event = bm.outcome(name, cohort)
            horizon = float(manifest["models"].get(name, {}).get("horizon_months", 12.0))
            result = survival_validation(time, event, bm.linear_predictor(spec, cohort),
                                         bm.baseline_hazard(spec, params["month_grid"]), horizon)
        out[name] = {"assessable": True, **result}
    return out
