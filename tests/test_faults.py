"""Faults: tampered or foreign bundles refuse to serve, pickles load only when trusted, and a
``train`` killed with SIGKILL at any point leaves the previous bundle intact and loadable.

(``score`` on a CSV with bad rows, writing every valid row and exiting non-zero, is covered by
``tests/test_cli_predict.py``.)
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from calculator.cli import main
from conftest import REPO, free_port, stop_process
from model.bundle import load_estimators, load_predictor
from model.errors import BundleError


def rehash_manifest(bundle: Path, edit) -> None:
    """Edit a bundle's manifest and record its new digest, as a writer would."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    edit(manifest)
    content = json.dumps(manifest, indent=2).encode()
    (bundle / "manifest.json").write_bytes(content)
    (bundle / "manifest.sha256").write_text(hashlib.sha256(content).hexdigest() + "\n")


def flip_a_byte(path: Path) -> None:
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0x01
    path.write_bytes(bytes(content))


def _newer_format(bundle: Path) -> None:
    rehash_manifest(bundle, lambda manifest: manifest.update(format_version=99))


DAMAGE = {
    "changed byte in predictor.json": (lambda b: flip_a_byte(b / "predictor.json"), "file-hash"),
    "changed byte in estimators.joblib": (lambda b: flip_a_byte(b / "estimators.joblib"),
                                          "file-hash"),
    "changed byte in training_cohort.csv": (lambda b: flip_a_byte(b / "training_cohort.csv"),
                                            "file-hash"),
    "missing predictor.json": (lambda b: (b / "predictor.json").unlink(), "file-present"),
    "missing manifest.sha256": (lambda b: (b / "manifest.sha256").unlink(), "file-present"),
    "edited manifest": (lambda b: (b / "manifest.json").write_text(
        (b / "manifest.json").read_text().replace('"bootstrap": 20', '"bootstrap": 2000')),
        "manifest-hash"),
    "newer bundle format": (_newer_format, "format-version"),
}


@pytest.fixture()
def bundle_copy(trained_bundle_path, tmp_path) -> Path:
    copy = tmp_path / "bundle"
    shutil.copytree(trained_bundle_path, copy)
    return copy


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_serve_refuses_a_damaged_bundle_naming_the_check(bundle_copy, damage, capsys,
                                                         unused_port):
    harm, check = DAMAGE[damage]
    harm(bundle_copy)
    code = main(["serve", "--bundle", str(bundle_copy), "--port", str(unused_port)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and f"bundle check '{check}' failed" in err, err


def test_gunicorn_on_the_wsgi_module_refuses_a_damaged_bundle(bundle_copy, tmp_path):
    flip_a_byte(bundle_copy / "predictor.json")
    env = {**os.environ, "CART_RISK_BUNDLE": str(bundle_copy)}
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{free_port()}", "--workers",
         "1", "calculator.wsgi:app"], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=60)
    assert result.returncode != 0
    assert "cart-risk: refusing to serve: bundle check 'file-hash' failed (predictor.json)" \
        in result.stderr


# --------------------------------------------------------------------------- pickles


class _Marker:
    """Unpickling this creates a directory: proof that a pickle was (or was not) loaded."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (str(self.path),)


def test_a_swapped_pickle_is_never_unpickled(bundle_copy, tmp_path):
    marker = tmp_path / "pickle-ran"
    (bundle_copy / "estimators.joblib").write_bytes(pickle.dumps(_Marker(marker)))
    with pytest.raises(BundleError, match="file-hash"):
        load_estimators(bundle_copy)
    assert main(["report", "--bundle", str(bundle_copy), "--out", str(tmp_path / "r.html")]) == 1
    assert not marker.exists()


def test_estimators_from_other_library_versions_are_refused_before_unpickling(bundle_copy,
                                                                              tmp_path):
    marker = tmp_path / "pickle-ran"
    (bundle_copy / "estimators.joblib").write_bytes(pickle.dumps(_Marker(marker)))
    digest = hashlib.sha256((bundle_copy / "estimators.joblib").read_bytes()).hexdigest()

    def foreign(manifest):
        manifest["files"]["estimators.joblib"] = digest
        manifest["packages"]["scikit-learn"] = "0.1.0"

    rehash_manifest(bundle_copy, foreign)
    with pytest.raises(BundleError, match="package-versions.*scikit-learn: bundle 0.1.0"):
        load_estimators(bundle_copy)
    assert not marker.exists()


def test_version_differences_are_reported_at_start_up_and_serving_goes_on(bundle_copy,
                                                                          monkeypatch, caplog):
    from calculator import create_app

    # Every app's logger is logging.getLogger("calculator"): undo what another test left.
    monkeypatch.setattr(logging.getLogger("calculator"), "disabled", False)

    def older(manifest):
        manifest["packages"].update({"numpy": "1.0.0", "scikit-learn": "0.1.0"})

    rehash_manifest(bundle_copy, older)
    caplog.set_level(logging.WARNING)
    app = create_app({"BUNDLE_PATH": str(bundle_copy)})
    (record,) = [r for r in caplog.records if "other package versions" in r.getMessage()]
    assert "numpy: bundle 1.0.0" in record.getMessage()
    assert "scikit-learn: bundle 0.1.0" in record.getMessage()
    health = app.test_client().get("/healthz")
    assert health.status_code == 200
    assert health.get_json()["bundle"]["id"] == load_predictor(bundle_copy).id


# --------------------------------------------------------------------------- train killed

#: Runs ``cart-risk train`` with os.rename paused at the Nth rename inside the bundle's parent
#: directory; a file announces the pause so the test can SIGKILL the process right there.
PAUSED_TRAIN = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path

    pause_at, ready, parent = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    real_rename, seen = os.rename, []

    def rename(source, target):
        if Path(os.path.abspath(target)).parent == parent:
            seen.append(target)
            if len(seen) == pause_at:
                ready.write_text(str(os.getpid()))
                time.sleep(600)
        real_rename(source, target)

    os.rename = rename
    from calculator.cli import main
    sys.exit(main(sys.argv[4:]))
""")


def _train_args(out: Path, bootstrap: int) -> list[str]:
    from training.reproduce import default_cohort_path

    return ["train", "--cohort", str(default_cohort_path()), "--out", str(out),
            "--bootstrap", str(bootstrap), "--jobs", "1", "--seed", "7"]


def _kill_when(process: subprocess.Popen, ready, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            pytest.fail(f"train ended (exit {process.returncode}) before the kill point")
        if time.monotonic() > deadline:
            stop_process(process)
            pytest.fail("train never reached the kill point")
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL


def _assert_previous_bundle(out: Path, before: str) -> None:
    from calculator import create_app

    assert load_predictor(out).id == before  # (this also puts a moved-aside bundle back)
    app = create_app({"BUNDLE_PATH": str(out), "TESTING": True})
    assert app.test_client().get("/healthz").get_json()["bundle"]["id"] == before


@pytest.fixture()
def live_bundle(bundle_copy) -> tuple[Path, str]:
    return bundle_copy, load_predictor(bundle_copy).id


@pytest.mark.slow
def test_train_killed_while_fitting_leaves_the_previous_bundle(live_bundle):
    out, before = live_bundle
    started = time.monotonic()
    train = subprocess.Popen([sys.executable, "-m", "calculator.cli",
                              *_train_args(out, bootstrap=200)], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_when(train, lambda: time.monotonic() - started > 4)  # imports done, bootstrap running
    assert not list(out.parent.glob(".bundle.writing-*")), "killed after fitting: too late"
    _assert_previous_bundle(out, before)


@pytest.mark.parametrize("pause_at, moment", [
    (1, "new bundle staged and verified, nothing swapped yet"),
    (2, "old bundle moved aside, new one not yet in place"),
])
def test_train_killed_while_swapping_leaves_the_previous_bundle(live_bundle, tmp_path,
                                                                pause_at, moment):
    out, before = live_bundle
    ready = tmp_path / "paused"
    train = subprocess.Popen([sys.executable, "-c", PAUSED_TRAIN, str(pause_at), str(ready),
                              str(out.parent), *_train_args(out, bootstrap=3)], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_when(train, ready.exists)
    if pause_at == 2:
        assert not out.exists() and (out.parent / ".bundle.previous").is_dir(), moment
    _assert_previous_bundle(out, before)
    # The next run cleans up after the killed one and replaces the bundle.
    assert main(_train_args(out, bootstrap=3)) == 0
    assert load_predictor(out).id != before
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".bundle")) == []
