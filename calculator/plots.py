"""The result page's figures as inline SVG (:mod:`calculator.svg`), from numbers already computed.

Each ``*_figure`` function takes the API answer (or values derived from it by
:mod:`calculator.results`) and returns :class:`markupsafe.Markup` holding one ``<svg>`` element.
Nothing is recomputed here and nothing is fetched: the figures travel inside the page.

The survival figures show, under each panel, the training cohort's numbers at risk, shade the
flat tail after the cohort's last event, and mark where fewer than 10 % of the cohort (or 10
patients) remain at risk (:func:`model.survival.few_at_risk`).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from markupsafe import Markup

from calculator.svg import (CR_COLOUR, GRID, HIGH_BURDEN_COLOUR, LOW_BURDEN_COLOUR, MUTED,
                            PATIENT_COLOUR, SCRS_COLOUR, TAIL_FILL, Canvas, Scale, number,
                            polyline_path, step_band_path, step_path, ticks)
from model.burden import SUBGROUP_EDGES_PCT
from model.features import BLASTS_FLOOR_PCT
from model.outcomes import BY_NAME, SURVIVAL_NAMES
from model.predictor import HORIZONS_MONTHS
from model.bundle_kind import CohortTimes
from model.survival import FEW_AT_RISK_FRACTION, FEW_AT_RISK_PATIENTS, KaplanMeier, few_at_risk

SURVIVAL_TITLES = {name: BY_NAME[name].label for name in SURVIVAL_NAMES}
#: The cohort's groups drawn under the patient's curve: key, colour, label of the at-risk row.
COHORT_GROUPS = (("low", LOW_BURDEN_COLOUR, "< 5 %"), ("high", HIGH_BURDEN_COLOUR, "\u2265 5 %"))
TICK_MONTHS = 6


def _floats(values: Sequence[float | None]) -> np.ndarray:
    return np.asarray([np.nan if v is None else v for v in values], dtype=float)


def survival_figure(name: str, curve: Mapping[str, Any], cohort: Mapping[str, KaplanMeier],
                    follow_up: CohortTimes | None, counts: str = "training cohort") -> Markup:
    """One outcome: the patient's curve and 95 % band over the cohort's Kaplan-Meier curves.

    Parameters
    ----------
    name : str
        ``"efs"`` or ``"os"``.
    curve : mapping
        The API's survival answer (``months``, ``survival``, ``lower``, ``upper``); it stops at
        the cohort's last follow-up.
    cohort : mapping
        ``"low"`` / ``"high"`` -> the training cohort's Kaplan-Meier curve by burden group.
    follow_up : model.bundle_kind.CohortTimes, optional
        The whole training cohort's follow-up times (months), per reconstruction: the "All" row
        at risk and the few-at-risk mark.
    counts : str
        What the numbers at risk are ("training cohort", "mean of 20 reconstructions", ...).
    """
    months = _floats(curve["months"])
    end = float(months[-1]) if months.size else 1.0
    groups = [(key, colour, label, cohort[key]) for key, colour, label in COHORT_GROUPS
              if key in cohort]
    rows = ([("All", MUTED, follow_up)] if follow_up is not None else []) + \
        [(label, colour, km) for _, colour, label, km in groups]
    left, right, top, plot_height = 64, 14, 26, 160
    bottom = top + plot_height
    height = bottom + 44 + 17 * (len(rows) + 1)
    width = 420
    x = Scale((0, end), (left, width - right))
    y = Scale((0, 1), (bottom, top))
    title = SURVIVAL_TITLES.get(name, name)
    canvas = Canvas(width, height, f"{title}: this patient's predicted curve with its 95 % band "
                    "over the training cohort's Kaplan-Meier curves, with numbers at risk",
                    element_id=f"{name}-figure", css_class="figure figure-survival")
    canvas.text(left, 14, title, size=14, weight="700", fill=PATIENT_COLOUR)

    last_event = max((km.last_event_months for *_, km in groups
                      if km.last_event_months is not None), default=None)
    if last_event is not None and last_event < end:
        canvas.add("rect", x=x(last_event), y=top, width=x(end) - x(last_event),
                   height=plot_height, fill=TAIL_FILL, class_="flat-tail")
        canvas.text(x(end) - 3, top + 13, "flat: no cohort", size=11.5, anchor="end",
                    fill=MUTED)
        canvas.text(x(end) - 3, top + 26, f"events after {last_event:.0f} mo", size=11.5,
                    anchor="end", fill=MUTED)
    for value in (0, 0.25, 0.5, 0.75, 1.0):
        canvas.line(left, y(value), width - right, y(value), stroke=GRID, width=0.8)
        canvas.text(left - 5, y(value) + 4, f"{value * 100:.0f} %", size=12, anchor="end",
                    fill=MUTED)
    for horizon in HORIZONS_MONTHS:
        if horizon <= end:
            canvas.line(x(horizon), top, x(horizon), bottom, stroke=MUTED, width=0.7,
                        dash="2 3")
    for _, colour, _, km in groups:
        shown = km.months <= end
        canvas.add("path", d=step_path(x(km.months[shown]), y(km.survival[shown]), end=x(end)),
                   fill="none", stroke=colour, stroke_width=1.4, stroke_dasharray="5 3")
    canvas.add("path", d=step_band_path(x(months), y(_floats(curve["lower"])),
                                        y(_floats(curve["upper"]))),
               fill=PATIENT_COLOUR, fill_opacity=0.18)
    canvas.add("path", d=step_path(x(months), y(_floats(curve["survival"]))), fill="none",
               stroke=PATIENT_COLOUR, stroke_width=2.2)
    if follow_up is not None and follow_up.n:
        sparse = months[few_at_risk(follow_up.at_risk(months), follow_up.n)]
        if sparse.size:
            start = float(sparse[0])
            canvas.line(x(start), top, x(start), bottom, stroke=SCRS_COLOUR, width=1.2,
                        dash="4 2", class_="few-at-risk")
            threshold = max(FEW_AT_RISK_PATIENTS, round(FEW_AT_RISK_FRACTION * follow_up.n))
            canvas.text(x(start) - 3, bottom - 6, f"< {threshold} at risk", size=11.5,
                        anchor="end", fill=SCRS_COLOUR)
    canvas.line(left, bottom, width - right, bottom, stroke=MUTED)
    tick_months = list(ticks(0, end, TICK_MONTHS))
    for month in tick_months:
        canvas.line(x(month), bottom, x(month), bottom + 4, stroke=MUTED)
        canvas.text(x(month), bottom + 16, f"{month:g}", size=12, anchor="middle", fill=MUTED)
    canvas.text((left + width - right) / 2, bottom + 32, "Months after infusion", size=12,
                anchor="middle", fill=MUTED)
    row_y = bottom + 52
    canvas.text(4, row_y, f"Number at risk ({counts})", size=12, weight="600",
                fill=MUTED)
    for label, colour, times in rows:
        row_y += 17
        canvas.text(4, row_y, label, size=12, fill=colour, weight="600")
        for month, count in zip(tick_months, times.at_risk(tick_months)):
            canvas.text(x(month), row_y, str(int(count)), size=12, anchor="middle",
                        fill=colour, class_="risk-count")
    return canvas.markup()


def _blasts_label(value: float) -> str:
    return "0 (MRD+)" if value <= BLASTS_FLOOR_PCT else f"{value:g}"


def treatment_window_figure(window: Mapping[str, np.ndarray], blasts: float,
                            target: float | None = None) -> Markup:
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
    grid = np.asarray(window["blasts"], dtype=float)
    series = [(key, label, colour) for key, label, colour in
              (("cr", "Complete remission", CR_COLOUR),
               ("severe_crs", "Severe CRS (grade \u2265 3)", SCRS_COLOUR)) if key in window]
    width, left, right, top, bottom = 420, 46, 12, 22, 204
    x = Scale((grid[0], grid[-1]), (left, width - right), log=True)
    y = Scale((0, 1), (bottom, top))
    canvas = Canvas(width, bottom + 64, "Predicted complete remission and severe CRS against "
                    "marrow blast percentage on a log axis, this patient marked"
                    + (", with the target after debulking" if target is not None else ""),
                    element_id="window-figure", css_class="figure figure-window")
    canvas.raw("<defs>" + "".join(
        f'<marker id="arrow-{key}" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" '
        f'markerHeight="7" orient="auto"><path d="M0,0 L8,4 L0,8 Z" fill="{colour}"/></marker>'
        for key, _, colour in series) + "</defs>")
    for value in (0, 0.25, 0.5, 0.75, 1.0):
        canvas.line(left, y(value), width - right, y(value), stroke=GRID, width=0.8)
        canvas.text(left - 5, y(value) + 4, f"{value * 100:.0f} %", size=12, anchor="end",
                    fill=MUTED)
    for edge in SUBGROUP_EDGES_PCT:
        canvas.line(x(edge), top, x(edge), bottom, stroke="#c3cad1", width=1)
    for letter, middle in zip("bcde", (0.22, 10.0, 31.6, 71.0)):
        canvas.text(x(middle), top - 4, letter, size=12.5, anchor="middle", fill=MUTED)
    x_patient = max(blasts, BLASTS_FLOOR_PCT)
    x_target = None if target is None else max(target, BLASTS_FLOOR_PCT)
    for key, label, colour in series:
        canvas.add("path", d=polyline_path(np.r_[x(grid), x(grid[::-1])],
                                           np.r_[y(window[key + "_upper"]),
                                                 y(window[key + "_lower"][::-1])]) + "Z",
                   fill=colour, fill_opacity=0.15)
        canvas.add("path", d=polyline_path(x(grid), y(window[key])), fill="none", stroke=colour,
                   stroke_width=2)
    canvas.line(x(x_patient), top, x(x_patient), bottom, stroke=PATIENT_COLOUR, width=1.1,
                dash="5 3")
    canvas.text(x(x_patient) + 3, bottom - 5, "this patient", size=11.5, fill=PATIENT_COLOUR)
    if x_target is not None:
        canvas.line(x(x_target), top, x(x_target), bottom, stroke=MUTED, width=1.1, dash="2 3")
        canvas.text(x(x_target) - 3, bottom - 5, "target", size=11.5, anchor="end", fill=MUTED)
    for key, _, colour in series:
        now = float(np.interp(np.log10(x_patient), np.log10(grid), window[key]))
        if x_target is not None:
            later = float(np.interp(np.log10(x_target), np.log10(grid), window[key]))
            canvas.line(x(x_patient), y(now), x(x_target), y(later), stroke=colour, width=1.3,
                        marker_end=f"url(#arrow-{key})")
            canvas.add("circle", cx=x(x_target), cy=y(later), r=4.5, fill="#fff", stroke=colour,
                       stroke_width=1.6)
        canvas.add("circle", cx=x(x_patient), cy=y(now), r=5, fill=colour, stroke="#fff",
                   stroke_width=1.3)
    canvas.line(left, bottom, width - right, bottom, stroke=MUTED)
    for tick in (0.01, 0.1, 1, 5, 20, 50, 100):
        canvas.line(x(tick), bottom, x(tick), bottom + 4, stroke=MUTED)
        canvas.text(x(tick), bottom + 16, _blasts_label(tick), size=12, anchor="middle",
                    fill=MUTED)
    canvas.text((left + width - right) / 2, bottom + 32,
                "Marrow blasts before infusion, % (log scale)", size=12, anchor="middle",
                fill=MUTED)
    legend_x = 4
    for _, label, colour in series:
        row = bottom + 56
        canvas.line(legend_x, row - 4, legend_x + 16, row - 4, stroke=colour, width=2.5)
        canvas.text(legend_x + 21, row, label, size=12, fill=colour, weight="600")
        legend_x += 30 + 7.2 * len(label)
    return canvas.markup()


def scrs_bands_figure(bands: Sequence[Mapping[str, Any]],
                      model: Mapping[str, Any] | None, basis: str = "observed") -> Markup:
    """sCRS rate with its interval for each burden subgroup, and the model's estimate.

    Parameters
    ----------
    bands : sequence of mapping
        From :func:`calculator.results.band_rows` (the patient's row has ``current`` True). Rows
        with a ``rate_range`` (an ensemble) are drawn as that range across the reconstructions.
    model : mapping, optional
        The API's ``severe_crs`` answer (``probability``, ``ci95``).
    basis : str
        What the dots are ("observed" for a center's cohort; "reconstructed" otherwise).
    """
    ensemble = any(row.get("rate_range") for row in bands)
    if ensemble:
        basis = "range across reconstructions"
    rows = [(row["subgroup"], row["rate"], row.get("rate_range") or row["ci95"], row["current"])
            for row in bands]
    if model is not None:
        rows.append(("model", model["probability"], model["ci95"], None))
    width, left, right, top, step = 260, 50, 16, 8, 24
    bottom = top + step * len(rows)
    x = Scale((0, 1), (left, width - right))
    canvas = Canvas(width, bottom + 40, f"Severe CRS rate in each burden subgroup ({basis}), the "
                    "patient's highlighted, and the model's estimate with its 95 % interval",
                    element_id="bands-figure", css_class="figure figure-bands")
    for value in (0, 0.25, 0.5, 0.75, 1.0):
        canvas.line(x(value), top, x(value), bottom, stroke=GRID, width=0.8)
        canvas.text(x(value), bottom + 16, f"{value * 100:.0f} %", size=12, anchor="middle",
                    fill=MUTED)
    for index, (label, rate, interval, current) in enumerate(rows):
        middle = top + step * (index + 0.5)
        colour = PATIENT_COLOUR if current is None else SCRS_COLOUR if current else MUTED
        if current:
            canvas.add("rect", x=left, y=middle - step / 2 + 1, width=width - right - left,
                       height=step - 2, fill="#f8d7da")
        low, high = (np.nan if v is None else v for v in (interval or (None, None)))
        if np.isfinite(low) and np.isfinite(high):
            canvas.line(x(low), middle, x(high), middle, stroke=colour, width=1.6)
        if rate is not None:
            if current is None:
                size = 5
                canvas.add("path", d=f"M{number(x(rate))},{number(middle - size)} "
                           f"l{size},{size} l{-size},{size} l{-size},{-size} Z", fill=colour)
            else:
                canvas.add("circle", cx=x(rate), cy=middle, r=4, fill=colour)
        canvas.text(left - 6, middle + 4, label, size=12.5, anchor="end", fill=colour,
                    weight="700" if current else None)
    canvas.text((left + width - right) / 2, bottom + 34, f"{basis.split(' (')[0]} (dots), model (diamond)",
                size=11.5, anchor="middle", fill=MUTED)
    return canvas.markup()
