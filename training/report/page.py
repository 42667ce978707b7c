"""The statistician's HTML report of a bundle (``cart-risk report``).

One self-contained page (inline CSS, figures as base64 SVG, no script, nothing fetched): provenance,
cohort summary, model cards with coefficients, sample-size criteria and warnings, the validation
table, calibration / ROC / decision curves for the binary models, observed Kaplan-Meier against
mean predicted survival for the time-to-event models, proportional-hazards tests, the sCRS band
table, an audit of the stored estimators, and -- for the reconstructed cohort -- every assumption of
the reconstruction. Everything is computed from the verified bundle alone: the numbers by
:mod:`training.report.curves` and :mod:`training.report.sections`, the page by the autoescaping templates
of ``training/report/templates/`` (``report.html``).
"""
from __future__ import annotations

import hashlib
import io
import sys
import warnings
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from model import card_text
from model.atomic import write_atomic
from model.bundle import TRAINING_DATA, LoadedBundle, load_estimators, load_predictor
from model.bundle_kind import ENSEMBLE, Basis, split_members
from model.cohort import CohortError, validate_cohort
from model.errors import BundleError
from model.outcomes import labels as outcome_labels
from model.predictor import predict
from model.provenance import is_reconstructed
from training.report import curves, ensemble_section, members, plots
from training.simulation import tables
from training.simulation.honest import honest_intervals
from training.paper.analyses import derive
from training.report.markdown_blocks import markdown_blocks
from training.report.sections import audit_rows, cohort_rows, model_card, validation_rows
from training.report.templating import render

MODEL_TITLES = outcome_labels("title")


def markdown_to_html(markdown: str) -> str:
    """Headings, bullet lists (with indented continuation lines) and paragraphs; text escaped."""
    return render("markdown.html", blocks=markdown_blocks(markdown))


def assumptions_markdown() -> str | None:
    """Text of the packaged ``training/data/ASSUMPTIONS.md``, or None when it is not installed."""
    try:
        return resources.files("training").joinpath("data/ASSUMPTIONS.md").read_text("utf-8")
    except (FileNotFoundError, OSError):
        return None


# --------------------------------------------------------------------------- inputs


def _training_cohort(bundle: LoadedBundle) -> pd.DataFrame:
    """The bundle's training cohort, read from bytes whose hash matches the manifest."""
    content = (bundle.path / TRAINING_DATA).read_bytes()
    if hashlib.sha256(content).hexdigest() != bundle.manifest["files"][TRAINING_DATA]:
        raise BundleError("file-hash", TRAINING_DATA, "changed while being loaded")
    raw = pd.read_csv(io.BytesIO(content), dtype=str, keep_default_na=False, encoding="utf-8")
    return validate_cohort(raw, source=str(bundle.path / TRAINING_DATA))


def _estimators(bundle_dir) -> tuple[dict | None, list[str]]:
    """Stored estimators (after hash verification) and any version notes; None if unloadable."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            estimators = load_estimators(bundle_dir)
        except BundleError as problem:
            return None, [str(problem)]
    return estimators, [str(w.message) for w in caught]


# --------------------------------------------------------------------------- page data


def _provenance(manifest: dict, basis: Basis) -> dict:
    cohorts = (f"{basis.reconstructions} cohorts of {basis.root_n} patients each"
               if basis.reconstructions > 1 else f"a cohort of {basis.root_n} patients")
    return {"reconstructed": is_reconstructed(manifest), "n": basis.root_n, "cohorts": cohorts,
            "trained_on": basis.trained_on, "updated": bool(basis.updates),
            "provenance": manifest.get("provenance"),
            "source_file": manifest.get("training_data", {}).get("source_file", "")}


def _cohort_note(basis: Basis) -> str | None:
    """What the cohort table counts, for an ensemble or an updated bundle (None for one cohort)."""
    if basis.updates:
        return (f"The update cohort: {basis.cohort_n} center patients, observed. The bundle rests "
                f"on {basis.trained_on}.")
    if basis.reconstructions > 1:
        return (f"Each figure is the {basis.counts_label} (each computed on one reconstruction "
                f"of {basis.root_n} patients, then averaged); brackets give the range of the "
                "first figure across them. The stacked file is never counted as one cohort.")
    return None


def _header_rows(bundle: LoadedBundle) -> list[tuple[str, object]]:
    m = bundle.manifest
    return [("bundle id (SHA-256 of manifest.json)", bundle.id), ("created", m.get("created")),
            ("source", m.get("source")),
            ("training data SHA-256", m.get("training_data", {}).get("sha256")),
            ("bootstrap repetitions / seed", f"{m.get('bootstrap')} / {m.get('seed')}"),
            ("feature configuration", m.get("features_config", {}).get("source")),
            ("CRS grading", m.get("crs_scale")),
            ("packages", ", ".join(f"{k} {v}" for k, v in m.get("packages", {}).items()))]


def _binary_figures(name: str, ys: list[np.ndarray], ps: list[np.ndarray], entry: dict) -> list[tuple]:
    """(id, data URI, caption) of the calibration, ROC and decision curves of a binary model.

    One (y, p) pair a reconstruction; several are summarized by :mod:`training.report.members`.
    """
    label = "P(CR)" if name == "cr" else "P(severe CRS)"
    # The decision for CR is acting on the risk of no response (e.g. debulking or another
    # therapy), so the decision curve uses 1 - P(CR) with no response as the event.
    flip = name == "cr"
    risks = [1 - p if flip else p for p in ps]
    events = [1 - y if flip else y for y in ys]
    what = "risk of no response (1 - P(CR))" if flip else "risk of severe CRS"
    auc = entry.get("apparent", {}).get("c_index")
    if len(ys) == 1:
        calibration = curves.calibration_curve(ys[0], ps[0])
        roc_points = curves.roc_points(ys[0], ps[0])
        decision = curves.decision_curve(events[0], risks[0])
        each = ""
    else:
        calibration = members.mean_calibration(ys, ps)
        roc_points = members.mean_roc(ys, ps)
        decision = members.mean_decision_curve(events, risks)
        each = (f" Computed on each of the {len(ys)} reconstructions and averaged (mean of "
                f"{len(ys)} reconstructions: each group's rate and Wilson limits, each curve "
                "pointwise).")
    calibration_plot = plots.calibration_figure(calibration, f"Calibration: {label}")
    roc = plots.roc_figure(*roc_points, f"ROC: {label}", auc)
    decision_plot = plots.decision_curve_figure(decision, f"Decision curve: {what}")
    return [(f"fig-calibration-{name}", plots.figure_data_uri(calibration_plot),
             f"Calibration of {label} (apparent, training data): quintile groups with Wilson 95 % "
             "CIs and a loess smooth." + each),
            (f"fig-roc-{name}", plots.figure_data_uri(roc), f"ROC curve of {label} (apparent)." + each),
            (f"fig-decision-{name}", plots.figure_data_uri(decision_plot),
             f"Net benefit of acting when the {what} exceeds the threshold, against acting for all "
             "and for none (apparent)." + each)]


def _survival_figures(name: str, cohorts: list[pd.DataFrame], results: list, entry: dict) -> list[tuple]:
    """(id, data URI, caption) of the observed-vs-predicted survival figure by burden group."""
    data = (curves.survival_by_burden_group(name, cohorts[0], results[0]) if len(cohorts) == 1
            else members.mean_survival_by_burden_group(name, cohorts, results))
    figure = plots.km_vs_predicted_figure(
        data, f"{name.upper()}: observed vs predicted by burden group", float(entry["max_follow_up_months"]))
    caption = (f"{name.upper()}: Kaplan-Meier with 95 % CI (solid, shaded) and the mean of the "
               "model's predicted survival curves over the same patients (dashed).")
    if len(cohorts) > 1:
        caption += (f" Each curve and each CI limit is the pointwise mean of the {len(cohorts)} "
                    "reconstructions' (mean of the reconstructions, not one stacked cohort).")
    return [(f"fig-km-{name}", plots.figure_data_uri(figure), caption)]


def _pooled_calibration(name: str, entry: dict) -> list[tuple]:
    """(id, data URI, caption) of the pooled model's calibration across the reconstructions."""
    curve = (card_text.pooled_validation(entry) or {}).get("calibration_curve")
    if not curve:
        return []
    what = (f"risk of the event by {curve['horizon_months']:g} months" if curve.get("horizon_months")
            else "probability")
    figure = plots.pooled_calibration_figure(curve, f"Pooled model: calibration ({name})", what)
    return [(f"fig-pooled-calibration-{name}", plots.figure_data_uri(figure),
             f"Calibration of the pooled model that is served, on each of the "
             f"{curve['members']} reconstructions (apparent): loess of the observed outcome on the "
             "predicted risk (survival: the hazard regression of the ICI), median and range over the "
             "reconstructions.")]


def _models(manifest: dict, cohorts: list[pd.DataFrame], predictions: list) -> list[dict]:
    models = []
    for name, entry in manifest["models"].items():
        results = [getattr(p, name) for p in predictions]
        columns = ([("cr" if name == "cr" else "severe_crs")] if entry["kind"] == "logistic"
                   else [f"{name}_months", f"{name}_event"])
        if any(result is None for result in results) or not all(
                column in cohort for cohort in cohorts for column in columns):
            figures = []  # an updated bundle's model kept as it was: its cohort lacks the outcome
        elif entry["kind"] == "logistic":
            figures = _binary_figures(name, [c[columns[0]].to_numpy(int) for c in cohorts],
                                      [r.probability for r in results], entry)
        else:
            figures = _survival_figures(name, cohorts, results, entry)
        figures += _pooled_calibration(name, entry)
        models.append({"title": MODEL_TITLES.get(name, name), "card": model_card(name, entry),
                       "figures": figures})
    return models


def render_report(bundle_dir) -> str:
    """The report of the bundle in ``bundle_dir`` as an HTML string.

    Raises
    ------
    model.errors.BundleError
        The bundle fails verification.
    """
    bundle = load_predictor(bundle_dir)
    manifest = bundle.manifest
    basis = bundle.basis
    estimators, estimator_notes = _estimators(bundle_dir)
    cohorts = [derive(member) for member in split_members(_training_cohort(bundle), basis.stacked)]
    predictions = [predict(bundle, cohort) for cohort in cohorts]
    reconstructed = is_reconstructed(manifest)
    # an updated bundle keeps its parent's ensemble block: that describes the parent's members
    ensemble = manifest.get("ensemble") if basis.kind == ENSEMBLE else None
    bands = manifest.get("scrs_bands", [])
    assumptions = assumptions_markdown() if reconstructed else None
    return render(
        "report.html", title=f"cart-risk report {bundle.id[:12]}",
        provenance=_provenance(manifest, basis), lineage=manifest.get("lineage"),
        card=card_text.card(manifest),
        header_rows=_header_rows(bundle), dose_note=manifest.get("dose_note"),
        unavailable=list(manifest.get("unavailable_models", {}).values()),
        cohort_rows=members.mean_cohort_rows([cohort_rows(cohort) for cohort in cohorts]),
        cohort_note=_cohort_note(basis), validation_rows=validation_rows(manifest),
        horizon=manifest.get("horizon_months", 12),
        methods_used={name: entry.get("method", {}).get("name", "aic_ridge")
                      for name, entry in manifest.get("models", {}).items()},
        study=tables.report_study(), coverage=honest_intervals(manifest),
        models=_models(manifest, cohorts, predictions),
        ensemble=ensemble,
        ensemble_rows=ensemble_section.output_rows(ensemble) if ensemble else [],
        informative_rows=ensemble_section.informative_rows(manifest["models"]) if ensemble else [],
        bands=bands, reconstructed=reconstructed,
        ensemble_bands=any("rate_range" in row for row in bands),
        bands_reconstructed=basis.root_reconstructed and not basis.bands_observed,
        audit_rows=audit_rows(manifest, bundle.params, estimators) if estimators is not None else [],
        audit_loaded=estimators is not None, estimator_notes=estimator_notes,
        assumptions=markdown_blocks(assumptions) if assumptions is not None else None)


def write_report(bundle_dir, out_file) -> Path:
    """Write the HTML report of a bundle to ``out_file`` (written whole, then renamed into place).

    Returns
    -------
    pathlib.Path
        The written file.
    """
    return write_atomic(Path(out_file), render_report(bundle_dir))


def report_command(bundle, out) -> int:
    """``cart-risk report``: write the report; 0 on success, else a message on stderr and the exit
    code of docs/cli.md (2 for a training cohort that fails the schema, 1 for any other failure)."""
    try:
        path = write_report(bundle, out)
    except CohortError as error:
        print(f"cart-risk report: {error}", file=sys.stderr)
        return 2
    except BundleError as error:
        print(f"cart-risk report: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"cart-risk report: cannot write {out}: {error.strerror or error}", file=sys.stderr)
        return 1
    print(f"report written to {path}")
    return 0
