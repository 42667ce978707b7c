"""External validation and updating on simulated centers whose truth is known.

For each scenario (a model of the bundle, a known miscalibration, a cohort size) the script
simulates N center cohorts from the bundle's own model (:mod:`training.external.center_simulation`), and
counts (1) how often ``cart-risk validate``'s 95 % CI covers the true shift and (2) which update
``cart-risk update --method auto`` chooses by the closed testing procedure. Nothing is timed;
the figures are rates, printed with the number of simulations behind them.

The bundle is trained on the reconstructed cohort (B = 20: the point estimates, which are what the
simulations use, do not depend on B) unless ``--bundle`` is given.

Run::

    .venv/bin/python bench/bench_updating.py                      # 200 simulations a scenario
    .venv/bin/python bench/bench_updating.py --simulations 20 --sizes 160
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import print_header  # noqa: E402

#: (label, model, Miscalibration keyword arguments, matching update, figure path, true value)
SCENARIOS = (
    ("unshifted", "severe_crs", {}, "none", ("calibration_intercept",), 0.0),
    ("intercept +1", "severe_crs", {"intercept": 1.0}, "intercept", ("calibration_intercept",), 1.0),
    ("slope 0.5", "severe_crs", {"slope": 0.5}, "recalibrate", ("calibration_slope",), 0.5),
    ("unshifted", "cr", {}, "none", ("calibration_intercept",), 0.0),
    ("intercept +1", "cr", {"intercept": 1.0}, "intercept", ("calibration_intercept",), 1.0),
    ("slope 0.5", "cr", {"slope": 0.5}, "recalibrate", ("calibration_slope",), 0.5),
    ("unshifted", "os", {}, "none", ("calibration", "log_observed_expected"), 0.0),
    ("hazard x 2", "os", {"hazard_ratio": 2.0}, "intercept",
     ("calibration", "log_observed_expected"), math.log(2.0)),
    ("unshifted", "efs", {}, "none", ("calibration", "log_observed_expected"), 0.0),
    ("hazard x 2", "efs", {"hazard_ratio": 2.0}, "intercept",
     ("calibration", "log_observed_expected"), math.log(2.0)),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, help="bundle directory (default: train one)")
    parser.add_argument("--simulations", type=int, default=200, metavar="N")
    parser.add_argument("--sizes", type=int, nargs="+", default=[160, 400, 1000])
    parser.add_argument("--seed", type=int, default=2017)
    args = parser.parse_args(argv)
    print_header("external validation and updating on simulated centers", argv)

    from model.bundle import TRAINING_DATA, load_predictor
    from model.cohort import read_cohort
    from training.paper.analyses import derive
    from training.external.center_simulation import Miscalibration, simulate_center
    from training.external.validation import validate_models
    from training.reproduce import default_cohort_path
    from training.train import train
    from training.updating import _decide

    with tempfile.TemporaryDirectory() as scratch:
        path = args.bundle
        if path is None:
            path = Path(scratch) / "bundle"
            train(default_cohort_path(), path, bootstrap=20, progress=False)
        bundle = load_predictor(path)
        training = read_cohort(path / TRAINING_DATA)
        print(f"bundle {bundle.id[:12]}; {args.simulations} simulations a scenario; "
              "coverage = share of 95 % CIs holding the true shift")
        print(f"{'model':<11}{'truth':<14}{'n':>6}  {'coverage':>8}  {'matching':>9}  "
              "auto chose (none / intercept / recalibrate / refit)")
        for label, model, shift, expected, figure, truth in SCENARIOS:
            for n in args.sizes:
                chosen, covered = Counter(), 0
                for k in range(args.simulations):
                    cohort = derive(simulate_center(bundle.params, training, n,
                                                    args.seed + 7919 * k,
                                                    Miscalibration(**shift), models=(model,)))
                    block = validate_models(bundle.params, bundle.manifest, cohort)[model]
                    for key in figure:
                        block = block[key]
                    ci = block["ci95"]
                    covered += ci is not None and ci[0] <= truth <= ci[1]
                    chosen[_decide(model, bundle.params["models"][model], cohort, "auto",
                                   bundle.params["month_grid"])["method"]] += 1
                share = chosen[expected] / args.simulations
                counts = " / ".join(str(chosen[m]) for m in ("none", "intercept", "recalibrate",
                                                             "refit"))
                print(f"{model:<11}{label:<14}{n:>6}  {covered / args.simulations:>8.1%}  "
                      f"{share:>9.1%}  {counts}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
