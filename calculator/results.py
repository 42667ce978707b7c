"""What a result page shows, built from the same answer the API gives.

:func:`result_view` calls :func:`model.predictor.prediction_answer` once for the parsed patient,
exactly as the API does, and adds only what a page lays out beside it: all five sCRS bands, the
survival values at 6 / 12 / 24 months with their intervals, the debulking-target comparison and
the model's basis (validation metrics from the manifest). Nothing here computes a second version of
a number the API returns.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from model import card_text
from model.bundle import LoadedBundle
from model.bundle_kind import SINGLE
from model.burden import SUBGROUP_LABELS
from model.errors import FieldError, InputError
from model.outcomes import LOGISTIC_NAMES, SURVIVAL_NAMES
from model.outcomes import labels as outcome_labels
from model.patient import PATIENT_FIELDS
from model.predictor import (HORIZONS_MONTHS, few_at_risk_warnings, predict_points,
                             prediction_answer)
from model.provenance import is_reconstructed as is_reconstructed_manifest

#: Name of the optional form field holding the blast percentage hoped for after debulking.
TARGET_FIELD = "target_marrow_blasts_pct"

#: Label of every outcome (calculator page, CLI), and the shorter one for narrow tables.
OUTCOME_LABELS = outcome_labels("label")
SHORT_OUTCOME_LABELS = outcome_labels("short_label")
#: Compact blast ranges of the burden subgroups, for narrow tables (the full label is kept too).
SUBGROUP_SHORT_LABELS = {"a": "0 %, MRD+", "b": ">0 to <5 %", "c": "5 to <20 %",
                         "d": "20 to <50 %", "e": "\u226550 %"}
METRIC_LABELS = {
    "c_index": "C-index (discrimination)",
    "calibration_slope": "Calibration slope (1 = ideal)",
    "calibration_intercept": "Calibration intercept (0 = ideal)",
    "brier": "Brier score (lower is better)",
}
#: Blast percentages of the treatment-window curves: 0.01 % (the MRD floor) to 100 %, log-spaced.
WINDOW_GRID_PCT = np.logspace(-2, 2, 121)


def _percent_number(value: float) -> str:
    """Whole percent, with one decimal where rounding would show 0 or 100 for a value between."""
    whole = round(value * 100)
    if 0 < value < 0.0005:
        return "<0.1"
    if (whole == 0 and value > 0) or (whole == 100 and value < 1):
        return f"{min(value * 100, 99.9):.1f}"
    return f"{whole:.0f}"


def percent(value: float | None) -> str:
    """A probability (0-1) as a percentage for display: ``0.812`` -> ``"81 %"``."""
    if value is None:
        return "\u2014"
    return f"{_percent_number(value)} %"


def percent_interval(bounds: list | None, dash: str = "\u2013") -> str:
    """A 95 % interval (0-1) as ``"70\u201390 %"`` (``dash`` between the bounds)."""
    if not bounds or bounds[0] is None or bounds[1] is None:
        return "not available"
    low, high = (_percent_number(v) for v in bounds)
    return f"{low}{dash}{high} %"


def percentage_points(change: float | None) -> str:
    """A difference of two probabilities in percentage points, signed: ``"+7 points"``."""
    if change is None:
        return "\u2014"
    rounded = round(change * 100)
    sign = "+" if rounded > 0 else "\u2212" if rounded < 0 else "\u00b1"
    return f"{sign}{abs(rounded)} point{'s' if abs(rounded) != 1 else ''}"


def patient_query(patient: Mapping[str, Any]) -> dict[str, str]:
    """A parsed patient as the text a form or query string carries (``parse_form`` reads it back)."""
    query = {}
    for name, value in patient.items():
        if isinstance(value, bool):
            query[name] = "true" if value else "false"
        elif isinstance(value, float):
            query[name] = f"{value:g}"
        else:
            query[name] = str(value)
    return query


def describe_value(name: str, value: Any) -> str:
    """A patient value as a clinician reads it (``"12 %"``, ``"yes"``, ``"male"``)."""
    spec = PATIENT_FIELDS[name]
    if spec.kind == "boolean":
        return "yes" if value else "no"
    if spec.kind == "choice":
        return spec.choices.get(value, str(value))
    unit = f" {spec.unit}" if spec.unit else ""
    return f"{value:g}{unit}"


def parse_target(text: str | None, patient: Mapping[str, Any]) -> float | None:
    """Read the optional debulking target (marrow blasts, %), checked like the blasts field.

    Raises
    ------
    InputError
        On field ``target_marrow_blasts_pct``: not a number in 0-100, or not below the current
        blasts.
    """
    from model.patient import parse_form

    if text is None or not str(text).strip():
        return None
    try:
        # MRD is given only because the parser always requires it; only the blasts are read.
        target = parse_form({"marrow_blasts_pct": text, "mrd_positive": "true"})
    except InputError as error:
        raise InputError([FieldError(TARGET_FIELD, problem.message)
                          for problem in error.errors]) from None
    blasts = target["marrow_blasts_pct"]
    if blasts >= patient["marrow_blasts_pct"]:
        raise InputError([FieldError(
            TARGET_FIELD, f"must be below the current marrow blasts "
                          f"({patient['marrow_blasts_pct']:g} %) (got {blasts:g})")])
    return blasts


def survival_at(curve: Mapping[str, Any] | None, months: int) -> dict[str, Any] | None:
    """Survival, its 95 % interval and the cohort at risk at ``months``; None past follow-up."""
    if curve is None or curve["at"].get(str(months)) is None:
        return None
    lower, upper = curve["at_ci95"][str(months)]
    return {"survival": curve["at"][str(months)], "lower": lower, "upper": upper,
            "at_risk": curve["at_risk"].get(str(months)),
            "at_risk_range": (curve.get("at_risk_range") or {}).get(str(months))}


def band_rows(bundle: LoadedBundle, subgroup: str | None) -> list[dict[str, Any]]:
    """The five sCRS bands of the bundle in subgroup order, the patient's marked ``current``."""
    rows = []
    for letter in "abcde":
        row = bundle.predictor.scrs_bands.get(letter)
        if row is None:
            continue
        rows.append({"subgroup": letter, "label": row.get("label") or SUBGROUP_LABELS[letter],
                     "short_label": SUBGROUP_SHORT_LABELS[letter],
                     "events": row.get("events"), "n": row.get("n"), "rate": row.get("rate"),
                     "ci95": row.get("ci95") or [None, None], "current": letter == subgroup,
                     "rate_range": row.get("rate_range"), "n_range": row.get("n_range"),
                     "published": row.get("published_group")})
    return rows


EVIDENCE_KEY_LABELS = {"cr": "remission", "severe_crs": "severe CRS", "efs": "EFS", "os": "OS",
                       "severe_crs.band": "sCRS band", "severe_crs.band.published": "published sCRS"}


def evidence_groups(answer: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The answer's evidence labels with equal labels grouped: [("remission, severe CRS", label)]."""
    groups: dict[str, list[str]] = {}
    for key, label in ((answer.get("model") or {}).get("evidence") or {}).items():
        groups.setdefault(label, []).append(EVIDENCE_KEY_LABELS.get(key, key))
    return [(", ".join(keys), label) for label, keys in groups.items()]


def band_basis(bundle: LoadedBundle) -> dict[str, Any]:
    """What the sCRS band counts are: a center's observation, one reconstruction, or an ensemble.

    A reconstructed count is never headed "observed": its five-subgroup split is assumption A1.
    """
    basis = bundle.basis
    if any(row.get("rate_range") for row in bundle.predictor.scrs_bands.values()):
        return {"ensemble": True, "patients": "reconstructed patients",
                "header": f"Rate across {basis.reconstructions} reconstructions (assumed split; "
                          "n range)", "figure": "range across reconstructions"}
    if basis.bands_observed:
        who = "center patients" if basis.updates else "cohort patients"
        return {"ensemble": False, "patients": who, "header": "Observed in cohort (95 % CI)",
                "figure": "observed"}
    if basis.root_reconstructed:
        return {"ensemble": False, "patients": "patients of the reconstructed cohort",
                "header": "Reconstructed cohort, assumed split (95 % CI)",
                "figure": "reconstructed, assumed split"}
    return {"ensemble": False, "patients": "cohort patients", "header": "Observed in cohort (95 % CI)",
            "figure": "observed"}


def at_risk_label(bundle: LoadedBundle) -> str:
    """What the result page's numbers at risk count: "training cohort" for a single cohort, else
    the bundle's rule ("mean of 20 reconstructions", "observed in the update cohort ...")."""
    basis = bundle.basis
    return "training cohort" if basis.kind == SINGLE else basis.counts_label


def model_basis(bundle: LoadedBundle) -> list[dict[str, Any]]:
    """Per model: outcome, n, events, events per variable and validation metrics (manifest)."""
    basis = []
    for name, label in OUTCOME_LABELS.items():
        card = bundle.manifest.get("models", {}).get(name)
        if not card:
            continue
        corrected = card.get("optimism_corrected") or {}
        apparent = card.get("apparent") or {}
        basis.append({
            "name": name, "label": label, "short_label": SHORT_OUTCOME_LABELS[name],
            "kind": card.get("kind"), "n": card.get("n"),
            "events": card.get("events"), "events_per_variable": card.get("events_per_variable"),
            "bootstrap": card.get("bootstrap"), "horizon_months": card.get("horizon_months"),
            "events_label": card.get("events_label"), "outcome": card.get("outcome"),
            "corrected": corrected, "warnings": card.get("warnings") or [],
            "corrected_texts": {key: card_text.short_validation_text(card, key) for key in METRIC_LABELS},
            "metrics": [{"name": key, "label": text, "apparent": apparent.get(key),
                         "corrected": corrected.get(key),
                         "apparent_text": card_text.validation_text(card, key, "apparent"),
                         "corrected_text": card_text.validation_text(card, key, "corrected")}
                        for key, text in METRIC_LABELS.items()
                        if key in corrected or key in apparent],
        })
    return basis


def is_reconstructed(bundle: LoadedBundle) -> bool:
    """Whether the bundle was trained on the reconstructed (synthetic) cohort."""
    return is_reconstructed_manifest(bundle.manifest)


def result_view(bundle: LoadedBundle, patient: Mapping[str, Any],
                target_blasts: float | None = None) -> dict[str, Any]:
    """Everything the result page shows for one parsed patient.

    Parameters
    ----------
    bundle : LoadedBundle
    patient : mapping
        From :func:`model.patient.parse_form` / :func:`~model.patient.parse_patient`.
    target_blasts : float, optional
        Marrow blasts (%) hoped for after debulking (:func:`parse_target`).

    Returns
    -------
    dict
        ``answer`` (the API answer, unchanged), ``bands``, ``survival`` (per outcome: rows at
        6 / 12 / 24 months with the numbers at risk, and the follow-up limit), ``target`` (or
        None), ``inputs`` (the form's text of every value, for the "Change inputs" button).

    Raises
    ------
    InputError
        As :func:`~model.predictor.prediction_answer` (patient outside the modelled population), or
        on ``target_marrow_blasts_pct`` for a target outside it.
    """
    answer = prediction_answer(bundle, patient)
    band = (answer.get("severe_crs") or {}).get("band") or {}
    survival = {}
    for name in SURVIVAL_NAMES:
        curve = answer.get(name)
        if curve is None:
            continue
        rows = [{"months": h, "value": survival_at(curve, h)} for h in HORIZONS_MONTHS]
        survival[name] = {
            "label": OUTCOME_LABELS[name], "rows": rows,
            "follow_up_months": curve["months"][-1] if curve["months"] else None,
            "few_at_risk": few_at_risk_warnings(name, curve["at_risk"],
                                                bundle.follow_up.get(name), bundle.basis),
        }
    cohort_notes = {text for item in survival.values() for text in item["few_at_risk"]}
    target = None
    if target_blasts is not None:
        try:
            target_answer = prediction_answer(bundle, {**patient,
                                                       "marrow_blasts_pct": target_blasts})
        except InputError as error:
            raise InputError([FieldError(TARGET_FIELD, problem.message)
                              for problem in error.errors]) from None
        target = {"blasts": target_blasts, "answer": target_answer,
                  "subgroup": ((target_answer.get("severe_crs") or {}).get("band") or {})
                  .get("subgroup")}
    inputs = {**patient_query(patient),
              **({TARGET_FIELD: f"{target_blasts:g}"} if target_blasts is not None else {})}
    return {"patient": dict(patient), "answer": answer, "subgroup": band.get("subgroup"),
            "bands": band_rows(bundle, band.get("subgroup")), "band_basis": band_basis(bundle),
            "evidence": evidence_groups(answer),
            "survival": survival,
            "target": target, "inputs": inputs,
            "input_warnings": [text for text in answer["warnings"] if text not in cohort_notes]}


def treatment_window(bundle: LoadedBundle, patient: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """CR and sCRS probabilities (with 95 % bounds) over :data:`WINDOW_GRID_PCT`, other inputs fixed.

    Returns
    -------
    dict
        ``blasts`` (the grid, %) and, per logistic model in the bundle, ``<model>``,
        ``<model>_lower``, ``<model>_upper`` arrays (0-1).
    """
    grid = WINDOW_GRID_PCT
    columns = {name: np.repeat(np.asarray([value]), grid.size) for name, value in patient.items()}
    columns["marrow_blasts_pct"] = grid
    points = predict_points(bundle, columns, intervals=True)
    curves = {"blasts": grid}
    for name in LOGISTIC_NAMES:
        if name in points:
            for suffix in ("", "_lower", "_upper"):
                curves[name + suffix] = points[name + suffix]
    return curves


def coefficient_table(bundle: LoadedBundle) -> dict[str, Any]:
    """Odds / hazard ratios (with 95 % intervals) of every feature in every model, for the card.

    Returns
    -------
    dict
        ``models``: model names in column order; ``rows``: one per feature with ``label``, ``unit``
        (how the ratio is expressed) and ``ratios`` (model -> ``(ratio, [low, high])`` or None).
    """
    models = [name for name in OUTCOME_LABELS if name in bundle.manifest.get("models", {})]
    rows: dict[str, dict[str, Any]] = {}
    for name in models:
        card = bundle.manifest["models"][name]
        for feature in card.get("features", []):
            key = feature["name"] if isinstance(feature, Mapping) else str(feature)
            label = feature.get("label", key) if isinstance(feature, Mapping) else key
            row = rows.setdefault(key, {"name": key, "label": label, "ratios": {}})
            coefficient = card.get("coefficients", {}).get(key) or {}
            if "ratio" in coefficient:
                row["ratios"][name] = (coefficient["ratio"], coefficient.get("ratio_ci95"))
                row.setdefault("texts", {})[name] = card_text.coefficient_text(coefficient)
    return {"models": models, "rows": list(rows.values())}
