"""The simulation study of the fitting methods at full size, timed (``cart-risk simulate``).

Draws hundreds of cohorts from the reconstruction's data-generating process (``training/dgp.py``),
fits every candidate method for the four outcomes and scores each fit against the true risks on an
independent sample of 10,000 patients (``training/simulation.py``). Prints the time, the selection
by the rule of ``docs/method-selection.md`` and the median calibration slopes at n = 78. The
committed study in ``docs/simulation/`` was written by this script with its defaults plus
``--out docs/simulation --update-packaged``. The tests run the same code with two cohorts.

Run::

    .venv/bin/python bench/bench_simulation.py                          # 200 / 100 / 60 cohorts
    .venv/bin/python bench/bench_simulation.py --repetitions 20 --sizes 78 --jobs 2
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import print_header  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, nargs="+", default=[200, 100, 60])
    parser.add_argument("--sizes", type=int, nargs="+", default=[78, 200, 500])
    parser.add_argument("--seed", type=int, default=20170201)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--validation-n", type=int, default=10_000,
                        help="size of the independent sample every fit is scored on")
    parser.add_argument("--out", type=Path, help="write the study here (default: a temporary directory)")
    parser.add_argument("--update-packaged", action="store_true",
                        help="also refresh training/data/simulation/ (what cart-risk report shows)")
    args = parser.parse_args(argv)
    print_header("simulation study: cart-risk simulate", argv)
    from training.simulation import run_study, summarize, write_study

    repetitions = args.repetitions[0] if len(args.repetitions) == 1 else args.repetitions
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch) / "study"
        started = time.perf_counter()
        rows = run_study(repetitions, sizes=tuple(args.sizes), seed=args.seed, jobs=args.jobs,
                         validation_n=args.validation_n)
        elapsed = time.perf_counter() - started
        counts = " ".join(map(str, args.repetitions))
        command = (f"cart-risk simulate --repetitions {counts} --sizes "
                   f"{' '.join(map(str, args.sizes))} --seed {args.seed} --out docs/simulation "
                   "--update-packaged")
        meta = write_study(rows, out, command, args.seed, packaged_copy=args.update_packaged)
        cohorts = rows.groupby("n")["repetition"].nunique().to_dict()
        print(f"{sum(cohorts.values())} cohorts {cohorts}, {len(rows)} fits scored in "
              f"{elapsed:.0f} s with --jobs {args.jobs}")
        summary = summarize(rows)
        for kind, sel in meta["selection"].items():
            print(f"{kind}: winner {sel['winner']} ({sel['reason']})")
        at78 = summary[summary.n == min(args.sizes)]
        for _, r in at78.iterrows():
            print(f"  n = {r['n']} {r['outcome']:<10} {r['method']:<20} slope median "
                  f"{r['slope_median']:.2f} (IQR {r['slope_q25']:.2f}-{r['slope_q75']:.2f}) "
                  f"RMSE {r['rmse_mean']:.4f} edge {100 * r['edge_share']:.1f} % "
                  f"failed {100 * r['failure_share']:.1f} %")
        if args.out:
            print(f"study written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
