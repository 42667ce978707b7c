"""Server-side figures of a result page, drawn with matplotlib's object API (never pyplot).

Each ``*_figure`` function takes numbers already computed elsewhere and returns a
:class:`matplotlib.figure.Figure`; :func:`render` turns one into SVG or PNG bytes. The house
style is applied with ``matplotlib.rc_context``, which changes matplotlib's global settings for
its duration, so every styled step holds :data:`STYLE_LOCK`: a threaded server draws one figure
at a time, never one with another's settings.
"""
from __future__ import annotations

import contextlib
import io
import threading
from typing import Any, Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from model.burden import SUBGROUP_EDGES_PCT
from model.features import BLASTS_FLOOR_PCT
from model.predictor import HORIZONS_MONTHS

PATIENT_COLOUR = "#1d3557"
CR_COLOUR = "#2a6f97"
SCRS_COLOUR = "#b3261e"
LOW_BURDEN_COLOUR = "#4d908e"
HIGH_BURDEN_COLOUR = "#c9792b"
MUTED = "#6c757d"
STYLE = {
    "font.size": 8.5, "axes.titlesize": 9.5, "axes.labelsize": 8.5, "legend.fontsize": 7.5,
    "xtick.labelsize": 7.5, "ytick.labelsize": 7.5, "axes.spines.top": False,
    "axes.spines.right": False, "axes.edgecolor": "#495057", "axes.titleweight": "bold",
    "svg.fonttype": "none",  # text stays text: selectable, searchable, smaller files
    "svg.hashsalt": "cart-risk",  # identical input gives identical SVG bytes
    "font.family": ["DejaVu Sans", "sans-serif"],
}
MEDIA_TYPES = {"svg": "image/svg+xml", "png": "image/png"}
STYLE_LOCK = threading.RLock()


@contextlib.contextmanager
def _styled():
    """The house style, for one thread at a time (see the module docstring)."""
    with STYLE_LOCK, matplotlib.rc_context(STYLE):
        yield


def render(figure: Figure, fmt: str) -> bytes:
    """SVG or PNG bytes of ``figure`` (``fmt`` is ``"svg"`` or ``"png"``)."""
    buffer = io.BytesIO()
    with _styled():
        metadata = {"Date": None} if fmt == "svg" else {"Software": None}
        figure.savefig(buffer, format=fmt, dpi=150, bbox_inches="tight", metadata=metadata)
    return buffer.getvalue()


def _figure(width: float, height: float) -> Figure:
    with _styled():
        return Figure(figsize=(width, height), layout="constrained")


def _percent_axis(axis) -> None:
    axis.set_major_formatter(PercentFormatter(1.0, decimals=0))


def survival_figure(curves: Mapping[str, Mapping[str, Any]],
                    cohort: Mapping[str, Mapping[str, Any]]) -> Figure:
    """The patient's predicted EFS and OS with 95 % bands over the cohort's Kaplan-Meier curves.

    Parameters
    ----------
    curves : mapping
        ``"efs"`` / ``"os"`` -> API survival answer (``months``, ``survival``, ``lower``,
        ``upper``); curves already stop at the cohort's last follow-up.
    cohort : mapping
        ``"efs"`` / ``"os"`` -> ``"low"`` / ``"high"`` -> :class:`~calculator.extensions.KaplanMeier`.
    """
    names = [name for name in ("efs", "os") if curves.get(name)]
    with _styled():
        figure = _figure(7.2, 2.7)
        axes = figure.subplots(1, max(len(names), 1), sharey=True, squeeze=False)[0]
        titles = {"efs": "Event-free survival", "os": "Overall survival"}
        for axis, name in zip(axes, names):
            curve = curves[name]
            months = np.asarray(curve["months"], dtype=float)
            for group, colour, label in (("low", LOW_BURDEN_COLOUR, "Cohort, blasts < 5 %"),
                                         ("high", HIGH_BURDEN_COLOUR, "Cohort, blasts \u2265 5 %")):
                km = cohort.get(name, {}).get(group)
                if km is not None:
                    axis.step(km.months, km.survival, where="post", color=colour, lw=1.2,
                              ls=(0, (4, 2)), label=f"{label} (n={km.n})")
            axis.fill_between(months, _floats(curve["lower"]), _floats(curve["upper"]),
                              step="post", color=PATIENT_COLOUR, alpha=0.18, lw=0,
                              label="95 % interval")
            axis.step(months, _floats(curve["survival"]), where="post", color=PATIENT_COLOUR,
                      lw=2.0, label="This patient (model)")
            for horizon in HORIZONS_MONTHS:
                if months.size and horizon <= months[-1]:
                    axis.axvline(horizon, color=MUTED, lw=0.6, ls=":")
            axis.set_xlim(0, months[-1] if months.size else 1)
            axis.set_ylim(0, 1.02)
            axis.set_title(titles[name], loc="left")
            axis.set_xlabel("Months after infusion")
            axis.set_xticks([t for t in (0, 6, 12, 18, 24, 30, 36, 42, 48)
                             if months.size and t <= months[-1]])
            _percent_axis(axis.yaxis)
            axis.grid(axis="y", color="#dee2e6", lw=0.5)
        axes[0].set_ylabel("Probability without event")
        if names:
            handles, labels = axes[0].get_legend_handles_labels()
            figure.legend(handles, labels, loc="outside lower center", ncol=4, frameon=False)
        return figure


def _floats(values: Sequence[float | None]) -> np.ndarray:
    return np.asarray([np.nan if v is None else v for v in values], dtype=float)


def _blasts_label(value: float, _position=None) -> str:
    if value <= BLASTS_FLOOR_PCT:
        return "0 (MRD+)"
    return f"{value:g}"


def treatment_window_figure(window: Mapping[str, np.ndarray], blasts: float,
                            target: float | None = None) -> Figure:
    """CR probability and sCRS risk against marrow blasts (log axis), the patient marked.

    Parameters
    ----------
    window : mapping
        From :func:`calculator.results.treatment_window`.
    blasts : float
        The patient's marrow blasts, %; 0 % (MRD positive) is drawn at the 0.01 % MRD floor.
    target : float, optional
        Blasts hoped for after debulking, %; drawn with arrows from the patient's values.
    """
    grid = window["blasts"]
    series = [(name, label, colour) for name, label, colour in
              (("cr", "Complete remission", CR_COLOUR),
               ("severe_crs", "Severe CRS (grade \u2265 3)", SCRS_COLOUR)) if name in window]
    with _styled():
        figure = _figure(7.2, 2.9)
        axis = figure.subplots()
        axis.set_xscale("log")
        for edge in SUBGROUP_EDGES_PCT:
            axis.axvline(edge, color="#ced4da", lw=0.8)
        for letter, middle in zip("bcde", (0.22, 10.0, 31.6, 71.0)):
            axis.text(middle, 1.0, letter, ha="center", va="bottom", color=MUTED,
                      transform=axis.get_xaxis_transform())
        x_patient = max(blasts, BLASTS_FLOOR_PCT)
        x_target = None if target is None else max(target, BLASTS_FLOOR_PCT)
        for name, label, colour in series:
            axis.fill_between(grid, window[name + "_lower"], window[name + "_upper"],
                              color=colour, alpha=0.15, lw=0)
            axis.plot(grid, window[name], color=colour, lw=1.8, label=label)
            now = float(np.interp(np.log10(x_patient), np.log10(grid), window[name]))
            axis.plot([x_patient], [now], "o", color=colour, ms=7, mec="white", mew=1.2,
                      zorder=5)
            if x_target is not None:
                later = float(np.interp(np.log10(x_target), np.log10(grid), window[name]))
                axis.annotate("", xy=(x_target, later), xytext=(x_patient, now),
                              arrowprops={"arrowstyle": "->", "color": colour, "lw": 1.2})
                axis.plot([x_target], [later], "o", mfc="white", mec=colour, ms=7, mew=1.5,
                          zorder=5)
        axis.axvline(x_patient, color=PATIENT_COLOUR, lw=1.0, ls="--")
        axis.text(x_patient, 0.02, " this patient", color=PATIENT_COLOUR, fontsize=7.5,
                  ha="left", va="bottom", transform=axis.get_xaxis_transform())
        if x_target is not None:
            axis.axvline(x_target, color=MUTED, lw=1.0, ls=":")
            axis.text(x_target, 0.02, "target ", color=MUTED, fontsize=7.5, ha="right",
                      va="bottom", transform=axis.get_xaxis_transform())
        axis.set_xlim(grid[0], grid[-1])
        axis.set_ylim(0, 1.0)
        axis.set_xticks([0.01, 0.1, 1, 5, 20, 50, 100])
        axis.xaxis.set_major_formatter(FuncFormatter(_blasts_label))
        axis.xaxis.set_minor_formatter(FuncFormatter(lambda *_: ""))
        axis.set_xlabel("Marrow blasts before infusion, % (log scale)")
        axis.set_ylabel("Predicted probability")
        _percent_axis(axis.yaxis)
        axis.grid(axis="y", color="#dee2e6", lw=0.5)
        axis.legend(loc="center left", frameon=False)
        return figure


def scrs_bands_figure(bands: Sequence[Mapping[str, Any]],
                      model: Mapping[str, Any] | None) -> Figure:
    """Observed sCRS rate with 95 % interval for each burden subgroup, and the model's estimate.

    Parameters
    ----------
    bands : sequence of mapping
        From :func:`calculator.results.band_rows` (the patient's row has ``current`` True).
    model : mapping, optional
        The API's ``severe_crs`` answer (``probability``, ``ci95``).
    """
    rows = list(bands)
    with _styled():
        figure = _figure(2.5, 1.9)
        axis = figure.subplots()
        labels = []
        for position, row in enumerate(rows):
            colour = SCRS_COLOUR if row["current"] else MUTED
            low, high = (np.nan if v is None else v for v in row["ci95"])
            if row["current"]:
                axis.axhspan(position - 0.45, position + 0.45, color="#f8d7da", lw=0)
            axis.plot([low, high], [position, position], color=colour, lw=1.4)
            axis.plot([row["rate"]], [position], "o", color=colour, ms=5)
            labels.append(row["subgroup"])
        if model is not None:
            position = len(rows)
            low, high = (np.nan if v is None else v for v in model["ci95"])
            axis.plot([low, high], [position, position], color=PATIENT_COLOUR, lw=1.4)
            axis.plot([model["probability"]], [position], "D", color=PATIENT_COLOUR, ms=5)
            labels.append("model")
        axis.set_yticks(range(len(labels)), labels)
        axis.invert_yaxis()
        axis.set_xlim(0, 1)
        _percent_axis(axis.xaxis)
        axis.set_xlabel("Severe CRS: observed (dots), model (diamond)")
        axis.grid(axis="x", color="#dee2e6", lw=0.5)
        for tick, row in zip(axis.get_yticklabels(), rows):
            if row["current"]:
                tick.set_fontweight("bold")
                tick.set_color(SCRS_COLOUR)
        return figure
