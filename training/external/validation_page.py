"""The self-contained HTML page of ``cart-risk validate --out``, in the style of ``cart-risk report``.

Every number printed in a table cell comes from the (rounded) JSON report and carries its path
in a ``data-key`` attribute (``models.cr.c_index.estimate``), so a test can check that the page
and the JSON agree number for number. Figures are inline SVG drawn from the cohort itself. This
module gathers the cells and figures; ``templates/validation.html`` lays them out (autoescaped).
"""
from __future__ import annotations

import numpy as np

from model.bundle import load_predictor
from model.cohort import read_cohort
from model.survival import kaplan_meier
from training.development import bundle_models as bm
from training.report import curves, plots
from training.paper.analyses import derive
from training.external.validation import THRESHOLDS
from training.report.page import MODEL_TITLES
from training.report.templating import render

BLANK = {"blank": True}


def lookup(report: dict, key: str):
    """The value at a dotted path (``models.cr.c_index.ci95.0``) of the report."""
    value = report
    for part in key.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def _num(report: dict, key: str) -> dict:
    """A number cell: the value at ``key`` (dotted path) of the report with its key, or '-'."""
    value = lookup(report, key)
    if value is None:
        return {"text": "-"}
    return {"key": key, "text": str(value) if isinstance(value, int) else f"{value:g}"}


def _ci_cells(report: dict, key: str) -> list[dict]:
    if not lookup(report, key):
        return [{"text": "-"}, {"text": "-"}]
    return [_num(report, key + ".0"), _num(report, key + ".1")]


def _single(report: dict, label: str, key: str) -> dict:
    """A summary row with one number and two empty interval cells."""
    return {"th": label, "cells": [_num(report, key), BLANK, BLANK]}


def _estimate(report: dict, label: str, key: str) -> dict:
    """A summary row with an estimate and its 95 % interval."""
    return {"th": label, "cells": [_num(report, f"{key}.estimate"), *_ci_cells(report, f"{key}.ci95")]}


def _table(ident: str, header: list[str], rows: list) -> dict:
    return {"id": ident, "header": header,
            "rows": [row if isinstance(row, dict) else {"cells": row} for row in rows]}


_SUMMARY = ["figure", "estimate", "95 % CI low", "95 % CI high"]


def _binary(report: dict, name: str, y: np.ndarray, p: np.ndarray) -> list[dict]:
    k = f"models.{name}"
    m = report["models"][name]
    rows = [_single(report, "patients", k + ".n"), _single(report, "events", k + ".events")]
    for label, key in (("observed / expected", "observed_expected"),
                       ("calibration-in-the-large (0 = ideal)", "calibration_intercept"),
                       ("calibration slope (1 = ideal)", "calibration_slope"),
                       ("C statistic (AUC)", "c_index")):
        rows.append(_estimate(report, label, f"{k}.{key}"))
    for label, key in (("Brier score", "brier"), ("ICI", "ici"), ("E50", "e50"), ("E90", "e90")):
        rows.append(_single(report, label, f"{k}.{key}"))
    groups = [[*(_num(report, f"{k}.calibration_groups.{i}.{f}")
                 for f in ("n", "events", "mean_predicted", "observed")),
               *_ci_cells(report, f"{k}.calibration_groups.{i}.ci95")]
              for i in range(len(m["calibration_groups"]))]
    calibration = curves.calibration_curve(y, p, groups=len(m["calibration_groups"]))
    nb = [[_num(report, f"{k}.net_benefit.{f}.{i}") for f in ("thresholds", "model", "treat_all",
                                                              "treat_none")]
          for i in range(len(THRESHOLDS))]
    risk, act_on = (1 - p, 1 - y) if name == "cr" else (p, y)
    decision = curves.decision_curve(act_on, risk, np.asarray(THRESHOLDS))
    subgroups = [[{"plain": s["subgroup"]}, {"plain": s["label"]},
                  *(_num(report, f"{k}.subgroups.{i}.{f}") for f in ("n", "events", "observed")),
                  *_ci_cells(report, f"{k}.subgroups.{i}.ci95"),
                  _num(report, f"{k}.subgroups.{i}.mean_predicted")]
                 for i, s in enumerate(m["subgroups"])]
    return [
        {"table": _table(f"summary-{name}", _SUMMARY, rows)},
        {"table": _table(f"groups-{name}", ["n", "events", "mean predicted", "observed",
                                            "Wilson 95 % low", "high"], groups)},
        {"figure": (f"fig-calibration-{name}", plots.figure_data_uri(plots.calibration_figure(
            calibration, f"Calibration: {name}")), "Observed against predicted: equal-size "
            "groups with Wilson 95 % CIs and a loess smooth.")},
        {"text": f"Net benefit of acting on the {m['net_benefit']['acting_on']} at clinically "
                 "relevant thresholds:"},
        {"table": _table(f"net-benefit-{name}", ["threshold", "model", "treat all", "treat none"], nb)},
        {"figure": (f"fig-decision-{name}", plots.figure_data_uri(plots.decision_curve_figure(
            decision, f"Decision curve: {name}")), "Net benefit against treat-all and treat-none.")},
        {"table": _table(f"subgroups-{name}", ["subgroup", "marrow blasts", "n", "events", "observed",
                                               "Wilson 95 % low", "high", "mean predicted"], subgroups)},
    ]


def _survival(report: dict, name: str, time, event, lp, baseline, grid) -> list[dict]:
    k = f"models.{name}"
    m = report["models"][name]
    rows = [[*(_num(report, f"{k}.at_months.{i}.{f}")
               for f in ("months", "at_risk", "events_by", "observed_survival")),
             *_ci_cells(report, f"{k}.at_months.{i}.observed_ci95"),
             _num(report, f"{k}.at_months.{i}.predicted_survival"), {"warn": row["warning"] or ""}]
            for i, row in enumerate(m["at_months"])]
    c = f"{k}.calibration"
    cal = [_single(report, "patients", k + ".n"), _single(report, "events", k + ".events"),
           _single(report, "at risk at the horizon", c + ".at_risk"),
           _single(report, "observed risk (1 - Kaplan-Meier)", c + ".observed_risk"),
           _single(report, "mean predicted risk", c + ".expected_risk")]
    for label, key in (("observed / expected risk", "observed_expected"),
                       ("log(O / E), follow-up to the horizon (0 = ideal)", "log_observed_expected"),
                       ("calibration slope (1 = ideal)", "calibration_slope")):
        cal.append(_estimate(report, label, f"{c}.{key}"))
    for label, key in (("ICI", f"{c}.ici"), ("E50", f"{c}.e50"), ("E90", f"{c}.e90"),
                       ("Brier score (IPCW)", k + ".brier"), ("Harrell's C", k + ".harrell_c"),
                       ("Uno's C", k + ".uno_c.estimate"),
                       ("Uno's C truncated at (months)", k + ".uno_c.tau_months")):
        cal.append(_single(report, label, key))
    observed = plots.observed_and_predicted_figure(
        kaplan_meier(time, event), curves.mean_predicted_survival(baseline, lp, grid),
        m["at_months"], f"Observed and predicted: {name}")
    horizon = plots.horizon_calibration_figure(m["calibration"]["curve"], m["horizon_months"], name)
    return [
        {"table": _table(f"at-months-{name}", ["months", "at risk", "events by then", "observed (KM)",
                                               "95 % low", "high", "mean predicted", "note"], rows)},
        {"text": f"Calibration at {m['horizon_months']:g} months (baseline hazard: {m['baseline']}):"},
        {"table": _table(f"calibration-{name}", _SUMMARY, cal)},
        {"figure": (f"fig-km-{name}", plots.figure_data_uri(observed), "Kaplan-Meier (with 95 % CIs "
                    "at 6, 12 and 24 months) against the mean predicted survival.")},
        {"figure": (f"fig-horizon-{name}", plots.figure_data_uri(horizon),
                    "Observed against predicted risk at the horizon (hazard regression on "
                    "a restricted cubic spline of the predicted risk).")},
    ]


def render_page(report: dict, bundle_dir, cohort_path) -> str:
    """The validation page for a report of :func:`training.validate.validation_report`."""
    bundle = load_predictor(bundle_dir)
    cohort = derive(read_cohort(cohort_path))
    grid = bundle.params["month_grid"]
    b, co = report["bundle"], report["cohort"]
    facts = [("bundle id", b["id"]), ("created", b["created"]), ("provenance", b["provenance"]),
             ("source", b["source"]), ("trained on", b.get("trained_on")),
             ("lineage", b["lineage"] or "none (not an updated bundle)"),
             ("validation cohort", co["file"]), ("cohort SHA-256", co["sha256"])]
    models = []
    for name, m in report["models"].items():
        model = {"name": name, "title": MODEL_TITLES.get(name, name), "model": m, "parts": []}
        models.append(model)
        if not m["assessable"]:
            continue
        spec = bundle.params["models"][name]
        if m["kind"] == "logistic":
            (y,) = bm.outcome(name, cohort)
            model["parts"] = _binary(report, name, y, bm.probability(spec, cohort))
        else:
            time, event = bm.outcome(name, cohort)
            model["parts"] = _survival(report, name, time, event, bm.linear_predictor(spec, cohort),
                                       bm.baseline_hazard(spec, grid), grid)
    return render("validation.html", title=f"cart-risk validation {b['id'][:12]} on {co['file']}",
                  notice=report["notice"], facts=facts, cohort_n=_num(report, "cohort.n"),
                  models=models)
