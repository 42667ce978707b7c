"""``cart-risk simulate --study end-to-end``: the end-to-end coverage study, wired to the shipped
training; and packaging a study's output for /about and the report.

The study (:mod:`training.simulation.end_to_end`) trains each trial's ensemble bundle with
:func:`training.train_ensemble.train_ensemble`, the function behind ``cart-risk train --ensemble``,
so it follows whatever default features and methods that command ships; trials run on ``jobs``
local processes or, with ``backend="dask"``, on every worker of the cluster at ``scheduler``
(:func:`training.train.parallel_backend`, as ``cart-risk train``).

Maintainers re-package a study already run (30 minutes a run) without running it again::

    python -m training.simulate --package docs/simulation

copies ``end_to_end.csv`` and ``end_to_end.json`` of that directory into
``training/data/simulation/``; a json written before the study recorded its features and methods
gets them only if re-training its first reconstructed trial with today's defaults reproduces the
study's predictions (about a trial's time; :func:`training.simulation.end_to_end.package_study`).
"""
from __future__ import annotations

import shlex
import sys
import time

from training.simulation.end_to_end import (OUTPUTS, PACKAGED_DIR, PANEL_BLASTS, StudyFilesError,
                                            package_study, run_study, study_trained_with,
                                            trial_rows, write_study)
from training.train import parallel_backend
from training.train_ensemble import train_ensemble


def end_to_end_command(trials: int, members: int, bootstrap: int, seed: int, jobs: int, out_dir,
                       backend: str | None = None, scheduler: str | None = None,
                       update_packaged: bool = False) -> int:
    """``cart-risk simulate --study end-to-end``: run, write, print the target check; with
    ``update_packaged``, also copy the table and json into training/data/simulation/.

    Returns
    -------
    int
        0 (bad options are refused by the command line before).
    """
    command = (f"cart-risk simulate --study end-to-end --trials {trials} --members {members} "
               f"--bootstrap {bootstrap} --seed {seed} --out {shlex.quote(str(out_dir))}")
    started = time.perf_counter()
    with parallel_backend(backend, scheduler) as name:
        results = run_study(train_ensemble, trials, members, bootstrap, seed, jobs, name, verbose=10)
    meta = write_study(trial_rows(results), out_dir, command, seed, members, bootstrap,
                       study_trained_with(results))
    target = meta["target"]
    print(f"{meta['trials']} trials, {meta['failures']} failed (generator could not reproduce them)")
    print(f"coverage of the true risk: average {target['average']:.3f} over "
          f"{len(OUTPUTS) * len(PANEL_BLASTS)} cells; "
          + ("every cell >= 0.90" if target["every_cell"]
             else f"{len(target['cells_below'])} cell(s) below 0.90"))
    print(f"study written to {out_dir} in {time.perf_counter() - started:.0f} s "
          "(synthetic trials: the reconstruction's data-generating process)")
    if update_packaged:
        _, how = package_study(out_dir)
        print(f"packaged into {PACKAGED_DIR} (features and methods: {how})")
    return 0


def package_main(argv: list[str] | None = None) -> int:
    """``python -m training.simulate --package DIR [--to DIR]``: package a study already run.

    Returns 0, or 2 with one line naming the file when the directory cannot be packaged.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m training.simulate",
                                     description="Copy an end-to-end study's end_to_end.csv and "
                                                 ".json into the package data (maintainers).")
    parser.add_argument("--package", required=True, metavar="DIR",
                        help="directory written by cart-risk simulate --study end-to-end")
    parser.add_argument("--to", metavar="DIR", default=None,
                        help=f"where to write (default: {PACKAGED_DIR})")
    args = parser.parse_args(argv)
    try:
        _, how = package_study(args.package, args.to, train=train_ensemble)
    except StudyFilesError as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    print(f"packaged {args.package} into {args.to or PACKAGED_DIR} (features and methods: {how})")
    return 0


if __name__ == "__main__":
    sys.exit(package_main())
