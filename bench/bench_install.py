"""Lean (serving) install against full (``[train]``) install: size on disk and start-up times.

Builds the wheel, makes two fresh venvs from the locks (``requirements/serve.txt`` and
``requirements/train.txt``, hash-checked, pip's cache used) plus the wheel, and measures in each:

- **size**: bytes of the venv's ``site-packages`` (every file, as ``du --apparent-size``), and
  the number of distributions installed;
- **predict**: median wall time of a whole ``cart-risk predict --json`` process from a bundle
  (interpreter start, imports, bundle verification, answer);
- **serve**: median time from starting ``cart-risk serve --workers 1`` to the first ``200`` of
  ``/healthz`` (gunicorn start, bundle verified, cohort curves built).

The bundle is trained once, in the full venv, on the packaged reconstructed cohort
(B = ``--bootstrap``), unless ``--bundle`` is given. Both venvs time the same bundle.

Run::

    .venv/bin/python bench/bench_install.py
    .venv/bin/python bench/bench_install.py --runs 3 --keep /tmp/installs
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import REPO, print_header  # noqa: E402

from bench_cli import PATIENT_OPTIONS  # noqa: E402

INSTALLS = {"lean (base: serve, predict, score)": "serve.txt",
            "full ([train]: every command)": "train.txt"}


def _run(command: list, **kwargs) -> str:
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True,
                            **kwargs)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, command))} failed:\n{result.stderr[-2000:]}")
    return result.stdout


def build_wheel(folder: Path) -> Path:
    """The project's wheel, built by pip (PEP 517, isolated) into ``folder`` from a copy of the
    source (a build in place would leave build/ and egg-info in the checkout)."""
    source = folder / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".venv*", ".git", "__pycache__", "*.egg-info", "build", "dist", "test-artifacts", "var"))
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", folder, source])
    return next(folder.glob("cart_risk-*.whl"))


def make_venv(where: Path, lock: str, wheel: Path) -> Path:
    """A venv with ``requirements/<lock>`` and the wheel; returns its bin directory."""
    _run([sys.executable, "-m", "venv", where])
    python = where / "bin" / "python"
    _run([python, "-m", "pip", "install", "--quiet", "--require-hashes", "-r",
          REPO / "requirements" / lock])
    _run([python, "-m", "pip", "install", "--quiet", "--no-deps", wheel])
    return where / "bin"


def site_packages_size(venv: Path) -> tuple[int, int]:
    """(bytes of every file under site-packages, distributions installed)."""
    (site,) = venv.glob("lib/python*/site-packages")
    size = sum(path.lstat().st_size for path in site.rglob("*") if path.is_file()
               and not path.is_symlink())
    distributions = [path for path in site.glob("*.dist-info")
                     if not path.name.startswith(("pip-", "setuptools-"))]
    return size, len(distributions)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def time_predict(bin_dir: Path, bundle: Path, env: dict) -> float:
    started = time.perf_counter()
    _run([bin_dir / "cart-risk", "predict", "--bundle", bundle, "--json", *PATIENT_OPTIONS],
         env=env)
    return time.perf_counter() - started


def time_serve(bin_dir: Path, bundle: Path, env: dict) -> float:
    """Seconds from starting ``serve`` to its first healthy answer."""
    port = _free_port()
    started = time.perf_counter()
    server = subprocess.Popen([str(bin_dir / "cart-risk"), "serve", "--bundle", str(bundle),
                               "--port", str(port), "--workers", "1"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if server.poll() is not None:
                raise SystemExit(f"serve exited with {server.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    return time.perf_counter() - started
            except OSError:
                time.sleep(0.02)
            if time.perf_counter() - started > 120:
                raise SystemExit("serve did not answer within 120 s")
    finally:
        server.terminate()
        server.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each command")
    parser.add_argument("--bundle", type=Path, help="bundle to time (default: train one)")
    parser.add_argument("--bootstrap", type=int, default=20,
                        help="B of the bundle trained when --bundle is not given")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="build the venvs in DIR and keep them (default: a temporary folder)")
    args = parser.parse_args(argv)
    print_header("lean vs full install: size and start-up", argv)

    folder = args.keep or Path(tempfile.mkdtemp(prefix="cart-risk-installs-"))
    folder.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CART_RISK_", "PROMETHEUS_"))}
    env["CART_RISK_HOME"] = str(folder / "home")
    try:
        wheel = build_wheel(folder / "dist")
        bins = {label: make_venv(folder / lock.removesuffix(".txt"), lock, wheel)
                for label, lock in INSTALLS.items()}
        bundle = args.bundle
        if bundle is None:
            bundle = folder / "bundle"
            full_bin = bins["full ([train]: every command)"]
            cohort = _run([full_bin / "python", "-c", "from training.reproduce import "
                           "default_cohort_path; print(default_cohort_path())"], env=env).strip()
            _run([full_bin / "cart-risk", "train", "--cohort", cohort, "--out", bundle,
                  "--bootstrap", args.bootstrap], env=env)
        print(f"bundle: {bundle} ({json.loads((bundle / 'manifest.json').read_text())['bootstrap']}"
              f" refits a model); {args.runs} runs each, medians")
        print(f"{'install':<38}{'site-packages':>15}{'packages':>10}{'predict':>10}{'serve':>10}")
        for label, bin_dir in bins.items():
            size, count = site_packages_size(bin_dir.parent)
            time_predict(bin_dir, bundle, env)  # warm the page cache once
            predict = statistics.median(time_predict(bin_dir, bundle, env)
                                        for _ in range(args.runs))
            serve = statistics.median(time_serve(bin_dir, bundle, env) for _ in range(args.runs))
            print(f"{label:<38}{size / 2**20:>12.0f} MB{count:>10}{predict:>9.2f}s{serve:>9.2f}s")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
