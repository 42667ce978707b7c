"""Shared fixtures: an isolated CART_RISK_HOME, one small trained bundle, the app, a live server.

The bundle is trained once per test session with the real training code on the packaged
reconstructed cohort (B = 20 bootstrap refits instead of 200, to stay fast).

The suite runs on two pytest-xdist workers (pyproject.toml's addopts; ``-n 0`` runs it in one
process). Each test file runs whole on one worker, so a module-scoped fixture is built once; a
session fixture is built once per worker that uses it. The session bundles are not shared
between the workers: tests compare them byte for byte with bundles they train themselves, and
estimators.joblib (a pickle) is byte-identical only within one process.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_BOOTSTRAP = 20
TEST_SEED = 20170201
RECONSTRUCTED_COHORT = REPO / "training" / "data" / "reconstructed_cohort.csv"
#: The example patient of docs/api.md (12 % blasts: burden subgroup c).
EXAMPLE_PATIENT = {"marrow_blasts_pct": 12.0, "mrd_positive": True, "age_years": 30, "sex": "M",
                   "ph_positive": False, "prior_therapy_ge_6mo": True, "prior_chemo_ge_3": True,
                   "prior_hsct": False, "relapsed": True, "tp53_mutation": False,
                   "poor_cytogenetics": False, "tb_assessed": "before_fc"}


#: The longest test files (pytest --durations, several minutes between them): started first.
LONGEST_FILES = ("test_wheel.py", "test_cli_predict.py")


def predict_options(patient: dict) -> list[str]:
    """A patient as `cart-risk predict` options."""
    args = []
    for name, value in patient.items():
        flag = "--blasts" if name == "marrow_blasts_pct" else "--" + name.replace("_", "-")
        args += [flag, ("true" if value else "false") if isinstance(value, bool) else str(value)]
    return args


def pytest_collection_modifyitems(items):
    """The longest files first, then the other files holding slow tests, then the rest (each
    group in its usual order), so no worker is left alone with minutes of work at the end of
    the run. The order is only a schedule: every test still runs."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}

    def rank(item) -> int:
        if item.path.name in LONGEST_FILES:
            return LONGEST_FILES.index(item.path.name)
        return len(LONGEST_FILES) + (item.path not in slow_files)

    items.sort(key=rank)


@pytest.fixture(scope="session", autouse=True)
def cart_risk_home(tmp_path_factory) -> Path:
    """Every test (and every subprocess it starts) uses a fresh CART_RISK_HOME, never ~/.cart-risk."""
    home = tmp_path_factory.mktemp("cart-risk-home")
    saved = {name: os.environ.get(name) for name in ("CART_RISK_HOME", "CART_RISK_BUNDLE")}
    os.environ["CART_RISK_HOME"] = str(home)
    os.environ.pop("CART_RISK_BUNDLE", None)
    yield home
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


#: Features of the test bundles: every covariate of the previous default, through --features, so
#: the tests reach the fields that the shipped default (log10 blasts alone) no longer asks.
TEST_FEATURES = Path(__file__).with_name("data") / "full_features.toml"


@pytest.fixture(scope="session")
def trained_bundle_path(tmp_path_factory) -> Path:
    """A bundle trained by training.train.train on the reconstructed cohort, B = 20."""
    from training.reproduce import default_cohort_path
    from training.train import train

    path = tmp_path_factory.mktemp("trained") / "bundle"
    train(default_cohort_path(), path, bootstrap=TEST_BOOTSTRAP, seed=TEST_SEED, jobs=1,
          progress=False, features_path=TEST_FEATURES)
    return path


@pytest.fixture(scope="session")
def reconstructed_bundle_path(tmp_path_factory) -> Path:
    """A bundle trained by training.train.train on the reconstructed cohort with the default
    features (log10 blasts, MRD status), B = 20; shared by test_train.py and test_report.py."""
    from training.train import train

    path = tmp_path_factory.mktemp("reconstructed") / "bundle"
    train(RECONSTRUCTED_COHORT, path, bootstrap=TEST_BOOTSTRAP, seed=TEST_SEED, jobs=1)
    return path


@pytest.fixture(scope="session")
def loaded_bundle(trained_bundle_path):
    from model.bundle import load_predictor

    return load_predictor(trained_bundle_path)


@pytest.fixture(scope="session")
def app(trained_bundle_path):
    from calculator import create_app

    return create_app({"BUNDLE_PATH": str(trained_bundle_path), "TESTING": True,
                       "PUBLIC_URL": "http://localhost"})


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def patient(loaded_bundle) -> dict:
    """The example patient, restricted to the fields the trained bundle needs (the form's fields)."""
    needed = loaded_bundle.predictor.required_fields
    return {name: value for name, value in EXAMPLE_PATIENT.items() if name in needed}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _api_predict(base_url: str, patient: dict) -> tuple[int, dict]:
    """POST a patient to a live server's API; (status, parsed JSON)."""
    request = urllib.request.Request(f"{base_url}/api/v1/predict",
                                     data=json.dumps(patient).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


@pytest.fixture(scope="session")
def served_calculator(trained_bundle_path, tmp_path_factory):
    """``cart-risk serve`` (gunicorn) on a free port of 127.0.0.1; yields the base URL."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    server, base_url = start_calculator(trained_bundle_path, log)
    try:
        yield base_url
    finally:
        stop_process(server)


@pytest.fixture(scope="session")
def live_api(served_calculator):
    """Call the live server's API: ``live_api(patient) -> (status, JSON answer)``."""
    return lambda patient: _api_predict(served_calculator, patient)


@pytest.fixture()
def unused_port() -> int:
    return free_port()


def start_calculator(bundle: Path, log: Path, *, workers: int = 1, env: dict | None = None,
                     cwd: Path = REPO, timeout: float = 60) -> tuple[subprocess.Popen, str]:
    """Start ``cart-risk serve`` on a free loopback port; (process, base URL) once /healthz answers.

    Output (stdout and stderr) goes to ``log``; ``env`` replaces the environment when given
    (``CART_RISK_PUBLIC_URL`` is the listening address unless it sets one). The caller stops the
    process with :func:`stop_process`.
    """
    port = free_port()
    env = dict(os.environ if env is None else env)
    env.setdefault("CART_RISK_PUBLIC_URL", f"http://127.0.0.1:{port}")  # where it listens
    with open(log, "wb") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "calculator.cli", "serve", "--bundle", str(bundle),
             "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
            cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            pytest.fail(f"cart-risk serve exited with {server.returncode}:\n"
                        f"{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{base_url}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return server, base_url
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            stop_process(server)
            pytest.fail(f"cart-risk serve did not answer /healthz within {timeout} s:\n"
                        f"{log.read_text(errors='replace')}")
        time.sleep(0.2)


def stop_process(process: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM a process this test started, then SIGKILL it if it has not exited in time."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


#: The small ensemble fixture: the first members of the packaged ensemble, few refits each.
TEST_ENSEMBLE_MEMBERS = 3
TEST_ENSEMBLE_BOOTSTRAP = 12
#: Pooled-validation replicates of the test ensemble bundle (the default bundle has 200).
TEST_ENSEMBLE_REPLICATES = 12


@pytest.fixture(scope="session")
def small_ensemble_dir(tmp_path_factory) -> Path:
    """The first TEST_ENSEMBLE_MEMBERS cohorts of the packaged ensemble, with their own index."""
    import shutil

    from training.paper.ensemble import INDEX_FILE, default_ensemble_dir

    source, target = default_ensemble_dir(), tmp_path_factory.mktemp("ensemble")
    index = json.loads((source / INDEX_FILE).read_text(encoding="utf-8"))
    index["cohorts"] = index["cohorts"][:TEST_ENSEMBLE_MEMBERS]
    index["members"] = TEST_ENSEMBLE_MEMBERS
    for record in index["cohorts"]:
        shutil.copy(source / record["file"], target / record["file"])
    (target / INDEX_FILE).write_text(json.dumps(index), encoding="utf-8")
    return target


@pytest.fixture(scope="session")
def ensemble_bundle_path(small_ensemble_dir, tmp_path_factory) -> Path:
    """A bundle trained by training.train_ensemble on the small ensemble (K = 3, 4 refits each)."""
    from training.train_ensemble import train_ensemble

    path = tmp_path_factory.mktemp("ensemble-bundle") / "bundle"
    train_ensemble(small_ensemble_dir, path, bootstrap=TEST_ENSEMBLE_BOOTSTRAP, seed=TEST_SEED,
                   jobs=1, progress=False, validation_replicates=TEST_ENSEMBLE_REPLICATES,
                   features_path=TEST_FEATURES)
    return path
