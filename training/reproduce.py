"""`cart-risk reproduce`: the paper's analyses on a cohort, side by side with the paper.

Text and JSON renderings of :func:`training.paper.analyses.reproduce`, and the Kaplan-Meier
figures of Fig. 2C/D (by burden group) and Fig. 3A/B (by time of assessment) as PNG files.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from model.atomic import atomic_path
from model.cohort import read_cohort
from model.outcomes import SURVIVAL_COLUMNS
from model.provenance import PROVENANCE_RECONSTRUCTED
from training.paper.analyses import Reproduced, as_records, derive, reproduce
from training.paper.provenance import default_cohort_path, provenance_of

def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def format_table(rows: list[Reproduced], provenance: str) -> str:
    """Plain-text side-by-side table: statistic, paper, recomputed, match."""
    header = ["statistic", "paper", "recomputed", "match"]
    body = [[r.statistic, _cell(r.paper), _cell(r.recomputed),
             {True: "yes", False: "NO", None: "n/a"}[r.match]] for r in rows]
    caps = [56, 24, 12, 5]
    widths = [min(cap, max(len(h), *(len(b[i]) for b in body))) for i, (h, cap) in enumerate(zip(header, caps))]

    def fit(text: str, width: int) -> str:
        return text if len(text) <= width else text[: width - 3] + "..."

    def line(cells):
        return "  ".join(fit(c, w).ljust(w) for c, w in zip(cells, widths)).rstrip()

    matched = sum(r.match is True for r in rows)
    compared = sum(r.match is not None for r in rows)
    notice = ("Cohort: reconstructed from the paper's published aggregates (synthetic, not patient data)"
              if provenance == PROVENANCE_RECONSTRUCTED else "Cohort: center's own data")
    out = [notice, line(header), line(["-" * w for w in widths])]
    out += [line(b) for b in body]
    notes = [f"  {r.id}: {r.note}" for r in rows if r.note]
    out += ["", f"{matched} of {compared} published statistics matched"
            + (f" ({len(rows) - compared} unavailable)" if compared < len(rows) else "")]
    if notes:
        out += ["Notes:"] + notes
    return "\n".join(out)


def as_json(rows: list[Reproduced], cohort_path: str | Path, provenance: str) -> str:
    """The same comparison as strict JSON."""
    document = {
        "cohort": str(cohort_path),
        "provenance": provenance,
        "statistics": as_records(rows),
        "summary": {
            "matched": sum(r.match is True for r in rows),
            "compared": sum(r.match is not None for r in rows),
            "total": len(rows),
        },
    }
    return json.dumps(document, indent=2, allow_nan=False)


def _km_figure(df: pd.DataFrame, outcome: str, by: str, labels: dict[str, str], title: str):
    from lifelines import KaplanMeierFitter
    from matplotlib.figure import Figure

    time, event = f"{outcome}_months", f"{outcome}_event"
    fig = Figure(figsize=(6, 4), dpi=120)
    ax = fig.subplots()
    for level, label in labels.items():
        part = df[df[by] == level]
        if part.empty:
            continue
        KaplanMeierFitter(label=f"{label} (n = {len(part)})").fit(part[time], part[event]).plot_survival_function(
            ax=ax, ci_show=True, show_censors=True)
    ax.set_xlabel("months after infusion")
    ax.set_ylabel("OS" if outcome == "os" else "EFS")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def write_plots(cohort: pd.DataFrame, out_dir: str | Path, provenance: str) -> list[Path]:
    """Kaplan-Meier PNGs: OS and EFS by burden group and by time of assessment."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    df = derive(cohort)
    tag = " [reconstructed cohort]" if provenance == PROVENANCE_RECONSTRUCTED else ""
    specs = [
        ("burden_group", {"low": "blasts < 5%", "high": "blasts >= 5%"}, "by burden group"),
        ("tb_assessed", {"before_fc": "assessed before FC", "after_fc": "assessed after FC"},
         "by time of burden assessment"),
    ]
    written = []
    for outcome, columns in SURVIVAL_COLUMNS.items():
        if any(column not in df for column in columns):
            continue
        for by, labels, what in specs:
            if by not in df:
                continue
            fig = _km_figure(df, outcome, by, labels, f"{outcome.upper()} {what}{tag}")
            path = out_dir / f"{outcome}_{by}.png"
            with atomic_path(path) as temporary:
                fig.savefig(temporary, format="png")
            written.append(path)
    return written


def run(cohort_path: str | Path | None, as_json_output: bool, plots_dir: str | Path | None) -> str:
    """Read, validate and reproduce; returns the rendered output (text or JSON)."""
    path = Path(cohort_path) if cohort_path else default_cohort_path()
    cohort = read_cohort(path)
    provenance = provenance_of(path)
    rows = reproduce(cohort)
    if plots_dir:
        write_plots(cohort, plots_dir, provenance)
    return as_json(rows, path, provenance) if as_json_output else format_table(rows, provenance)
