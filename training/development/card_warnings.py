"""The warnings of a model card: each fact stated once, none contradicting another.

Calibration is judged in one place, by the optimism-corrected (Efron-Gong mean) calibration slope.
The Riley sample-size criteria state their shortfall without their generic consequence ("expect
predictions to be too extreme", which is about an unpenalized fit), so a shrunken model is never
called both too extreme and over-shrunk. Where the mean- and median-based corrected values differ
materially, a warning shows both.
"""
from __future__ import annotations

from training.development.bootstrap import MATERIAL_DIFFERENCE, BootstrapResult

#: Optimism-corrected calibration slopes outside this range get a warning in the model card.
SLOPE_WARNING_RANGE = (0.8, 1.25)
#: Resamples whose tuning chose a grid edge above this share get a card warning.
EDGE_WARNING_SHARE = 0.01


def calibration_sentence(slope: float | None) -> str | None:
    """The card's one statement about calibration, from the (mean-based) corrected slope."""
    low, high = SLOPE_WARNING_RANGE
    if slope is None:
        return None
    if slope < low:
        return (f"Optimism-corrected calibration slope {slope:.2f} < {low}: predictions are likely "
                "too extreme in new patients.")
    if slope > high:
        return (f"Optimism-corrected calibration slope {slope:.2f} > {high}: predictions are "
                "likely too close to the average (over-shrunk).")
    return None


def card_warnings(entry: dict, result: BootstrapResult, B: int) -> list[str]:
    """Card warnings. Calibration is judged once, by the corrected slope; the sample-size
    criteria state the shortfall without their generic consequence, so the two cannot disagree."""
    out = []
    sample = entry["sample_size"]
    slope = entry["optimism_corrected"].get("calibration_slope")
    calibration = calibration_sentence(slope)
    if sample.get("shortfall"):
        tail = ("See the calibration warning below." if calibration else
                "Treat the predictions as exploratory; the bootstrap-corrected calibration slope "
                f"({slope:.2f}) is within {SLOPE_WARNING_RANGE[0]}-{SLOPE_WARNING_RANGE[1]}."
                if slope is not None else "Treat the predictions as exploratory.")
        out.append(f"{sample['shortfall']} {tail}")
    elif sample.get("warning"):
        out.append(sample["warning"])
    if entry["events_per_variable"] < 10:
        out.append(f"{entry['events']} {entry['events_label']} for {len(entry['features'])} "
                   f"predictor parameters: {entry['events_per_variable']:.1f} events per variable "
                   "(fewer than 10).")
    if calibration:
        out.append(calibration)
    median = entry.get("optimism_corrected_median", {})
    for metric, threshold in MATERIAL_DIFFERENCE.items():
        mean_value, median_value = entry["optimism_corrected"].get(metric), median.get(metric)
        if mean_value is None or median_value is None:
            continue
        if abs(mean_value - median_value) > threshold:
            out.append(f"Optimism-corrected {metric.replace('_', ' ')}: {mean_value:.2f} by the "
                       f"bootstrap mean (Efron-Gong, shown) but {median_value:.2f} by the median; "
                       "a few resamples carry the mean, so read both.")
    tuning = entry.get("tuning", {})
    if tuning.get("tuned") and tuning["edge_resamples"] > EDGE_WARNING_SHARE * tuning["resamples"]:
        out.append(f"In {tuning['edge_resamples']} of {tuning['resamples']} bootstrap resamples the "
                   "penalty was chosen at an end of its grid where the criterion had not turned.")
    for metric, count in result.n_finite.items():
        if count < B:
            out.append(f"{metric} was estimable in {count} of {B} bootstrap resamples; its "
                       "optimism is averaged over those.")
    redraws = int(result.redraws.sum())
    if redraws:
        out.append(f"{redraws} degenerate bootstrap resample(s) (no finite fit) were redrawn.")
    for name, coefficient in entry["coefficients"].items():
        if coefficient["constant_in_training"]:
            out.append(f"{name} is constant in the training cohort; its coefficient is fixed at 0.")
    ph = entry.get("ph_test", {}).get("global", {})
    if ph.get("p") is not None and ph["p"] < 0.05:
        out.append(f"Proportional-hazards test: global p = {ph['p']:.3f} < 0.05; hazard ratios "
                   "may change over follow-up.")
    return out
