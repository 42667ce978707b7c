"""The statistician's HTML report of a bundle (``cart-risk report``).

One self-contained page (inline CSS, figures as base64 SVG, no script, nothing fetched): provenance,
cohort summary, model cards with coefficients, sample-size criteria and warnings, the validation
table, calibration / ROC / decision curves for the binary models, observed Kaplan-Meier against
mean predicted survival for the time-to-event models, proportional-hazards tests, the sCRS band
table, an audit of the stored estimators, and -- for the reconstructed cohort -- every assumption of
the reconstruction. Everything is computed from the verified bundle alone; all text is escaped.
"""
from __future__ import annotations

import hashlib
import html
import io
import re
import sys
import warnings
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from model.bundle import TRAINING_DATA, LoadedBundle, load_estimators, load_predictor
from model.cohort import CohortError, validate_cohort
from model.errors import BundleError
from model.outcomes import labels as outcome_labels
from model.predictor import predict
from training import plots, report_ensemble, simulation_report
from training.analyses import derive
from training.report_sections import (audit_section, cohort_section, model_section,
                                      survival_figures, validation_section)
from model.provenance import is_reconstructed

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.6em}h2{border-bottom:2px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums}
.notice{border:3px solid #b00;background:#fff3f3;padding:1em;margin:1em 0;font-size:1.05em}
.info{border:2px solid #36c;background:#f3f7ff;padding:.8em;margin:1em 0}
.warn{color:#8a4b00}.fail{color:#b00;font-weight:bold}.pass{color:#060}
figure{display:inline-block;margin:.5em;vertical-align:top}
figure img{width:440px;border:1px solid #ddd}figcaption{font-size:.85em;max-width:440px}
pre{background:#f6f6f6;padding:.8em;overflow-x:auto;white-space:pre-wrap}
code{background:#f2f2f2;padding:0 .2em}
"""

MODEL_TITLES = outcome_labels("title")


def esc(value) -> str:
    """HTML-escaped text of any value."""
    return html.escape(str(value), quote=True)


# --------------------------------------------------------------------------- minimal markdown


def _inline(text: str) -> str:
    text = esc(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)


def markdown_to_html(markdown: str) -> str:
    """Headings, bullet lists (with indented continuation lines) and paragraphs; text escaped."""
    out, paragraph, items = [], [], []

    def flush():
        if paragraph:
            out.append(f"<p>{_inline(' '.join(paragraph))}</p>")
            paragraph.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
            items.clear()

    for line in markdown.splitlines():
        stripped = line.strip()
        heading = re.match(r"(#{1,4})\s+(.*)", stripped)
        if not stripped:
            flush()
        elif heading:
            flush()
            level = min(len(heading.group(1)) + 2, 6)  # the report's own h1/h2 stay above
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif re.match(r"[-*]\s+", stripped):
            if paragraph:
                flush()
            items.append(re.sub(r"^[-*]\s+", "", stripped))
        elif items and line[:1].isspace():
            items[-1] += " " + stripped
        else:
            if items:
                flush()
            paragraph.append(stripped)
    flush()
    return "\n".join(out)


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


# --------------------------------------------------------------------------- page sections


def _provenance(manifest: dict) -> str:
    n = manifest.get("training_data", {}).get("n")
    if manifest.get("lineage"):  # an updated bundle: the synthetic cohort is its parent's
        n = manifest["lineage"]["parent"]["training_data"].get("n")
    if is_reconstructed(manifest):
        return (f'<div class="notice" id="provenance"><strong>Synthetic data.</strong> This bundle was '
                f"trained on a cohort of {esc(n)} patients <strong>reconstructed from the published "
                "aggregates</strong> of the source paper (counts, percentages and P values). It is "
                "<strong>not patient data</strong>: every pattern the paper does not report is an "
                "assumption (listed at the end of this report), and nothing here is evidence about "
                "real patients beyond the published aggregates. Provenance: "
                f"<code>{esc(manifest.get('provenance'))}</code>.</div>")
    return (f'<div class="info" id="provenance">Trained on a center cohort of {esc(n)} patients '
            f"(<code>{esc(manifest.get('training_data', {}).get('source_file', ''))}</code>). "
            f"Provenance: <code>{esc(manifest.get('provenance'))}</code>.</div>")


def _header(bundle: LoadedBundle) -> str:
    m = bundle.manifest
    rows = [("bundle id (SHA-256 of manifest.json)", bundle.id), ("created", m.get("created")),
            ("source", m.get("source")),
            ("training data SHA-256", m.get("training_data", {}).get("sha256")),
            ("bootstrap repetitions / seed", f"{m.get('bootstrap')} / {m.get('seed')}"),
            ("feature configuration", m.get("features_config", {}).get("source")),
            ("CRS grading", m.get("crs_scale")),
            ("packages", ", ".join(f"{k} {v}" for k, v in m.get("packages", {}).items()))]
    table = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    dose = f'<p class="info">{esc(m["dose_note"])}</p>' if m.get("dose_note") else ""
    missing = "".join(f"<li>{esc(r)}</li>" for r in m.get("unavailable_models", {}).values())
    missing = f"<p>Models not in this bundle:</p><ul>{missing}</ul>" if missing else ""
    return f"<table>{table}</table>{dose}{missing}"


def _lineage(lineage: dict | None) -> str:
    """Parent bundle, update cohort and each model's update (``cart-risk update``); '' if none."""
    if not lineage:
        return ""
    parent, cohort = lineage["parent"], lineage["update_cohort"]
    rows = "".join(f"<tr><td>{esc(name)}</td><td>{esc(r['method'])}</td>"
                   f"<td>{esc(r.get('decided_by') or r.get('reason', ''))}</td></tr>"
                   for name, r in lineage["models"].items())
    return (f'<div class="info" id="lineage"><strong>Updated bundle.</strong> Parent bundle '
            f"<code>{esc(parent['id'])}</code> ({esc(parent.get('provenance'))}), updated on "
            f"{esc(cohort['n'])} patients of <code>{esc(cohort['file'])}</code> (SHA-256 "
            f"<code>{esc(cohort['sha256'])}</code>), method requested: {esc(lineage['method'])}."
            f"<table><tr><th>model</th><th>update</th><th>why</th></tr>{rows}</table></div>")


def _bands(bands: list[dict], reconstructed: bool = False) -> str:
    rate_header = "rate (reconstruction: assumed split A1)" if reconstructed else "observed rate"
    if not bands:
        return "<p>No sCRS band table: the training cohort has no crs_grade column.</p>"

    def f(v):
        return "-" if v is None else f"{v:.3f}"

    rows = "".join(
        f"<tr><td>{esc(b['subgroup'])}</td><td>{esc(b['label'])}</td>"
        f"<td class=num>{b['events']}/{b['n']}</td><td class=num>{f(b['rate'])}</td>"
        f"<td class=num>{'-' if not b['ci95'] else f(b['ci95'][0]) + ' - ' + f(b['ci95'][1])}</td>"
        f"<td class=num>{f(b['smoothed_rate'])}</td></tr>" for b in bands)
    return ('<table id="scrs-bands">' "<tr><th>subgroup</th><th>marrow blasts</th><th>sCRS / n</th>"
            f"<th>{rate_header}</th><th>Wilson 95 % CI</th><th>isotonic smoothed rate</th></tr>"
            f"{rows}</table><p>Smoothed rates: isotonic (non-decreasing from a to e) regression of "
            "the subgroup rates weighted by n."
            + (" The five-subgroup split of the reconstruction is assumption A1; only the two-group "
               "counts (4/33 and 19/45) are published.</p>" if reconstructed else "</p>"))


def _figure(uri: str, ident: str, caption: str) -> str:
    return (f'<figure id="{esc(ident)}"><img src="{uri}" alt="{esc(caption)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def _binary_figures(name: str, y: np.ndarray, p: np.ndarray, entry: dict) -> str:
    label = "P(CR)" if name == "cr" else "P(severe CRS)"
    # The decision for CR is acting on the risk of no response (e.g. debulking or another
    # therapy), so the decision curve uses 1 - P(CR) with no response as the event.
    risk, event, what = ((1 - p, 1 - y, "risk of no response (1 - P(CR))") if name == "cr"
                         else (p, y, "risk of severe CRS"))
    auc = entry.get("apparent", {}).get("c_index")
    parts = [
        _figure(plots.figure_data_uri(plots.calibration_figure(y, p, f"Calibration: {label}")),
                f"fig-calibration-{name}", f"Calibration of {label} (apparent, training data): "
                "quintile groups with Wilson 95 % CIs and a loess smooth."),
        _figure(plots.figure_data_uri(plots.roc_figure(y, p, f"ROC: {label}", auc)),
                f"fig-roc-{name}", f"ROC curve of {label} (apparent)."),
        _figure(plots.figure_data_uri(plots.decision_curve_figure(event, risk,
                                                                   f"Decision curve: {what}")),
                f"fig-decision-{name}", f"Net benefit of acting when the {what} exceeds the "
                "threshold, against acting for all and for none (apparent)."),
    ]
    return "".join(parts)


def render_report(bundle_dir) -> str:
    """The report of the bundle in ``bundle_dir`` as an HTML string.

    Raises
    ------
    model.errors.BundleError
        The bundle fails verification.
    """
    bundle = load_predictor(bundle_dir)
    manifest = bundle.manifest
    estimators, estimator_notes = _estimators(bundle_dir)
    cohort = derive(_training_cohort(bundle))
    predictions = predict(bundle, cohort)
    body = [f"<h1>cart-risk model report</h1>{_provenance(manifest)}",
            _lineage(manifest.get("lineage")), _header(bundle),
            '<h2 id="cohort">Training cohort</h2>', cohort_section(cohort),
            '<h2 id="validation">Validation: apparent, optimism and optimism-corrected</h2>',
            validation_section(manifest),
            '<h2 id="method-choice">Fitting method: the simulation study</h2>',
            simulation_report.report_section(manifest)]
    for name, entry in manifest["models"].items():
        body.append(f'<h2 id="model-{esc(name)}">{esc(MODEL_TITLES.get(name, name))}</h2>')
        body.append(model_section(name, entry))
        result = getattr(predictions, name)
        if entry["kind"] == "logistic":
            y = cohort["cr" if name == "cr" else "severe_crs"].to_numpy(int)
            body.append(_binary_figures(name, y, result.probability, entry))
        else:
            for ident, uri, caption in survival_figures(name, cohort, result, entry):
                body.append(_figure(uri, ident, caption))
    ensemble = manifest.get("ensemble")
    if ensemble:
        body += ['<h2 id="ensemble">Across the reconstructions: how much each output moves</h2>',
                 report_ensemble.outputs_section(ensemble),
                 '<h2 id="informative-inputs">Which inputs carry information in the reconstruction</h2>',
                 report_ensemble.informative_inputs_section(manifest["models"])]
    bands = manifest.get("scrs_bands", [])
    body += ['<h2 id="scrs-band-table">Severe CRS by burden subgroup</h2>',
             report_ensemble.bands_section(bands) if ensemble and bands else
             _bands(bands, is_reconstructed(manifest)),
             '<h2 id="audit">Audit of the stored estimators</h2>',
             audit_section(manifest, bundle.params, estimators, estimator_notes)]
    if is_reconstructed(manifest):
        text = assumptions_markdown()
        body.append('<h2 id="assumptions">Assumptions of the reconstructed cohort</h2>')
        body.append(markdown_to_html(text) if text is not None else
                    '<p class="fail">training/data/ASSUMPTIONS.md is not installed; the '
                    "reconstruction's assumptions cannot be shown.</p>")
    title = f"cart-risk report {bundle.id[:12]}"
    return ("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def write_report(bundle_dir, out_file) -> Path:
    """Write the HTML report of a bundle to ``out_file`` (written whole, then renamed into place).

    Returns
    -------
    pathlib.Path
        The written file.
    """
    page = render_report(bundle_dir)
    out = Path(out_file)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out


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
