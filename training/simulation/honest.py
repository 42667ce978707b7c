"""The "how we know the intervals are honest" section of the model card (/about) and the report:
the coverage study that matches the bundle's kind, read from the packaged files, never typed.

Two studies are packaged in ``training/data/simulation/``:

* ``end_to_end.csv`` / ``.json`` (:mod:`training.simulation.end_to_end`, Amendments 5-6): the
  ENSEMBLE pipeline (trial -> published statistics -> K reconstructions -> ensemble bundle) scored
  against the true risk;
* ``coverage.csv`` / ``.json`` (:mod:`training.simulation.coverage`, Amendment 4): the
  SINGLE-COHORT training procedure scored against the true risk.

Which study leads, by :mod:`model.bundle_kind`: an ensemble bundle leads with the end-to-end study
and shows the direct one after it, "for a center training on one cohort"; a single-cohort bundle
shows the direct study. An updated bundle (or an update of an update) shows the study of the bundle
its chain started from (ensemble: end to end; single cohort: direct), with a note that its models
were changed on center patients afterwards and that no study scored the updated models.

Each study records the features (by model) and methods (by kind) it trained with; where they
differ from the bundle's models, or the study's files do not record them, the section says so
beside the table. K and B of the end-to-end study are compared with the bundle's manifest.

Light on purpose (json, pandas and model/ only): the serving side renders it without scikit-learn,
lifelines or scipy.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import pandas as pd

from model.bundle_kind import bundle_basis
from model.features import FEATURES
from model.outcomes import BY_NAME, NAMES
from training.simulation.tables import read_packaged
from training.simulation.coverage_tables import (AVERAGE_TARGET, CELL_TARGET, OUTPUT_LABELS,
                                                 honest_intervals as direct_study)

END_TO_END_FILES = ("end_to_end.csv", "end_to_end.json")
#: Columns of end_to_end.csv the section reads.
END_TO_END_COLUMNS = ("output", "patient", "coverage", "coverage_mcse", "mean_width", "n_trials",
                      "failures")
KIND_WORDS = {"logistic": "logistic", "cox": "Cox"}


def trained_with(manifest: Mapping[str, Any]) -> dict:
    """What a bundle's models were trained with, from its manifest (docs/bundle-format.md).

    Returns ``{"features": {model: [feature names]}, "methods": {kind: method name}}``: features
    of every model in the bundle (``models.<name>.features``), the method requested for each
    model kind (``methods.<kind>.name``).
    """
    models = manifest.get("models") or {}
    features = {name: [f["name"] if isinstance(f, dict) else str(f)
                       for f in models[name].get("features") or []]
                for name in NAMES if isinstance(models.get(name), dict)}
    methods = {kind: str(block.get("name")) for kind, block in (manifest.get("methods") or {}).items()
               if isinstance(block, dict) and block.get("name")}
    return {"features": features, "methods": methods}


def load_end_to_end(folder=None) -> tuple[pd.DataFrame, dict] | None:
    """The packaged end-to-end study (``folder``: default the installed package data), or None
    when it is not installed or not readable."""
    study = read_packaged("end_to_end.csv", "end_to_end.json", folder)
    if study is None:
        return None
    summary, meta = study
    try:
        counts = [int(meta[key]) for key in ("trials", "failures", "members", "bootstrap")]
    except (KeyError, TypeError, ValueError):
        return None
    if any(c not in summary.columns for c in END_TO_END_COLUMNS) or summary.empty or min(counts) < 0:
        return None
    return summary, meta


def _number(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.{digits}f}"


def _label(output: str) -> str:
    return OUTPUT_LABELS.get(output, output)


def _features_text(features: Mapping[str, list]) -> str:
    """The predictors in words, models with the same list together, e.g. "log10 marrow blasts
    (%), floored at 0.01 % (all four models)" or "... (CR, severe CRS); ... (EFS, OS)"."""
    groups: dict[tuple, list[str]] = {}
    for name, names in features.items():
        groups.setdefault(tuple(names), []).append(name)
    parts = []
    for names, models in groups.items():
        listed = ", ".join(FEATURES[f].label if f in FEATURES else f for f in names) or "no predictor"
        who = ("all four models" if len(models) == len(NAMES)
               else ", ".join(BY_NAME[m].short_label if m in BY_NAME else m for m in models))
        parts.append(f"{listed} ({who})")
    return "; ".join(parts)


def _methods_text(methods: Mapping[str, str]) -> str:
    return ", ".join(f"{m.replace('_', ' ')} ({KIND_WORDS.get(k, k)})" for k, m in methods.items())


def trained_with_text(record: Mapping[str, Any]) -> str:
    """Features and methods in words, e.g. "log10 marrow blasts ... (all four models); fitting
    method firth (logistic), firth (Cox)"."""
    return (f"{_features_text(record['features'])}; fitting method "
            f"{_methods_text(record['methods'])}")


def mismatch_note(study: Mapping[str, Any] | None, bundle: Mapping[str, Any]) -> str | None:
    """The sentence beside a study's table when it did not train this bundle's models, or None.

    ``study`` is the study's record (``features`` and ``methods``; None when its files do not
    record them); ``bundle`` is :func:`trained_with` of the bundle. Only the bundle's models are
    compared (a study trains all four).
    """
    mine = trained_with_text(bundle)
    if not study or not isinstance(study.get("features"), dict) or not isinstance(study.get("methods"), dict):
        return (f"This study's files do not record which predictors and fitting methods its "
                f"models used, so whether it checked models like this bundle's cannot be told. "
                f"This bundle's models use {mine}.")
    features = {name: list(study["features"].get(name) or []) for name in bundle["features"]}
    kinds = {BY_NAME[name].kind for name in bundle["features"] if name in BY_NAME}
    methods = {kind: study["methods"].get(kind) for kind in bundle["methods"] if kind in kinds}
    own = {kind: m for kind, m in bundle["methods"].items() if kind in kinds}
    if features == bundle["features"] and methods == own:
        return None
    return (f"This study trained its models with {trained_with_text(study)}; this bundle's models "
            f"use {mine}. Its table is therefore not this bundle's coverage.")


def end_to_end_table(summary: pd.DataFrame) -> dict:
    """Display table: a row per output, a column per panel patient; each cell the coverage (MCSE),
    the mean width, and whether it is below :data:`CELL_TARGET`."""
    patients = list(dict.fromkeys(summary["patient"]))
    keyed = summary.set_index(["output", "patient"])
    rows = []
    for output in dict.fromkeys(summary["output"]):
        cells = []
        for patient in patients:
            r = keyed.loc[(output, patient)]
            cells.append({"coverage": float(r["coverage"]),
                          "text": f"{_number(r['coverage'])} ({_number(r['coverage_mcse'])})",
                          "width": _number(r["mean_width"], 2),
                          "below": bool(r["coverage"] < CELL_TARGET)})
        rows.append({"output": _label(output), "cells": cells})
    return {"header": patients, "rows": rows}


def end_to_end_part(summary: pd.DataFrame, meta: dict, manifest: Mapping[str, Any]) -> dict:
    """The end-to-end study for this bundle: failures, K and B against the bundle's, target,
    table, cells below target, and the features / methods note."""
    trials, failures = int(meta["trials"]), int(meta["failures"])
    rate = failures / trials if trials else math.nan
    mcse = math.sqrt(rate * (1 - rate) / trials) if trials else math.nan
    members, bootstrap = int(meta["members"]), int(meta["bootstrap"])
    ensemble = manifest.get("ensemble") or {}
    bundle_k = bundle_basis(manifest).reconstructions
    bundle_b = (int(ensemble["bootstrap_per_member"]) * bundle_k
                if ensemble.get("bootstrap_per_member") else manifest.get("bootstrap"))
    sizes = (f"Each trial's ensemble pooled {members} reconstructions with {bootstrap} bootstrap "
             f"refits in total; this bundle pools {bundle_k} with {bundle_b}.")
    if members < bundle_k:
        sizes += (" Fewer reconstructions give narrower intervals, so the study checked intervals "
                  "somewhat narrower than this bundle's.")
    elif members > bundle_k:
        sizes += (" Fewer reconstructions give narrower intervals, so this bundle's may be "
                  "narrower than those the study checked.")
    coverage = summary["coverage"].astype(float)
    average = float(coverage.mean()) if coverage.notna().any() else math.nan
    below = summary[coverage < CELL_TARGET]
    met = bool(below.empty and coverage.notna().all() and average >= AVERAGE_TARGET)
    cells = [f"{_label(r.output)} at {r.patient} {_number(r.coverage)} (MCSE {_number(r.coverage_mcse)})"
             for r in below.itertuples()]
    scored = trials - failures
    story = (f"The ensemble procedure was checked end to end on {trials} simulated trials of 78 "
             "patients, drawn from a process whose true risks are known. For each trial, its "
             "published statistics were recomputed, the trial was rebuilt from them as this "
             "calculator rebuilds Li et al., an ensemble was trained on the rebuilds, and its 95 % "
             f"intervals were compared with the true risk. The generator could not rebuild "
             f"{failures} of the {trials} trials ({100 * rate:.0f} %, MCSE {100 * mcse:.1f} %); the "
             f"other {scored} were scored. {sizes}")
    result = (f"Average coverage {_number(average)} over {len(summary)} cells (output and "
              f"patient); {len(cells)} below {CELL_TARGET:.2f}" + (f": {'; '.join(cells)}" if cells else "")
              + f". Target (at least {CELL_TARGET:.2f} in every cell and {AVERAGE_TARGET:.2f} on "
              f"average): {'met' if met else 'not met'}.")
    return {"missing": False, "trials": trials, "failures": failures, "scored": scored, "failure_rate": rate,
            "failure_rate_mcse": mcse, "members": members, "bootstrap": bootstrap,
            "bundle_members": bundle_k, "bundle_bootstrap": bundle_b, "average": average,
            "cells_below": cells, "target_met": met, "summary": story, "result": result,
            "panel": str(meta.get("panel", "")), "command": str(meta.get("command", "")),
            "note": mismatch_note(meta.get("trained_with"), trained_with(manifest)),
            **end_to_end_table(summary)}


def honest_intervals(manifest: Mapping[str, Any], folder=None) -> dict:
    """The section for the bundle of ``manifest``.

    Returns ``{"kind", "lead", "update_note", "end_to_end", "direct"}``: ``lead`` is
    ``"end_to_end"`` (ensemble-rooted bundles) or ``"direct"``; ``end_to_end`` is
    :func:`end_to_end_part` (None for a single-cohort root, ``{"missing": True}`` when the study is
    not installed); ``direct`` the direct study's table
    (:func:`training.simulation.coverage_tables.honest_intervals`) with its ``note``, or None when
    it is not installed; ``update_note`` says, for an updated bundle, what the studies checked.
    """
    basis = bundle_basis(manifest)
    root_ensemble = basis.reconstructions > 1
    lead = "end_to_end" if root_ensemble else "direct"
    update_note = None
    if basis.updates:
        update_note = (f"This bundle was trained on {basis.trained_on}. The studies below checked "
                       f"the procedure that built the {'ensemble' if root_ensemble else 'bundle'} "
                       "it was updated from, not the update: no study has checked the intervals "
                       "of updated models.")
    e2e = None
    if root_ensemble:
        study = load_end_to_end(folder)
        e2e = {"missing": True} if study is None else end_to_end_part(*study, manifest)
    direct = direct_study(folder)
    if direct is not None:
        direct = {**direct, "note": mismatch_note(direct.get("trained_with"), trained_with(manifest))}
    return {"kind": basis.kind, "lead": lead, "update_note": update_note, "end_to_end": e2e,
            "direct": direct}
