"""The paper's analyses, recomputed on any cohort that passes the schema.

Each published statistic (``training/data/published_statistics.json``) names the test that
reproduces it; :func:`reproduce` runs that test on a cohort and compares the result with the
printed value at the printed precision.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
from lifelines import KaplanMeierFitter
from lifelines.statistics import logrank_test
from scipy import stats

from model.burden import burden_groups, burden_subgroups
from model.outcomes import SURVIVAL_COLUMNS


def load_published() -> dict:
    """The published statistics file, parsed."""
    text = resources.files("training").joinpath("data/published_statistics.json").read_text("utf-8")
    return json.loads(text)


def derive(cohort: pd.DataFrame) -> pd.DataFrame:
    """Add the derived columns the analyses use; the stored cohort never holds them.

    ``burden_group`` (low/high), ``burden_subgroup`` (a-e), ``cr`` (0/1), ``severe_crs``
    (CRS grade >= 3), ``neurotoxicity`` (any grade >= 1).
    """
    df = cohort.copy()
    df["burden_group"] = burden_groups(df["marrow_blasts_pct"])
    df["burden_subgroup"] = burden_subgroups(df["marrow_blasts_pct"], df["mrd_positive"])
    if "response" in df:
        df["cr"] = (df["response"] != "nr").astype(int)
    if "crs_grade" in df:
        df["severe_crs"] = (df["crs_grade"] >= 3).astype(int)
    if "neurotox_grade" in df:
        df["neurotoxicity"] = (df["neurotox_grade"] >= 1).astype(int)
    return df


@dataclass
class Reproduced:
    """One published statistic beside its recomputed value."""

    id: str
    statistic: str
    where: str
    paper: Any
    recomputed: Any
    match: bool | None
    note: str = ""


class Unavailable(Exception):
    """The cohort lacks what a statistic needs."""


#: Columns :func:`derive` adds, and the cohort column each comes from (named when it is missing).
DERIVED_FROM = {"cr": "response", "severe_crs": "crs_grade", "neurotoxicity": "neurotox_grade"}


def _need(df: pd.DataFrame, *columns: str) -> None:
    missing = [DERIVED_FROM.get(c, c) for c in columns if c not in df.columns]
    if missing:
        raise Unavailable(f"cohort has no {', '.join(missing)} column")


def _indicator(df: pd.DataFrame, variable: str, level: Any) -> pd.Series:
    _need(df, variable)
    if level is None:
        return df[variable].astype(int)
    return (df[variable] == level).astype(int)


def _two_by_two(df: pd.DataFrame, variable: str, level: Any) -> np.ndarray:
    hit = _indicator(df, variable, level)
    rows = []
    for group in ("low", "high"):
        in_group = df["burden_group"] == group
        rows.append([int(hit[in_group].sum()), int((1 - hit[in_group]).sum())])
    return np.array(rows)


def fisher_p(df: pd.DataFrame, variable: str, level: Any = None) -> float:
    """Two-sided Fisher exact P, low vs high burden group."""
    return float(stats.fisher_exact(_two_by_two(df, variable, level)).pvalue)


def student_t_p(df: pd.DataFrame, variable: str) -> float:
    """Unpaired Student t test (equal variances) of ``variable``, low vs high group."""
    _need(df, variable)
    low = df.loc[df.burden_group == "low", variable].dropna()
    high = df.loc[df.burden_group == "high", variable].dropna()
    return float(stats.ttest_ind(low, high).pvalue)


def anova_p(df: pd.DataFrame, variable: str, by: str = "burden_subgroup") -> float:
    """One-way ANOVA of ``variable`` across the levels of ``by``."""
    _need(df, variable, by)
    groups = [g[variable].dropna().to_numpy(float) for _, g in df.groupby(by) if len(g)]
    return float(stats.f_oneway(*groups).pvalue)


def logrank_p(df: pd.DataFrame, outcome: str, by: str = "burden_group",
              stratum: str | None = None) -> float:
    """Log-rank P comparing the two levels of ``by`` (optionally within one tb_assessed stratum)."""
    time, event = SURVIVAL_COLUMNS[outcome]
    _need(df, time, event, by)
    if stratum is not None:
        _need(df, "tb_assessed")
        df = df[df.tb_assessed == stratum]
    levels = sorted(df[by].unique())
    if len(levels) != 2:
        raise Unavailable(f"needs two {by} levels, found {len(levels)}")
    a, b = (df[df[by] == level] for level in levels)
    result = logrank_test(a[time], b[time], a[event], b[event])
    return float(result.p_value)


def km_survival(df: pd.DataFrame, outcome: str, months) -> np.ndarray:
    """Kaplan-Meier survival of ``outcome`` ('os' or 'efs') evaluated at ``months``."""
    time, event = SURVIVAL_COLUMNS[outcome]
    _need(df, time, event)
    fitter = KaplanMeierFitter().fit(df[time], df[event])
    return fitter.survival_function_at_times(np.asarray(months, dtype=float)).to_numpy()


def low_at_or_above_high(df: pd.DataFrame, outcome: str, until_months: float | None) -> bool:
    """Whether the low group's KM curve is at or above the high group's.

    With ``until_months``, at every event time up to it; without, at 12 months.
    """
    time, event = SURVIVAL_COLUMNS[outcome]
    _need(df, time, event)
    if until_months is None:
        grid = np.array([12.0])
    else:
        grid = np.unique(np.r_[df[time].to_numpy(float), until_months])
        grid = grid[grid <= until_months]
    low = km_survival(df[df.burden_group == "low"], outcome, grid)
    high = km_survival(df[df.burden_group == "high"], outcome, grid)
    return bool(np.all(low >= high - 1e-12))


def _label(entry: dict) -> str:
    parts = [entry.get("variable", entry["id"].split(".")[0])]
    if entry.get("level") not in (None, 1):
        parts.append(f"= {entry['level']}")
    if entry.get("group"):
        parts.append(f"({entry['group']} burden)")
    if entry.get("by"):
        parts.append(f"by {entry['by']}")
    if entry.get("stratum"):
        parts.append(f"within {entry['stratum']}")
    kind = entry["kind"].replace("_", " ")
    if entry["kind"] == "p_value":
        kind = f"P ({entry['test'].replace('_', ' ')})"
    return f"{' '.join(str(p) for p in parts)}: {kind}"


def _group(df: pd.DataFrame, entry: dict) -> pd.DataFrame:
    return df[df.burden_group == entry["group"]] if entry.get("group") else df


def compute_statistic(df: pd.DataFrame, entry: dict) -> Any:
    """The value of one statistics-file entry on a :func:`derive`-d cohort (raises Unavailable)."""
    kind = entry["kind"]
    if kind == "count":
        sub = _group(df, entry)
        if "variable" not in entry:
            return int(len(sub))
        return int(_indicator(sub, entry["variable"], entry["level"]).sum())
    if kind in ("median", "minimum", "maximum"):
        _need(df, entry["variable"])
        values = _group(df, entry)[entry["variable"]]
        return float({"median": values.median, "minimum": values.min, "maximum": values.max}[kind]())
    if kind == "percent":
        sub = _group(df, entry)
        _need(sub, entry["variable"])
        return round(100.0 * sub[entry["variable"]].mean(), entry["decimals"])
    if kind == "ordering":
        return low_at_or_above_high(df, entry["variable"], entry.get("months"))
    if kind == "p_value":
        test, variable = entry["test"], entry["variable"]
        if test == "fisher_exact":
            return fisher_p(df, variable, entry.get("level"))
        if test == "student_t":
            return student_t_p(df, variable)
        if test == "one_way_anova":
            return anova_p(df, variable, entry.get("by", "burden_subgroup"))
        if test == "logrank":
            return logrank_p(df, variable, by=entry.get("by", "burden_group"),
                             stratum=entry.get("stratum"))
    raise ValueError(f"published statistic {entry['id']}: unknown kind/test")


def _matches(entry: dict, value: Any) -> bool:
    if entry.get("comparison") == "greater_than":
        return bool(value > entry["threshold"])
    if entry.get("comparison") == "at_most":
        return bool(value <= entry["threshold"])
    if entry["kind"] == "p_value" or entry["kind"] == "percent":
        return bool(round(value, entry["decimals"]) == round(entry["value"], entry["decimals"]))
    if entry["kind"] in ("median", "minimum", "maximum"):
        return bool(np.isclose(value, entry["value"]))
    return bool(value == entry["value"])


def _note(df: pd.DataFrame, entry: dict, value: Any) -> str:
    notes = []
    if entry["kind"] == "count" and "printed_percent" in entry:
        n = len(_group(df, entry))
        percent = round(100.0 * value / n, 2) if n else float("nan")
        if not np.isclose(percent, entry["printed_percent"]):
            notes.append(f"printed percent {entry['printed_percent']} vs {value}/{n} = {percent}")
    if "inconsistency" in entry:
        notes.append("paper inconsistency recorded")
    return "; ".join(notes)


def reproduce(cohort: pd.DataFrame, published: dict | None = None) -> list[Reproduced]:
    """Recompute every published statistic on ``cohort`` (a validated cohort frame).

    ``published`` is a statistics file of the same shape (default: the paper's).
    """
    df = derive(cohort)
    rows = []
    for entry in (load_published() if published is None else published)["statistics"]:
        paper = entry["printed"]
        try:
            value = compute_statistic(df, entry)
        except Unavailable as reason:
            rows.append(Reproduced(entry["id"], _label(entry), entry["where"], paper, None, None,
                                   f"unavailable: {reason}"))
            continue
        shown = round(value, 4) if isinstance(value, float) else value
        rows.append(Reproduced(entry["id"], _label(entry), entry["where"], paper, shown,
                               _matches(entry, value), _note(df, entry, value)))
    return rows


def as_records(rows: list[Reproduced]) -> list[dict]:
    """Plain dicts (JSON-ready) of reproduced statistics."""
    return [asdict(row) for row in rows]
