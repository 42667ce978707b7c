"""Pool one model fitted on every member of the reconstruction ensemble into one predictor.

Every member's full-data fit and bootstrap refits are re-expressed on one common centre and scale
(:func:`training.fitting.logistic.restandardize`, :func:`training.fitting.cox.restandardize`), so the pooled
``predictor.json`` has the format of a single-cohort one and :mod:`model.predictor` evaluates it
unchanged:

* point estimate: the mean of the members' parameters on the logit / log-hazard scale, and for
  Cox the mean of the members' log cumulative baseline hazards (Rubin's point estimate);
* 95 % interval: percentiles of the *mixture* of the members' bootstrap parameter sets (all
  refits concatenated), which carries both the sampling spread inside each member and the spread
  between members (reconstruction uncertainty).

Why the mixture rather than Rubin's variance rule, and how the two compare: ``docs/ensemble.md``
and ``bench/bench_ensemble.py``.
"""
from __future__ import annotations

import copy
import re
import warnings
from typing import Any, Sequence

import numpy as np

from training.fitting import cox, logistic

POOLING_RULE = ("point: mean of the members' parameters on the logit / log-hazard scale (Cox "
                "baseline: mean of log cumulative hazard); 95 % interval: percentiles of the "
                "mixture of all members' bootstrap refits (each re-expressed on one common "
                "centre and scale)")


def _log_cumhaz(survival: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(-np.log(np.clip(survival, 1e-300, 1.0)))


def _survival_from_log_cumhaz(log_h: np.ndarray) -> np.ndarray:
    return np.exp(-np.exp(log_h))


def pool_logistic(fits: Sequence[Any], boot_fits: Sequence[Sequence[Any]], center: np.ndarray,
                  scale: np.ndarray) -> dict:
    """Pooled ``predictor.json`` entry parts of a logistic model (intercept, coef, bootstrap)."""
    points = [logistic.restandardize(f, center, scale) for f in fits]
    boot = [logistic.restandardize(f, center, scale) for refits in boot_fits for f in refits]
    return {"intercept": float(np.mean([p[0] for p in points])),
            "coef": np.mean([p[1] for p in points], axis=0).tolist(),
            "bootstrap": {"intercept": [float(b[0]) for b in boot], "coef": [b[1].tolist() for b in boot]},
            "members": {"intercept": [float(p[0]) for p in points], "coef": [p[1].tolist() for p in points]}}


def pool_cox(fits: Sequence[Any], boot_fits: Sequence[Sequence[Any]], center: np.ndarray,
             scale: np.ndarray, month_grid: np.ndarray) -> dict:
    """Pooled ``predictor.json`` entry parts of a Cox model (coef, baseline survival, bootstrap)."""
    points = [cox.restandardize(f, center, scale, month_grid) for f in fits]
    boot = [cox.restandardize(f, center, scale, month_grid) for refits in boot_fits for f in refits]
    log_h = np.mean([_log_cumhaz(p[1]) for p in points], axis=0)  # -inf where H0 = 0 (t = 0)
    return {"coef": np.mean([p[0] for p in points], axis=0).tolist(),
            "baseline_survival": _survival_from_log_cumhaz(log_h).tolist(),
            "bootstrap": {"coef": [b[0].tolist() for b in boot],
                          "baseline_survival": [b[1].tolist() for b in boot]},
            "members": {"coef": [p[0].tolist() for p in points],
                        "baseline_survival": [p[1].tolist() for p in points]}}


def _mean_metrics(dicts: Sequence[dict]) -> dict:
    keys = dict.fromkeys(k for d in dicts for k in d)
    out = {}
    for key in keys:
        values = [d.get(key) for d in dicts if d.get(key) is not None]
        out[key] = float(np.mean(values)) if values else None
    return out


def _percentiles(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.quantile(values, 0.025, axis=0), np.quantile(values, 0.975, axis=0)


def pooled_coefficients(features: Sequence[str], member_coef: np.ndarray, boot_coef: np.ndarray,
                        scale: np.ndarray, member_se: np.ndarray, ratio: str) -> dict:
    """Model-card coefficients per unit of each feature: pooled estimate, mixture interval, spread.

    Parameters
    ----------
    member_coef : (K, p) members' coefficients per SD of the common scale
    boot_coef : (B_total, p) all members' bootstrap refits, same scale
    scale : (p,) the common scale (SD of each column)
    member_se : (K, p) each member's Wald SE per unit (within-member uncertainty)
    """
    per_unit = member_coef / scale
    boot_unit = boot_coef / scale
    estimate = per_unit.mean(axis=0)
    lower, upper = _percentiles(boot_unit)
    lower, upper = np.fmin(lower, estimate), np.fmax(upper, estimate)
    k = per_unit.shape[0]
    between = per_unit.var(axis=0, ddof=1) if k > 1 else np.zeros_like(estimate)
    with warnings.catch_warnings():  # a feature without any member SE (constant) stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        within = np.nanmean(member_se ** 2, axis=0)
    rubin_se = np.sqrt(within + (1 + 1 / k) * between)
    out = {}
    for j, name in enumerate(features):
        out[name] = {
            "estimate": float(estimate[j]), "ci95": [float(lower[j]), float(upper[j])],
            "se": float(rubin_se[j]),
            "ratio": float(np.exp(estimate[j])),
            "ratio_ci95": [float(np.exp(lower[j])), float(np.exp(upper[j]))],
            "estimate_per_sd": float(estimate[j] * scale[j]),
            "constant_in_training": False,
            "interval": "mixture of the members' bootstrap refits (2.5th-97.5th percentile)",
            "se_rule": "Rubin: within-member Wald variance + (1 + 1/K) x between-member variance",
            "across_members": {"min": float(per_unit[:, j].min()), "max": float(per_unit[:, j].max()),
                               "sd": float(np.sqrt(between[j]))},
            "rubin_ci95": [float(estimate[j] - 1.96 * rubin_se[j]), float(estimate[j] + 1.96 * rubin_se[j])],
            "ratio_name": ratio,
        }
    return out


def merged_warnings(per_member: Sequence[Sequence[str]]) -> list[str]:
    """One line per kind of warning (same text up to its figures), saying how many members had it.

    The first member's wording is kept; when the figures differ between members the line says so.
    """
    k = len(per_member)
    kinds: dict[str, list[str]] = {}
    for warnings in per_member:
        for key, text in {re.sub(r"\d+(\.\d+)?", "#", w): w for w in warnings}.items():
            kinds.setdefault(key, []).append(text)
    out = []
    for texts in kinds.values():
        varies = len(set(texts)) > 1
        if len(texts) == k and not varies:
            out.append(texts[0])
            continue
        note = f"in {len(texts)} of {k} reconstructions" + ("; figures vary between them" if varies else "")
        out.append(f"{texts[0]} ({note})")
    return out


def pooled_entry(entries: Sequence[dict], coefficients: dict, bootstrap_total: int,
                 per_member: int) -> dict:
    """The pooled model card: member 0's layout, averaged metrics, pooled coefficients.

    Validation metrics (apparent, optimism, optimism-corrected) are the means over members, each
    member's optimism estimated from its own ``per_member`` refits.
    """
    entry = copy.deepcopy(entries[0])
    k = len(entries)
    for block in ("apparent", "optimism", "optimism_corrected", "optimism_mean"):
        entry[block] = _mean_metrics([e.get(block) or {} for e in entries])
    entry["coefficients"] = coefficients
    events = [e["events"] for e in entries]
    entry["events"] = int(round(float(np.mean(events))))
    entry["events_range"] = [int(min(events)), int(max(events))]
    entry["events_per_variable"] = float(np.mean([e["events_per_variable"] for e in entries]))
    entry["bootstrap"] = int(bootstrap_total)
    entry["bootstrap_per_member"] = int(per_member)
    if isinstance(entry.get("penalty"), dict):
        entry["penalty"]["lambda_by_member"] = [(e.get("penalty") or {}).get("lambda") for e in entries]
    if "ph_test" in entry:
        entry["ph_test_global_p_by_member"] = [
            ((e.get("ph_test") or {}).get("global") or {}).get("p") for e in entries]
    entry["warnings"] = merged_warnings([e.get("warnings", []) for e in entries])
    entry["sample_size_note"] = ("Riley criteria shown for the first reconstruction; every member "
                                 "has the same n and nearly the same events")
    return entry
