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


@pytest.mark.slow
def test_ensemble_benchmark_runs_on_one_split(ensemble_bundle_path):
    out = run_bench("bench_ensemble.py", "--bundle", str(ensemble_bundle_path), "--splits", "1",
                    "--jobs", "1")
    assert "generator: 1 of 1 splits reproduced every published statistic" in out
    assert "coverage of 1 fresh reconstructions" in out and "Rubin" in out


@pytest.mark.slow
def test_simulation_benchmark_writes_nothing_when_kept_rows_are_not_reproduced(tmp_path):
    import pandas as pd

    committed = pd.read_csv(REPO / "docs" / "simulation" / "rows.csv", float_precision="round_trip")
    kept = committed[(committed.n == 78) & (committed.repetition == 0)
                     & committed.outcome.isin(["efs", "os"])
                     & (committed.features == "full")].copy()  # the set the bench re-runs
    kept.loc[kept.index[0], "rmse"] += 0.5  # one fit that the re-run cannot reproduce
    kept.to_csv(tmp_path / "rows.csv", index=False)
    out = tmp_path / "study"
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_simulation.py"), "--repetitions", "1",
         "--sizes", "78", "--jobs", "1", "--outcomes", "efs", "os", "--keep-rows",
         str(tmp_path / "rows.csv"), "--out", str(out), "--round", "4"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"{len(kept)} compared, 0 failed in one run only, largest difference of a measure 0.5" \
        in result.stdout
    assert "not reproduced" in result.stderr and not out.exists()
    assert "winner" not in result.stdout
