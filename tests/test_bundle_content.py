"""Bundles whose hashes are right but whose content is wrong are refused (issue 15, item 6).

Each case edits a copy of the session's trained bundle the way a broken tool or a careless hand
edit would, then recomputes every hash (file hashes in the manifest, the manifest's digest), so
that only the content checks (model/bundle_content.py, the cohort schema) stand between the
bundle and the calculator. Each must be refused with one line naming the file and the field,
before anything is served, never with a traceback.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from calculator import create_app
from calculator.cli import main
from model.bundle import load_predictor
from model.bundle_content import MAX_BOOTSTRAP_SETS, MAX_FOLLOW_UP_MONTHS, MAX_JSON_DEPTH
from model.cohort import MAX_MONTHS
from model.errors import BundleError

REPO = Path(__file__).resolve().parents[1]


def _rehash(bundle: Path) -> None:
    """Record the current hash of every file, then re-sign the manifest (as a forger would)."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    for name in manifest["files"]:
        manifest["files"][name] = hashlib.sha256((bundle / name).read_bytes()).hexdigest()
    manifest["training_data"]["sha256"] = manifest["files"]["training_cohort.csv"]
    content = json.dumps(manifest).encode()
    (bundle / "manifest.json").write_bytes(content)
    (bundle / "manifest.sha256").write_text(hashlib.sha256(content).hexdigest())


@pytest.fixture()
def crafted(trained_bundle_path, tmp_path):
    """``crafted(file, edit)``: a copy of the bundle with ``edit`` applied to ``file``, re-hashed.

    ``edit`` receives the parsed JSON (and changes it in place) or, for ``raw=True`` and the
    training CSV, the text (and returns the new text).
    """
    def make(file: str, edit, *, raw: bool = False) -> Path:
        bundle = tmp_path / "bundle"
        shutil.copytree(trained_bundle_path, bundle)
        path = bundle / file
        if raw or file.endswith(".csv"):
            path.write_text(edit(path.read_text()))
        else:
            document = json.loads(path.read_text())
            edit(document)
            path.write_text(json.dumps(document))
        if file == "manifest.json":
            content = path.read_bytes()
            (bundle / "manifest.sha256").write_text(hashlib.sha256(content).hexdigest())
        else:
            _rehash(bundle)
        return bundle

    return make


def _cox(params, edit):
    for name in ("efs", "os"):
        edit(params["models"][name])


def _nest(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


def _shorten_grid(params):
    """A grid ending at 10 months while follow-up is said to be 300 (at["24"] would be S(10))."""
    keep = sum(1 for month in params["month_grid"] if month <= 10)
    params["month_grid"] = params["month_grid"][:keep]
    for name in ("efs", "os"):
        model = params["models"][name]
        model["max_follow_up_months"] = 300
        model["baseline_survival"] = model["baseline_survival"][:keep]
        model["bootstrap"]["baseline_survival"] = [
            curve[:keep] for curve in model["bootstrap"]["baseline_survival"]]


def _tile_bootstrap(params):
    boot = params["models"]["cr"]["bootstrap"]
    sets = MAX_BOOTSTRAP_SETS + 1
    boot["coef"] = [boot["coef"][i % len(boot["coef"])] for i in range(sets)]
    boot["intercept"] = [boot["intercept"][i % len(boot["intercept"])] for i in range(sets)]


PREDICTOR_CASES = {
    "models of the wrong type": (lambda p: p.update(models=[]),
                                 r"models: must be an object \(got an array\)"),
    "a model of the wrong type": (lambda p: p["models"].update(cr="logistic"),
                                  r"models\.cr: must be an object \(got text\)"),
    "coef as text": (lambda p: p["models"]["cr"].update(coef=["0.1", "0.2"]),
                     r"models\.cr\.coef\[0\]: must be a number \(got text\)"),
    "a band rate 'abc'": (lambda p: p["scrs_bands"][1].update(rate="abc"),
                          r"scrs_bands\[1\]\.rate: must be a number \(got text\)"),
    "a band rate 7.5": (lambda p: p["scrs_bands"][1].update(rate=7.5),
                        r"scrs_bands\[1\]\.rate: must be between 0 and 1 \(got 7\.5\)"),
    "band events -3": (lambda p: p["scrs_bands"][2].update(events=-3),
                       r"scrs_bands\[2\]\.events: must be between 0 and \d+ \(got -3\)"),
    "a band rate that is not events / n": (
        lambda p: p["scrs_bands"][0].update(rate=0.5), r"scrs_bands\[0\]\.rate: 0\.5 is not events / n"),
    "a grid short of the follow-up": (_shorten_grid, "month_grid: ends at 10 months, short of "
                                                     "models.efs's stated follow-up of 300 months"),
    "baseline survival all 1.0": (
        lambda p: _cox(p, lambda m: m.update(baseline_survival=[1.0] * len(p["month_grid"]))),
        r"models\.efs\.baseline_survival: never falls below 1"),
    "baseline survival rising": (
        lambda p: _cox(p, lambda m: m["baseline_survival"].__setitem__(-1, 0.99)),
        r"models\.efs\.baseline_survival\[\d+\]: 0\.99 rises above the month before"),
    "too many bootstrap sets": (_tile_bootstrap, rf"models\.cr\.bootstrap\.coef: has "
                                                 rf"{MAX_BOOTSTRAP_SETS + 1} entries; at most "
                                                 rf"{MAX_BOOTSTRAP_SETS}"),
    "bootstrap arrays of different lengths": (
        lambda p: p["models"]["cr"]["bootstrap"]["intercept"].pop(),
        r"models\.cr\.bootstrap\.intercept: has \d+ entries; expected \d+"),
    "deep nesting in an added field": (lambda p: p.update(extra=_nest(MAX_JSON_DEPTH + 5)),
                                       f"nested more than {MAX_JSON_DEPTH} levels deep"),
}


@pytest.mark.parametrize("case", list(PREDICTOR_CASES))
def test_predictor_content_is_refused_naming_the_field(crafted, case):
    edit, message = PREDICTOR_CASES[case]
    with pytest.raises(BundleError, match=message) as caught:
        load_predictor(crafted("predictor.json", edit))
    assert caught.value.file == "predictor.json" and "\n" not in str(caught.value)


RAW_PREDICTOR_CASES = {
    # json.loads accepts these literals; a bundle must not.
    "events NaN": (lambda text: text.replace('"events": ', '"events": NaN, "was": ', 1),
                   "NaN is not a JSON number"),
    "a 401-digit integer in coef": (
        lambda text: text.replace('"coef": [', '"coef": [' + "9" * 401 + ", ", 1),
        "an integer of 401 digits"),
    "a number overflowing to infinity": (lambda text: text.replace('"rate": ', '"rate": 1e400, '
                                                                   '"was": ', 1),
                                         "overflows to infinity"),
    "100,000 levels of nesting": (lambda text: text[:-1] + ', "x": ' + "[" * 100_000
                                  + "]" * 100_000 + "}", "nested too deeply"),
}


@pytest.mark.parametrize("case", list(RAW_PREDICTOR_CASES))
def test_json_that_python_would_read_is_refused(crafted, case):
    edit, message = RAW_PREDICTOR_CASES[case]
    with pytest.raises(BundleError, match=message) as caught:
        load_predictor(crafted("predictor.json", edit, raw=True))
    assert caught.value.file == "predictor.json"


MANIFEST_CASES = {
    "a model card of the wrong type": (lambda m: m["models"].update(efs=[1, 2]),
                                       r"models\.efs: must be an object \(got an array\)"),
    "training_data.n as text": (lambda m: m["training_data"].update(n="78"),
                                r"training_data\.n: must be a number \(got text\)"),
    "events above n": (lambda m: m["models"]["cr"].update(events=1000),
                       r"models\.cr\.events: must be between 0 and 78 \(got 1000\)"),
    "a ratio of -1": (lambda m: m["models"]["cr"]["coefficients"]["age_years"].update(ratio=-1),
                      r"models\.cr\.coefficients\.age_years\.ratio: must be greater than 0"),
    "deep nesting in an added field": (lambda m: m.update(lineage=_nest(MAX_JSON_DEPTH + 1)),
                                       f"nested more than {MAX_JSON_DEPTH} levels deep"),
}


@pytest.mark.parametrize("case", list(MANIFEST_CASES))
def test_manifest_content_is_refused_naming_the_field(crafted, case):
    edit, message = MANIFEST_CASES[case]
    with pytest.raises(BundleError, match=message) as caught:
        load_predictor(crafted("manifest.json", edit))
    assert caught.value.file == "manifest.json"


def test_added_fields_are_left_alone(crafted):
    """Other tools add fields (ensembles, lineage, fitting methods): they are not refused."""
    bundle = crafted("manifest.json", lambda m: m.update(
        lineage={"parent": "abc", "steps": [{"tool": "x", "at": "2026-12-01"}]},
        models={**m["models"], "ensemble": {"members": 3}}))
    loaded = load_predictor(bundle)
    assert loaded.manifest["lineage"]["parent"] == "abc"


def _bad_cell(text: str) -> str:
    lines = text.splitlines(keepends=True)
    header = lines[0].rstrip("\n").split(",")
    cells = lines[5].rstrip("\n").split(",")
    cells[header.index("marrow_blasts_pct")] = "abc"
    lines[5] = ",".join(cells) + "\n"
    return "".join(lines)


def test_a_bad_training_cell_refuses_the_app_and_serve(crafted, capsys):
    bundle = crafted("training_cohort.csv", _bad_cell)
    with pytest.raises(BundleError, match=r"'training-data-content' failed \(training_cohort\.csv"
                                          r"\): line 6 .*marrow_blasts_pct: must be a number"):
        create_app({"BUNDLE_PATH": str(bundle)})
    served = subprocess.run([sys.executable, "-m", "calculator.cli", "serve", "--bundle",
                             str(bundle), "--port", "1"], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert served.returncode == 1, served.stderr
    assert served.stderr.count("\n") == 1 and "training_cohort.csv" in served.stderr
    assert "Traceback" not in served.stderr and "serving bundle" not in served.stderr


def test_predict_reports_a_bad_bundle_in_one_line(crafted, capsys):
    bundle = crafted("predictor.json", lambda p: p.update(models=[]))
    code = main(["predict", "--bundle", str(bundle), "--blasts", "12", "--mrd-positive", "true"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "predictor.json" in err, err


def test_the_follow_up_cap_is_the_cohort_schemas():
    assert MAX_FOLLOW_UP_MONTHS == MAX_MONTHS
