"""The benchmark scripts still run (tiny settings); their figures are never asserted."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_bench(script: str, *args: str) -> str:
    result = subprocess.run([sys.executable, str(REPO / "bench" / script), *args], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "command: " in result.stdout and "bench/" + script in result.stdout
    assert "machine: " in result.stdout and "versions: numpy" in result.stdout
    return result.stdout


@pytest.mark.parametrize("script, args, figure", [
    ("bench_scoring.py", ["--patients", "500", "--csv-rows", "300", "--repeats", "1"],
     "rows/s with 95 % intervals"),
    ("bench_cli.py", ["--runs", "1", "--warmup", "0", "--timer", "subprocess"],
     "cart-risk predict --json       median"),
    ("bench_page.py", ["--pages", "12", "--no-server"], "complete result page, in process"),
])
def test_calculator_benchmarks_run(trained_bundle_path, script, args, figure):
    assert figure in run_bench(script, *args, "--bundle", str(trained_bundle_path))


def test_training_benchmark_runs_on_a_generated_cohort():
    out = run_bench("bench_training.py", "--sizes", "120", "--bootstrap", "2", "--jobs", "1")
    assert "n =    120:" in out and "ms per bootstrap refit" in out


@pytest.mark.slow
def test_simulation_benchmark_runs_with_two_cohorts():
    out = run_bench("bench_simulation.py", "--repetitions", "1", "--sizes", "78", "--jobs", "1",
                    "--validation-n", "2000")
    assert "logistic: winner" in out and "cox: winner" in out


def test_updating_benchmark_runs(trained_bundle_path):
    out = run_bench("bench_updating.py", "--simulations", "2", "--sizes", "160",
                    "--bundle", str(trained_bundle_path))
    assert "severe_crs intercept +1     160" in out and "hazard x 2" in out
