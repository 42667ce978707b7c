"""What a model card says in words, for every bundle kind: read by /about and by the report.

Pure functions of the verified manifest (docs/bundle-format.md), so both pages say the same:

* :func:`validation_text`: a validation figure as shown, the pooled model's median with its
  interquartile range across reconstructions for an ensemble, and "no predictor effect: C 0.5,
  slope undefined" instead of a number where the model is flat;
* :func:`coefficient_text`: a coefficient's interval, or "no effect estimated (shrunk to zero)"
  with the unshrunk interval beside it, never a [0, 0] interval;
* :func:`interval_caption`: where the card's 95 % intervals come from, true for the bundle kind;
* :func:`limitations`: one line per kind of warning across the models (how many
  reconstructions, which models), and the per-model detail;
* :func:`headline`: at most eight lines, what the bundle can tell and what it cannot.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from model.bundle_kind import bundle_basis
from model.outcomes import BY_NAME

FLAT_TEXT = "no predictor effect: C 0.5, slope undefined"
SHRUNK_TEXT = "no effect estimated (shrunk to zero)"
MAX_HEADLINE_LINES = 8
MAX_LIMITATION_LINES = 20

#: Fixed limitations of every bundle (the data-specific ones follow from the manifest).
GENERAL_LIMITATIONS = (
    "No external validation: the models have not been tested on patients from another centre or period.",
    "Every patient received the same split dose, so no dose effect can be estimated.",
    "Severe CRS is graded by CTCAE v4.03, not ASTCT 2019.",
    "Survival curves stop at the cohort's last follow-up; nothing is extrapolated beyond it.",
    "Associations with tumour burden are not evidence that lowering the burden by bridging "
    "therapy changes outcomes.",
)

#: Kinds of card warning, recognised by their wording (training/development/card_warnings.py and
#: pooling.py): kind -> (pattern, the one line shown for it).
_KINDS = (
    ("sample_size", r"patients are fewer than the [\d-]+ needed",
     "Fewer patients than the Riley sample-size criteria require: expect overfitting and an imprecise overall risk"),
    ("events_per_variable", r"events per variable \(fewer than 10\)",
     "Fewer than 10 events per predictor parameter"),
    ("flat", r"(no predictor effect|explains no more than chance)",
     "Fits with no predictor effect (heuristic shrinkage <= 0): predictions close to the cohort average"),
    ("calibration", r"calibration slope -?[\d.]+ [<>]",
     "Calibration slope outside 0.8-1.25 after optimism correction"),
    ("ph", r"Proportional-hazards test",
     "Proportional-hazards test p < 0.05: hazard ratios may change over follow-up"),
    ("estimable", r"(was estimable in|degenerate bootstrap)",
     "Some validation replicates could not estimate every metric"),
    ("mean_median", r"by the bootstrap mean .* by the median",
     "Bootstrap mean and median of the optimism differ: a few resamples carry the mean"),
    ("tuning", r"penalty was chosen at an end of its grid", "Penalty tuned at an end of its grid in some resamples"),
    ("constant", r"is constant in the training cohort", "A predictor is constant in the training cohort"),
)


def _num(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _range(bounds, digits: int = 2) -> str:
    return f"{_num(bounds[0], digits)} to {_num(bounds[1], digits)}"


def pooled_validation(card: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The card's pooled-model ``validation`` block, if its figures are still the card's: an
    update copies its parent's card and re-validates the updated model on the center cohort."""
    validation = card.get("validation")
    if not validation:
        return None
    corrected = validation["metrics"].get("c_index", {}).get("corrected", {}).get("median")
    shown = (card.get("optimism_corrected") or {}).get("c_index")
    return validation if validation.get("pooled_flat") or shown == corrected else None


def is_flat(card: Mapping[str, Any]) -> bool:
    """Whether the served model of this card has no predictor effect (all coefficients 0)."""
    validation = pooled_validation(card)
    if validation is not None:
        return bool(validation.get("pooled_flat"))
    coefficients = card.get("coefficients") or {}
    return bool(coefficients) and all(c.get("estimate") == 0 for c in coefficients.values())


def validation_text(card: Mapping[str, Any], metric: str, which: str) -> str:
    """One validation figure of a card as displayed.

    ``which`` is "apparent" or "corrected". Ensemble: the pooled model's median across the
    reconstructions, with its interquartile range. A flat model: C 0.5, slope undefined.
    """
    if is_flat(card) and metric in ("c_index", "calibration_slope"):
        return FLAT_TEXT
    validation = pooled_validation(card)
    if validation is not None:
        block = validation["metrics"].get(metric, {}).get(which) or {}
        if block.get("median") is None:
            return "n/a"
        return f"{block['median']:.3f} (IQR {_range(block['iqr'], 3)})"
    value = (card.get("apparent") if which == "apparent" else card.get("optimism_corrected") or {}).get(metric)
    return _num(value, 3)


def short_validation_text(card: Mapping[str, Any], metric: str) -> str:
    """The optimism-corrected figure alone (an ensemble's: the pooled model's median), for compact
    tables; a flat model's C and slope say why they are no number."""
    if is_flat(card) and metric == "c_index":
        return "0.5 (no predictor effect)"
    if is_flat(card) and metric == "calibration_slope":
        return "undefined (no predictor effect)"
    value = (card.get("optimism_corrected") or {}).get(metric)
    return "" if value is None else f"{value:.{3 if metric == 'brier' else 2}f}"


def validation_caption(manifest: Mapping[str, Any]) -> str:
    """How the validation figures were obtained, for the bundle kind."""
    ensemble = manifest.get("ensemble")
    if ensemble:
        replicates = ensemble.get("validation_replicates", manifest.get("bootstrap"))
        return (f"Internal validation of the pooled model that is served: {replicates} bootstrap "
                f"replicates of the whole ensemble procedure (each resamples and refits all "
                f"{ensemble['members']} reconstructions and pools them). Figures are the median "
                f"over the {ensemble['members']} reconstructions with the interquartile range (IQR) "
                "across them.")
    return (f"Internal validation by {manifest.get('bootstrap')} bootstrap refits "
            "(optimism correction, Efron-Gong mean).")


def coefficient_text(coefficient: Mapping[str, Any], ratio: bool = True) -> str:
    """A coefficient's 95 % confidence interval as shown (ratio scale unless ``ratio`` is False).

    A coefficient shrunk to exactly zero has no interval of its own ([0, 0] would claim certainty):
    it reads "no effect estimated (shrunk to zero)" with the unshrunk interval beside it.
    """
    if coefficient.get("shrunk_to_zero"):
        unshrunk = coefficient.get("unshrunk_ci95")
        if not unshrunk or unshrunk[0] is None:
            return f"{SHRUNK_TEXT}; unshrunk interval not estimable"
        if ratio:
            import math
            unshrunk = [math.exp(unshrunk[0]), math.exp(unshrunk[1])]
        return f"{SHRUNK_TEXT}; unshrunk 95 % CI {_range(unshrunk)}"
    bounds = coefficient.get("ratio_ci95" if ratio else "ci95")
    text = f"{_num(coefficient.get('ratio' if ratio else 'estimate'))} ({_range(bounds)})" if bounds else "n/a"
    spread = coefficient.get("across_members") or {}
    share = coefficient.get("refits_at_no_effect") or 0.0
    effects = spread.get("with_effect_range")
    if share >= 0.025 and effects and not spread.get("no_effect") and (effects[0] > 0 or effects[1] < 0):
        text += (f"; every reconstruction estimates an effect ({_range(effects)} per unit), the "
                 f"interval reaches no effect through the {100 * share:.0f} % of refits shrunk to zero")
    return text


def interval_caption(manifest: Mapping[str, Any]) -> str:
    """Where the card's 95 % confidence intervals come from, true for the bundle kind."""
    ensemble = manifest.get("ensemble")
    if ensemble:
        return (f"95 % confidence intervals: 2.5th-97.5th percentiles of the {manifest.get('bootstrap')} "
                f"bootstrap refits of all {ensemble['members']} reconstructions pooled "
                f"({ensemble.get('bootstrap_per_member')} a reconstruction); SE: their standard deviation.")
    if manifest.get("lineage"):
        return ("95 % confidence intervals of updated models: the parent bundle's bootstrap refits, "
                "updated as the model; see the lineage.")
    return ("95 % confidence intervals of coefficients: Wald intervals from the inverse penalized "
            f"information, centred on the shrunken estimate; of predicted risks: percentiles of the "
            f"{manifest.get('bootstrap')} bootstrap refits.")


def _kind(text: str) -> str:
    for kind, pattern, _ in _KINDS:
        if re.search(pattern, text, re.IGNORECASE):
            return kind
    return text


def _reconstructions(text: str) -> str | None:
    found = re.search(r"in (\d+) of (\d+) reconstructions", text)
    return f"{found.group(1)} of {found.group(2)}" if found else None


def limitations(manifest: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(lines, detail): one line per kind of warning across the models, naming the models (and
    in how many reconstructions, where that varies), then the general limitations; and the
    per-model warnings as written in the manifest, for a folded detail."""
    basis = bundle_basis(manifest)
    lines = []
    if basis.root_reconstructed:
        lines.append("The training cohort is synthetic: it reproduces published aggregates, not real "
                     "patients. Use the predictions for method demonstration and research only.")
    lines.append(f"Small cohort ({basis.trained_on}) with few events for the number of "
                 "predictors: intervals are wide.")
    grouped: dict[str, list[str]] = {}
    detail = []
    labels = {kind: line for kind, _, line in _KINDS}
    for name, card in (manifest.get("models") or {}).items():
        label = BY_NAME[name].short_label if name in BY_NAME else name
        for text in card.get("warnings", []):
            detail.append(f"{label}: {text}")
            where = _reconstructions(text)
            mention = f"{label} ({where} reconstructions)" if where else label
            grouped.setdefault(_kind(text), [])
            if mention not in grouped[_kind(text)] and label not in grouped[_kind(text)]:
                grouped[_kind(text)].append(mention)
    for kind, models in grouped.items():
        line = labels.get(kind, kind.rstrip("."))
        lines.append(f"{line}: {', '.join(models)}." if kind in labels else f"{line}.")
    known = {f"{name}: {w}" for name, card in (manifest.get("models") or {}).items()
             for w in card.get("warnings", [])}
    lines += [w for w in manifest.get("warnings", []) if w not in known]  # unavailable models
    lines += GENERAL_LIMITATIONS
    return lines, detail


def _figure(card: Mapping[str, Any], metric: str) -> str:
    if is_flat(card):
        return "no predictor effect"
    validation = pooled_validation(card)
    value = (validation["metrics"][metric]["corrected"]["median"] if validation
             else (card.get("optimism_corrected") or {}).get(metric))
    return _num(value)


def headline(manifest: Mapping[str, Any]) -> list[str]:
    """At most :data:`MAX_HEADLINE_LINES` lines: what the bundle can tell and what it cannot."""
    models = manifest.get("models") or {}
    label = {name: BY_NAME[name].short_label if name in BY_NAME else name for name in models}
    basis = bundle_basis(manifest)
    source = (", rebuilt from one trial's published aggregates (not patient data)"
              if basis.root_reconstructed else "")
    lines = [f"It rests on {basis.trained_on}{source}; internal validation only."]
    discriminating = [name for name, card in models.items()
                      if not is_flat(card) and (_figure(card, "c_index") != "n/a"
                                                and float(_figure(card, "c_index")) >= 0.6)]
    weak = [name for name in models if name not in discriminating]
    if discriminating:
        lines.append("It can tell: " + "; ".join(
            f"{label[name]} (C {_figure(models[name], 'c_index')})" for name in discriminating)
            + ", mainly from marrow blast burden, each with a 95 % confidence interval.")
    if weak:
        lines.append("It can hardly tell apart patients' " + ", ".join(label[name] for name in weak)
                     + " (C " + ", ".join(_figure(models[name], "c_index") for name in weak)
                     + "): these curves stay close to the cohort's average.")
    informative = _informative_inputs(models)
    if informative:
        lines.append("Inputs that move a prediction beyond its uncertainty: " + "; ".join(informative) + ".")
    lines.append("It cannot tell the effect of bridging therapy, dose, another CAR-T product or "
                 "conditioning, nor survival beyond the cohort's follow-up.")
    lines.append("Read each prediction with its interval; it supports and does not replace "
                 "clinical judgement.")
    return lines[:MAX_HEADLINE_LINES]


def _informative_inputs(models: Mapping[str, Any]) -> list[str]:
    found: dict[str, list[str]] = {}
    for name, card in models.items():
        for feature in card.get("features", []):
            key = feature["name"] if isinstance(feature, Mapping) else str(feature)
            c = (card.get("coefficients") or {}).get(key) or {}
            low, high = c.get("ci95") or (None, None)
            spread = c.get("across_members") or {}
            effects = spread.get("with_effect_range")
            every = (not spread.get("no_effect") and effects is not None
                     and (effects[0] > 0 or effects[1] < 0))  # each reconstruction, same sign
            if low is not None and (low > 0 or high < 0 or every) and not c.get("shrunk_to_zero"):
                text = feature.get("label", key) if isinstance(feature, Mapping) else key
                found.setdefault(text, []).append(BY_NAME[name].short_label if name in BY_NAME else name)
    return [f"{feature} ({', '.join(names)})" for feature, names in found.items()]


def card(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Everything the card's pages say in words: ``headline``, ``limitations`` and
    ``limitation_detail``, ``interval_caption`` and ``validation_caption``."""
    lines, detail = limitations(manifest)
    return {"headline": headline(manifest), "limitations": lines, "limitation_detail": detail,
            "interval_caption": interval_caption(manifest),
            "validation_caption": validation_caption(manifest)}
