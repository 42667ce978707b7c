"""The simulation study of the fitting methods at full size, timed (``cart-risk simulate``).

Draws hundreds of cohorts from the reconstruction's data-generating process (``training/simulation/dgp.py``),
fits every candidate method for the four outcomes and scores each fit against the true risks on an
independent sample of 10,000 patients (``training/simulation/study.py``). Prints the time, the selection
by the rule of ``docs/method-selection.md`` and the median calibration slopes at n = 78. The
committed study in ``docs/simulation/`` was written by this script with its defaults plus
``--out docs/simulation --update-packaged``. The tests run the same code with two cohorts.

Run::

    .venv/bin/python bench/bench_simulation.py                          # 200 / 100 / 60 cohorts
    .venv/bin/python bench/bench_simulation.py --repetitions 20 --sizes 78 --jobs 2

Round 2 (docs/method-selection.md, Amendment 1: the logistic models only, round 1's Cox rows and
any fit not re-run kept from the committed study, round 1's re-run fits checked against it)::

    .venv/bin/python bench/bench_simulation.py --repetitions 200 100 40 --sizes 78 200 500 \
        --outcomes cr severe_crs --keep-rows docs/simulation/rows.csv --out docs/simulation \
        --update-packaged --round 2

Round 3 (Amendment 2: the eight logistic candidates on 1,000 cohorts of n = 78, round 2's
cohorts at 200 and 500; the Cox rows kept)::

    .venv/bin/python bench/bench_simulation.py --repetitions 1000 100 40 --sizes 78 200 500 \
        --outcomes cr severe_crs --keep-rows docs/simulation/rows.csv --out docs/simulation \
        --update-packaged --round 3

Round 4 (Amendment 3: the five Cox candidates on 1,000 cohorts of n = 78 and round 1's cohorts at
200 and 500; the logistic rows kept; nothing written unless round 1's Cox rows are reproduced)::

    .venv/bin/python bench/bench_simulation.py --repetitions 1000 100 40 --sizes 78 200 500 \
        --outcomes efs os --keep-rows docs/simulation/rows.csv --out docs/simulation \
        --update-packaged --round 4 --check-sizes 78 200

(``--check-sizes 78 200``: round 1's six n = 500 no-effect-limit Cox rows predate the code that
makes that limit exactly flat; Amendment 3's addendum.)
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import print_header  # noqa: E402

from model.defaults import DEFAULT_SEED  # noqa: E402
from model.outcomes import NAMES  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, nargs="+", default=[200, 100, 60])
    parser.add_argument("--sizes", type=int, nargs="+", default=[78, 200, 500])
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--validation-n", type=int, default=10_000,
                        help="size of the independent sample every fit is scored on")
    parser.add_argument("--out", type=Path, help="write the study here (default: a temporary directory)")
    parser.add_argument("--update-packaged", action="store_true",
                        help="also refresh training/data/simulation/ (what cart-risk report shows)")
    parser.add_argument("--outcomes", nargs="+", default=list(NAMES), choices=NAMES,
                        help="outcomes to run")
    parser.add_argument("--keep-rows", type=Path,
                        help="rows.csv of an earlier study: its fits that this run does not repeat "
                             "are kept, and the repeated ones are checked against it")
    parser.add_argument("--round", type=int, default=2,
                        help="with --keep-rows: the round this run is, for the study's command line")
    parser.add_argument("--max-gap", type=float, default=1e-8,
                        help="with --keep-rows: write nothing if a re-run fit failed in one run "
                             "only or a measure differs from the earlier row by more than this")
    parser.add_argument("--check-sizes", type=int, nargs="+",
                        help="with --keep-rows: the cohort sizes --max-gap is enforced for (default: "
                             "all); the others' gaps are printed only")
    args = parser.parse_args(argv)
    print_header("simulation study: cart-risk simulate", argv)
    import pandas as pd

    from training.simulation.study import (merge_rounds, reproduction_gap, run_study, summarize,
                                     write_study)

    earlier = (pd.read_csv(args.keep_rows, float_precision="round_trip") if args.keep_rows
               else None)

    repetitions = args.repetitions[0] if len(args.repetitions) == 1 else args.repetitions
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch) / "study"
        started = time.perf_counter()
        rows = run_study(repetitions, sizes=tuple(args.sizes), seed=args.seed, jobs=args.jobs,
                         validation_n=args.validation_n, outcomes=tuple(args.outcomes))
        elapsed = time.perf_counter() - started
        counts = " ".join(map(str, args.repetitions))
        command = (f"cart-risk simulate --repetitions {counts} --sizes "
                   f"{' '.join(map(str, args.sizes))} --seed {args.seed} --out docs/simulation "
                   "--update-packaged")
        cohorts = rows.groupby("n")["repetition"].nunique().to_dict()
        print(f"{sum(cohorts.values())} cohorts {cohorts}, {len(rows)} fits scored in "
              f"{elapsed:.0f} s with --jobs {args.jobs}")
        if earlier is not None:
            gap = reproduction_gap(earlier, rows)
            print(f"re-run fits checked against {args.keep_rows}: {gap['rows']} compared, "
                  f"{gap['failed_mismatch']} failed in one run only, largest difference of a "
                  f"measure {gap['max_abs_difference']:.3g}")
            checked = set(args.check_sizes or args.sizes)
            not_reproduced = []
            for n in args.sizes:
                at_n = reproduction_gap(earlier[earlier.n == n], rows[rows.n == n])
                enforced = n in checked
                print(f"  n = {n}: {at_n['rows']} compared, {at_n['failed_mismatch']} failed in one "
                      f"run only, largest difference {at_n['max_abs_difference']:.3g}"
                      + ("" if enforced else " (not enforced: --check-sizes)"))
                if enforced and (at_n["failed_mismatch"]
                                 or at_n["max_abs_difference"] > args.max_gap):
                    not_reproduced.append(n)
            if not_reproduced:
                print(f"not reproduced at n = {not_reproduced} (more than --max-gap "
                      f"{args.max_gap:g}): nothing written, {args.keep_rows} left as it is",
                      file=sys.stderr)
                return 1
            rows = merge_rounds(earlier, rows)
            before = args.keep_rows.with_name("selection.json")
            before = (json.loads(before.read_text())["command"] if before.exists()
                      else f"the study in {args.keep_rows}")
            if " (round 1), then " not in before:
                before += " (round 1)"
            command = (f"{before}, then .venv/bin/python bench/bench_simulation.py "
                       f"--repetitions {counts} --sizes {' '.join(map(str, args.sizes))} --seed "
                       f"{args.seed} --outcomes {' '.join(args.outcomes)} --keep-rows "
                       f"{args.keep_rows} --out docs/simulation --update-packaged --round "
                       f"{args.round}"
                       + (f" --check-sizes {' '.join(map(str, args.check_sizes))}"
                          if args.check_sizes else "")
                       + f" (round {args.round})")
        meta = write_study(rows, out, command, args.seed, packaged_copy=args.update_packaged)
        summary = summarize(rows)
        for kind, sel in meta["selection"].items():
            print(f"{kind}: winner {sel['winner']} ({sel['reason']})")
        at78 = summary[summary.n == min(args.sizes)]
        for _, r in at78.iterrows():
            print(f"  n = {r['n']} {r['outcome']:<10} {r['method']:<28} slope median "
                  f"{r['slope_median']:.3f} (MCSE {r['slope_median_mcse']:.3f}; IQR "
                  f"{r['slope_q25']:.2f}-{r['slope_q75']:.2f}) RMSE {r['rmse_mean']:.4f} "
                  f"(MCSE {r['rmse_mcse']:.4f}) edge {100 * r['edge_share']:.1f} % "
                  f"failed {100 * r['failure_share']:.1f} %")
        if args.out:
            print(f"study written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
