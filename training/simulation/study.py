"""Simulation study of the fitting methods on the reconstruction's data-generating process.

For every cohort size n and repetition r, one cohort is drawn (:func:`training.simulation.dgp.sample_patients`,
seed ``[seed, n, r]``), each candidate of :data:`training.development.methods.METHODS_BY_KIND` is fitted for
every outcome of its kind with the default features, and the fit is scored on one independent validation sample of
:data:`VALIDATION_N` patients (seed ``[seed, 0]``) against the true risks. The measures and the
selection rule are those of ``docs/method-selection.md``; :func:`select_method` applies the rule.
Everything is a function of ``seed``: the study is reproducible for any number of workers.

Run: ``cart-risk simulate --repetitions 200 --sizes 78 200 500 --out docs/simulation``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from scipy.special import expit, logit

from model import outcomes
from model.atomic import write_atomic
from model.defaults import DEFAULT_SEED
from model.features import design_matrix
from training.simulation import dgp
from training.development.config import load_config
from training.fitting.logistic import FitError
from training.development.methods import LABELS, METHODS_BY_KIND, fit_cox_method, fit_logistic_method
from training.evaluation.metrics import auc, calibration_slope, cox_calibration_slope, harrell_c
from training.simulation.monte_carlo import mcse_mean, mcse_median

VALIDATION_N = 10_000
SIZES = (78, 200, 500)
#: Model kind of every outcome, and the outcomes of each kind (model/outcomes.py).
OUTCOMES = outcomes.KINDS
KINDS = {kind: outcomes.of_kind(kind) for kind in (outcomes.LOGISTIC, outcomes.COX)}
#: Selection-rule constants (docs/method-selection.md).
MAX_FAILURE_SHARE = 0.01
MAX_EDGE_SHARE = 0.01
SLOPE_TARGET = (0.9, 1.1)
TIE_RELATIVE = 0.01
SELECTION_SIZE = 78
#: Amendment 1: a method that equals another wherever the other has a fit wins an exact tie
#: with it (same RMSE and slopes), since it also fits where the other does not.
EXTENDS = {"heuristic_shrinkage_fallback": "heuristic_shrinkage"}


def _features() -> dict[str, tuple[str, ...]]:
    return dict(load_config(None).models)


def validation_sample(seed: int = DEFAULT_SEED, n: int = VALIDATION_N) -> pd.DataFrame:
    """The independent sample every fit is scored on."""
    return dgp.sample_patients(np.random.default_rng([seed, 0]), n)


def _fit(method: str, outcome: str, cohort: pd.DataFrame, features: tuple[str, ...]):
    X = design_matrix(cohort, features)
    if OUTCOMES[outcome] == "logistic":
        return fit_logistic_method(method, X, cohort[outcome].to_numpy(int))
    return fit_cox_method(method, X, cohort[f"{outcome}_months"].to_numpy(float),
                          cohort[f"{outcome}_event"].to_numpy(int))


def score(fit, outcome: str, validation: pd.DataFrame, features: tuple[str, ...]) -> dict:
    """Measures of one fit on the validation sample (see docs/method-selection.md)."""
    X = design_matrix(validation, features)
    truth = validation[f"true_{outcome}"].to_numpy(float)
    if OUTCOMES[outcome] == "logistic":
        predicted = fit.predict_proba(X)
        lp = logit(np.clip(predicted, 1e-12, 1 - 1e-12))
        slope = calibration_slope(truth, predicted) if np.ptp(lp) > 1e-12 else math.inf
        c = auc(validation[outcome].to_numpy(int), predicted)
    else:
        lp = fit.linear_predictor(X)
        predicted = -np.expm1(-fit.cumulative_hazard0(np.array([dgp.HORIZON_MONTHS]))[0] * np.exp(lp))
        time = validation[f"{outcome}_months"].to_numpy(float)
        event = validation[f"{outcome}_event"].to_numpy(int)
        slope = cox_calibration_slope(time, event, lp) if np.ptp(lp) > 1e-12 else math.inf
        c = harrell_c(time, event, lp)
    error = predicted - truth
    return {"calibration_slope": float(slope) if np.isfinite(slope) else math.inf,
            "calibration_in_the_large": float(error.mean()),
            "rmse": float(np.sqrt(np.mean(error ** 2))), "mae": float(np.mean(np.abs(error))),
            "c_index": float(c), "edge": bool(fit.edge), "null_limit": bool(fit.null_limit),
            "lambda": float(fit.lam), "shrinkage": float(fit.shrinkage), "failed": False}


def _repetition(seed: int, n: int, r: int, validation: pd.DataFrame, methods, outcomes) -> list[dict]:
    cohort = dgp.sample_patients(np.random.default_rng([seed, n, r]), n)
    features = _features()
    rows = []
    for outcome in outcomes:
        for method in methods:
            if method not in METHODS_BY_KIND[OUTCOMES[outcome]]:
                continue  # a logistic-only candidate (round 2) is not fitted to survival
            row = {"n": n, "repetition": r, "outcome": outcome, "method": method}
            try:
                fit = _fit(method, outcome, cohort, features[outcome])
            except (FitError, np.linalg.LinAlgError):
                rows.append({**row, "failed": True})
                continue
            rows.append({**row, **score(fit, outcome, validation, features[outcome])})
    return rows


def run_study(repetitions, sizes=SIZES, seed: int = DEFAULT_SEED, jobs: int = 1,
              methods=None, outcomes=tuple(OUTCOMES), validation_n: int = VALIDATION_N,
              first_repetition: int = 0) -> pd.DataFrame:
    """One row per (n, repetition, outcome, method) with the measures of :func:`score`.

    ``repetitions`` is one count for every size, or a sequence with one count per size.
    ``methods`` defaults to every method of each outcome's kind (:data:`METHODS_BY_KIND`); a
    method is fitted only to the outcomes of the kinds it belongs to.
    ``first_repetition`` numbers the cohorts from there (cohort r of size n always has seed
    ``[seed, n, r]``), so a long study can run in chunks that :func:`combine_parts` joins.
    """
    counts = [int(repetitions)] * len(sizes) if np.ndim(repetitions) == 0 else [int(r) for r in repetitions]
    if len(counts) != len(sizes) or min(counts) < 1:
        raise ValueError("repetitions must be >= 1, one count or one per cohort size")
    if methods is None:
        methods = tuple(dict.fromkeys(m for kind in METHODS_BY_KIND.values() for m in kind))
    validation = validation_sample(seed, validation_n)
    tasks = (joblib.delayed(_repetition)(seed, int(n), r, validation, tuple(methods), tuple(outcomes))
             for n, count in zip(sizes, counts)
             for r in range(first_repetition, first_repetition + count))
    results = joblib.Parallel(n_jobs=jobs)(tasks)
    return pd.DataFrame([row for rows in results for row in rows])


def _quantile(values: np.ndarray, q: float) -> float:
    values = np.sort(values[~np.isnan(values)])  # +inf (flat fit) sorts last
    if values.size == 0:
        return math.nan
    position = q * (values.size - 1)
    lo, hi = int(np.floor(position)), int(np.ceil(position))
    if lo == hi or not np.isfinite(values[hi]):
        return float(values[lo] if position == lo else values[hi])
    return float(values[lo] + (position - lo) * (values[hi] - values[lo]))


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (n, outcome, method): the measures' summaries over repetitions, with the
    Monte Carlo standard errors (``*_mcse``, :mod:`training.simulation.monte_carlo`) of the median slope and
    of the mean CITL, RMSE and C."""
    out = []
    for (n, outcome, method), group in rows.groupby(["n", "outcome", "method"], sort=False):
        ok = group[~group["failed"].astype(bool)]
        slope = ok["calibration_slope"].to_numpy(float) if len(ok) else np.array([])
        out.append({
            "n": int(n), "outcome": outcome, "method": method, "cohorts": len(group),
            "failure_share": float(group["failed"].astype(bool).mean()),
            "slope_median": _quantile(slope, 0.5), "slope_median_mcse": mcse_median(slope),
            "slope_q25": _quantile(slope, 0.25),
            "slope_q75": _quantile(slope, 0.75), "slope_q05": _quantile(slope, 0.05),
            "slope_q95": _quantile(slope, 0.95),
            "citl_mean": float(ok["calibration_in_the_large"].mean()) if len(ok) else math.nan,
            "citl_mcse": mcse_mean(ok["calibration_in_the_large"].to_numpy(float)),
            "rmse_mean": float(ok["rmse"].mean()) if len(ok) else math.nan,
            "rmse_mcse": mcse_mean(ok["rmse"].to_numpy(float)),
            "mae_mean": float(ok["mae"].mean()) if len(ok) else math.nan,
            "c_mean": float(ok["c_index"].mean()) if len(ok) else math.nan,
            "c_mcse": mcse_mean(ok["c_index"].to_numpy(float)),
            "edge_share": float(ok["edge"].astype(bool).mean()) if len(ok) else math.nan,
            "null_limit_share": float(ok["null_limit"].astype(bool).mean()) if len(ok) else math.nan,
            # any fit without predictor effects: tuned to the limit, or shrunk by a factor of 0
            "flat_share": float(np.mean(slope == math.inf)) if len(ok) else math.nan,
        })
    return pd.DataFrame(out)


def _log_slope_distance(summary: pd.DataFrame, method: str, outcomes) -> float:
    medians = summary.set_index(["outcome", "method"]).loc[[(o, method) for o in outcomes], "slope_median"]
    values = medians.to_numpy(float)
    if np.any(~np.isfinite(values)) or np.any(values <= 0):
        return math.inf
    return float(np.max(np.abs(np.log(values))))


def _rank(table: dict, method: str, among) -> tuple:
    """Order of step 2's tie-break and step 3: slopes closest to 1, then RMSE, then
    :data:`EXTENDS` (the extending method before the one it extends, on an exact tie)."""
    extended = EXTENDS.get(method) in among
    return (table[method]["slope_distance"], table[method]["rmse_mean"], 0 if extended else 1)


def _mcse(group: pd.DataFrame) -> dict:
    """Monte Carlo standard errors by outcome, reported beside the rule's inputs (never used
    by it: docs/method-selection.md, Amendment 2)."""
    if "slope_median_mcse" not in group:
        return {}
    return {f"{column}_mcse": dict(zip(group["outcome"], group[f"{column}_mcse"].astype(float)))
            for column in ("slope_median", "rmse")}


def select_method(summary: pd.DataFrame, kind: str, n: int = SELECTION_SIZE) -> dict:
    """The rule of docs/method-selection.md for ``kind`` ("logistic" or "cox") at cohort size n.

    Returns
    -------
    dict: winner, eligible (list), reason (plain words), target_met (bool), table (per method:
    failure / edge share, median slopes, mean RMSE, eligible).
    """
    outcomes = KINDS[kind]
    at_n = summary[(summary["n"] == n) & summary["outcome"].isin(outcomes)]
    if at_n.empty:
        raise ValueError(f"the study has no cohorts of n = {n} for {kind}")
    table = {}
    for method, group in at_n.groupby("method", sort=False):
        slopes = dict(zip(group["outcome"], group["slope_median"].astype(float)))
        safe = bool((group["failure_share"] <= MAX_FAILURE_SHARE).all()
                    and (group["edge_share"].fillna(0) <= MAX_EDGE_SHARE).all())
        in_target = all(SLOPE_TARGET[0] <= slopes[o] <= SLOPE_TARGET[1] for o in outcomes)
        table[method] = {"failure_share": float(group["failure_share"].max()),
                         "edge_share": float(group["edge_share"].fillna(0).max()),
                         "slope_median": slopes, "rmse_mean": float(group["rmse_mean"].mean()),
                         **_mcse(group),
                         "safe": safe, "eligible": safe and in_target,
                         "slope_distance": _log_slope_distance(at_n, method, outcomes)}
    eligible = [m for m, t in table.items() if t["eligible"]]
    if eligible:
        best = min(table[m]["rmse_mean"] for m in eligible)
        close = [m for m in eligible if table[m]["rmse_mean"] <= best * (1 + TIE_RELATIVE)]
        winner = min(close, key=lambda m: _rank(table, m, close))
        among = (f"the methods with median calibration slopes in [{SLOPE_TARGET[0]}, "
                 f"{SLOPE_TARGET[1]}] for {' and '.join(outcomes)}, at most 1 % failed fits and "
                 "at most 1 % grid-edge choices")
        lowest = min(eligible, key=lambda m: table[m]["rmse_mean"])
        if table[winner]["rmse_mean"] == best:
            reason = (f"lowest mean RMSE against the true risk ({best:.4f}) among {among}"
                      + (f"; within 1 % of it, its median slopes are the closest to 1"
                         if len(close) > 1 else ""))
        else:  # step 2's tie-break: the lowest RMSE is not the winner's
            reason = (f"among {among}, its mean RMSE against the true risk "
                      f"({table[winner]['rmse_mean']:.4f}) is within 1 % of the lowest ({best:.4f}, "
                      f"{lowest}), and of those its median slopes are the closest to 1")
        return {"kind": kind, "n": n, "winner": winner, "eligible": eligible, "target_met": True,
                "reason": reason, "table": table}
    safe = [m for m, t in table.items() if t["safe"]]
    if not safe:
        raise ValueError(f"no {kind} method meets the failure and grid-edge conditions")
    winner = min(safe, key=lambda m: _rank(table, m, safe))
    reason = (f"no method reached median calibration slopes in [{SLOPE_TARGET[0]}, "
              f"{SLOPE_TARGET[1]}] for {' and '.join(outcomes)}; this one's are the closest to 1 "
              "among the methods with at most 1 % failed fits and grid-edge choices")
    return {"kind": kind, "n": n, "winner": winner, "eligible": [], "target_met": False,
            "reason": reason, "table": table}


def write_study(rows: pd.DataFrame, out_dir, command: str, seed: int,
                packaged_copy: bool = False) -> dict:
    """Write rows.csv, summary.csv, summary.md, selection.json and the slope figure to ``out_dir``.

    ``packaged_copy`` also writes summary.csv and selection.json to ``training/data/simulation/``,
    where ``cart-risk report`` reads the study (docs/ is not installed with the package).
    """
    from training.simulation.tables import slope_figure, summary_markdown

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(rows)
    selection = {kind: select_method(summary, kind) for kind in KINDS
                 if SELECTION_SIZE in set(summary["n"]) and set(KINDS[kind]) <= set(summary["outcome"])}
    meta = {"command": command, "seed": seed, "validation_n": VALIDATION_N,
            "methods": {m: LABELS[m] for m in dict.fromkeys(rows["method"])}, "selection": selection,
            "true_risks": dgp.true_risks()}
    files = {"rows.csv": rows.to_csv(index=False),
             "summary.csv": summary.to_csv(index=False, float_format="%.6g"),
             "selection.json": json.dumps(meta, indent=2, default=float) + "\n",
             "summary.md": summary_markdown(summary, selection, command),
             "calibration_slopes.png": slope_figure(summary)}
    for name, content in files.items():
        write_atomic(out / name, content)
    packaged = Path(__file__).parents[1] / "data" / "simulation"
    if packaged_copy:
        packaged.mkdir(exist_ok=True)
        for name in ("summary.csv", "selection.json"):
            write_atomic(packaged / name, files[name])
    return meta


def simulate_command(repetitions, sizes, seed: int, jobs: int, out_dir,
                     update_packaged: bool = False) -> int:
    """``cart-risk simulate``: run the study, write it to ``out_dir``, print the selection."""
    import shlex
    import time

    counts = " ".join(str(r) for r in np.atleast_1d(repetitions))
    command = (f"cart-risk simulate --repetitions {counts} --sizes {' '.join(map(str, sizes))} "
               f"--seed {seed} --out {shlex.quote(str(out_dir))}"
               + (" --update-packaged" if update_packaged else ""))
    started = time.perf_counter()
    rows = run_study(repetitions, sizes=tuple(sizes), seed=seed, jobs=jobs)
    meta = write_study(rows, out_dir, command, seed, packaged_copy=update_packaged)
    for kind, sel in meta["selection"].items():
        print(f"{kind}: {sel['winner']} ({sel['reason']})")
    print(f"study written to {out_dir} in {time.perf_counter() - started:.0f} s "
          "(synthetic data: the reconstruction's data-generating process)")
    return 0


def combine_parts(part_dirs, out_dir, command: str, seed: int, packaged_copy: bool = False) -> dict:
    """Write one study from the rows.csv of runs over disjoint cohort sizes.

    Every cohort's seed is ``[seed, n, r]``, so runs over disjoint sizes give exactly the rows the
    single command ``command`` gives; this lets the long sizes run separately.
    """
    rows = pd.concat([pd.read_csv(Path(d) / "rows.csv", float_precision="round_trip")
                      for d in part_dirs], ignore_index=True)
    if rows.duplicated(["n", "repetition", "outcome", "method"]).any():
        raise ValueError("the parts overlap: the same cohort appears twice")
    return write_study(rows, out_dir, command, seed, packaged_copy=packaged_copy)


KEY = ["n", "repetition", "outcome", "method"]


def reproduction_gap(earlier: pd.DataFrame, rerun: pd.DataFrame) -> dict:
    """How far a re-run's rows are from an earlier study's rows for the same fits.

    Returns
    -------
    dict: ``rows`` compared (fits in both), ``failed_mismatch`` (fits that failed in one run
    only), ``max_abs_difference`` over the numeric measures (NaN when nothing is compared).
    """
    both = earlier.merge(rerun, on=KEY, suffixes=("_earlier", "_rerun"))
    failed = (both["failed_earlier"].astype(bool) != both["failed_rerun"].astype(bool))
    fitted = both[~both["failed_earlier"].astype(bool) & ~failed]
    gaps = []
    for column in ("calibration_slope", "calibration_in_the_large", "rmse", "mae", "c_index",
                   "lambda", "shrinkage"):
        a, b = fitted[f"{column}_earlier"].to_numpy(float), fitted[f"{column}_rerun"].to_numpy(float)
        same = (a == b) | (np.isnan(a) & np.isnan(b))  # equal infinities count as no gap
        with np.errstate(invalid="ignore"):  # inf - inf where one run is flat and one is not
            gaps.append(np.where(same, 0.0, np.abs(a - b)))
    gap = float(np.max(np.concatenate(gaps))) if len(fitted) else math.nan
    return {"rows": int(len(both)), "failed_mismatch": int(failed.sum()), "max_abs_difference": gap}


def merge_rounds(earlier: pd.DataFrame, rerun: pd.DataFrame) -> pd.DataFrame:
    """The re-run's rows, plus the earlier study's rows for fits the re-run did not repeat."""
    repeated = earlier.set_index(KEY).index.isin(rerun.set_index(KEY).index)
    return pd.concat([earlier[~repeated], rerun], ignore_index=True)
