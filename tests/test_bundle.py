"""Bundle writing, verification and loading: tamper detection, atomic replacement, versions."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from model.bundle import (load_estimators, load_predictor, verify_bundle, version_differences,
                          write_bundle)
from model.errors import BundleError, BundleVersionWarning

REPO = Path(__file__).resolve().parents[1]
FILES = ("predictor.json", "estimators.joblib", "training_cohort.csv")


def small_predictor(intercept: float = -0.5) -> dict:
    return {"format_version": 1, "blasts_floor_pct": 0.01, "month_grid": [0.0, 1.0, 2.0],
            "models": {"cr": {"kind": "logistic", "features": ["log10_blasts"],
                              "center": [1.0], "scale": [0.5], "intercept": intercept,
                              "coef": [-0.8],
                              "bootstrap": {"intercept": [intercept - 0.1, intercept + 0.1],
                                            "coef": [[-0.9], [-0.7]]}}},
            "scrs_bands": []}


def small_manifest() -> dict:
    return {"provenance": "reconstructed-from-published-aggregates", "source": "test",
            "seed": 1, "bootstrap": 2, "models": {"cr": {"kind": "logistic"}}}


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("cannot pickle this estimator")


@pytest.fixture()
def cohort_csv(tmp_path) -> Path:
    path = tmp_path / "cohort.csv"
    path.write_text('patient_id,note\np1,"two\nlines"\np2,x\np3,y\n')
    return path


@pytest.fixture()
def bundle_dir(tmp_path, cohort_csv) -> Path:
    out = tmp_path / "bundles" / "default"
    write_bundle(out, small_manifest(), small_predictor(), {"model": [1, 2, 3]}, cohort_csv, check_cohort=False)
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rewrite_manifest(bundle: Path, edit) -> None:
    """Change manifest.json and re-sign it, as a careless hand edit plus re-hash would."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    edit(manifest)
    content = json.dumps(manifest).encode()
    (bundle / "manifest.json").write_bytes(content)
    (bundle / "manifest.sha256").write_text(hashlib.sha256(content).hexdigest())


def siblings(bundle: Path) -> list[str]:
    return sorted(p.name for p in bundle.parent.iterdir())


# --------------------------------------------------------------------------- round trip


def test_written_bundle_loads_and_records_hashes(bundle_dir, cohort_csv):
    loaded = load_predictor(bundle_dir)
    manifest = loaded.manifest
    assert loaded.id == sha256(bundle_dir / "manifest.json")
    assert (bundle_dir / "manifest.sha256").read_text().strip() == loaded.id
    assert manifest["files"] == {name: sha256(bundle_dir / name) for name in FILES}
    assert manifest["training_data"] == {"file": "training_cohort.csv",
                                         "sha256": sha256(cohort_csv), "n": 3}
    assert manifest["format_version"] == 1 and manifest["packages"]["numpy"]
    assert loaded.params == small_predictor()
    assert list(loaded.predictor.models) == ["cr"]
    assert load_estimators(bundle_dir) == {"model": [1, 2, 3]}
    assert verify_bundle(bundle_dir) == manifest
    assert siblings(bundle_dir) == ["default"]


def test_write_does_not_modify_the_callers_manifest(tmp_path, cohort_csv):
    manifest = small_manifest()
    before = json.dumps(manifest, sort_keys=True)
    written = write_bundle(tmp_path / "b", manifest, small_predictor(), {}, cohort_csv, check_cohort=False)
    assert json.dumps(manifest, sort_keys=True) == before
    assert "files" in written and "files" not in manifest


def test_importing_model_does_not_import_fitting_libraries(bundle_dir):
    code = textwrap.dedent(f"""
        import sys
        import model.predictor, model.bundle, model.patient
        heavy = {{'sklearn', 'lifelines', 'statsmodels'}} & set(sys.modules)
        assert not heavy, heavy
        model.bundle.load_predictor({str(bundle_dir)!r})
        assert 'joblib' not in sys.modules, 'load_predictor must not touch the pickle'
        assert not {{'sklearn', 'lifelines', 'statsmodels'}} & set(sys.modules)
    """)
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True,
                   env={**os.environ, "PYTHONPATH": str(REPO)})


# --------------------------------------------------------------------------- tampering


@pytest.mark.parametrize("name", FILES)
def test_one_changed_byte_in_any_file_is_refused(bundle_dir, name):
    path = bundle_dir / name
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0x01
    path.write_bytes(bytes(content))
    for load in (verify_bundle, load_predictor, load_estimators):
        with pytest.raises(BundleError, match=rf"'file-hash' failed \({name}\)"):
            load(bundle_dir)


@pytest.mark.parametrize("name", FILES + ("manifest.json", "manifest.sha256"))
def test_missing_file_is_refused(bundle_dir, name):
    (bundle_dir / name).unlink()
    with pytest.raises(BundleError, match=rf"'file-present' failed \({name}\)"):
        load_predictor(bundle_dir)


def test_edited_manifest_is_refused(bundle_dir):
    path = bundle_dir / "manifest.json"
    path.write_text(path.read_text().replace('"seed": 1', '"seed": 2'))
    with pytest.raises(BundleError, match=r"'manifest-hash' failed \(manifest.json\)"):
        load_predictor(bundle_dir)


def test_edited_manifest_digest_is_refused(bundle_dir):
    (bundle_dir / "manifest.sha256").write_text("0" * 64)
    with pytest.raises(BundleError, match="'manifest-hash' failed"):
        verify_bundle(bundle_dir)


def test_newer_format_version_is_refused(bundle_dir):
    rewrite_manifest(bundle_dir, lambda m: m.update(format_version=2))
    with pytest.raises(BundleError, match="'format-version' failed.*newer than this code reads"):
        load_predictor(bundle_dir)


def test_unlisted_required_file_is_refused(bundle_dir):
    rewrite_manifest(bundle_dir, lambda m: m["files"].pop("estimators.joblib"))
    with pytest.raises(BundleError, match=r"'file-listed' failed \(estimators.joblib\)"):
        load_predictor(bundle_dir)


def test_file_names_outside_the_bundle_are_refused(bundle_dir):
    rewrite_manifest(bundle_dir, lambda m: m["files"].update({"../x": "0" * 64}))
    with pytest.raises(BundleError, match="'file-name' failed"):
        verify_bundle(bundle_dir)


def test_training_data_hash_must_agree(bundle_dir):
    rewrite_manifest(bundle_dir, lambda m: m["training_data"].update(sha256="0" * 64))
    with pytest.raises(BundleError, match=r"'training-data' failed \(training_cohort.csv\)"):
        verify_bundle(bundle_dir)


@pytest.mark.parametrize("where", ["nowhere", "no/such/parent"])
def test_missing_directory_is_refused(tmp_path, where):
    with pytest.raises(BundleError, match="'directory' failed"):
        load_predictor(tmp_path / where)


def test_unevaluable_predictor_is_refused_on_load(bundle_dir):
    path = bundle_dir / "predictor.json"
    broken = small_predictor()
    broken["models"]["cr"]["coef"] = [1.0, 2.0]
    path.write_text(json.dumps(broken))
    rewrite_manifest(bundle_dir, lambda m: m["files"].update({"predictor.json": sha256(path)}))
    with pytest.raises(BundleError, match=r"'predictor-structure' failed.*models\.cr\.coef: has 2 entries; expected 1"):
        load_predictor(bundle_dir)


# --------------------------------------------------------------------------- atomic writing


def test_failed_write_leaves_earlier_bundle_intact(bundle_dir, cohort_csv):
    before = load_predictor(bundle_dir).id
    with pytest.raises(RuntimeError, match="cannot pickle this estimator"):
        write_bundle(bundle_dir, small_manifest(), small_predictor(0.3), Unpicklable(), cohort_csv, check_cohort=False)
    assert load_predictor(bundle_dir).id == before
    assert load_estimators(bundle_dir) == {"model": [1, 2, 3]}
    assert siblings(bundle_dir) == ["default"]


def test_invalid_predictor_is_refused_before_writing(bundle_dir, cohort_csv):
    before = load_predictor(bundle_dir).id
    bad = small_predictor(float("nan"))
    with pytest.raises(BundleError, match="'predictor-structure' failed"):
        write_bundle(bundle_dir, small_manifest(), bad, {}, cohort_csv, check_cohort=False)
    assert load_predictor(bundle_dir).id == before and siblings(bundle_dir) == ["default"]


def test_rewrite_replaces_the_bundle(bundle_dir, cohort_csv):
    write_bundle(bundle_dir, small_manifest(), small_predictor(0.3), {"v": 2}, cohort_csv, check_cohort=False)
    assert load_predictor(bundle_dir).params["models"]["cr"]["intercept"] == 0.3
    assert siblings(bundle_dir) == ["default"]


def crash_during_write(bundle: Path, cohort_csv: Path, die_on_rename: int) -> None:
    """Write a new bundle in a child process that dies (os._exit) at its n-th os.rename."""
    code = textwrap.dedent(f"""
        import json, os
        from model import bundle
        calls = []
        real_rename = os.rename
        def rename(src, dst):
            calls.append(src)
            if len(calls) == {die_on_rename}:
                os._exit(3)
            real_rename(src, dst)
        bundle.os.rename = rename
        bundle.write_bundle({str(bundle)!r}, {{"provenance": "p", "source": "s"}},
                            json.loads({json.dumps(small_predictor(0.3))!r}), {{"v": 2}},
                            {str(cohort_csv)!r}, check_cohort=False)
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 3


def test_death_between_renames_is_recovered_on_load(bundle_dir, cohort_csv):
    before = load_predictor(bundle_dir).id
    crash_during_write(bundle_dir, cohort_csv, die_on_rename=2)  # old moved aside, new not in
    assert not bundle_dir.exists() and (bundle_dir.parent / ".default.previous").is_dir()
    assert load_predictor(bundle_dir).id == before
    assert bundle_dir.is_dir() and not (bundle_dir.parent / ".default.previous").exists()


def test_death_between_renames_is_recovered_on_next_write(bundle_dir, cohort_csv):
    crash_during_write(bundle_dir, cohort_csv, die_on_rename=2)
    write_bundle(bundle_dir, small_manifest(), small_predictor(0.7), {"v": 3}, cohort_csv, check_cohort=False)
    assert load_predictor(bundle_dir).params["models"]["cr"]["intercept"] == 0.7
    assert siblings(bundle_dir) == ["default"]  # the dead writer's staging dir is cleaned too


def test_death_after_swap_keeps_new_bundle(bundle_dir, cohort_csv):
    crash_during_write(bundle_dir, cohort_csv, die_on_rename=3)  # before the backup is discarded
    assert load_predictor(bundle_dir).params["models"]["cr"]["intercept"] == 0.3
    write_bundle(bundle_dir, small_manifest(), small_predictor(0.7), {"v": 3}, cohort_csv, check_cohort=False)
    assert siblings(bundle_dir) == ["default"]


def test_refuses_to_replace_a_directory_that_is_not_a_bundle(tmp_path, cohort_csv):
    notes = tmp_path / "documents" / "notes.txt"
    notes.parent.mkdir()
    notes.write_text("keep me")
    with pytest.raises(BundleError, match="'output-directory' failed.*without manifest.json"):
        write_bundle(notes.parent, small_manifest(), small_predictor(), {}, cohort_csv, check_cohort=False)
    assert notes.read_text() == "keep me"


# --------------------------------------------------------------------------- versions


def test_estimators_refused_across_scikit_learn_minor_versions(bundle_dir):
    rewrite_manifest(bundle_dir, lambda m: m["packages"].update({"scikit-learn": "0.1.0"}))
    with pytest.raises(BundleError, match="'package-versions' failed.*scikit-learn: bundle 0.1.0"):
        load_estimators(bundle_dir)
    with pytest.warns(BundleVersionWarning, match="scikit-learn: bundle 0.1.0, installed"):
        assert load_estimators(bundle_dir, allow_version_mismatch=True) == {"model": [1, 2, 3]}
    load_predictor(bundle_dir)  # serving does not care about fitting-library versions


def test_other_version_differences_only_warn(bundle_dir):
    rewrite_manifest(bundle_dir, lambda m: m["packages"].update({"numpy": "1.0.0"}))
    with pytest.warns(BundleVersionWarning, match="numpy: bundle 1.0.0"):
        load_estimators(bundle_dir)


def test_version_differences_lists_each_package():
    manifest = {"packages": {"numpy": "0.0.1", "not-a-package-xyz": "1.0", "python": None}}
    differences = version_differences(manifest)
    assert differences[0].startswith("numpy: bundle 0.0.1, installed ")
    assert differences[1] == "not-a-package-xyz: bundle 1.0, installed none"
    assert len(differences) == 2


def test_loads_during_rewrites_never_see_half_a_bundle(bundle_dir, cohort_csv):
    import threading

    errors: list[BaseException] = []

    def rewrite():
        try:
            for i in range(15):
                write_bundle(bundle_dir, small_manifest(), small_predictor(i / 10), {"v": i},
                             cohort_csv, check_cohort=False)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    writer = threading.Thread(target=rewrite)
    writer.start()
    loads = 0
    while writer.is_alive() or loads < 5:
        load_predictor(bundle_dir)
        loads += 1
    writer.join()
    assert not errors
    assert load_predictor(bundle_dir).params["models"]["cr"]["intercept"] == 1.4
    assert siblings(bundle_dir) == ["default"]
