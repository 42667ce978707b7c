"""The JSON API's answer for one patient (shape: docs/api.md), shared by the page, CLI and FHIR.

Probabilities and survival are rounded to 3 decimals, months to 2 (:mod:`model.rounding`); the
answer also says what each number rests on (:func:`evidence_labels`), where an updated bundle comes
from (:func:`lineage_summary`) and which estimates rest on few patients
(:func:`few_at_risk_warnings`).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from model.bundle_kind import SINGLE, Basis, bundle_basis
from model.errors import FieldError, InputError
from model.evaluation import HORIZONS_MONTHS, SurvivalCurves, predict
from model.outcomes import LOGISTIC_NAMES, NAMES, SURVIVAL_NAMES
from model.patient import SUBGROUP_LABELS, population_refusal
from model.provenance import is_reconstructed
from model.rounding import MONTH_DECIMALS, round_value, round_values
from model.survival import FEW_AT_RISK_FRACTION, FEW_AT_RISK_PATIENTS, few_at_risk

if TYPE_CHECKING:
    from model.bundle import LoadedBundle
    from model.bundle_kind import CohortTimes


def prediction_answer(bundle: LoadedBundle, patient: Mapping[str, Any]) -> dict[str, Any]:
    """The API answer for one parsed patient (shape: docs/api.md).

    Probabilities and survival are rounded to 3 decimals, months to 2; every number is finite
    (``None`` where there is no value). A model the bundle lacks answers ``None`` with a warning.

    Raises
    ------
    InputError
        For a patient outside the modelled population (field ``marrow_blasts_pct``).
    """
    refusal = population_refusal(patient)
    if refusal:
        raise InputError([FieldError("marrow_blasts_pct", refusal)])
    predictions = predict(bundle, [patient])
    answer: dict[str, Any] = {}
    for name in LOGISTIC_NAMES:
        result = getattr(predictions, name)
        answer[name] = None if result is None else {
            "probability": round_value(result.probability[0]),
            "ci95": [round_value(result.lower[0]), round_value(result.upper[0])]}
    if answer["severe_crs"] is not None:
        answer["severe_crs"]["band"] = _band(str(predictions.burden_subgroup[0]),
                                             predictions.scrs_band[0])
    curves = {name: getattr(predictions, name) for name in SURVIVAL_NAMES}
    survival = _survival_answers(bundle, {k: v for k, v in curves.items() if v is not None})
    answer.update((name, survival.get(name)) for name in SURVIVAL_NAMES)
    cohort_notes = [note for name in SURVIVAL_NAMES if curves[name] is not None
                    for note in _cohort_facts(bundle, name).warnings]
    missing = [name for name in NAMES if answer[name] is None]
    answer["warnings"] = predictions.warnings[0] + cohort_notes + [
        f"{name}: this bundle has no {name} model (its training cohort lacked the outcome)"
        for name in missing]
    manifest = bundle.manifest
    basis = _basis(bundle)
    answer["model"] = {"id": bundle.id, "provenance": manifest.get("provenance"),
                       "trained_on": basis.trained_on if basis.root_n is not None else None,
                       "created": manifest.get("created"),
                       "lineage": lineage_summary(manifest)}
    if basis.reconstructions > 1:
        answer["model"]["reconstructions"] = basis.reconstructions
    if curves and basis.kind != SINGLE:  # what the numbers at risk count
        answer["model"]["at_risk"] = basis.counts_label
    answer["model"]["evidence"] = evidence_labels(manifest)
    return answer


def _basis(bundle: LoadedBundle) -> Basis:
    return bundle.basis or bundle_basis(bundle.manifest)


#: Evidence labels: what each number shown rests on.
EVIDENCE_PUBLISHED = "published"
EVIDENCE_DERIVED = "derived from published numbers"
EVIDENCE_ASSUMED = "assumed"
EVIDENCE_MODEL = "model output"


def evidence_labels(manifest: Mapping) -> dict[str, str]:
    """What the answer's numbers rest on, by key (for the API, page, CLI and report)."""
    reconstructed = is_reconstructed(manifest)
    basis = bundle_basis(manifest)
    trained = ("trained on cohorts reconstructed from published aggregates; the 95 % interval "
               "covers sampling and reconstruction uncertainty" if basis.reconstructions > 1
               and basis.root_reconstructed else
               "trained on one cohort reconstructed from published aggregates"
               if basis.root_reconstructed else "trained on the center's cohort")
    if basis.updates:
        trained += f"; {basis.trained_on}"
    out = {name: f"{EVIDENCE_MODEL} ({trained})" for name in NAMES}
    if basis.bands_observed:
        out["severe_crs.band"] = "observed in the center's cohort"
    elif reconstructed:
        out["severe_crs.band"] = (f"{EVIDENCE_ASSUMED}: the five-subgroup split is assumption A1 "
                                  "(a reconstruction, not observed)")
        out["severe_crs.band.published"] = (f"{EVIDENCE_PUBLISHED}: two burden groups (4/33 vs 19/45, "
                                            f"{EVIDENCE_DERIVED} from the printed Fisher P)")
    else:
        out["severe_crs.band"] = "observed in the center's cohort"
    return out


@dataclass(frozen=True)
class _CohortFacts:
    """What a survival answer says that depends on the bundle only, not on the patient."""

    months: tuple[float, ...]  # the curve's months, rounded for the answer
    horizons: tuple[int, ...]
    columns: tuple[int, ...]  # grid column of each horizon
    reported: tuple[bool, ...]  # whether each horizon lies within follow-up
    at_risk: tuple[int | None, ...]  # training patients at risk at each horizon
    warnings: tuple[str, ...]  # the few-at-risk warnings
    at_risk_range: tuple | None = None  # per horizon [min, max] over the reconstructions


@functools.lru_cache(maxsize=8)  # a few bundles x 2 outcomes: a replaced bundle is soon let go
def _cohort_facts(bundle: LoadedBundle, name: str) -> _CohortFacts:
    """The patient-independent part of a survival answer, worked out once a bundle and outcome."""
    curves_months = bundle.predictor.models[name].months
    follow_up = bundle.follow_up.get(name)
    horizons = list(HORIZONS_MONTHS)
    columns = np.searchsorted(curves_months, horizons, side="right") - 1
    reported = [h <= bundle.predictor.models[name].max_follow_up_months for h in horizons]
    counts = (follow_up.at_risk(horizons).tolist() if follow_up is not None
              else [None] * len(horizons))
    at_risk = {str(h): count if shown else None
               for h, count, shown in zip(horizons, counts, reported)}
    spread = None
    if follow_up is not None and len(follow_up.members) > 1:
        low, high = follow_up.at_risk_range(horizons)
        spread = tuple([int(a), int(b)] if shown else None
                       for a, b, shown in zip(low, high, reported))
    return _CohortFacts(tuple(round_values(curves_months, MONTH_DECIMALS)), tuple(horizons),
                        tuple(columns.tolist()), tuple(reported), tuple(at_risk.values()),
                        tuple(few_at_risk_warnings(name, at_risk, follow_up, _basis(bundle))),
                        spread)


def _survival_answers(bundle: LoadedBundle,
                      curves: Mapping[str, SurvivalCurves]) -> dict[str, dict[str, Any]]:
    """One patient's survival answers: each curve and band, and its 6 / 12 / 24-month values.

    ``at`` keeps its shape (month -> survival); ``at_ci95`` (month -> [lower, upper]) and
    ``at_risk`` (month -> training patients still followed then) sit beside it, each ``None``
    past the last follow-up (``at_risk`` also when the bundle's cohort has no follow-up times).
    """
    # one rounding pass over every curve (one call costs more than its numbers)
    rounded = round_values(np.concatenate([values[0] for result in curves.values()
                                           for values in (result.survival, result.lower,
                                                          result.upper)] or [np.empty(0)]))
    answers, start = {}, 0
    for name, result in curves.items():
        facts, size = _cohort_facts(bundle, name), result.months.size
        survival, lower, upper = (rounded[start + k * size:start + (k + 1) * size]
                                  for k in range(3))
        start += 3 * size
        shown = list(zip(facts.horizons, facts.columns, facts.reported))
        answers[name] = {
            "months": list(facts.months), "survival": survival, "lower": lower, "upper": upper,
            "at": {str(h): survival[i] if ok else None for h, i, ok in shown},
            "at_ci95": {str(h): [lower[i], upper[i]] if ok else None for h, i, ok in shown},
            "at_risk": dict(zip(map(str, facts.horizons), facts.at_risk))}
        if facts.at_risk_range is not None:  # an ensemble: the mean count's range
            answers[name]["at_risk_range"] = dict(zip(map(str, facts.horizons),
                                                      facts.at_risk_range))
    return answers


def few_at_risk_warnings(name: str, at_risk: Mapping[str, int | None],
                          follow_up: CohortTimes | None, basis: Basis | None = None) -> list[str]:
    """A warning for each horizon whose estimate rests on few patients.

    Parameters
    ----------
    name : str
        ``"efs"`` or ``"os"``.
    at_risk : mapping
        The survival answer's ``at_risk`` (month -> patients at risk, or None; for an ensemble
        the mean over its reconstructions).
    follow_up : model.bundle_kind.CohortTimes, optional
        The training cohort's follow-up times (``n``: patients of one cohort).
    basis : model.bundle_kind.Basis, optional
        What the counts are (default: one training cohort).
    """
    if follow_up is None:
        return []
    n = follow_up.n
    who = basis.patients_label if basis is not None else "training patients"
    rule = (f" ({basis.counts_label})" if basis is not None and basis.reconstructions > 1
            and not basis.updates else "")
    return [f"{name} at {months} months: only {count} of the {n} {who} remained "
            f"at risk{rule} (fewer than {FEW_AT_RISK_FRACTION * 100:g} % of the cohort or "
            f"{FEW_AT_RISK_PATIENTS} patients); this estimate rests on few patients"
            for months, count in at_risk.items()
            if count is not None and few_at_risk(count, n)]


def lineage_summary(manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """Where an updated bundle comes from (``manifest["lineage"]``, see docs/bundle-format.md).

    Returns
    -------
    None for a bundle trained from scratch; else the parent bundle's id and provenance, the update
    cohort's SHA-256 and patient count, and each model's update method.
    """
    lineage = manifest.get("lineage")
    if not lineage:
        return None
    parent = lineage.get("parent", {})
    cohort = lineage.get("update_cohort", {})
    return {"parent_id": parent.get("id"), "parent_provenance": parent.get("provenance"),
            "update_cohort_sha256": cohort.get("sha256"), "update_cohort_n": cohort.get("n"),
            "methods": {name: record.get("method")
                        for name, record in lineage.get("models", {}).items()}}


def _band(subgroup: str, row: Mapping | None) -> dict[str, Any] | None:
    if row is None:
        return None
    ci = row.get("ci95") or [None, None]
    band = {"subgroup": subgroup, "label": row.get("label") or SUBGROUP_LABELS[subgroup],
            "observed": {"events": row.get("events"), "n": row.get("n"),
                         "rate": (round_value(row["rate"]) if row.get("rate") is not None
                                  else None),
                         "ci95": [None if c is None else round_value(c) for c in ci]}}
    if row.get("rate_range") is not None:
        # An ensemble bundle: "observed" holds the mean over the reconstructions (kept for
        # compatibility); the range and the published groups say what is known.
        band["reconstructed"] = {"rate_range": [round_value(v) for v in row["rate_range"]],
                                 "n_range": list(row.get("n_range") or []),
                                 "reconstructions": row.get("members"), "evidence": row.get("evidence")}
    if row.get("published_group") is not None:
        band["published"] = dict(row["published_group"])
    return band

