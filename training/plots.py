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

from training.bands import wilson_interval
from training.metrics import loess

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


def calibration_bins(y: np.ndarray, p: np.ndarray, groups: int) -> list[dict]:
    """Equal-size groups of patients sorted by predicted probability.

    Returns
    -------
    list of dict with ``n``, ``events``, ``mean_predicted``, ``observed`` and Wilson ``ci95``.
    """
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=float)
    order = np.argsort(p, kind="stable")
    rows = []
    for chunk in np.array_split(order, max(1, min(groups, p.size))):
        if chunk.size == 0:
            continue
        events = int(y[chunk].sum())
        rows.append({"n": int(chunk.size), "events": events,
                     "mean_predicted": float(p[chunk].mean()), "observed": events / chunk.size,
                     "ci95": wilson_interval(events, int(chunk.size))})
    return rows


def calibration_figure(y: np.ndarray, p: np.ndarray, title: str, groups: int = 5) -> Figure:
    """Observed vs predicted probability: grouped observed rates with Wilson 95 % CIs and a loess curve.

    Parameters
    ----------
    y : (n,) 0/1 outcomes
    p : (n,) predicted probabilities of y = 1
    title : figure title
    groups : number of equal-size groups of patients ordered by ``p``
    """
    figure, axes = _figure(title, "predicted probability", "observed proportion")
    axes.plot([0, 1], [0, 1], color="0.6", linestyle=":", label="ideal")
    bins = calibration_bins(y, p, groups)
    x = np.array([b["mean_predicted"] for b in bins])
    observed = np.array([b["observed"] for b in bins])
    low = np.array([b["ci95"][0] for b in bins])
    high = np.array([b["ci95"][1] for b in bins])
    # Wilson bounds at 0/n or n/n can miss the proportion by a rounding residue: never negative.
    yerr = np.maximum([observed - low, high - observed], 0.0)
    axes.errorbar(x, observed, yerr=yerr, fmt="o", color="C0",
                  capsize=3, label=f"{len(bins)} groups, Wilson 95 % CI")
    order = np.argsort(p, kind="stable")
    if np.ptp(p) > 0 and p.size >= 10:
        smooth = np.clip(loess(np.asarray(p, float)[order], np.asarray(y, float)[order]), 0, 1)
        axes.plot(np.asarray(p)[order], smooth, color="C1", label="loess smooth")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.legend(fontsize=8, loc="upper left")
    return figure


def roc_points(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every distinct threshold, from (0, 0) to (1, 1)."""
    y = np.asarray(y).astype(bool)
    p = np.asarray(p, dtype=float)
    thresholds = np.unique(p)[::-1]
    tpr = [0.0] + [float((p[y] >= t).sum() / max(y.sum(), 1)) for t in thresholds]
    fpr = [0.0] + [float((p[~y] >= t).sum() / max((~y).sum(), 1)) for t in thresholds]
    return np.array(fpr), np.array(tpr)


def roc_figure(y: np.ndarray, p: np.ndarray, title: str, auc: float | None) -> Figure:
    """ROC curve of predicted probability ``p`` for outcome ``y`` (apparent, training data)."""
    figure, axes = _figure(title, "1 - specificity", "sensitivity")
    fpr, tpr = roc_points(y, p)
    label = "model" if auc is None else f"model (C = {auc:.3f})"
    axes.plot(fpr, tpr, color="C0", label=label)
    axes.plot([0, 1], [0, 1], color="0.6", linestyle=":", label="chance")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.legend(fontsize=8, loc="lower right")
    return figure


def net_benefit(y: np.ndarray, risk: np.ndarray, thresholds: np.ndarray) -> dict[str, np.ndarray]:
    """Net benefit of acting when ``risk >= t``, of acting for all, and of acting for none.

    NB(t) = TP / n - FP / n * t / (1 - t) (Vickers & Elkin, Med Decis Making 2006;26:565).
    """
    y = np.asarray(y).astype(bool)
    risk = np.asarray(risk, dtype=float)
    t = np.asarray(thresholds, dtype=float)
    act = risk[None, :] >= t[:, None]
    n = y.size
    odds = t / (1.0 - t)
    model = (act & y).sum(axis=1) / n - (act & ~y).sum(axis=1) / n * odds
    prevalence = y.mean()
    return {"model": model, "all": prevalence - (1.0 - prevalence) * odds, "none": np.zeros_like(t)}


def decision_curve_figure(y: np.ndarray, risk: np.ndarray, title: str,
                          thresholds: np.ndarray | None = None) -> Figure:
    """Decision curve: net benefit against threshold probability, with act-for-all and act-for-none."""
    t = np.linspace(0.01, 0.80, 80) if thresholds is None else np.asarray(thresholds, float)
    curves = net_benefit(y, risk, t)
    figure, axes = _figure(title, "threshold probability", "net benefit")
    axes.plot(t, curves["model"], color="C0", label="model")
    axes.plot(t, curves["all"], color="C2", linestyle="--", label="act for all")
    axes.plot(t, curves["none"], color="0.3", linestyle=":", label="act for none")
    prevalence = float(np.mean(y))
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
