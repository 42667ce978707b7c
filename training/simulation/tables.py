"""Tables and the figure of the simulation study (Markdown for docs/, data for the report's
``templates/simulation.html``)."""
from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd

from model.outcomes import labels as outcome_labels

OUTCOME_LABELS = outcome_labels("study_label")


def _f(value, digits: int = 3) -> str:
    value = float(value)
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


def _with_mcse(r: pd.Series, column: str, mcse: str, digits: int) -> str:
    """``value (MCSE)``; the value alone for a study written before MCSEs were reported."""
    value = _f(r[column], digits)
    return value if mcse not in r else f"{value} ({_f(r[mcse], digits)})"


def _share(r: pd.Series, column: str) -> str:
    """A share in %; blank for a study written before the column existed."""
    return "" if column not in r or pd.isna(r[column]) else f"{100 * r[column]:.1f} %"


def _with_candidates(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary with ``features`` (``full`` for a study before Amendment 4) and
    ``candidate`` (the method, or ``features:method`` for another feature set)."""
    summary = summary.copy()
    if "features" not in summary:
        summary["features"] = "full"
    summary["candidate"] = [m if f == "full" else f"{f}:{m}"
                            for f, m in zip(summary["features"], summary["method"])]
    return summary


def table_rows(summary: pd.DataFrame) -> list[list[str]]:
    """One row of display strings per (n, outcome, method)."""
    rows = []
    summary = _with_candidates(summary)
    for _, r in summary.sort_values(["n", "outcome", "features", "method"], kind="stable").iterrows():
        rows.append([str(r["n"]), OUTCOME_LABELS.get(r["outcome"], r["outcome"]), r["features"],
                     r["method"],
                     _with_mcse(r, "slope_median", "slope_median_mcse", 3),
                     f"{_f(r['slope_q25'], 2)}-{_f(r['slope_q75'], 2)}",
                     f"{_f(r['slope_q05'], 2)}-{_f(r['slope_q95'], 2)}",
                     _f(r["citl_mean"]), _with_mcse(r, "rmse_mean", "rmse_mcse", 4),
                     _f(r["mae_mean"]), _f(r["c_mean"]),
                     f"{100 * r['edge_share']:.1f} %", f"{100 * r['null_limit_share']:.1f} %",
                     _share(r, "flat_share"), f"{100 * r['failure_share']:.1f} %"])
    return rows


HEADER = ["n", "outcome", "features", "method", "slope median (MCSE)", "slope IQR", "slope 5-95 %",
          "CITL (mean)", "RMSE (MCSE)", "MAE", "C", "grid edge", "no-effect limit", "flat fits",
          "failed"]


def summary_markdown(summary: pd.DataFrame, selection: dict, command: str) -> str:
    """The study's Markdown summary (docs/simulation/summary.md)."""
    lines = ["# Simulation study of the fitting methods (results)", "",
             "Written by `cart-risk simulate`; the rule is in `docs/method-selection.md`.",
             "Data: the reconstruction's data-generating process (synthetic; `training/simulation/dgp.py`).",
             "", f"Reproduce: `{command}`", "", "## Selection", ""]
    for kind, sel in selection.items():
        lines.append(f"- **{kind}**: `{sel.get('candidate', sel['winner'])}` -- {sel['reason']}.")
    lines += ["", "## Measures by cohort size, outcome and method", "",
              "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(summary)]
    lines += ["", "MCSE: Monte Carlo standard error over the cohorts (Morris, White & Crowther "
              "2019): for the median slope from the order-statistic 95 % interval of a median "
              "(width / 3.92), for the mean RMSE sd / sqrt(cohorts); `training/simulation/monte_carlo.py`. "
              "It is reported beside the rule's inputs and not used by the rule.",
              "", "Slope: calibration slope on the independent sample (1 = ideal; > 1 predictions "
              "too close to the average, < 1 too extreme; inf = no spread). CITL: mean predicted "
              "minus mean true risk. RMSE / MAE: predicted vs true risk. Grid edge: penalty at an end of "
              "the extended grid where the criterion had not turned. No-effect limit: the criterion "
              "fell all the way to lambda = 1e6, i.e. the tuned model has no predictor effects. "
              "Flat fits: every fit without predictor effects (slope inf), whether tuned to that "
              "limit or shrunk by a factor of 0 (heuristic shrinkage when LR <= df).", ""]
    return "\n".join(lines)


def slope_figure(summary: pd.DataFrame) -> bytes:
    """PNG: median calibration slope (IQR bar, 5-95 % whisker) by method, one panel per outcome."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = _with_candidates(summary)
    outcomes = [o for o in OUTCOME_LABELS if o in set(summary["outcome"])]
    methods = list(dict.fromkeys(summary["candidate"]))
    sizes = sorted(set(summary["n"]))
    fig, axes = plt.subplots(1, len(outcomes), figsize=(max(4.0, 0.25 * len(methods)) * len(outcomes), 4.0),
                             squeeze=False)
    for ax, outcome in zip(axes[0], outcomes):
        for k, n in enumerate(sizes):
            part = summary[(summary.outcome == outcome) & (summary.n == n)].set_index("candidate")
            x = np.arange(len(methods)) + (k - (len(sizes) - 1) / 2) * 0.22
            clip = lambda column: np.clip(part.reindex(methods)[column].to_numpy(float), 0.0, 4.0)
            median, q25, q75, q05, q95 = (clip(c) for c in
                                          ("slope_median", "slope_q25", "slope_q75", "slope_q05", "slope_q95"))
            ax.vlines(x, q05, q95, color=f"C{k}", lw=0.8)
            ax.vlines(x, q25, q75, color=f"C{k}", lw=4, alpha=0.6)
            ax.plot(x, median, "o", color=f"C{k}", ms=4, label=f"n = {n}")
        ax.axhspan(0.9, 1.1, color="0.88", zorder=0)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks(np.arange(len(methods)), methods, rotation=35, ha="right", fontsize=8)
        ax.set_title(OUTCOME_LABELS[outcome], fontsize=10)
        ax.set_ylim(0, 4)
    axes[0][0].set_ylabel("calibration slope, independent data (clipped at 4)")
    axes[0][-1].legend(fontsize=8, loc="upper right")
    fig.suptitle("Simulation on the reconstruction's data-generating process (synthetic): "
                 "median, IQR, 5-95 %", fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def packaged_folder():
    """training/data/simulation/ as installed (a :class:`importlib.resources` traversable)."""
    from importlib import resources

    return resources.files("training") / "data" / "simulation"


def read_packaged(table: str, meta: str, folder=None) -> tuple[pd.DataFrame, dict] | None:
    """A study's table (CSV) and metadata (JSON) from ``folder`` (default: the installed package
    data), or None when either is absent or unreadable."""
    import json

    folder = packaged_folder() if folder is None else folder
    try:
        summary = pd.read_csv(io.StringIO((folder / table).read_text(encoding="utf-8")))
        record = json.loads((folder / meta).read_text(encoding="utf-8"))
    except (FileNotFoundError, OSError, ValueError):
        return None
    return summary, record


def load_packaged_study() -> tuple[pd.DataFrame, dict] | None:
    """The method study shipped with the package (training/data/simulation/), or None if absent."""
    return read_packaged("summary.csv", "selection.json")


def report_study() -> dict | None:
    """The packaged study as the report shows it: ``command``, ``selection``, table ``header`` and
    ``rows``, and the slope ``figure`` as a PNG data URI; None when the study is not installed."""
    import base64

    study = load_packaged_study()
    if study is None:
        return None
    summary, meta = study
    return {"command": meta.get("command", ""), "selection": meta.get("selection", {}),
            "header": HEADER, "rows": table_rows(summary),
            "figure": "data:image/png;base64," + base64.b64encode(slope_figure(summary)).decode("ascii")}
