"""Figures of the training report, as matplotlib ``Figure`` objects (never pyplot).

Each function takes plain arrays and returns a :class:`matplotlib.figure.Figure`;
:func:`figure_data_uri` turns one into an ``data:image/svg+xml;base64,...`` URI, so the HTML report
embeds every image and needs no file or network beside itself. SVG text stays text (searchable,
small) and element ids are salted with a constant, so the same bundle gives the same bytes.
"""
from __future__ import annotations

import base64
import io

import matplotlib
import numpy as np
from matplotlib.figure import Figure

_SIZE = (5.0, 4.0)  # inches
_SVG_RC = {"svg.fonttype": "none", "svg.hashsalt": "cart-risk-report"}


def figure_data_uri(figure: Figure) -> str:
    """Render ``figure`` as SVG and return it as a base64 ``data:`` URI."""
    buffer = io.BytesIO()
    with matplotlib.rc_context(_SVG_RC):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(title: str, xlabel: str, ylabel: str):
    figure = Figure(figsize=_SIZE, layout="constrained")
    axes = figure.add_subplot()
    axes.set_title(title, fontsize=10)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(True, alpha=0.3)
    return figure, axes


def calibration_figure(calibration: dict, title: str) -> Figure:
    """Observed vs predicted probability: grouped observed rates with Wilson 95 % CIs and a loess curve.

    Parameters
    ----------
    calibration : the ``bins`` and ``smooth`` of :func:`training.report.curves.calibration_curve`
    title : figure title
    """
    figure, axes = _figure(title, "predicted probability", "observed proportion")
    axes.plot([0, 1], [0, 1], color="0.6", linestyle=":", label="ideal")
    bins = calibration["bins"]
    x = np.array([b["mean_predicted"] for b in bins])
    observed = np.array([b["observed"] for b in bins])
    low = np.array([b["ci95"][0] for b in bins])
    high = np.array([b["ci95"][1] for b in bins])
    # Wilson bounds at 0/n or n/n can miss the proportion by a rounding residue: never negative.
    yerr = np.maximum([observed - low, high - observed], 0.0)
    axes.errorbar(x, observed, yerr=yerr, fmt="o", color="C0",
                  capsize=3, label=f"{len(bins)} groups, Wilson 95 % CI")
    if calibration["smooth"] is not None:
        axes.plot(*calibration["smooth"], color="C1", label="loess smooth")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.legend(fontsize=8, loc="upper left")
    return figure


def pooled_calibration_figure(curve: dict, title: str, what: str) -> Figure:
    """Observed against predicted risk of an ensemble's pooled model on each reconstruction:
    the median over the reconstructions (line) and their range (band).

    Parameters
    ----------
    curve : ``validation.calibration_curve`` of a pooled card (docs/bundle-format.md)
    title : figure title
    what : the predicted risk, for the axis label
    """
    figure, axes = _figure(title, f"predicted {what}", "observed")
    axes.plot([0, 1], [0, 1], color="0.6", linestyle=":", label="ideal")
    x = np.asarray(curve["predicted"], float)
    if curve.get("observed_median") is not None:
        low = np.asarray(curve["observed_min"], float)
        high = np.asarray(curve["observed_max"], float)
        axes.fill_between(x, low, high, color="C0", alpha=0.2,
                          label=f"range over {curve['members']} reconstructions")
        axes.plot(x, np.asarray(curve["observed_median"], float), color="C0",
                  label="median over the reconstructions")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.legend(fontsize=8, loc="upper left")
    return figure


def roc_figure(fpr: np.ndarray, tpr: np.ndarray, title: str, auc: float | None) -> Figure:
    """ROC curve from its points (:func:`training.report.curves.roc_points`; apparent, training data)."""
    figure, axes = _figure(title, "1 - specificity", "sensitivity")
    label = "model" if auc is None else f"model (C = {auc:.3f})"
    axes.plot(fpr, tpr, color="C0", label=label)
    axes.plot([0, 1], [0, 1], color="0.6", linestyle=":", label="chance")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.legend(fontsize=8, loc="lower right")
    return figure


def decision_curve_figure(curve: dict, title: str) -> Figure:
    """Decision curve (:func:`training.report.curves.decision_curve`): net benefit against threshold
    probability, with act-for-all and act-for-none."""
    t, prevalence = curve["thresholds"], curve["prevalence"]
    figure, axes = _figure(title, "threshold probability", "net benefit")
    axes.plot(t, curve["model"], color="C0", label="model")
    axes.plot(t, curve["all"], color="C2", linestyle="--", label="act for all")
    axes.plot(t, curve["none"], color="0.3", linestyle=":", label="act for none")
    axes.set_ylim(min(-0.05, -0.1 * prevalence), max(0.05, 1.1 * prevalence))
    axes.set_xlim(float(t[0]), float(t[-1]))
    axes.legend(fontsize=8, loc="upper right")
    return figure


def km_vs_predicted_figure(curves: list[dict], title: str, max_months: float) -> Figure:
    """Observed Kaplan-Meier curves (95 % CI) beside model-predicted mean survival, per group.

    Parameters
    ----------
    curves : list of dict
        One a group: ``label``; ``km_months``, ``km_survival``, ``km_lower``, ``km_upper`` (the
        observed step function and its interval); ``months``, ``predicted`` (mean over the group's
        patients of the model's survival curve).
    title : figure title
    max_months : right end of the time axis
    """
    figure, axes = _figure(title, "months since infusion", "survival probability")
    for i, group in enumerate(curves):
        color = f"C{i}"
        axes.step(group["km_months"], group["km_survival"], where="post", color=color,
                  label=f"{group['label']}: observed (Kaplan-Meier)")
        axes.fill_between(group["km_months"], group["km_lower"], group["km_upper"], step="post",
                          color=color, alpha=0.15, linewidth=0)
        axes.step(group["months"], group["predicted"], where="post", color=color,
                  linestyle="--", label=f"{group['label']}: model, mean predicted")
    axes.set_xlim(0, max_months)
    axes.set_ylim(0, 1.02)
    axes.legend(fontsize=7, loc="lower left")
    return figure


def observed_and_predicted_figure(km, predicted: tuple, at_months: list[dict], title: str) -> Figure:
    """Kaplan-Meier step (with 95 % CIs at the report's landmark months) against the mean predicted
    survival.

    Parameters
    ----------
    km : Kaplan-Meier with ``months`` and ``survival`` arrays
    predicted : (months, mean predicted survival), :func:`training.report.curves.mean_predicted_survival`
    at_months : rows with ``months``, ``observed_survival`` and ``observed_ci95`` (or None)
    title : figure title
    """
    figure, axes = _figure(title, "months since infusion", "survival probability")
    axes.step(km.months, km.survival, where="post", color="C0", label="observed (Kaplan-Meier)")
    axes.step(*predicted, where="post", color="C1", linestyle="--", label="mean predicted")
    for row in at_months:
        if row["observed_ci95"]:
            low, high = row["observed_ci95"]
            axes.errorbar([row["months"]], [row["observed_survival"]],
                          yerr=[[row["observed_survival"] - low], [high - row["observed_survival"]]],
                          fmt="o", color="C0", capsize=3)
    axes.set_ylim(0, 1.02)
    axes.legend(fontsize=8, loc="lower left")
    return figure


def horizon_calibration_figure(curve: dict | None, horizon: float, name: str) -> Figure:
    """Observed against predicted risk at the horizon (``curve``: ``predicted``, ``observed``)."""
    figure, axes = _figure(f"Calibration at {horizon:g} months: {name}", "predicted risk",
                           "observed risk (hazard regression)")
    axes.plot([0, 1], [0, 1], color="0.6", linestyle=":", label="ideal")
    if curve:
        axes.plot(curve["predicted"], curve["observed"], color="C1",
                  label="Austin, Harrell & van Klaveren 2020")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.legend(fontsize=8, loc="upper left")
    return figure
