"""The data of the report's tables (see :mod:`training.report.page`), ready for its templates.

Every function takes the verified manifest, the training cohort or the stored estimators and
returns plain rows and facts (display strings and numbers); ``templates/report_sections.html``
lays them out and escapes them. Nothing here writes HTML or computes a curve.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from model import card_text
from model.burden import burden_groups
from model.outcomes import BY_NAME, SURVIVAL_NAMES
from training.report.curves import follow_up_median
from training.evaluation.metrics import METRICS
from training.report.templating import num, sci

METRIC_LABELS = {
    "c_index": "C statistic (AUC for binary outcomes; Harrell's C for survival)",
    "calibration_slope": "calibration slope (1 = ideal)",
    "calibration_intercept": "calibration intercept (binary: in the large; survival: log O/E)",
    "brier": "Brier score (survival: IPCW at the horizon)",
    "ici": "ICI, integrated calibration index",
    "e50": "E50, median absolute calibration error",
    "e90": "E90, 90th percentile absolute calibration error",
}
_CHECK_LABELS = {"shrinkage": "expected shrinkage >= target",
                 "r2_optimism": "optimism in Nagelkerke R^2 <= target",
                 "overall_risk": "overall risk estimated within +/- target"}


def _count(series: pd.Series) -> str:
    return f"{int(series.sum())} ({100 * series.mean():.1f} %)"


def cohort_rows(cohort: pd.DataFrame) -> list[tuple[str, str]]:
    """(characteristic, value) of the training cohort: counts, baseline and outcomes."""
    rows = [("patients", str(len(cohort)))]
    groups = burden_groups(cohort["marrow_blasts_pct"])
    rows.append(("burden group low (< 5 %) / high (>= 5 %)",
                 f"{int((groups == 'low').sum())} / {int((groups == 'high').sum())}"))
    counts = cohort["burden_subgroup"].value_counts()
    rows.append(("burden subgroups a / b / c / d / e",
                 " / ".join(str(int(counts.get(s, 0))) for s in "abcde")))
    blasts = cohort["marrow_blasts_pct"]
    rows.append(("marrow blasts %, median (range)",
                 f"{blasts.median():.1f} ({blasts.min():g}-{blasts.max():g})"))
    if "age_years" in cohort:
        age = cohort["age_years"]
        rows.append(("age, median (range), years", f"{age.median():g} ({age.min():g}-{age.max():g})"))
    if "sex" in cohort:
        rows.append(("male", _count(cohort["sex"] == "M")))
    for column in ("ph_positive", "prior_therapy_ge_6mo", "prior_chemo_ge_3", "prior_hsct",
                   "relapsed", "tp53_mutation", "poor_cytogenetics"):
        if column in cohort:
            rows.append((column, _count(cohort[column] == 1)))
    if "cr" in cohort:
        rows.append(("complete remission (any)", _count(cohort["cr"] == 1)))
        rows.append(("MRD-negative CR", _count(cohort["response"] == "mrd_neg_cr")))
    if "severe_crs" in cohort:
        rows.append(("severe CRS (grade >= 3)", _count(cohort["severe_crs"] == 1)))
    for outcome, label in ((name, BY_NAME[name].events_label) for name in SURVIVAL_NAMES):
        if f"{outcome}_months" in cohort and f"{outcome}_event" in cohort:
            time = cohort[f"{outcome}_months"].to_numpy(float)
            event = cohort[f"{outcome}_event"].to_numpy(int)
            rows.append((label, _count(cohort[f"{outcome}_event"] == 1)))
            if outcome == "os":
                rows.append(("follow-up (months): median by reverse Kaplan-Meier; longest",
                             f"{num(follow_up_median(time, event), 1)}; {time.max():g}"))
    return rows


def validation_rows(manifest: dict) -> list[dict]:
    """Every model's metrics: apparent / optimism / corrected (mean and median), estimable count.

    An ensemble's figures are its pooled model's (medians over the reconstructions with their
    IQR, :func:`model.card_text.validation_text`); a flat model reads "no predictor effect".
    """
    rows = []
    for name, entry in manifest["models"].items():
        estimable = entry.get("bootstrap_estimable", {})
        median = entry.get("optimism_corrected_median", {})
        validation = card_text.pooled_validation(entry)
        replicates = validation["replicates"] if validation else entry["bootstrap"]
        for metric in METRICS:
            flat = card_text.is_flat(entry) and metric in ("c_index", "calibration_slope")
            if validation:
                block = validation["metrics"][metric]
                optimism = num(block["optimism"]["median"])
                median_text = (card_text.FLAT_TEXT if flat else
                               num(block["corrected_by_bootstrap_median"]["median"]))
            else:
                optimism, median_text = num(entry["optimism"].get(metric)), num(median.get(metric))
            rows.append({"model": name, "metric": METRIC_LABELS.get(metric, metric),
                         "apparent": card_text.validation_text(entry, metric, "apparent"),
                         "optimism": "" if flat else optimism,
                         "corrected": card_text.validation_text(entry, metric, "corrected"),
                         "median": "" if flat else median_text,
                         "estimable": f"{estimable.get(metric, '-')}/{replicates}"})
    return rows


def _coefficient_rows(entry: dict) -> list[dict]:
    rows = []
    for feature in entry["features"]:
        c = entry["coefficients"][feature["name"]]
        low, high = c["ratio_ci95"]
        interval = (card_text.coefficient_text(c) if c.get("shrunk_to_zero")
                    or c.get("refits_at_no_effect") else f"{num(low)} - {num(high)}")
        rows.append({"label": feature["label"], "name": feature["name"],
                     "cells": [f"{num(feature['min'], 2)} to {num(feature['max'], 2)}",
                               num(c["estimate"], 4), num(c["se"], 4), num(c["ratio"]),
                               interval, num(c["estimate_per_sd"])]})
    return rows


def _riley(ss: dict) -> dict:
    if "criteria" not in ss:
        return {"problem": ss.get("warning") or ss.get("error")}
    rows = [{"label": _CHECK_LABELS.get(key, key), "target": num(crit.get("target")),
             "achieved": num(crit.get("achieved")), "required_n": crit.get("required_n"),
             "pass": crit["pass"]} for key, crit in ss["criteria"].items()]
    return {"rows": rows, "r2_cs_adjusted": num(ss.get("r2_cs_adjusted")), "r2_cs": num(ss.get("r2_cs")),
            "r2_basis": ss.get("r2_basis"), "required_n": ss.get("required_n"), "n": ss.get("n")}


def _ph(ph: dict | None) -> dict | None:
    if not ph:
        return None
    return {"rows": [(name, num(v["statistic"]), v["df"], num(v["p"]))
                     for name, v in ph["covariates"].items()],
            "global": (num(ph["global"]["statistic"]), ph["global"]["df"], num(ph["global"]["p"])),
            "method": ph["method"], "time_transform": ph.get("time_transform"),
            "fit": ph.get("fit", "model fit"), "ties": ph.get("ties", "efron"), "error": ph.get("error")}


def model_card(name: str, entry: dict) -> dict:
    """Model card: facts, warnings, coefficients, Riley criteria and PH test of one model."""
    penalty = entry["penalty"]
    tuning = entry.get("tuning", {})
    facts = [("kind", entry["kind"]), ("outcome", entry["outcome"]), ("n", entry["n"]),
             ("events", f"{entry['events']} ({entry['events_label']})"),
             ("events per variable", num(entry["events_per_variable"], 1)),
             ("fitting method", f"{entry.get('method', {}).get('name', 'aic_ridge')}: "
                                f"{entry.get('method', {}).get('label', '')}"),
             ("penalty lambda / shrinkage factor" + (" (reconstruction 1)" if penalty.get("of") else ""),
              f"{num(penalty['lambda'], 4)} / {num(penalty.get('shrinkage', 1.0), 3)} "
              f"(effective df {num(penalty.get('effective_df'), 2)})"),
             ("rule", penalty["rule"]), ("equivalent estimator", penalty["equivalent"]),
             ("bootstrap tuning at a grid edge",
              f"{tuning.get('edge_resamples', 0)} of {tuning.get('resamples', entry['bootstrap'])} "
              "resamples" + ("" if tuning.get("tuned") else " (no tuning)")),
             ("bootstrap tuning at the no-effect limit",
              f"{tuning.get('null_limit_resamples', 0)} resamples (criterion "
              "falling all the way to lambda = 1e6: the intercept-only model)"),
             ("bootstrap repetitions", entry["bootstrap"])]
    validation = card_text.pooled_validation(entry)
    if validation:
        flat = validation["flat"]
        shrinkage = [v for v in penalty.get("shrinkage_by_member", []) if v is not None]
        facts += [("shrinkage factor across reconstructions",
                   f"{num(min(shrinkage), 3)} to {num(max(shrinkage), 3)}" if shrinkage else "-"),
                  ("fits with no predictor effect",
                   f"{flat['members']} of {flat['members_of']} reconstructions; {flat['refits']} of "
                   f"{flat['refits_of']} refits; {flat['pooled_replicates']} of "
                   f"{flat['pooled_replicates_of']} pooled replicates"),
                  ("validation replicates (whole ensemble procedure)", validation["replicates"])]
        ph = [p for p in entry.get("ph_test_global_p_by_member", []) if p is not None]
        if ph:
            facts.append(("PH test global p across reconstructions",
                          f"{num(min(ph), 3)} to {num(max(ph), 3)}; p < 0.05 in "
                          f"{sum(p < 0.05 for p in ph)} of {len(ph)}"))
    if entry["kind"] == "cox":
        facts.append(("maximum follow-up (months)", num(entry["max_follow_up_months"], 2)))
    return {"name": name, "facts": facts, "warnings": entry.get("warnings", []),
            "interval_caption": (card_text.interval_caption({"ensemble": {"members": validation["members"],
                                                             "bootstrap_per_member": entry.get("bootstrap_per_member")},
                                                             "bootstrap": entry["bootstrap"]})
                                 if validation else "Wald 95 % confidence intervals from the inverse "
                                 "penalized information, centred on the shrunken estimate."),
            "one_member": "; ".join(f"{what}: {block['of']}" for what, block in
                                    (("Riley criteria", entry.get("sample_size") or {}),
                                     ("PH test", entry.get("ph_test") or {})) if block.get("of")),
            "ratio": "odds ratio" if entry["kind"] == "logistic" else "hazard ratio",
            "coefficients": _coefficient_rows(entry),
            "intercept": num(entry["intercept"], 4) if entry["kind"] == "logistic" else None,
            "riley": _riley(entry["sample_size"]), "ph": _ph(entry.get("ph_test"))}


def _estimator_coefficients(kind: str, stored: dict) -> tuple[np.ndarray, float | None]:
    if stored.get("members"):
        # An ensemble: the pooled predictor averages the members on one common centre and scale.
        center, scale = np.asarray(stored["center"], float), np.asarray(stored["scale"], float)
        per_unit, intercepts = [], []
        for member in stored["members"]:
            coef, intercept = _estimator_coefficients(kind, {**member, "features": stored["features"]})
            weights = coef / np.asarray(member["scale"], float)
            per_unit.append(weights)
            if intercept is not None:
                intercepts.append(intercept - np.asarray(member["center"], float) @ weights + center @ weights)
        return np.mean(per_unit, axis=0) * scale, (float(np.mean(intercepts)) if intercepts else None)
    estimator = stored["estimator"]
    if kind == "logistic":
        return np.asarray(estimator.coef_[0], float), float(estimator.intercept_[0])
    params = estimator.params_
    return np.array([float(params.get(f, 0.0)) for f in stored["features"]]), None


def audit_rows(manifest: dict, params: dict, estimators: dict) -> list[tuple[str, str, str, str]]:
    """(model, estimator, max |coefficient difference|, |intercept difference|) per model: the
    stored scikit-learn / lifelines estimators against the predictor's numbers."""
    rows = []
    for name in manifest["models"]:
        stored, model = estimators.get(name), params["models"][name]
        updated = (manifest.get("lineage") or {}).get("models", {}).get(name, {}).get("method")
        if stored is None and updated in ("intercept", "recalibrate"):
            rows.append((name, f"none: updated by {updated} of the parent's model (see the lineage)",
                         "-", "-"))
            continue
        if stored is None:
            rows.append((name, "missing", "-", "-"))
            continue
        coef, intercept = _estimator_coefficients(model["kind"], stored)
        diff = float(np.max(np.abs(coef - np.asarray(model["coef"])), initial=0.0))
        idiff = "-" if intercept is None else sci(abs(intercept - model["intercept"]))
        rows.append((name, type(stored["estimator"]).__name__, sci(diff), idiff))
    return rows
