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


def _percentiles(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.quantile(values, 0.025, axis=0), np.quantile(values, 0.975, axis=0)


#: A coefficient per SD of its column below this (in absolute value) is "no effect": the fit was
#: shrunk to zero (heuristic factor 0) or tuned to the no-effect limit (lambda 1e6).
NO_EFFECT_PER_SD = 1e-3
SE_RULE = ("standard deviation of the mixture of all members' bootstrap refits (the distribution "
           "the 95 % interval is taken from); no member's flat fit enters as a zero variance")


def pooled_coefficients(features: Sequence[str], member_coef: np.ndarray, boot_coef: np.ndarray,
                        scale: np.ndarray, member_unshrunk: Sequence[dict], ratio: str) -> dict:
    """Model-card coefficients per unit of each feature: pooled estimate, mixture interval, spread.

    Parameters
    ----------
    member_coef : (K, p) members' coefficients per SD of the common scale
    boot_coef : (B_total, p) all members' bootstrap refits, same scale
    scale : (p,) the common scale (SD of each column)
    member_unshrunk : K dicts feature -> unshrunk 95 % interval per unit (or None), of members
        whose fit was shrunk to zero
    """
    per_unit = member_coef / scale
    boot_unit = boot_coef / scale
    estimate = per_unit.mean(axis=0)
    lower, upper = _percentiles(boot_unit)
    lower, upper = np.fmin(lower, estimate), np.fmax(upper, estimate)
    se = boot_unit.std(axis=0, ddof=1) if len(boot_unit) > 1 else np.zeros_like(estimate)
    at_zero = (np.abs(boot_coef) < NO_EFFECT_PER_SD).mean(axis=0)
    member_zero = np.abs(member_coef) < NO_EFFECT_PER_SD
    out = {}
    for j, name in enumerate(features):
        effects = per_unit[~member_zero[:, j], j]
        zero = bool(np.all(member_zero[:, j]))
        entry = {
            "estimate": float(estimate[j]), "ci95": [float(lower[j]), float(upper[j])],
            "se": float(se[j]),
            "ratio": float(np.exp(estimate[j])),
            "ratio_ci95": [float(np.exp(lower[j])), float(np.exp(upper[j]))],
            "estimate_per_sd": float(estimate[j] * scale[j]),
            "constant_in_training": False,
            "interval": "mixture of the members' bootstrap refits (2.5th-97.5th percentile)",
            "se_rule": SE_RULE,
            "across_members": {"min": float(per_unit[:, j].min()), "max": float(per_unit[:, j].max()),
                               "sd": float(per_unit[:, j].std(ddof=1)) if len(per_unit) > 1 else 0.0,
                               "no_effect": int(member_zero[:, j].sum()),
                               "with_effect_range": ([float(effects.min()), float(effects.max())]
                                                     if effects.size else None)},
            "refits_at_no_effect": float(at_zero[j]),
            "shrunk_to_zero": zero,
            "ratio_name": ratio,
        }
        if zero:
            bounds = [u.get(name) for u in member_unshrunk if u.get(name)]
            entry["unshrunk_ci95"] = ([float(min(b[0] for b in bounds)), float(max(b[1] for b in bounds))]
                                      if bounds else None)
        out[name] = entry
    return out


def _ranged(texts: Sequence[str]) -> str:
    """The first text with every figure that differs between ``texts`` written as min-max."""
    numbers = [re.findall(_NUMBER, t) for t in texts]
    slots = iter(range(len(numbers[0])))

    def slot(match):
        j = next(slots)
        values = [float(n[j]) for n in numbers]
        low, high = min(values), max(values)
        if low == high:
            return match.group(0)
        digits = max(len(n[j].partition(".")[2]) for n in numbers)
        return f"{low:.{digits}f}-{high:.{digits}f}"

    return re.sub(_NUMBER, slot, texts[0])


_NUMBER = r"\d+(?:\.\d+)?"


def merged_warnings(per_member: Sequence[Sequence[str]]) -> list[str]:
    """One line per kind of warning (same text up to its figures): figures that differ between
    members become their range, and a kind not every member has says in how many it occurs."""
    k = len(per_member)
    kinds: dict[str, list[str]] = {}
    for warnings in per_member:
        for key, text in {re.sub(_NUMBER, "#", w): w for w in warnings}.items():
            kinds.setdefault(key, []).append(text)
    out = []
    for texts in kinds.values():
        line = _ranged(texts)
        out.append(line if len(texts) == k else f"{line} (in {len(texts)} of {k} reconstructions)")
    return out


#: Member warnings the pooled model's own validation replaces (they judge one member's fit).
_MEMBER_VALIDATION = re.compile(r"^(Optimism-corrected |.* was estimable in |.* degenerate bootstrap"
                                r"|The model explains no more than chance)")
_RILEY_TAIL = re.compile(r" (See the calibration warning below\.|Treat the predictions as exploratory.*)$")


def _summed_tuning(entries: Sequence[dict]) -> dict:
    tunings = [e.get("tuning") or {} for e in entries]
    out = dict(tunings[0])
    for key in ("resamples", "edge_resamples", "null_limit_resamples"):
        out[key] = int(sum(t.get(key, 0) for t in tunings))
    for key in ("original_edge", "original_null_limit"):
        out[key] = int(sum(bool(t.get(key)) for t in tunings))
    out["over"] = f"all {len(entries)} reconstructions' refits"
    return out


def _pooled_warnings(entries: Sequence[dict], validation: dict, corrected: dict) -> list[str]:
    from training.development.card_warnings import calibration_sentence

    k, flat = len(entries), validation["flat"]
    member = [[_RILEY_TAIL.sub("", w) for w in e.get("warnings", []) if not _MEMBER_VALIDATION.match(w)]
              for e in entries]
    out = []
    if validation["pooled_flat"]:
        out.append("The pooled model has no predictor effect (every reconstruction's fit is flat): "
                   "it predicts the cohort average for every patient; C 0.5, slope undefined.")
    elif flat["members"]:
        out.append(f"No predictor effect (heuristic shrinkage <= 0) in {flat['members']} of {k} "
                   f"reconstructions' fits and {flat['refits']} of {flat['refits_of']} refits; the "
                   "pooled coefficients average these zeros with the other reconstructions' effects.")
    slope = validation["metrics"]["calibration_slope"]["corrected"]
    sentence = calibration_sentence(corrected.get("calibration_slope"))
    if sentence and slope["iqr"]:
        out.append(f"Pooled model: {sentence[0].lower()}{sentence[1:-1]} (median of {k} "
                   f"reconstructions, IQR {slope['iqr'][0]:.2f}-{slope['iqr'][1]:.2f}).")
    estimable = validation["metrics"]["calibration_slope"]["estimable_replicates"]
    if not validation["pooled_flat"] and estimable < validation["replicates"]:
        out.append(f"The pooled calibration slope was estimable in {estimable} of "
                   f"{validation['replicates']} validation replicates (the others flat or separated).")
    return out + merged_warnings(member)


def pooled_entry(entries: Sequence[dict], coefficients: dict, bootstrap_total: int,
                 per_member: int, validation: dict) -> dict:
    """The pooled model card: the pooled model's validation, pooled coefficients, and the
    members' facts summarized (or labelled as the first reconstruction's where one member's
    figures are shown: penalty, Riley criteria, PH test)."""
    from training.development.ensemble_validation import headline

    entry = copy.deepcopy(entries[0])
    k = len(entries)
    apparent, corrected, corrected_median = headline(validation)
    entry["apparent"], entry["optimism_corrected"] = apparent, corrected
    entry["optimism"] = {m: (None if apparent[m] is None or corrected[m] is None
                             else apparent[m] - corrected[m]) for m in apparent}
    entry["optimism_mean"] = dict(entry["optimism"])
    entry["optimism_corrected_median"] = corrected_median
    entry["optimism_median"] = {m: (None if apparent[m] is None or corrected_median[m] is None
                                    else apparent[m] - corrected_median[m]) for m in apparent}
    entry["optimism_summary"] = {m: "pooled model: median over the reconstructions of the "
                                    "Efron-Gong corrected value" for m in apparent}
    entry["validation"] = validation
    entry["bootstrap_estimable"] = {m: b["estimable_replicates"] for m, b in validation["metrics"].items()}
    entry["bootstrap_redraws"] = int(sum(e.get("bootstrap_redraws", 0) for e in entries))
    entry["tuning"] = _summed_tuning(entries)
    entry["coefficients"] = coefficients
    events = [e["events"] for e in entries]
    entry["events"] = int(round(float(np.mean(events))))
    entry["events_range"] = [int(min(events)), int(max(events))]
    entry["events_per_variable"] = float(np.mean([e["events_per_variable"] for e in entries]))
    entry["bootstrap"] = int(bootstrap_total)
    entry["bootstrap_per_member"] = int(per_member)
    entry["validation_replicates"] = int(validation["replicates"])
    one = "reconstruction 1 of the ensemble (member 0); the other members' figures are listed beside"
    if isinstance(entry.get("penalty"), dict):
        entry["penalty"]["of"] = one
        entry["penalty"]["lambda_by_member"] = [(e.get("penalty") or {}).get("lambda") for e in entries]
        entry["penalty"]["shrinkage_by_member"] = [(e.get("penalty") or {}).get("shrinkage") for e in entries]
    if "ph_test" in entry:
        entry["ph_test"]["of"] = one
        entry["ph_test_global_p_by_member"] = [
            ((e.get("ph_test") or {}).get("global") or {}).get("p") for e in entries]
    if isinstance(entry.get("sample_size"), dict):
        entry["sample_size"]["of"] = one
        entry["sample_size"]["required_n_by_member"] = [(e.get("sample_size") or {}).get("required_n")
                                                        for e in entries]
    entry["warnings"] = _pooled_warnings(entries, validation, corrected)
    entry["sample_size_note"] = ("Riley criteria shown for the first reconstruction; every member "
                                 "has the same n and nearly the same events")
    return entry
