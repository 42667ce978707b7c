"""Tables and survival figures of the HTML report (see :mod:`training.report`).

Every function returns escaped HTML (or figure URIs) built from the verified manifest, the
training cohort and the bundle's own predictions.
"""
from __future__ import annotations

import html

import numpy as np
import pandas as pd

from model.burden import burden_groups
from model.outcomes import BY_NAME, SURVIVAL_NAMES
from training import plots
from training.metrics import METRICS

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


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def num(value, digits: int = 3) -> str:
    """Formatted number, or '-' for None / NaN."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.000"


def sci(value: float) -> str:
    """Scientific notation, for differences expected near machine precision."""
    return f"{value:.2e}"


def _table(header: list[str] | None, rows: list[list[str]], ident: str = "") -> str:
    head = "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    id_attr = f' id="{esc(ident)}"' if ident else ""
    return f"<table{id_attr}>{head}{body}</table>"


def _count(series: pd.Series) -> str:
    return f"{int(series.sum())} ({100 * series.mean():.1f} %)"


def _follow_up_median(time: np.ndarray, event: np.ndarray) -> float:
    """Median potential follow-up by the reverse Kaplan-Meier method (censorings as events)."""
    from lifelines import KaplanMeierFitter

    return float(KaplanMeierFitter().fit(time, 1 - event).median_survival_time_)


def cohort_section(cohort: pd.DataFrame) -> str:
    """Patient counts, baseline characteristics and outcomes of the training cohort."""
    rows = [["patients", str(len(cohort))]]
    groups = burden_groups(cohort["marrow_blasts_pct"])
    rows.append(["burden group low (< 5 %) / high (>= 5 %)",
                 f"{int((groups == 'low').sum())} / {int((groups == 'high').sum())}"])
    counts = cohort["burden_subgroup"].value_counts()
    rows.append(["burden subgroups a / b / c / d / e",
                 " / ".join(str(int(counts.get(s, 0))) for s in "abcde")])
    blasts = cohort["marrow_blasts_pct"]
    rows.append(["marrow blasts %, median (range)",
                 f"{blasts.median():.1f} ({blasts.min():g}-{blasts.max():g})"])
    if "age_years" in cohort:
        age = cohort["age_years"]
        rows.append(["age, median (range), years", f"{age.median():g} ({age.min():g}-{age.max():g})"])
    if "sex" in cohort:
        rows.append(["male", _count(cohort["sex"] == "M")])
    for column in ("ph_positive", "prior_therapy_ge_6mo", "prior_chemo_ge_3", "prior_hsct",
                   "relapsed", "tp53_mutation", "poor_cytogenetics"):
        if column in cohort:
            rows.append([column, _count(cohort[column] == 1)])
    if "cr" in cohort:
        rows.append(["complete remission (any)", _count(cohort["cr"] == 1)])
        rows.append(["MRD-negative CR", _count(cohort["response"] == "mrd_neg_cr")])
    if "severe_crs" in cohort:
        rows.append(["severe CRS (grade >= 3)", _count(cohort["severe_crs"] == 1)])
    for outcome, label in ((name, BY_NAME[name].events_label) for name in SURVIVAL_NAMES):
        if f"{outcome}_months" in cohort and f"{outcome}_event" in cohort:
            time = cohort[f"{outcome}_months"].to_numpy(float)
            event = cohort[f"{outcome}_event"].to_numpy(int)
            rows.append([label, _count(cohort[f"{outcome}_event"] == 1)])
            if outcome == "os":
                rows.append(["follow-up (months): median by reverse Kaplan-Meier; longest",
                             f"{num(_follow_up_median(time, event), 1)}; {time.max():g}"])
    return _table(["characteristic", "value"], [[esc(a), esc(b)] for a, b in rows], "cohort-table")


def validation_section(manifest: dict) -> str:
    """One table: every model's metrics, apparent / optimism / corrected (mean and median)."""
    rows = []
    for name, entry in manifest["models"].items():
        estimable = entry.get("bootstrap_estimable", {})
        median = entry.get("optimism_corrected_median", {})
        for metric in METRICS:
            rows.append([esc(name), esc(METRIC_LABELS.get(metric, metric)),
                         num(entry["apparent"].get(metric)), num(entry["optimism"].get(metric)),
                         f"<strong>{num(entry['optimism_corrected'].get(metric))}</strong>",
                         num(median.get(metric)),
                         f"{esc(estimable.get(metric, '-'))}/{esc(entry['bootstrap'])}"])
    horizon = manifest.get("horizon_months", 12)
    note = (f"<p>Optimism by the bootstrap (Efron-Gong, as rms::validate): each of B resamples "
            f"repeats the whole fit, penalty choice included, and the optimism is the <em>mean</em> "
            f"over resamples of apparent minus test performance; the corrected value in bold is "
            f"the headline. The median-based corrected value is shown beside it; where the two "
            f"differ materially the model card warns. Survival metrics at "
            f"{esc(f'{horizon:g}')} months. The last column counts the resamples in which a "
            "metric was estimable.</p>")
    return note + _table(["model", "metric", "apparent", "optimism (mean)",
                          "optimism-corrected (mean)", "corrected (median)", "estimable"],
                         rows, "validation-table")


def _coefficients(entry: dict) -> str:
    ratio = "odds ratio" if entry["kind"] == "logistic" else "hazard ratio"
    rows = []
    for feature in entry["features"]:
        c = entry["coefficients"][feature["name"]]
        low, high = c["ratio_ci95"]
        rows.append([f"{esc(feature['label'])}<br><code>{esc(feature['name'])}</code>",
                     f"{num(feature['min'], 2)} to {num(feature['max'], 2)}",
                     num(c["estimate"], 4), num(c["se"], 4), num(c["ratio"]),
                     f"{num(low)} - {num(high)}", num(c["estimate_per_sd"])])
    if entry["kind"] == "logistic":
        rows.append(["intercept (original scale)", "", num(entry["intercept"], 4), "", "", "", ""])
    return _table(["feature", "training range", "coefficient (per unit)", "SE", ratio,
                   f"{ratio} 95 % CI", "coefficient per SD"], rows, f"coefficients-{entry['_name']}")


def _riley(entry: dict) -> str:
    ss = entry["sample_size"]
    if "criteria" not in ss:
        return f"<p class=fail>{esc(ss.get('warning') or ss.get('error'))}</p>"
    rows = []
    for key, crit in ss["criteria"].items():
        verdict = "<span class=pass>pass</span>" if crit["pass"] else "<span class=fail>fail</span>"
        rows.append([esc(_CHECK_LABELS.get(key, key)), num(crit.get("target")),
                     num(crit.get("achieved")), esc(crit.get("required_n")), verdict])
    text = (f"<p>Riley et al. minimum sample size (anticipated R<sup>2</sup><sub>CS</sub> "
            f"{num(ss.get('r2_cs_adjusted'))} from the apparent {num(ss.get('r2_cs'))} of the "
            f"{esc(ss.get('r2_basis'))}); required n = {esc(ss.get('required_n'))}, "
            f"this cohort n = {esc(ss.get('n'))}.</p>")
    return text + _table(["criterion", "target", "achieved", "required n", ""], rows,
                         f"riley-{entry['_name']}")


def _ph(entry: dict) -> str:
    ph = entry.get("ph_test")
    if not ph:
        return ""
    rows = [[esc(name), num(v["statistic"]), esc(v["df"]), num(v["p"])]
            for name, v in ph["covariates"].items()]
    rows.append(["<strong>global</strong>", num(ph["global"]["statistic"]),
                 esc(ph["global"]["df"]), num(ph["global"]["p"])])
    detail = (f" Time transform {esc(ph.get('time_transform'))}; fit: {esc(ph.get('fit', 'model fit'))}; "
              f"ties {esc(ph.get('ties', 'efron'))}.")
    if ph.get("error"):
        detail += f" <span class=fail>{esc(ph['error'])}</span>"
    return (f"<h3>Proportional hazards</h3><p>{esc(ph['method'])}.{detail}</p>"
            + _table(["covariate", "chi-square", "df", "p"], rows, f"ph-{entry['_name']}"))


def model_section(name: str, entry: dict) -> str:
    """Model card: outcome, counts, penalty, warnings, coefficients, Riley criteria, PH test."""
    entry = {**entry, "_name": name}
    penalty = entry["penalty"]
    facts = [("kind", entry["kind"]), ("outcome", entry["outcome"]), ("n", entry["n"]),
             ("events", f"{entry['events']} ({entry['events_label']})"),
             ("events per variable", num(entry["events_per_variable"], 1)),
             ("fitting method", f"{entry.get('method', {}).get('name', 'aic_ridge')}: "
                                f"{entry.get('method', {}).get('label', '')}"),
             ("penalty lambda / shrinkage factor",
              f"{num(penalty['lambda'], 4)} / {num(penalty.get('shrinkage', 1.0), 3)} "
              f"(effective df {num(penalty.get('effective_df'), 2)})"),
             ("rule", penalty["rule"]), ("equivalent estimator", penalty["equivalent"]),
             ("bootstrap tuning at a grid edge",
              f"{entry.get('tuning', {}).get('edge_resamples', 0)} of "
              f"{entry.get('tuning', {}).get('resamples', entry['bootstrap'])} resamples"
              + ("" if entry.get("tuning", {}).get("tuned") else " (no tuning)")),
             ("bootstrap tuning at the no-effect limit",
              f"{entry.get('tuning', {}).get('null_limit_resamples', 0)} resamples (criterion "
              "falling all the way to lambda = 1e6: the intercept-only model)"),
             ("bootstrap repetitions", entry["bootstrap"])]
    if entry["kind"] == "cox":
        facts.append(("maximum follow-up (months)", num(entry["max_follow_up_months"], 2)))
    head = _table(None, [[f"<strong>{esc(k)}</strong>", esc(v)] for k, v in facts], f"facts-{name}")
    warned = "".join(f"<li class=warn>{esc(w)}</li>" for w in entry.get("warnings", []))
    warned = f"<p><strong>Warnings</strong></p><ul>{warned}</ul>" if warned else ""
    return (f'<div class="model" id="table-{esc(name)}">{head}{warned}<h3>Coefficients</h3>'
            "<p>Wald 95 % intervals from the inverse penalized information, centred on the "
            "shrunken estimate.</p>" + _coefficients(entry) + "<h3>Sample size</h3>"
            + _riley(entry) + _ph(entry) + "</div>")


def _km(time: np.ndarray, event: np.ndarray) -> dict:
    from lifelines import KaplanMeierFitter

    fitter = KaplanMeierFitter().fit(time, event)
    interval = fitter.confidence_interval_survival_function_.to_numpy()
    return {"km_months": fitter.survival_function_.index.to_numpy(float),
            "km_survival": fitter.survival_function_.to_numpy()[:, 0],
            "km_lower": interval[:, 0], "km_upper": interval[:, 1]}


def survival_figures(name: str, cohort: pd.DataFrame, curves, entry: dict) -> list[tuple]:
    """(id, data URI, caption) of the observed-vs-predicted survival figure by burden group."""
    time = cohort[f"{name}_months"].to_numpy(float)
    event = cohort[f"{name}_event"].to_numpy(int)
    groups = burden_groups(cohort["marrow_blasts_pct"])
    data = []
    for group, label in (("low", "blasts < 5 %"), ("high", "blasts >= 5 %")):
        members = groups == group
        if not members.any():
            continue
        data.append({"label": f"{label} (n={int(members.sum())})", **_km(time[members], event[members]),
                     "months": curves.months, "predicted": curves.survival[members].mean(axis=0)})
    title = f"{name.upper()}: observed vs predicted by burden group"
    figure = plots.km_vs_predicted_figure(data, title, float(entry["max_follow_up_months"]))
    caption = (f"{name.upper()}: Kaplan-Meier with 95 % CI (solid, shaded) and the mean of the "
               "model's predicted survival curves over the same patients (dashed).")
    return [(f"fig-km-{name}", plots.figure_data_uri(figure), caption)]


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


def audit_section(manifest: dict, params: dict, estimators: dict | None, notes: list[str]) -> str:
    """Agreement of the stored scikit-learn / lifelines estimators with the predictor's numbers."""
    text = ("<p>The estimators in <code>estimators.joblib</code> (loaded after hash verification) "
            "are refits of the chosen models with scikit-learn and lifelines on the standardized "
            "columns; their coefficients should equal those the predictor uses.</p>")
    text += "".join(f"<p class=warn>{esc(n)}</p>" for n in notes)
    if estimators is None:
        return text + "<p class=fail>The estimators could not be loaded.</p>"
    rows = []
    for name in manifest["models"]:
        stored, model = estimators.get(name), params["models"][name]
        updated = (manifest.get("lineage") or {}).get("models", {}).get(name, {}).get("method")
        if stored is None and updated in ("intercept", "recalibrate"):
            rows.append([esc(name), f"none: updated by {esc(updated)} of the parent's model "
                         "(see the lineage)", "-", "-"])
            continue
        if stored is None:
            rows.append([esc(name), "missing", "-", "-"])
            continue
        coef, intercept = _estimator_coefficients(model["kind"], stored)
        diff = float(np.max(np.abs(coef - np.asarray(model["coef"])), initial=0.0))
        idiff = "-" if intercept is None else sci(abs(intercept - model["intercept"]))
        rows.append([esc(name), esc(type(stored["estimator"]).__name__), sci(diff), idiff])
    return text + _table(["model", "estimator", "max |coefficient difference|",
                          "|intercept difference|"], rows, "audit-table")
