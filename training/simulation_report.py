"""Tables and the figure of the simulation study (Markdown for docs/, HTML for the report)."""
from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd

OUTCOME_LABELS = {"cr": "CR", "severe_crs": "severe CRS", "efs": "EFS (12 months)",
                  "os": "OS (12 months)"}


def _f(value, digits: int = 3) -> str:
    value = float(value)
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


def table_rows(summary: pd.DataFrame) -> list[list[str]]:
    """One row of display strings per (n, outcome, method)."""
    rows = []
    for _, r in summary.sort_values(["n", "outcome", "method"], kind="stable").iterrows():
        rows.append([str(r["n"]), OUTCOME_LABELS.get(r["outcome"], r["outcome"]), r["method"],
                     _f(r["slope_median"], 2), f"{_f(r['slope_q25'], 2)}-{_f(r['slope_q75'], 2)}",
                     f"{_f(r['slope_q05'], 2)}-{_f(r['slope_q95'], 2)}",
                     _f(r["citl_mean"]), _f(r["rmse_mean"]), _f(r["mae_mean"]), _f(r["c_mean"]),
                     f"{100 * r['edge_share']:.1f} %", f"{100 * r['null_limit_share']:.1f} %",
                     f"{100 * r['failure_share']:.1f} %"])
    return rows


HEADER = ["n", "outcome", "method", "slope median", "slope IQR", "slope 5-95 %",
          "CITL (mean)", "RMSE", "MAE", "C", "grid edge", "no-effect limit", "failed"]


def summary_markdown(summary: pd.DataFrame, selection: dict, command: str) -> str:
    """The study's Markdown summary (docs/simulation/summary.md)."""
    lines = ["# Simulation study of the fitting methods (results)", "",
             "Written by `cart-risk simulate`; the rule is in `docs/method-selection.md`.",
             "Data: the reconstruction's data-generating process (synthetic; `training/dgp.py`).",
             "", f"Reproduce: `{command}`", "", "## Selection", ""]
    for kind, sel in selection.items():
        lines.append(f"- **{kind}**: `{sel['winner']}` -- {sel['reason']}.")
    lines += ["", "## Measures by cohort size, outcome and method", "",
              "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(summary)]
    lines += ["", "Slope: calibration slope on the independent sample (1 = ideal; > 1 predictions "
              "too close to the average, < 1 too extreme; inf = no spread). CITL: mean predicted "
              "minus mean true risk. RMSE / MAE: predicted vs true risk. Grid edge: penalty at an end of "
              "the extended grid where the criterion had not turned. No-effect limit: the criterion "
              "fell all the way to lambda = 1e6, i.e. the tuned model has no predictor effects.", ""]
    return "\n".join(lines)


def slope_figure(rows: pd.DataFrame) -> bytes:
    """PNG: calibration slopes by method, one panel per outcome, boxes per cohort size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = rows[~rows["failed"].astype(bool)]
    outcomes = [o for o in OUTCOME_LABELS if o in set(ok["outcome"])]
    methods = list(dict.fromkeys(ok["method"]))
    sizes = sorted(set(ok["n"]))
    fig, axes = plt.subplots(1, len(outcomes), figsize=(4.2 * len(outcomes), 4.2), squeeze=False)
    for ax, outcome in zip(axes[0], outcomes):
        for k, n in enumerate(sizes):
            data = [np.clip(ok[(ok.outcome == outcome) & (ok.method == m) & (ok.n == n)]
                            ["calibration_slope"].to_numpy(float), 0.0, 4.0) for m in methods]
            positions = np.arange(len(methods)) + (k - (len(sizes) - 1) / 2) * 0.25
            ax.boxplot(data, positions=positions, widths=0.2, showfliers=False,
                       patch_artist=True, boxprops={"facecolor": f"C{k}", "alpha": 0.6})
        ax.axhspan(0.9, 1.1, color="0.85", zorder=0)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks(np.arange(len(methods)), methods, rotation=35, ha="right", fontsize=8)
        ax.set_title(OUTCOME_LABELS[outcome])
        ax.set_ylim(0, 4)
    axes[0][0].set_ylabel("calibration slope on independent data (clipped at 4)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=f"C{k}", alpha=0.6) for k in range(len(sizes))]
    fig.legend(handles, [f"n = {n}" for n in sizes], loc="upper right", fontsize=8)
    fig.suptitle("Simulation on the reconstruction's data-generating process (synthetic)", fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()
