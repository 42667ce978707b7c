"""The self-contained HTML page of ``cart-risk validate --out``, in the style of ``cart-risk report``.

Every number printed in a table cell comes from the (rounded) JSON report and carries its path
in a ``data-key`` attribute (``models.cr.c_index.estimate``), so a test can check that the page
and the JSON agree number for number. Figures are inline SVG drawn from the cohort itself.
"""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from model.bundle import load_predictor
from model.cohort import read_cohort
from model.survival import kaplan_meier
from training import bundle_models as bm
from training import plots
from training.analyses import derive
from training.external_validation import THRESHOLDS
from training.report import _CSS, MODEL_TITLES, esc


def lookup(report: dict, key: str):
    """The value at a dotted path (``models.cr.c_index.ci95.0``) of the report."""
    value = report
    for part in key.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def _num(report: dict, key: str) -> str:
    """A table cell with the number at ``key`` (dotted path) of the report, or '-'."""
    value = lookup(report, key)
    if value is None:
        return "<td class=num>-</td>"
    text = str(value) if isinstance(value, int) else f"{value:g}"
    return f'<td class=num data-key="{esc(key)}">{text}</td>'


def _ci_cells(report: dict, key: str) -> str:
    if not lookup(report, key):
        return "<td class=num>-</td><td class=num>-</td>"
    return _num(report, key + ".0") + _num(report, key + ".1")


def _table(header: list[str], rows: list[str], ident: str) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    return f'<table id="{esc(ident)}"><tr>{head}</tr>' + "".join(f"<tr>{r}</tr>" for r in rows) + "</table>"


def _figure(figure: Figure, ident: str, caption: str) -> str:
    return (f'<figure id="{esc(ident)}"><img src="{plots.figure_data_uri(figure)}" '
            f'alt="{esc(caption)}"><figcaption>{esc(caption)}</figcaption></figure>')


def _warnings(model: dict) -> str:
    return "".join(f"<p class=warn>{esc(w)}</p>" for w in model.get("warnings", []))


def _binary(report: dict, name: str, y: np.ndarray, p: np.ndarray) -> str:
    k = f"models.{name}"
    m = report["models"][name]
    rows = [f"<th>patients</th>{_num(report, k + '.n')}<td></td><td></td>",
            f"<th>events</th>{_num(report, k + '.events')}<td></td><td></td>"]
    for label, key in (("observed / expected", "observed_expected"),
                       ("calibration-in-the-large (0 = ideal)", "calibration_intercept"),
                       ("calibration slope (1 = ideal)", "calibration_slope"),
                       ("C statistic (AUC)", "c_index")):
        rows.append(f"<th>{esc(label)}</th>{_num(report, f'{k}.{key}.estimate')}"
                    f"{_ci_cells(report, f'{k}.{key}.ci95')}")
    for label, key in (("Brier score", "brier"), ("ICI", "ici"), ("E50", "e50"), ("E90", "e90")):
        rows.append(f"<th>{esc(label)}</th>{_num(report, f'{k}.{key}')}<td></td><td></td>")
    parts = [_table(["figure", "estimate", "95 % CI low", "95 % CI high"], rows, f"summary-{name}")]
    groups = [f"{_num(report, f'{k}.calibration_groups.{i}.n')}"
              f"{_num(report, f'{k}.calibration_groups.{i}.events')}"
              f"{_num(report, f'{k}.calibration_groups.{i}.mean_predicted')}"
              f"{_num(report, f'{k}.calibration_groups.{i}.observed')}"
              f"{_ci_cells(report, f'{k}.calibration_groups.{i}.ci95')}"
              for i in range(len(m["calibration_groups"]))]
    parts.append(_table(["n", "events", "mean predicted", "observed", "Wilson 95 % low", "high"],
                        groups, f"groups-{name}"))
    parts.append(_figure(plots.calibration_figure(y, p, f"Calibration: {name}",
                                                  groups=len(m["calibration_groups"])),
                         f"fig-calibration-{name}", "Observed against predicted: equal-size "
                         "groups with Wilson 95 % CIs and a loess smooth."))
    nb = [f"{_num(report, f'{k}.net_benefit.thresholds.{i}')}"
          f"{_num(report, f'{k}.net_benefit.model.{i}')}"
          f"{_num(report, f'{k}.net_benefit.treat_all.{i}')}"
          f"{_num(report, f'{k}.net_benefit.treat_none.{i}')}" for i in range(len(THRESHOLDS))]
    parts.append(f"<p>Net benefit of acting on the {esc(m['net_benefit']['acting_on'])} at "
                 "clinically relevant thresholds:</p>")
    parts.append(_table(["threshold", "model", "treat all", "treat none"], nb, f"net-benefit-{name}"))
    risk, act_on = (1 - p, 1 - y) if name == "cr" else (p, y)
    parts.append(_figure(plots.decision_curve_figure(act_on, risk, f"Decision curve: {name}",
                                                     np.asarray(THRESHOLDS)),
                         f"fig-decision-{name}", "Net benefit against treat-all and treat-none."))
    subgroups = [f"<td>{esc(s['subgroup'])}</td><td>{esc(s['label'])}</td>"
                 f"{_num(report, f'{k}.subgroups.{i}.n')}{_num(report, f'{k}.subgroups.{i}.events')}"
                 f"{_num(report, f'{k}.subgroups.{i}.observed')}"
                 f"{_ci_cells(report, f'{k}.subgroups.{i}.ci95')}"
                 f"{_num(report, f'{k}.subgroups.{i}.mean_predicted')}"
                 for i, s in enumerate(m["subgroups"])]
    parts.append(_table(["subgroup", "marrow blasts", "n", "events", "observed", "Wilson 95 % low",
                         "high", "mean predicted"], subgroups, f"subgroups-{name}"))
    return "".join(parts)


def _survival_figure(time, event, lp, baseline, grid, m: dict, name: str) -> Figure:
    figure = Figure(figsize=(5.0, 4.0), layout="constrained")
    axes = figure.add_subplot()
    axes.set_title(f"Observed and predicted: {name}", fontsize=10)
    axes.set_xlabel("months since infusion")
    axes.set_ylabel("survival probability")
    axes.grid(True, alpha=0.3)
    km = kaplan_meier(time, event)
    axes.step(km.months, km.survival, where="post", color="C0", label="observed (Kaplan-Meier)")
    months = np.asarray(grid, float)
    months = months[months <= baseline.max_follow_up]
    predicted = np.exp(-baseline.at(months)[:, None] * np.exp(lp)[None, :]).mean(axis=1)
    axes.step(months, predicted, where="post", color="C1", linestyle="--", label="mean predicted")
    for row in m["at_months"]:
        if row["observed_ci95"]:
            low, high = row["observed_ci95"]
            axes.errorbar([row["months"]], [row["observed_survival"]],
                          yerr=[[row["observed_survival"] - low], [high - row["observed_survival"]]],
                          fmt="o", color="C0", capsize=3)
    axes.set_ylim(0, 1.02)
    axes.legend(fontsize=8, loc="lower left")
    return figure


def _horizon_figure(m: dict, name: str) -> Figure:
    figure = Figure(figsize=(5.0, 4.0), layout="constrained")
    axes = figure.add_subplot()
    horizon = m["horizon_months"]
    axes.set_title(f"Calibration at {horizon:g} months: {name}", fontsize=10)
    axes.set_xlabel("predicted risk")
    axes.set_ylabel("observed risk (hazard regression)")
    axes.grid(True, alpha=0.3)
    axes.plot([0, 1], [0, 1], color="0.6", linestyle=":", label="ideal")
    curve = m["calibration"]["curve"]
    if curve:
        axes.plot(curve["predicted"], curve["observed"], color="C1",
                  label="Austin, Harrell & van Klaveren 2020")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.legend(fontsize=8, loc="upper left")
    return figure


def _survival(report: dict, name: str, time, event, lp, baseline, grid) -> str:
    k = f"models.{name}"
    m = report["models"][name]
    rows = [f"{_num(report, f'{k}.at_months.{i}.months')}{_num(report, f'{k}.at_months.{i}.at_risk')}"
            f"{_num(report, f'{k}.at_months.{i}.events_by')}"
            f"{_num(report, f'{k}.at_months.{i}.observed_survival')}"
            f"{_ci_cells(report, f'{k}.at_months.{i}.observed_ci95')}"
            f"{_num(report, f'{k}.at_months.{i}.predicted_survival')}"
            f"<td class=warn>{esc(row['warning'] or '')}</td>"
            for i, row in enumerate(m["at_months"])]
    parts = [_table(["months", "at risk", "events by then", "observed (KM)", "95 % low", "high",
                     "mean predicted", "note"], rows, f"at-months-{name}")]
    c = f"{k}.calibration"
    cal = [f"<th>patients</th>{_num(report, k + '.n')}<td></td><td></td>",
           f"<th>events</th>{_num(report, k + '.events')}<td></td><td></td>",
           f"<th>at risk at the horizon</th>{_num(report, c + '.at_risk')}<td></td><td></td>",
           f"<th>observed risk (1 - Kaplan-Meier)</th>{_num(report, c + '.observed_risk')}"
           "<td></td><td></td>",
           f"<th>mean predicted risk</th>{_num(report, c + '.expected_risk')}<td></td><td></td>"]
    for label, key in (("observed / expected risk", "observed_expected"),
                       ("log(O / E), follow-up to the horizon (0 = ideal)", "log_observed_expected"),
                       ("calibration slope (1 = ideal)", "calibration_slope")):
        cal.append(f"<th>{esc(label)}</th>{_num(report, f'{c}.{key}.estimate')}"
                   f"{_ci_cells(report, f'{c}.{key}.ci95')}")
    for label, key in (("ICI", "ici"), ("E50", "e50"), ("E90", "e90")):
        cal.append(f"<th>{esc(label)}</th>{_num(report, f'{c}.{key}')}<td></td><td></td>")
    cal.append(f"<th>Brier score (IPCW)</th>{_num(report, k + '.brier')}<td></td><td></td>")
    cal.append(f"<th>Harrell's C</th>{_num(report, k + '.harrell_c')}<td></td><td></td>")
    cal.append(f"<th>Uno's C</th>{_num(report, k + '.uno_c.estimate')}<td></td><td></td>")
    cal.append(f"<th>Uno's C truncated at (months)</th>{_num(report, k + '.uno_c.tau_months')}"
               "<td></td><td></td>")
    horizon = f"{m['horizon_months']:g}"
    parts.append(f"<p>Calibration at {esc(horizon)} months "
                 f"(baseline hazard: {esc(m['baseline'])}):</p>")
    parts.append(_table(["figure", "estimate", "95 % CI low", "95 % CI high"], cal,
                        f"calibration-{name}"))
    parts.append(_figure(_survival_figure(time, event, lp, baseline, grid, m, name),
                         f"fig-km-{name}", "Kaplan-Meier (with 95 % CIs at 6, 12 and 24 months) "
                         "against the mean predicted survival."))
    parts.append(_figure(_horizon_figure(m, name), f"fig-horizon-{name}",
                         "Observed against predicted risk at the horizon (hazard regression on "
                         "a restricted cubic spline of the predicted risk)."))
    return "".join(parts)


def render_page(report: dict, bundle_dir, cohort_path) -> str:
    """The validation page for a report of :func:`training.validate.validation_report`."""
    bundle = load_predictor(bundle_dir)
    cohort = derive(read_cohort(cohort_path))
    grid = bundle.params["month_grid"]
    b, co = report["bundle"], report["cohort"]
    body = ["<h1>cart-risk external validation</h1>"]
    if report["notice"]:
        body.append(f'<div class="notice" id="provenance"><strong>Synthetic training data.</strong> '
                    f"{esc(report['notice'])}</div>")
    facts = [("bundle id", b["id"]), ("created", b["created"]), ("provenance", b["provenance"]),
             ("source", b["source"]), ("lineage", b["lineage"] or "none (not an updated bundle)"),
             ("validation cohort", co["file"]), ("cohort SHA-256", co["sha256"])]
    body.append("<table id=facts>" + "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>"
                                             for k, v in facts)
                + f"<tr><th>cohort patients</th>{_num(report, 'cohort.n')}</tr></table>")
    for name, m in report["models"].items():
        body.append(f'<h2 id="model-{esc(name)}">{esc(MODEL_TITLES.get(name, name))}</h2>')
        if not m["assessable"]:
            body.append(f"<p class=warn>Not assessable: {esc(m['reason'])}.</p>")
            continue
        body.append(_warnings(m))
        spec = bundle.params["models"][name]
        if m["kind"] == "logistic":
            (y,) = bm.outcome(name, cohort)
            body.append(_binary(report, name, y, bm.probability(spec, cohort)))
        else:
            time, event = bm.outcome(name, cohort)
            body.append(_survival(report, name, time, event, bm.linear_predictor(spec, cohort),
                                  bm.baseline_hazard(spec, grid), grid))
    title = f"cart-risk validation {b['id'][:12]} on {co['file']}"
    return ("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")
