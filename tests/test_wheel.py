"""The wheel is the product: built from the sdist, installed from the locks in fresh venvs outside
the checkout, every command works there (issue 20 item 8, issue 23 item 8).

- **Full install** (``requirements/train.txt`` + the wheel): ``predict`` builds the default bundle
  from the packaged ensemble, ``serve`` answers under gunicorn, ``train --ensemble DIR``,
  ``report``, ``validate`` and ``update`` run.
- **Lean install** (``requirements/serve.txt`` + the wheel, no extra): scikit-learn, lifelines,
  scipy and matplotlib are absent; ``serve``, ``predict`` and ``score`` work from the bundle the
  full install built; ``train`` and building the default bundle stop with one line.

pip's cache (``~/.cache/pip``) is used, so after the first run the installs copy wheels and take
seconds; the first run downloads from PyPI.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from model.release import __version__
from conftest import EXAMPLE_PATIENT, REPO, free_port, predict_options, stop_process

pytestmark = pytest.mark.slow

CENTER = REPO / "tests" / "data" / "synthetic_center_cohort.csv"
TRAINING_STACK = ("sklearn", "lifelines", "scipy", "matplotlib")


def _run(command: list, cwd: Path, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(part) for part in command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _ok(command: list, cwd: Path, env: dict, timeout: float = 600) -> str:
    result = _run(command, cwd, env, timeout)
    assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _clean_env(home: Path) -> dict:
    """The environment without this checkout's venv or paths, with its own CART_RISK_HOME."""
    env = {name: value for name, value in os.environ.items()
           if name not in ("PYTHONPATH", "VIRTUAL_ENV", "CART_RISK_BUNDLE", "PYTHONHOME")
           and not name.startswith(("CART_RISK_", "PROMETHEUS_"))}
    env["CART_RISK_HOME"] = str(home)
    env["PATH"] = os.pathsep.join(part for part in env.get("PATH", "").split(os.pathsep)
                                  if not part.startswith(str(REPO)))
    return env




def _pip(python: Path, *arguments) -> list:
    """This venv's pip run for another interpreter (the fresh venvs get no pip of their own:
    ensurepip costs seconds each). Nothing is byte-compiled at install: imports do it."""
    return [sys.executable, "-m", "pip", "--python", python, *arguments]


def _venv(where: Path, lock: str, wheel: Path, env: dict) -> Path:
    """A fresh venv at ``where`` with ``requirements/<lock>`` (hash-checked) and the wheel."""
    _ok([sys.executable, "-m", "venv", "--without-pip", where], where.parent, env)
    python = where / "bin" / "python"
    _ok(_pip(python, "install", "--quiet", "--no-compile", "--require-hashes", "-r",
             REPO / "requirements" / lock), where.parent, env)
    _ok(_pip(python, "install", "--quiet", "--no-compile", "--no-deps", wheel), where.parent, env)
    return where / "bin"


@pytest.fixture(scope="module")
def outside(tmp_path_factory) -> Path:
    """A folder outside the checkout (pytest's temporary directory, not under REPO)."""
    folder = tmp_path_factory.mktemp("outside")
    assert REPO not in folder.parents
    return folder


@pytest.fixture(scope="module")
def wheel(outside) -> Path:
    """The wheel built from the sdist, as ``python -m build`` does: what the sdist lacks, the
    wheel lacks too. The source is copied first, so the checkout gets no build/ or egg-info."""
    env = _clean_env(outside / "build-home")
    source = outside / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".venv*", ".git", "__pycache__", "*.egg-info", "build", "dist", ".pytest_cache",
        ".hypothesis", "test-artifacts", "var"))
    builder = outside / "builder" / "bin" / "python"
    _ok([sys.executable, "-m", "venv", "--without-pip", builder.parent.parent], outside, env)
    _ok(_pip(builder, "install", "--quiet", "setuptools>=77"), outside, env)
    dist = outside / "dist"
    _ok([builder, "-c", f"from setuptools import build_meta; build_meta.build_sdist({str(dist)!r})"],
        source, env)
    (sdist,) = dist.glob("cart_risk-*.tar.gz")
    _ok(_pip(builder, "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", dist,
             sdist), outside, env)
    (built,) = dist.glob("cart_risk-*.whl")
    assert built.name == f"cart_risk-{__version__}-py3-none-any.whl"
    return built


def test_the_wheel_carries_every_file_read_at_run_time(wheel):
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    for package in ("model", "calculator", "training"):
        for path in (REPO / package).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                relative = path.relative_to(REPO).as_posix()
                assert relative in names, f"{relative} is not in the wheel"
    metadata = next(name for name in names if name.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "License-Expression: MIT" in text and "Provides-Extra: train" in text
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)


@pytest.fixture(scope="module")
def installs(outside, wheel) -> dict:
    """Both installs, made side by side (the lean one while the full one builds the default
    bundle): ``{"full": (bin dir, env), "lean": (bin dir, env), "default_bundle": path}``."""
    from concurrent.futures import ThreadPoolExecutor

    full_env, lean_env = _clean_env(outside / "home-full"), _clean_env(outside / "home-lean")

    def full_and_default_bundle():
        bin_dir = _venv(outside / "full", "train.txt", wheel, full_env)
        return bin_dir, _build_default_bundle(bin_dir, full_env, outside)

    with ThreadPoolExecutor(max_workers=2) as pool:
        full = pool.submit(full_and_default_bundle)
        lean = pool.submit(_venv, outside / "lean", "serve.txt", wheel, lean_env)
        (full_bin, bundle), lean_bin = full.result(), lean.result()
    return {"full": (full_bin, full_env), "lean": (lean_bin, lean_env), "default_bundle": bundle}


def _build_default_bundle(bin_dir: Path, env: dict, work: Path) -> Path:
    """`cart-risk predict` in the full install, which builds the default bundle first."""
    result = _run([bin_dir / "cart-risk", "predict", "--json", *predict_options(EXAMPLE_PATIENT)],
                  work, env, timeout=900)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert 0 < answer["cr"]["probability"] < 1
    path = Path(env["CART_RISK_HOME"]) / "bundles" / "default"
    assert (path / "manifest.json").is_file()
    assert json.loads((path / "manifest.json").read_text())["ensemble"]["members"] == 20
    return path


@pytest.fixture(scope="module")
def full(installs, outside):
    """(bin dir, env, work dir) of the full install (`train` extra's lock)."""
    return (*installs["full"], outside)


@pytest.fixture(scope="module")
def lean(installs, outside):
    """(bin dir, env, work dir) of the lean install (base lock, no extra)."""
    return (*installs["lean"], outside)


@pytest.fixture(scope="module")
def default_bundle(installs) -> Path:
    return installs["default_bundle"]


def _serve(bin_dir: Path, bundle: Path, env: dict, work: Path, log: Path):
    port = free_port()
    with open(log, "wb") as output:
        server = subprocess.Popen([str(bin_dir / "cart-risk"), "serve", "--bundle", str(bundle),
                                   "--port", str(port), "--workers", "2"], cwd=work, env=env,
                                  stdout=output, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        assert server.poll() is None, log.read_text(errors="replace")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return server, base, json.loads(answer.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            stop_process(server)
            pytest.fail(f"serve did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.3)


def _check_served(base: str, patient: dict) -> None:
    for path, marker in (("/", "csrf_token"), ("/about", "cart-risk " + __version__)):
        with urllib.request.urlopen(base + path, timeout=30) as answer:
            assert answer.status == 200 and marker in answer.read().decode()
    request = urllib.request.Request(f"{base}/api/v1/predict", data=json.dumps(patient).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert 0 < json.loads(answer.read())["severe_crs"]["probability"] < 1


def test_the_full_install_runs_every_command_outside_the_checkout(full, default_bundle,
                                                                  small_ensemble_dir):
    bin_dir, env, work = full
    location = _ok([bin_dir / "python", "-c", "import calculator, training.report; "
                    "print(calculator.__file__)"], work, env)
    assert str(work / "full") in location and str(REPO) not in location
    assert _ok([bin_dir / "cart-risk", "--version"], work, env).strip() == \
        f"cart-risk {__version__} (reads bundle format 1)"

    server, base, health = _serve(bin_dir, default_bundle, env, work, work / "full-serve.log")
    try:
        assert health["version"] == __version__
        _check_served(base, EXAMPLE_PATIENT)
    finally:
        stop_process(server)
    assert "Traceback" not in (work / "full-serve.log").read_text()

    trained = work / "trained"
    _ok([bin_dir / "cart-risk", "train", "--ensemble", small_ensemble_dir, "--out", trained,
         "--bootstrap", "6"], work, env)
    _ok([bin_dir / "cart-risk", "report", "--bundle", trained, "--out", work / "report.html"],
        work, env)
    assert "<html" in (work / "report.html").read_text()
    figures = json.loads(_ok([bin_dir / "cart-risk", "validate", "--bundle", trained, "--cohort",
                              CENTER, "--json"], work, env))
    assert figures  # the validation's figures, as JSON
    _ok([bin_dir / "cart-risk", "update", "--bundle", trained, "--cohort", CENTER, "--out",
         work / "updated", "--bootstrap", "4"], work, env)
    assert (work / "updated" / "manifest.json").is_file()


def test_the_lean_install_serves_predicts_and_scores_without_the_training_stack(
        lean, default_bundle):
    bin_dir, env, work = lean
    found = _ok([bin_dir / "python", "-c", "import importlib.util as u; print([m for m in "
                 f"{TRAINING_STACK!r} if u.find_spec(m)])"], work, env)
    assert found.strip() == "[]"

    printed = _ok([bin_dir / "cart-risk", "predict", "--bundle", default_bundle,
                   *predict_options(EXAMPLE_PATIENT)], work, env)
    assert printed.startswith("ssCART-19 risk, r/r B-ALL (bundle ")
    patients = work / "patients.csv"
    with open(patients, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(EXAMPLE_PATIENT))
        writer.writeheader()
        writer.writerow({k: (str(v).lower() if isinstance(v, bool) else v)
                         for k, v in EXAMPLE_PATIENT.items()})
    _ok([bin_dir / "cart-risk", "score", "--bundle", default_bundle, patients, "-o",
         work / "scored.csv"], work, env)
    with open(work / "scored.csv", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert not row.get("error")

    server, base, _ = _serve(bin_dir, default_bundle, env, work, work / "lean-serve.log")
    try:
        _check_served(base, EXAMPLE_PATIENT)
    finally:
        stop_process(server)
    assert "Traceback" not in (work / "lean-serve.log").read_text()


@pytest.mark.parametrize("command", [
    ["train", "--cohort", CENTER, "--out", "x-bundle"],
    ["report", "--bundle", "{bundle}", "--out", "x.html"],
    ["predict", "--blasts", "12"],  # no bundle yet: the default one would have to be built
])
def test_the_lean_install_refuses_training_work_in_one_line(lean, default_bundle, command):
    bin_dir, env, work = lean
    command = [str(default_bundle) if part == "{bundle}" else part for part in command]
    result = _run([bin_dir / "cart-risk", *command], work, env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "pip install 'cart-risk[train]'" in lines[0]
    assert not (work / "x-bundle").exists()
