"""The paper's published statistics, recomputed on any trial and written as a statistics file.

:func:`statistics_of` takes a trial's patient rows (a cohort frame that passes the schema) and
returns a document of the shape of ``training/data/published_statistics.json``: the same entries,
each recomputed by :func:`training.paper.analyses.compute_statistic` (the code of ``cart-risk
reproduce``) and written at the paper's printed precision. The generator reads its targets from
such a file (:mod:`training.paper.targets`); the end-to-end study (:mod:`training.simulation.end_to_end`) makes
one for each simulated trial.
"""
from __future__ import annotations

import pandas as pd

from training.paper.analyses import compute_statistic, derive, load_published

#: The threshold of Fig. 3's "not significant" statements.
STATEMENT_THRESHOLD = 0.05


def _entry(df: pd.DataFrame, template: dict) -> dict:
    keep = ("id", "kind", "variable", "level", "group", "test", "by", "stratum", "months", "decimals")
    out = {key: template[key] for key in keep if key in template}
    out["where"] = f"recomputed on the trial as the paper's {template['where']}"
    value = compute_statistic(df, template)
    kind = template["kind"]
    if kind == "p_value" and template.get("threshold") == STATEMENT_THRESHOLD:
        above = value > STATEMENT_THRESHOLD
        out.update(value=None, comparison="greater_than" if above else "at_most",
                   threshold=STATEMENT_THRESHOLD, printed="P > 0.05" if above else "P <= 0.05")
        return out
    if kind == "p_value" and "comparison" in template and value > template["threshold"]:
        out.update(value=1.0, comparison=template["comparison"], threshold=template["threshold"],
                   printed=f"> {template['threshold']}")
        return out
    if kind == "p_value":
        decimals = template.get("decimals", 4)
        out.update(value=round(value, decimals), decimals=decimals, printed=f"{value:.{decimals}f}")
        if template["id"] == "severe_crs.p":
            rates = df.groupby("burden_group")["severe_crs"].mean()
            out["higher_group"] = "high" if rates.get("high", 0.0) > rates.get("low", 0.0) else "low"
        return out
    if kind == "percent":
        out.update(value=round(value, template["decimals"]), printed=f"{value:.{template['decimals']}f}%")
        return out
    out.update(value=value, printed=str(value))
    return out


def statistics_of(cohort: pd.DataFrame, source: str, template: dict | None = None) -> dict:
    """A statistics file for ``cohort``: every entry of ``template`` (default: the paper's)
    recomputed on it.

    Parameters
    ----------
    cohort : validated cohort frame (``model.cohort.validate_cohort``)
    source : str
        What the cohort is (recorded in the file's ``source``).
    template : dict, optional
        A statistics file whose entries (ids, tests, decimals) are recomputed.

    Raises
    ------
    training.paper.analyses.Unavailable
        The cohort lacks a column a statistic needs.
    """
    template = load_published() if template is None else template
    df = derive(cohort)
    return {"source": {"description": source, "n": int(len(df))},
            "statistics": [_entry(df, entry) for entry in template["statistics"]]}
