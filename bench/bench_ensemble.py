"""The ensemble's done-when: fresh reconstructions' predictions inside the shipped intervals.

1. Generator sweep: every one of the 66 A1 subgroup splits, each with a seed outside the ensemble
   (``--seed-base``, default 900000), assumptions sampled by seed; each cohort must reproduce every
   published statistic. Prints successes, failures (with the statistic) and seconds a cohort.
2. Coverage: each fresh cohort is trained with the shipped procedure (``training.train.train``,
   B = 1: only the point fit is used) and predicts a patient panel (issue 9's panel and others);
   for every output the share of fresh point predictions inside the shipped bundle's 95 %
   interval is printed (target >= 95 %).
3. Pooling rules: for the panel, the shipped mixture interval beside Rubin's rule (within + (1 +
   1/K) between variance of the logit / log cumulative hazard), and the mixture interval built
   from the first k members (k = 5, 10, 15, 20), to show where the intervals stop moving.

Run::

    .venv/bin/python bench/bench_ensemble.py                       # the default (ensemble) bundle
    .venv/bin/python bench/bench_ensemble.py --bundle DIR          # a bundle from train --ensemble
    .venv/bin/python bench/bench_ensemble.py --bundle DIR --splits 10 --jobs 2   # quicker subset
    .venv/bin/python bench/bench_ensemble.py --splits 0 --reference SINGLE   # prediction cost only
    .venv/bin/python bench/bench_ensemble.py --splits 0 --time-training     # default-bundle training time
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import print_header  # noqa: E402

from model.outcomes import LOGISTIC_NAMES, SURVIVAL_HORIZONS_MONTHS, SURVIVAL_NAMES  # noqa: E402

OUTPUTS = LOGISTIC_NAMES + tuple(f"{name}_{months}mo" for name in SURVIVAL_NAMES
                                 for months in SURVIVAL_HORIZONS_MONTHS)


def patients() -> dict[str, np.ndarray]:
    """Issue 9's panel (age 30, Ph-, no HSCT, relapsed; blasts 0 MRD+, 2, 12, 35, 70, 90 %) and
    six other patients (young Ph+ after HSCT, older refractory, elderly low burden)."""
    rows = [(b, 30, 0, 0, 1) for b in (0.0, 2.0, 12.0, 35.0, 70.0, 90.0)]
    rows += [(8.0, 15, 1, 1, 1), (50.0, 15, 1, 1, 1), (25.0, 55, 0, 0, 0), (3.0, 70, 0, 0, 0),
             (0.5, 45, 1, 0, 1), (95.0, 62, 0, 1, 1)]
    arr = np.array(rows, float)
    n = len(rows)
    return {"marrow_blasts_pct": arr[:, 0], "mrd_positive": np.ones(n, bool), "age_years": arr[:, 1],
            "ph_positive": arr[:, 2], "prior_hsct": arr[:, 3], "relapsed": arr[:, 4],
            "sex": np.array(["F"] * n), "tb_assessed": np.array(["before_fc"] * n)}


def fresh_prediction(seed: int, split: int) -> dict:
    from model.bundle import load_predictor
    from model.cohort import write_cohort
    from model.predictor import predict_points
    from training.paper.assumptions import ImpossibleAssumption, sample_assumptions
    from training.paper.ensemble import unmatched
    from training.paper.reconstruction import reconstruct
    from training.train import train

    started = time.perf_counter()
    try:
        cohort = reconstruct(seed, sample_assumptions(seed, split))
    except ImpossibleAssumption as problem:
        return {"seed": seed, "split": split, "error": str(problem)}
    missed = unmatched(cohort)
    generated = time.perf_counter() - started
    if missed:
        return {"seed": seed, "split": split, "error": f"misses {missed}"}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cohort.csv"
        write_cohort(cohort, path)
        train(path, Path(tmp) / "bundle", bootstrap=1, seed=seed, jobs=1, progress=False)
        points = predict_points(load_predictor(Path(tmp) / "bundle"), patients())
    return {"seed": seed, "split": split, "seconds": generated,
            "points": {k: points[k].tolist() for k in OUTPUTS}}


def rubin_vs_mixture(bundle_dir: Path) -> None:
    """Panel intervals: the shipped mixture, Rubin's rule, and mixtures of the first k members."""
    from model.bundle import load_predictor
    from model.predictor import compile_predictor, predict_points

    bundle = load_predictor(bundle_dir)
    params, manifest = bundle.params, bundle.manifest
    k_total = manifest["ensemble"]["members"]
    per = manifest["ensemble"]["bootstrap_per_member"]
    panel = patients()
    print("\nmixture interval of the first k members (12-month EFS, CR), patient 3 (12 % blasts):")
    for k in sorted({5, 10, 15, k_total} & set(range(1, k_total + 1))):
        sub = json.loads(json.dumps(params))
        for spec in sub["models"].values():
            spec["bootstrap"] = {key: value[: k * per] for key, value in spec["bootstrap"].items()}
        out = predict_points(compile_predictor(sub, manifest), panel, intervals=True)
        print(f"  k = {k:>2}: EFS12 {out['efs_12mo_lower'][2]:.3f}-{out['efs_12mo_upper'][2]:.3f}   "
              f"CR {out['cr_lower'][2]:.3f}-{out['cr_upper'][2]:.3f}   "
              f"OS12 {out['os_12mo_lower'][2]:.3f}-{out['os_12mo_upper'][2]:.3f}")
    # Rubin: member points from the manifest's spread is not stored per patient, so rebuild the
    # between-member variance from each member's block of refits (its mean is its centre).
    out = predict_points(bundle, panel, intervals=True)
    print("\nshipped mixture vs Rubin's rule on the linear-predictor scale, panel:")
    for name in LOGISTIC_NAMES:
        spec = params["models"][name]
        x = (np.column_stack([_feature(panel, f) for f in spec["features"]]) - spec["center"]) / spec["scale"]
        boot = np.asarray(spec["bootstrap"]["intercept"])[:, None] + np.asarray(spec["bootstrap"]["coef"]) @ x.T
        blocks = boot.reshape(k_total, per, -1)
        within = blocks.var(axis=1, ddof=1).mean(axis=0) if per > 1 else np.zeros(boot.shape[1])
        between = blocks.mean(axis=1).var(axis=0, ddof=1)
        centre = spec["intercept"] + x @ np.asarray(spec["coef"])
        half = 1.96 * np.sqrt(within + (1 + 1 / k_total) * between)
        expit = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
        for i in (0, 2, 4):
            print(f"  {name:<10} blasts {panel['marrow_blasts_pct'][i]:>4.0f} %: mixture "
                  f"{out[name + '_lower'][i]:.3f}-{out[name + '_upper'][i]:.3f}  Rubin "
                  f"{expit(centre[i] - half[i]):.3f}-{expit(centre[i] + half[i]):.3f}")


def prediction_cost(bundle_dir: Path, reference_dir: Path, calls: int = 3000) -> None:
    """Median in-process time of one API answer, ensemble vs a single-cohort bundle, interleaved
    (so machine load hits both alike)."""
    from model.bundle import load_predictor
    from model.patient import parse_patient
    from model.predictor import prediction_answer

    patient = parse_patient({"marrow_blasts_pct": 12.0, "mrd_positive": True, "age_years": 30,
                             "sex": "M", "ph_positive": False, "prior_hsct": False, "relapsed": True,
                             "tb_assessed": "before_fc"})
    bundles = {"ensemble": load_predictor(bundle_dir), "single cohort": load_predictor(reference_dir)}
    times = {name: [] for name in bundles}
    for _ in range(calls):
        for name, bundle in bundles.items():
            started = time.perf_counter()
            prediction_answer(bundle, patient)
            times[name].append(time.perf_counter() - started)
    medians = {name: float(np.median(t)) * 1e3 for name, t in times.items()}
    print(f"\none API answer, in process, median of {calls}: ensemble {medians['ensemble']:.3f} ms, "
          f"single cohort {medians['single cohort']:.3f} ms, ratio "
          f"{medians['ensemble'] / medians['single cohort']:.2f} (target <= 1.5)")


def training_time(jobs: int) -> None:
    """Wall time of training the default bundle: the packaged 20-member ensemble, B = 200."""
    from calculator.defaults import DEFAULT_BOOTSTRAP, DEFAULT_SEED
    from training.paper.ensemble import default_ensemble_dir
    from training.train_ensemble import train_ensemble

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        manifest = train_ensemble(default_ensemble_dir(), Path(tmp) / "bundle", bootstrap=DEFAULT_BOOTSTRAP,
                                  seed=DEFAULT_SEED, jobs=jobs, progress=False)
        elapsed = time.perf_counter() - started
    import os

    print(f"\ntraining the default bundle ({manifest['ensemble']['members']} reconstructions x "
          f"{manifest['ensemble']['bootstrap_per_member']} refits for the intervals and "
          f"{manifest['ensemble']['validation_replicates']} pooled-validation replicates, 4 models, "
          f"--jobs {jobs}): {elapsed:.1f} s (load average after: {os.getloadavg()[0]:.1f})")


def _feature(panel, name):
    from model.features import design_matrix
    return design_matrix(panel, (name,))[:, 0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, help="bundle from train --ensemble (default: the "
                        "default bundle, trained on first use)")
    parser.add_argument("--splits", type=int, default=66, help="how many of the 66 A1 splits")
    parser.add_argument("--seed-base", type=int, default=900000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--reference", type=Path, help="a single-cohort bundle (cart-risk train "
                        "--cohort) to compare the prediction cost with")
    parser.add_argument("--time-training", action="store_true",
                        help="also time training the default (ensemble) bundle from scratch")
    args = parser.parse_args(argv)
    from joblib import Parallel, delayed

    from model.bundle import load_predictor
    from model.predictor import predict_points

    print_header("ensemble: generator sweep, coverage of fresh reconstructions, pooling rules")
    if args.bundle is None:
        from calculator.defaults import ensure_default_bundle
        args.bundle = ensure_default_bundle()
    started = time.perf_counter()
    results = Parallel(n_jobs=args.jobs)(delayed(fresh_prediction)(args.seed_base + s, s)
                                         for s in range(args.splits))
    if results:
        failures = [r for r in results if "error" in r]
        ok = [r for r in results if "error" not in r]
        print(f"generator: {len(ok)} of {len(results)} splits reproduced every published statistic "
              f"(mean {np.mean([r['seconds'] for r in ok]):.1f} s a cohort); failures: "
              + ("; ".join(f"split {r['split']}: {r['error']}" for r in failures) or "none"))
        shipped = predict_points(load_predictor(args.bundle), patients(), intervals=True)
        print(f"\ncoverage of {len(ok)} fresh reconstructions' point predictions by the shipped 95 % "
              f"intervals ({len(patients()['age_years'])} patients):")
        for key in OUTPUTS:
            fresh = np.array([r["points"][key] for r in ok], float)
            lower, upper = shipped[f"{key}_lower"], shipped[f"{key}_upper"]
            valid = np.isfinite(fresh) & np.isfinite(lower)
            inside = (fresh >= lower - 1e-9) & (fresh <= upper + 1e-9)
            per_patient = [inside[:, i][valid[:, i]].mean() for i in range(fresh.shape[1]) if valid[:, i].any()]
            print(f"  {key:<11} {inside[valid].mean():6.1%} overall; worst patient {min(per_patient):6.1%}")
    rubin_vs_mixture(args.bundle)
    if args.reference:
        prediction_cost(args.bundle, args.reference)
    if args.time_training:
        training_time(args.jobs)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
