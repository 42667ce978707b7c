"""``cart-risk validate``: a bundle's models on a center's cohort, as JSON and as one HTML page.

:func:`validation_report` assembles the figures of :mod:`training.external.validation` with what
the reader needs to judge them (which bundle, its provenance and lineage, which cohort, by hash).
Every float of the JSON is rounded to :data:`SIGNIFICANT` significant digits, and the HTML page
(:mod:`training.external.validation_page`) prints those same numbers, so the two never disagree.
Nothing is written unless the bundle verifies and the cohort passes the schema; the page is
written whole and renamed into place.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from model.atomic import write_atomic
from model.bundle import load_predictor
from model.bundle_kind import refuse_stacked
from model.cohort import read_cohort
from model.provenance import is_reconstructed
from training.paper.analyses import derive
from training.external.ranges import outside_ranges
from training.external.validation import validate_models
from training.paper.provenance import sha256_file

SIGNIFICANT = 4
RECONSTRUCTED_NOTICE = ("The bundle's models were trained on a synthetic cohort reconstructed "
                        "from the published aggregates of Li et al. (NCT03919240), not on "
                        "patient data.")


def rounded(value):
    """``value`` with every float rounded to :data:`SIGNIFICANT` significant digits (NaN: None)."""
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    value = float(value)
    if not math.isfinite(value):
        return None
    return float(f"{value:.{SIGNIFICANT}g}")


def validation_report(bundle_dir, cohort_path, *, raw: bool = False) -> dict:
    """External validation of every model of a bundle on a cohort CSV.

    Parameters
    ----------
    bundle_dir : bundle directory (verified on loading)
    cohort_path : cohort CSV (validated by :func:`model.cohort.read_cohort`)
    raw : keep full precision (for tests); the JSON and the page use the rounded figures

    Raises
    ------
    model.errors.BundleError, model.errors.CohortError
    """
    bundle = load_predictor(bundle_dir)
    cohort_path = Path(cohort_path)
    cohort = derive(refuse_stacked(read_cohort(cohort_path), str(cohort_path)))
    manifest = bundle.manifest
    lineage = manifest.get("lineage")
    models = validate_models(bundle.params, manifest, cohort)
    for name, result in models.items():
        outside = outside_ranges(manifest["models"].get(name, {}), cohort)
        if outside and result.get("assessable"):
            result["warnings"] = [f"the cohort lies outside the model's training range: {text}"
                                  for text in outside] + list(result.get("warnings") or [])
    report = {
        "bundle": {"id": bundle.id, "created": manifest.get("created"),
                   "provenance": manifest.get("provenance"), "source": manifest.get("source"),
                   "trained_on_n": bundle.basis.cohort_n, "trained_on": bundle.basis.trained_on,
                   "kind": bundle.basis.kind,
                   "lineage": lineage.get("summary") if lineage else None},
        "notice": RECONSTRUCTED_NOTICE if is_reconstructed(manifest)
        or is_reconstructed((lineage or {}).get("parent", {})) else None,
        "cohort": {"file": cohort_path.name, "sha256": sha256_file(cohort_path),
                   "n": int(len(cohort))},
        "models": models,
    }
    return report if raw else rounded(report)


def summary_lines(report: dict) -> list[str]:
    """One line a model: the figures a reader looks at first."""
    lines = [f"bundle {report['bundle']['id'][:12]} ({report['bundle']['provenance']}; trained on "
             f"{report['bundle']['trained_on']}) on "
             f"{report['cohort']['n']} patients of {report['cohort']['file']}"]
    if report["notice"]:
        lines.append(f"note: {report['notice']}")

    def f(value):
        if value is None:
            return "n/a"
        text = f"{value:.3f}"
        return text.lstrip("-") if float(text) == 0 else text  # no "-0.000"

    def est(block):
        ci = block.get("ci95")
        ci_text = f" ({f(ci[0])} to {f(ci[1])})" if ci else ""
        return f"{f(block['estimate'])}{ci_text}"

    for name, m in report["models"].items():
        if not m["assessable"]:
            lines.append(f"{name:<10} not assessable: {m['reason']}")
        elif m["kind"] == "logistic":
            lines.append(f"{name:<10} n={m['n']} events={m['events']} O/E={est(m['observed_expected'])} "
                         f"CITL={est(m['calibration_intercept'])} slope={est(m['calibration_slope'])} "
                         f"C={est(m['c_index'])} Brier={f(m['brier'])} ICI={f(m['ici'])}")
        else:
            c = m["calibration"]
            lines.append(f"{name:<10} n={m['n']} events={m['events']} at {m['horizon_months']:g} "
                         f"months O/E={est(c['observed_expected'])} log O/E="
                         f"{est(c['log_observed_expected'])} slope={est(c['calibration_slope'])} "
                         f"Harrell C={f(m['harrell_c'])} Uno C={f(m['uno_c']['estimate'])}")
        lines += [f"  warning: {w}" for w in m.get("warnings", [])]
    return lines


def validate_command(bundle, cohort, out=None, as_json: bool = False) -> int:
    """``cart-risk validate``: 0 on success; 2 for a bad cohort; 1 for a bad bundle or output."""
    from model.errors import BundleError, CohortError, report_failure
    from training.external.validation_page import render_page

    try:
        report = validation_report(bundle, cohort)
        page = render_page(report, bundle, cohort) if out is not None else None
    except (CohortError, BundleError) as error:
        return report_failure("validate", error)
    if out is not None:
        try:
            write_atomic(out, page)
        except OSError as error:
            print(f"cart-risk validate: cannot write {out}: {error.strerror or error}",
                  file=sys.stderr)
            return 1
    if as_json:
        print(json.dumps(report, indent=2, allow_nan=False))
    else:
        print("\n".join(summary_lines(report)))
        if out is not None:
            print(f"validation page written to {out}")
    return 0
