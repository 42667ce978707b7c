"""A center cohort against a bundle's training ranges: what lies outside, and what an update covers.

Each model card records ``field_ranges``: per patient field it reads, ``[min, max]`` of the
training cohort (choices: the levels seen). A validation or update cohort with values outside
them asks the models to speak where they were never fitted; ``cart-risk validate`` and
``cart-risk update`` warn, and an updated model records the union of the two ranges.
"""
from __future__ import annotations

from typing import Mapping

import pandas as pd


def _fmt(value: float) -> str:
    return f"{value:g}"


def outside_ranges(card: Mapping, cohort: pd.DataFrame) -> list[str]:
    """One sentence per field of ``card["field_ranges"]`` where ``cohort`` goes beyond it.

    Example: "marrow_blasts_pct: the cohort spans 95-100, outside the training range 0-92.5
    (3 patients outside)".
    """
    problems = []
    for field, recorded in (card.get("field_ranges") or {}).items():
        if field not in cohort.columns or not recorded:
            continue
        values = cohort[field].dropna()
        if values.empty:
            continue
        if isinstance(recorded[0], str):
            new = sorted(set(map(str, values.unique())) - set(recorded))
            if new:
                count = int(values.astype(str).isin(new).sum())
                problems.append(f"{field}: the cohort has {', '.join(new)}, which no training "
                                f"patient had ({count} patients)")
            continue
        low, high = float(recorded[0]), float(recorded[1])
        outside = (values < low) | (values > high)
        if outside.any():
            problems.append(f"{field}: the cohort spans {_fmt(values.min())}-{_fmt(values.max())}, "
                            f"outside the training range {_fmt(low)}-{_fmt(high)} "
                            f"({int(outside.sum())} patients outside)")
    return problems


def covered_ranges(card: Mapping, cohort: pd.DataFrame) -> dict[str, list]:
    """``field_ranges`` widened to cover ``cohort`` too (an updated model rests on both)."""
    out = {}
    for field, recorded in (card.get("field_ranges") or {}).items():
        values = cohort[field].dropna() if field in cohort.columns else pd.Series(dtype=float)
        if values.empty or not recorded:
            out[field] = list(recorded)
        elif isinstance(recorded[0], str):
            out[field] = sorted(set(recorded) | set(map(str, values.unique())))
        else:
            out[field] = [min(float(recorded[0]), float(values.min())),
                          max(float(recorded[1]), float(values.max()))]
    return out
