"""``cart-risk simulate --study end-to-end``: the end-to-end coverage study, wired to the shipped
training.

The study (:mod:`training.simulation.end_to_end`) trains each trial's ensemble bundle with
:func:`training.train_ensemble.train_ensemble`, the function behind ``cart-risk train --ensemble``,
so it follows whatever default features and methods that command ships; trials run on ``jobs``
local processes or, with ``backend="dask"``, on every worker of the cluster at ``scheduler``
(:func:`training.train.parallel_backend`, as ``cart-risk train``).
"""
from __future__ import annotations

import shlex
import time

from training.simulation.end_to_end import OUTPUTS, PANEL_BLASTS, run_study, trial_rows, write_study
from training.train import parallel_backend
from training.train_ensemble import train_ensemble


def end_to_end_command(trials: int, members: int, bootstrap: int, seed: int, jobs: int, out_dir,
                       backend: str | None = None, scheduler: str | None = None) -> int:
    """``cart-risk simulate --study end-to-end``: run, write, print the target check.

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
    meta = write_study(trial_rows(results), out_dir, command, seed, members, bootstrap)
    target = meta["target"]
    print(f"{meta['trials']} trials, {meta['failures']} failed (generator could not reproduce them)")
    print(f"coverage of the true risk: average {target['average']:.3f} over "
          f"{len(OUTPUTS) * len(PANEL_BLASTS)} cells; "
          + ("every cell >= 0.90" if target["every_cell"]
             else f"{len(target['cells_below'])} cell(s) below 0.90"))
    print(f"study written to {out_dir} in {time.perf_counter() - started:.0f} s "
          "(synthetic trials: the reconstruction's data-generating process)")
    return 0
