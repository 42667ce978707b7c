"""Batch scoring on one core: the numpy predictor, and ``cart-risk score`` end to end.

1. ``model.predictor.predict_points`` on 100,000 generated patients (``bench/synthetic.py``), in
   process: CR and sCRS probabilities and EFS / OS at 6, 12 and 24 months, first as points only,
   then with the 95 % bootstrap intervals (B evaluations a patient per model). Targets on the
   2-core reference machine: >= 100,000 patients/s without, >= 10,000 patients/s with intervals.
2. ``cart-risk score`` on a generated CSV of 100,000 rows (and 1,000,000 rows, to show that
   memory does not grow with the file): whole-process wall time, including interpreter start,
   bundle verification, CSV parsing and checking, prediction with intervals and writing.

Single core: the process is pinned to one CPU (``os.sched_setaffinity``) with BLAS / OpenMP
limited to one thread (threadpoolctl and ``OMP_NUM_THREADS`` etc.); the ``cart-risk score``
subprocesses inherit both. The bundle is the default one (``cart-risk`` without ``--bundle``:
reconstructed cohort, B = 200), trained first if missing, unless ``--bundle`` is given.

Run::

    .venv/bin/python bench/bench_scoring.py
    .venv/bin/python bench/bench_scoring.py --patients 100000 --csv-rows 100000 --repeats 5
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import one_core, print_header, run_measured  # noqa: E402

CART_RISK = [sys.executable, "-m", "calculator.cli"]


def _bundle(path: Path | None):
    from calculator.defaults import ensure_default_bundle
    from model.bundle import load_predictor

    path = Path(path) if path is not None else ensure_default_bundle()
    return path, load_predictor(path)


def time_predictor(bundle, n: int, repeats: int) -> None:
    """Print the median and best time of ``predict_points`` on ``n`` patients."""
    from model.predictor import predict_points
    from synthetic import patient_columns

    patients = patient_columns(n, bundle.predictor.required_fields)
    for intervals in (False, True):
        predict_points(bundle, patients, intervals=intervals)  # warm up caches and allocators
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            predict_points(bundle, patients, intervals=intervals)
            times.append(time.perf_counter() - started)
        what = "with 95 % intervals" if intervals else "points only       "
        median = statistics.median(times)
        print(f"predictor, {what}: {n:,} patients in {median:.3f} s (median of {repeats}; "
              f"best {min(times):.3f} s) = {n / median:,.0f} patients/s", flush=True)


def time_score(bundle_path: Path, rows: int, repeats: int, workdir: Path) -> None:
    """Print the median whole-process time and peak memory of ``cart-risk score``."""
    from synthetic import write_patient_csv

    source = write_patient_csv(rows, workdir / f"patients_{rows}.csv")
    output = workdir / f"scored_{rows}.csv"
    command = [*CART_RISK, "score", "--bundle", str(bundle_path), str(source), "-o", str(output)]
    times, memory = [], []
    for _ in range(repeats):
        run = run_measured(command)
        if run.returncode != 0:
            raise SystemExit(f"cart-risk score failed ({run.returncode}): {run.stderr[-2000:]}")
        times.append(run.seconds)
        memory.append(run.peak_mb)
    median = statistics.median(times)
    size_mb = source.stat().st_size / 1e6
    print(f"cart-risk score, end to end: {rows:,} rows ({size_mb:.0f} MB CSV) in {median:.2f} s "
          f"(median of {repeats}; best {min(times):.2f} s) = {rows / median:,.0f} rows/s with "
          f"95 % intervals; peak memory {max(memory):.0f} MB", flush=True)
    source.unlink()
    output.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100_000,
                        help="patients for the in-process predictor timing")
    parser.add_argument("--csv-rows", type=int, nargs="+", default=[100_000, 1_000_000],
                        help="row counts of the CSVs scored end to end")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bundle", type=Path, help="bundle directory (default: the default "
                                                    "bundle, trained first if missing)")
    args = parser.parse_args(argv)
    print_header("batch scoring, one core", argv)
    bundle_path, bundle = _bundle(args.bundle)  # may train the default bundle: before pinning
    cpu = one_core()
    print(f"single core: pinned to CPU {cpu}, BLAS / OpenMP threads 1")
    print(f"bundle: {bundle_path} (id {bundle.id[:12]}, B = {bundle.manifest['bootstrap']}, "
          f"models {', '.join(bundle.predictor.models)})", flush=True)
    time_predictor(bundle, args.patients, args.repeats)
    with tempfile.TemporaryDirectory() as workdir:
        for rows in args.csv_rows:
            time_score(bundle_path, rows, args.repeats if rows <= 100_000 else 1, Path(workdir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
