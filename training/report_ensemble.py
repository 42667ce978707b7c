"""Report sections of an ensemble bundle: outputs across reconstructions, informative inputs, bands.

Used by :mod:`training.report` when the manifest has an ``ensemble`` block
(:mod:`training.train_ensemble`).
"""
from __future__ import annotations

from html import escape as esc

#: Features placed independently of every outcome in the reconstruction (ASSUMPTIONS.md A6, A8).
NOISE_BY_CONSTRUCTION = {"ph_positive": "A6", "prior_hsct": "A6", "relapsed": "A6", "age_years": "A8"}
OUTPUT_LABELS = {"cr": "P(CR)", "severe_crs": "P(severe CRS)", "efs_6mo": "EFS 6 months",
                 "efs_12mo": "EFS 12 months", "efs_24mo": "EFS 24 months", "os_6mo": "OS 6 months",
                 "os_12mo": "OS 12 months", "os_24mo": "OS 24 months"}


def _f(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def outputs_section(ensemble: dict) -> str:
    """Per panel patient and output: members' min / median / max, pooled point and interval."""
    outputs = ensemble.get("outputs") or {}
    rows = []
    for row in outputs.get("rows", []):
        for key, label in OUTPUT_LABELS.items():
            cell = row.get(key)
            if not cell:
                continue
            rows.append(f"<tr><td class=num>{row['marrow_blasts_pct']:g}</td><td>{esc(label)}</td>"
                        f"<td class=num>{_f(cell['members_min'])}</td><td class=num>{_f(cell['members_median'])}</td>"
                        f"<td class=num>{_f(cell['members_max'])}</td><td class=num>{_f(cell['pooled'])}</td>"
                        f"<td class=num>{_f(cell['pooled_ci95'][0])} - {_f(cell['pooled_ci95'][1])}</td></tr>")
    return (f"<p>{ensemble['members']} reconstructions of the cohort, each reproducing every published "
            f"statistic, were fitted with the same procedure ({ensemble['bootstrap_per_member']} bootstrap "
            f"refits each) and pooled: {esc(ensemble['pooling'])}. Panel: {esc(outputs.get('panel', ''))}. "
            "The spread between reconstructions is uncertainty the paper's aggregates leave open; the "
            "pooled interval carries it.</p>"
            '<table id="ensemble-outputs"><tr><th>blasts %</th><th>output</th><th>members min</th>'
            "<th>members median</th><th>members max</th><th>pooled</th><th>pooled 95 % interval</th></tr>"
            + "".join(rows) + "</table>")


def informative_inputs_section(models: dict) -> str:
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
            verdict = ("carries information (interval excludes no effect)" if informative else
                       "no information in the reconstruction (interval includes no effect)")
            if noise:
                verdict += f"; unrelated to outcome by construction ({noise})"
            rows.append(f"<tr><td>{esc(name)}</td><td>{esc(feature)}</td><td class=num>{_f(c['estimate'])}</td>"
                        f"<td class=num>{_f(low)} - {_f(high)}</td>"
                        f"<td class=num>{_f(spread.get('min'))} - {_f(spread.get('max'))}</td>"
                        f"<td>{esc(verdict)}</td></tr>")
    return ('<table id="informative-inputs"><tr><th>model</th><th>feature</th><th>pooled log ratio '
            "per unit</th><th>95 % interval (mixture)</th><th>range of the members' estimates</th>"
            "<th>reading</th></tr>" + "".join(rows) + "</table>"
            "<p>Baseline features the paper reports only as counts by burden group (Ph+, prior HSCT, "
            "relapse, age) are placed on patients independently of every outcome in the reconstruction "
            "(ASSUMPTIONS.md A6, A8): their effects here estimate noise and should sit near zero with "
            "wide intervals. The calculator still asks for them because a center's own cohort may carry "
            "their effect: a bundle trained on it with <code>cart-risk train --cohort</code> estimates "
            "them from real data.</p>")


def bands_section(bands: list[dict]) -> str:
    """sCRS band rows of an ensemble: rate range across reconstructions beside the published groups."""
    rows = "".join(
        f"<tr><td>{esc(b['subgroup'])}</td><td>{esc(b['label'])}</td>"
        f"<td class=num>{_f(b['rate_range'][0])} - {_f(b['rate_range'][1])}</td>"
        f"<td class=num>{b['n_range'][0]} - {b['n_range'][1]}</td>"
        f"<td class=num>{b['published_group']['events']}/{b['published_group']['n']} "
        f"({esc(b['published_group']['label'])})</td></tr>" for b in bands)
    return ('<table id="scrs-bands"><tr><th>subgroup</th><th>marrow blasts</th><th>sCRS rate across '
            "reconstructions (assumed split, A1)</th><th>patients (range)</th><th>published, two groups "
            "(Fig. 4B)</th></tr>" + rows + "</table><p>The five-subgroup counts are an assumption "
            "(A1: 66 splits reproduce the published ANOVA); only the two-group counts are published.</p>")
