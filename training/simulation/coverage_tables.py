"""Tables of the direct coverage study (docs/simulation/coverage.csv, its Markdown, and the
"how we know the intervals are honest" section of the card and the report)."""
from __future__ import annotations


import pandas as pd

from training.simulation.tables import read_packaged

#: Columns of the published CSV, in order.
CSV_COLUMNS = ["construction", "truth", "output", "patient", "true_risk", "cohorts", "failed",
               "coverage", "coverage_mcse", "coverage_unrounded", "mean_width", "width_mcse",
               "bias", "bias_mcse", "refits", "interval", "features", "methods", "seeds", "command"]
#: Targets of Amendment 4 (and Amendment 5, end to end): every cell, and the average over the cells.
CELL_TARGET = 0.90
AVERAGE_TARGET = 0.93
OUTPUT_LABELS = {"cr": "CR", "severe_crs": "severe CRS", "efs_6mo": "EFS 6 mo",
                 "efs_12mo": "EFS 12 mo", "efs_24mo": "EFS 24 mo", "os_6mo": "OS 6 mo",
                 "os_12mo": "OS 12 mo", "os_24mo": "OS 24 mo"}


def coverage_csv(summary: pd.DataFrame, constructions: dict, command: str, seeds: str) -> str:
    """The published CSV: one row per (construction, truth, output, patient), with what was run."""
    table = summary.copy()
    for key in ("refits", "interval", "features", "methods"):
        table[key] = [constructions[c][key] for c in table["construction"]]
    table["seeds"] = seeds
    table["command"] = command
    return table[CSV_COLUMNS].to_csv(index=False, float_format="%.6g")


def _cell(coverage: float, mcse: float) -> str:
    return f"{coverage:.2f} ({mcse:.2f})"


def coverage_table(summary: pd.DataFrame, construction: str) -> dict:
    """Display table of one construction: a row per (output, patient), coverage (MCSE) and mean
    width under each truth; ``header`` and ``rows`` of strings."""
    part = summary[summary["construction"] == construction]
    truths = list(dict.fromkeys(part["truth"]))
    header = ["output", "patient (blasts)"] + [f"{t}: coverage (MCSE)" for t in truths] + \
             [f"{t}: mean width" for t in truths]
    rows = []
    keyed = {t: part[part["truth"] == t].set_index(["output", "patient"]) for t in truths}
    for (output, patient) in dict.fromkeys(zip(part["output"], part["patient"])):
        cells = [keyed[t].loc[(output, patient)] for t in truths]
        rows.append([OUTPUT_LABELS.get(output, output), patient]
                    + [_cell(c["coverage"], c["coverage_mcse"]) for c in cells]
                    + [f"{c['mean_width']:.2f}" for c in cells])
    averages = {t: float(part[part["truth"] == t]["coverage"].mean()) for t in truths}
    lowest = {t: part[part["truth"] == t].nsmallest(1, "coverage").iloc[0] for t in truths}
    return {"construction": construction, "header": header, "rows": rows, "averages": averages,
            "lowest": {t: {"output": r["output"], "patient": r["patient"],
                           "coverage": float(r["coverage"])} for t, r in lowest.items()},
            "cohorts": int(part["cohorts"].max())}


def coverage_markdown(summary: pd.DataFrame, verdicts: dict, constructions: dict,
                      command: str) -> str:
    lines = ["# Direct coverage of the true risk (results)", "",
             "Written by `cart-risk simulate --study coverage`; the plan is Amendment 4 of "
             "`docs/method-selection.md`. Synthetic data: two true-risk processes "
             "(`training/truths.py`).", "", f"Reproduce: `{command}`", ""]
    for name, spec in constructions.items():
        lines += [f"## Construction {name}", "",
                  f"Features {spec['features']}; methods {spec['methods']}; {spec['refits']} "
                  f"refits; interval {spec['interval']}.", ""]
        for truth, v in verdicts.get(name, {}).items():
            lines.append(f"- {truth}: average coverage {v['average_coverage']:.3f}, "
                         f"{len(v['cells_below'])} of {v['cells']} cells below 0.90, mean width "
                         f"{v['mean_width']:.3f}; target {'met' if v['target_met'] else 'missed'}.")
        table = coverage_table(summary, name)
        lines += ["", "| " + " | ".join(table["header"]) + " |", "|" + "---|" * len(table["header"])]
        lines += ["| " + " | ".join(row) + " |" for row in table["rows"]]
        lines.append("")
    lines += ["Coverage: share of cohorts whose 95 % interval, as displayed (3 decimals), contains "
              "the true risk; MCSE sqrt(c (1 - c) / cohorts). Width: upper - lower bound, mean "
              "over cohorts. Bias is in `coverage.csv`.", ""]
    return "\n".join(lines)


def load_packaged_coverage(folder=None) -> tuple[pd.DataFrame, dict] | None:
    """The coverage study shipped with the package (training/data/simulation/; ``folder``: another
    directory holding coverage.csv and coverage.json), or None."""
    return read_packaged("coverage.csv", "coverage.json", folder)


def honest_intervals(folder=None) -> dict | None:
    """The direct study in the "how we know the intervals are honest" section: the shipped
    construction's coverage table, read from the packaged study (never typed), with what it
    trained (``trained_with``: features by model, methods by kind); None when it is not
    installed (:func:`training.simulation.honest.honest_intervals` puts it beside the end-to-end
    study)."""
    study = load_packaged_coverage(folder)
    if study is None:
        return None
    summary, meta = study
    shipped = meta["shipped"]
    spec = meta["constructions"][shipped]
    table = coverage_table(summary, shipped)
    return {**table, "command": meta["command"], "verdict": meta["verdicts"].get(shipped, {}),
            "refits": spec["refits"], "interval": spec["interval"],
            "trained_with": {"features": spec["features"], "methods": spec["methods"]}}
