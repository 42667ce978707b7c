"""The report's cohort table and figures for a bundle trained on K reconstructions.

Each number is computed on every reconstruction separately (never on the stacked file as if it
were K x 78 independent patients) and summarized by the rule of :mod:`model.bundle_kind`: a count
is the members' mean (with its range where it varies); a curve, a calibration group or an
interval limit is the members' pointwise mean. A single cohort goes through
:mod:`training.report.curves` and :func:`training.report.sections.cohort_rows` unchanged.
"""
from __future__ import annotations

import re

import numpy as np

from training.report import curves

#: Common grid of the averaged ROC curves (false-positive rate) and calibration smooths.
GRID = np.linspace(0.0, 1.0, 101)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _format_like(values: list[str], mean: float) -> str:
    decimals = max((len(v.split(".")[1]) if "." in v else 0) for v in values)
    if decimals == 0 and not float(mean).is_integer():
        decimals = 1
    return f"{mean:.{decimals}f}"


def mean_cohort_rows(rows_per_member: list[list[tuple[str, str]]]) -> list[tuple[str, str]]:
    """One cohort table over the reconstructions: each number the mean over the members, with
    the range of the row's first number across them ("[reconstructions: 50-64]") where they differ.

    Parameters
    ----------
    rows_per_member : list of (characteristic, value) lists
        :func:`training.report.sections.cohort_rows` of each reconstruction.
    """
    k = len(rows_per_member)
    if k == 1:
        return rows_per_member[0]
    out = []
    for position, (label, _) in enumerate(rows_per_member[0]):
        texts = [rows[position][1] for rows in rows_per_member]
        skeletons = {_NUMBER.sub("#", text) for text in texts}
        if label == "patients":
            sizes = sorted({int(t) for t in texts})
            size = str(sizes[0]) if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]}"
            out.append(("patients", f"{size} per reconstruction ({k} reconstructions)"))
            continue
        if len(skeletons) != 1 or len(set(texts)) == 1:
            out.append((label, texts[0] if len(set(texts)) == 1 else " | ".join(texts)))
            continue
        numbers = [_NUMBER.findall(t) for t in texts]
        columns = list(zip(*numbers))
        means = iter(_format_like(list(col), float(np.mean([float(v) for v in col])))
                     for col in columns)
        text = _NUMBER.sub(lambda _: next(means), texts[0])
        first = [float(col) for col in columns[0]]
        out.append((label, f"{text} [reconstructions: {min(first):g}-{max(first):g}]"))
    return out


def mean_calibration(ys: list[np.ndarray], ps: list[np.ndarray], groups: int = 5) -> dict:
    """:func:`training.report.curves.calibration_curve` on each member; groups and Wilson limits
    averaged by group rank, the loess smooths averaged on a common grid of predicted risk."""
    each = [curves.calibration_curve(y, p, groups) for y, p in zip(ys, ps)]
    count = min(len(c["bins"]) for c in each)
    bins = []
    for i in range(count):
        rows = [c["bins"][i] for c in each]
        lows = [r["ci95"][0] for r in rows if r["ci95"] is not None]
        highs = [r["ci95"][1] for r in rows if r["ci95"] is not None]
        bins.append({"n": float(np.mean([r["n"] for r in rows])),
                     "events": float(np.mean([r["events"] for r in rows])),
                     "mean_predicted": float(np.mean([r["mean_predicted"] for r in rows])),
                     "observed": float(np.mean([r["observed"] for r in rows])),
                     "ci95": (float(np.mean(lows)), float(np.mean(highs))) if lows else None})
    smooths = [c["smooth"] for c in each if c["smooth"] is not None]
    smooth = None
    if smooths:
        low = max(float(s[0][0]) for s in smooths)
        high = min(float(s[0][-1]) for s in smooths)
        if high > low:
            grid = np.linspace(low, high, 50)
            smooth = (grid, np.mean([np.interp(grid, s[0], s[1]) for s in smooths], axis=0))
    return {"bins": bins, "smooth": smooth}


def mean_roc(ys: list[np.ndarray], ps: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The members' ROC curves averaged vertically (sensitivity at each false-positive rate)."""
    tprs = []
    for y, p in zip(ys, ps):
        fpr, tpr = curves.roc_points(y, p)
        tprs.append(np.interp(GRID, fpr, tpr))
    return GRID, np.mean(tprs, axis=0)


def mean_decision_curve(events: list[np.ndarray], risks: list[np.ndarray]) -> dict:
    """The members' net-benefit curves averaged threshold by threshold."""
    each = [curves.decision_curve(e, r) for e, r in zip(events, risks)]
    return {"thresholds": each[0]["thresholds"],
            "prevalence": float(np.mean([c["prevalence"] for c in each])),
            **{key: np.mean([c[key] for c in each], axis=0) for key in ("model", "all", "none")}}


def _step(months: np.ndarray, values: np.ndarray, at: np.ndarray) -> np.ndarray:
    index = np.searchsorted(months, at, side="right") - 1
    return values[np.maximum(index, 0)]


def mean_survival_by_burden_group(name: str, cohorts: list, results: list) -> list[dict]:
    """:func:`training.report.curves.survival_by_burden_group` on each member; the Kaplan-Meier
    curves and their 95 % limits averaged pointwise, the mean predicted curves averaged, the
    group sizes the members' mean."""
    each = [curves.survival_by_burden_group(name, c, r) for c, r in zip(cohorts, results)]
    out = []
    for position, base in enumerate(each[0]):
        rows = [e[position] for e in each if len(e) > position]
        months = np.unique(np.concatenate([r["km_months"] for r in rows]))
        sizes = [int(re.search(r"n=(\d+)", r["label"]).group(1)) for r in rows]
        label = base["label"].split(" (n=")[0]
        out.append({
            "label": f"{label} (n={np.mean(sizes):.0f}, mean of {len(rows)} reconstructions)",
            "km_months": months,
            **{key: np.mean([_step(r["km_months"], r[key], months) for r in rows], axis=0)
               for key in ("km_survival", "km_lower", "km_upper")},
            "months": base["months"],
            "predicted": np.mean([r["predicted"] for r in rows], axis=0)})
    return out
