"""Round 5 of the method study: the feature-set candidates (docs/method-selection.md, Amendment 4).

Runs the sets ``blasts``, ``split``, ``rcs`` and the no-covariate comparator ``none`` on cohorts of
n = 78 in chunks (each chunk's rows written to ``--parts``/rows_<first>.csv as soon as it ends,
so a stopped run keeps its finished chunks), then, with ``--combine``, merges the finished chunks
with the rows of rounds 3-4 (the ``default`` set; at n = 78 cut to the same cohorts, the other
sizes kept) and writes the study. Every cohort's seed is ``[seed, 78, r]`` as in rounds 1-4.

Run::

    .venv/bin/python bench/bench_feature_study.py --repetitions 1000 --chunk 250 --jobs 2 \\
        --parts /tmp/round5
    .venv/bin/python bench/bench_feature_study.py --combine --parts /tmp/round5 \\
        --keep-rows docs/simulation/rounds-1-4/rows.csv --out docs/simulation --update-packaged
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import print_header  # noqa: E402

from model.defaults import DEFAULT_SEED  # noqa: E402

SETS = ("blasts", "split", "rcs", "none")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=1000)
    parser.add_argument("--first", type=int, default=0, help="first cohort r")
    parser.add_argument("--chunk", type=int, default=250)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    parser.add_argument("--parts", type=Path, required=True)
    parser.add_argument("--combine", action="store_true")
    parser.add_argument("--keep-rows", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--update-packaged", action="store_true")
    args = parser.parse_args(argv)
    print_header("simulation study, round 5: feature sets", argv)
    import pandas as pd

    from training.simulation.study import run_study, with_feature_sets, write_study

    if not args.combine:
        args.parts.mkdir(parents=True, exist_ok=True)
        for first in range(args.first, args.first + args.repetitions, args.chunk):
            count = min(args.chunk, args.first + args.repetitions - first)
            started = time.perf_counter()
            rows = run_study(count, sizes=(78,), seed=args.seed, jobs=args.jobs,
                             first_repetition=first, feature_sets=tuple(args.sets))
            rows.to_csv(args.parts / f"rows_{first:04d}.csv", index=False)
            print(f"cohorts {first}-{first + count - 1}: {len(rows)} fits in "
                  f"{time.perf_counter() - started:.0f} s with --jobs {args.jobs}", flush=True)
        return 0
    parts = sorted(args.parts.glob("rows_*.csv"))
    new = pd.concat([pd.read_csv(p, float_precision="round_trip") for p in parts], ignore_index=True)
    cohorts = sorted(set(new["repetition"]))
    if cohorts != list(range(len(cohorts))):
        print("the finished chunks are not the first cohorts in order", file=sys.stderr)
        return 1
    earlier = with_feature_sets(pd.read_csv(args.keep_rows, float_precision="round_trip"))
    # the default set's rows of rounds 3-4 on the same cohorts of n = 78, and their other sizes
    default = earlier[((earlier["n"] == 78) & earlier["repetition"].isin(cohorts)) | (earlier["n"] != 78)]
    rows = pd.concat([default, new], ignore_index=True)
    command = (f"rounds 3-4 (default set; at n = 78 cohorts 0-{len(cohorts) - 1}), then "
               f".venv/bin/python bench/bench_feature_study.py --repetitions {len(cohorts)} "
               f"--sets {' '.join(args.sets)} --seed {args.seed} (round 5, Amendment 4)")
    meta = write_study(rows, args.out, command, args.seed, packaged_copy=args.update_packaged)
    for kind, sel in meta["selection"].items():
        print(f"{kind}: winner {sel['candidate']} ({sel['reason']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
