"""Stored outputs that a refactoring must leave byte-identical (``tests/test_golden_outputs.py``).

The outputs are those of the session's test bundle (``tests/conftest.py``: the reconstructed
cohort, B = 20, the test seed): ``predictor.json`` (stored whole in ``predictor.json`` beside this
file), the manifest's numbers, the API answers for a panel of patients, and of the HTML report its
figures (each embedded image) and its text (tags and whitespace aside, so markup may be
restructured), with the values that differ between identical runs (the creation time, the bundle
id, which hashes it, and package versions) masked.

``predictor.json`` and the manifest are compared number by number to a relative 1e-9 (1e-12
absolute for quantities that are 0 in exact arithmetic), not byte by byte, and predictor.json's
digest is left out of the manifest's file list: OpenBLAS picks its kernel by processor (Haswell,
SkylakeX ...) and the kernels' sums differ in the last bits (3.7e-14 relative between Haswell and
SkylakeX on this bundle), which the stored bytes must not depend on. A refactoring that changes
any number by more than rounding still fails.

A change that is MEANT to change numbers (a new fitting method, a new cohort) regenerates them:

    .venv/bin/python tests/golden/outputs.py --write

and says so in its commit message; a refactoring never does.
"""
from __future__ import annotations

import argparse
import hashlib
import html
import json
import re
import sys
import tempfile
from pathlib import Path

STORED = Path(__file__).with_name("outputs.json")
STORED_PREDICTOR = Path(__file__).with_name("predictor.json")
#: Patients across the burden range and the history fields (all fields; each bundle reads its own).
PANEL = [
    {"marrow_blasts_pct": blasts, "mrd_positive": True, "age_years": age, "sex": sex,
     "ph_positive": ph, "prior_therapy_ge_6mo": True, "prior_chemo_ge_3": True,
     "prior_hsct": hsct, "relapsed": relapsed, "tp53_mutation": False,
     "poor_cytogenetics": False, "tb_assessed": "before_fc"}
    for blasts, age, sex, ph, hsct, relapsed in [
        (0.0, 30, "M", False, False, True), (2.0, 12, "F", True, False, False),
        (12.0, 30, "M", False, False, True), (35.0, 45, "F", False, True, True),
        (70.0, 60, "M", True, True, True), (90.0, 70, "F", False, False, False)]
]
#: Manifest entries that differ between identical runs or machines.
VOLATILE = ("created", "packages")
#: Bundle files whose digest is not stored (pickles carry library internals; predictor.json's
#: last bits depend on the BLAS kernel and is compared by value instead).
UNSTORED_DIGESTS = ("predictor.json",)


def outputs(bundle_dir: Path) -> dict:
    """The stored outputs of the bundle in ``bundle_dir`` (see the module docstring)."""
    from model.bundle import PREDICTOR, load_predictor
    from model.predictor import prediction_answer
    from training.report.page import render_report

    bundle = load_predictor(bundle_dir)
    needed = bundle.predictor.required_fields
    answers = []
    for patient in PANEL:
        answer = prediction_answer(bundle, {k: v for k, v in patient.items() if k in needed})
        answer["model"] = {k: v for k, v in answer["model"].items() if k not in ("id", "created")}
        answers.append(answer)
    page = render_report(bundle_dir)
    for volatile in (bundle.id, bundle.id[:12], str(bundle.manifest.get("created"))):
        page = page.replace(volatile, "<masked>")
    for package, version in (bundle.manifest.get("packages") or {}).items():
        page = page.replace(f"{package} {version}", f"{package} <masked>")
    manifest = {k: v for k, v in bundle.manifest.items() if k not in VOLATILE}
    manifest["files"] = {k: v for k, v in manifest.get("files", {}).items()
                         if not k.endswith(".joblib") and k not in UNSTORED_DIGESTS}
    figures = re.findall(r"data:image/[^\"')\s]+", page)
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", re.sub(
        r"<(style|script)[^>]*>.*?</\1>", " ", page, flags=re.S))).split())
    return {"predictor": json.loads((bundle_dir / PREDICTOR).read_text(encoding="utf-8")),
            "manifest": manifest, "answers": answers,
            "report_figures_sha256": [hashlib.sha256(f.encode()).hexdigest() for f in figures],
            "report_text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate or print the stored outputs.")
    parser.add_argument("--write", action="store_true", help=f"write {STORED}")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.conftest import TEST_BOOTSTRAP, TEST_SEED
    from training.reproduce import default_cohort_path
    from training.train import train

    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "bundle"
        train(default_cohort_path(), bundle, bootstrap=TEST_BOOTSTRAP, seed=TEST_SEED, jobs=1,
              progress=False)
        current = outputs(bundle)
    predictor = json.dumps(current.pop("predictor"), indent=1, sort_keys=True, allow_nan=False)
    text = json.dumps(current, indent=1, sort_keys=True, allow_nan=False) + "\n"
    if args.write:
        STORED.write_text(text, encoding="utf-8")
        STORED_PREDICTOR.write_text(predictor + "\n", encoding="utf-8")
        print(f"wrote {STORED} and {STORED_PREDICTOR}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
