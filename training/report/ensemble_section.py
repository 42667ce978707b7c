"""Data of the report sections of an ensemble bundle: outputs across reconstructions, informative
inputs (``templates/report_ensemble.html`` lays them out, with the band table).

Used by :mod:`training.report.page` when the manifest has an ``ensemble`` block
(:mod:`training.train_ensemble`).
"""
from __future__ import annotations

#: Features placed independently of every outcome in the reconstruction (ASSUMPTIONS.md A6, A8).
NOISE_BY_CONSTRUCTION = {"ph_positive": "A6", "prior_hsct": "A6", "relapsed": "A6", "age_years": "A8"}
OUTPUT_LABELS = {"cr": "P(CR)", "severe_crs": "P(severe CRS)", "efs_6mo": "EFS 6 months",
                 "efs_12mo": "EFS 12 months", "efs_24mo": "EFS 24 months", "os_6mo": "OS 6 months",
                 "os_12mo": "OS 12 months", "os_24mo": "OS 24 months"}


def output_rows(ensemble: dict) -> list[tuple[float, str, dict]]:
    """(marrow blasts %, output label, cell) per panel patient and output: the members' min /
    median / max, the pooled point and interval."""
    outputs = ensemble.get("outputs") or {}
    return [(row["marrow_blasts_pct"], label, row[key])
            for row in outputs.get("rows", []) for key, label in OUTPUT_LABELS.items() if row.get(key)]


def informative_rows(models: dict) -> list[dict]:
    """Per model and feature: pooled effect, its interval, its spread, and whether it is noise."""
    rows = []
    for name, entry in models.items():
        for feature, c in entry.get("coefficients", {}).items():
            low, high = c["ci95"]
            if low is None or high is None:
                continue
            spread = c.get("across_members") or {}
            informative = low > 0 or high < 0
            noise = NOISE_BY_CONSTRUCTION.get(feature)
            effects = spread.get("with_effect_range")
            share = c.get("refits_at_no_effect") or 0.0
            same_sign = effects is not None and (effects[0] > 0 or effects[1] < 0)
            if informative:
                verdict = "carries information (interval excludes no effect)"
            elif c.get("shrunk_to_zero"):
                verdict = "no effect estimated: every reconstruction's fit is shrunk to zero"
            elif same_sign and not spread.get("no_effect") and share >= 0.025:
                verdict = (f"every reconstruction estimates an effect of the same sign "
                           f"({effects[0]:.2f} to {effects[1]:.2f}); the interval reaches no effect "
                           f"only through the {100 * share:.0f} % of refits shrunk to zero")
            else:
                verdict = "no information in the reconstruction (interval includes no effect)"
            if noise:
                verdict += f"; unrelated to outcome by construction ({noise})"
            rows.append({"model": name, "feature": feature, "estimate": c["estimate"], "low": low,
                         "high": high, "spread_min": spread.get("min"),
                         "spread_max": spread.get("max"), "verdict": verdict})
    return rows
