"""Direct coverage study: do the shipped 95 % intervals cover the true risk?

(docs/method-selection.md, Amendment 4, part B.) For each truth of :mod:`training.truths` and
cohort r, a cohort of n patients is drawn; each model is fitted with the single-cohort procedure
(``training.fit_models``: the method on the features, B bootstrap refits of the same method, rows
drawn as :mod:`training.bootstrap` draws them, redrawn on a failed fit); the 95 % interval of every
panel prediction is the 2.5-97.5 percentile of the refits' predictions widened to contain the point
(as ``model/evaluation.py``), or the bias-corrected percentile interval. Each interval is scored
against the panel patient's true risk: covered or not, width, error of the point.

Simplification (stated in the amendment): predictions come from the fit objects directly (Cox:
1 - exp(-H0(t) exp(lp)), H0 Breslow), not through the bundle's month-grid tabulation.
Everything is a function of ``seed``: identical for any number of workers or backend.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import joblib
import numpy as np
import pandas as pd
from scipy.stats import norm

from model.defaults import DEFAULT_SEED
from model.features import design_matrix
from model.rounding import DECIMALS
from model.outcomes import KINDS as OUTCOME_KINDS
from training.simulation import truths
from training.simulation.dgp import TRUE_RISK_DRAWS
from training.fitting.logistic import FitError
from training.development.methods import fit_cox_method, fit_logistic_method
from training.simulation.monte_carlo import mcse_mean
#: Targets of Amendment 4: every cell, and the average over the cells of a truth.
from training.simulation.coverage_tables import AVERAGE_TARGET, CELL_TARGET

#: Other covariates of the panel (the report's reference panel): age 30, Ph-negative, no prior
#: HSCT, relapsed.
REFERENCE = {"age_years": 30.0, "ph_positive": 0, "prior_hsct": 0, "relapsed": 1}
#: (label, marrow blasts %, MRD positive, covariates other than the reference's).
PANEL = (
    ("0 % MRD+", 0.0, True, {}), ("0.5 %", 0.5, False, {}), ("3 %", 3.0, False, {}),
    ("5 %", 5.0, False, {}), ("12 %", 12.0, False, {}), ("35 %", 35.0, False, {}),
    ("80 %", 80.0, False, {}),
    ("12 %, age 60, Ph+, prior HSCT", 12.0, False, {"age_years": 60.0, "ph_positive": 1, "prior_hsct": 1}),
)
#: (output name, outcome, months): CR, severe CRS, and the EFS / OS event risk at 6, 12, 24 months.
OUTPUTS = (("cr", "cr", None), ("severe_crs", "severe_crs", None),
           *((f"{o}_{m}mo", o, m) for o in ("efs", "os") for m in (6, 12, 24)))
INTERVALS = ("percentile", "bias_corrected")
MAX_REDRAWS = 100
COHORT_SIZE = 78


@dataclass(frozen=True)
class Construction:
    """What is scored: features by outcome, method by model kind, refits, interval."""

    name: str
    features: dict = field(hash=False)
    methods: dict = field(hash=False)
    B: int = 100
    interval: str = "percentile"


def panel_frame() -> pd.DataFrame:
    rows = []
    for label, blasts, mrd, other in PANEL:
        rows.append({"patient": label, "marrow_blasts_pct": blasts, "mrd_positive": mrd,
                     "sex": "F", "tb_assessed": "before_fc", **REFERENCE, **other})
    return pd.DataFrame(rows)


def panel_truth(truth: str, draws: int = TRUE_RISK_DRAWS) -> dict[str, np.ndarray]:
    """True risk of every output for every panel patient under ``truth``."""
    p = panel_frame()
    return {name: truths.true_risk(truth, outcome, p["marrow_blasts_pct"], p["mrd_positive"], months,
                                   draws=draws)
            for name, outcome, months in OUTPUTS}


def _fit(kind: str, method: str, data: dict):
    if kind == "logistic":
        return fit_logistic_method(method, data["X"], data["y"])
    return fit_cox_method(method, data["X"], data["time"], data["event"])


def _predict(kind: str, fit, Xp: np.ndarray, months) -> np.ndarray:
    """(len(months) or 1, patients) predicted risks."""
    if kind == "logistic":
        return fit.predict_proba(Xp)[None, :]
    h0 = fit.cumulative_hazard0(np.asarray(months, dtype=float))
    return -np.expm1(-h0[:, None] * np.exp(fit.linear_predictor(Xp))[None, :])


def refits(kind: str, method: str, data: dict, B: int, seed) -> list:
    """B bootstrap refits, resample b from ``SeedSequence(seed).spawn(B)[b]``, redrawn on a failed
    fit (as :func:`training.bootstrap.optimism_bootstrap` draws them)."""
    n = len(next(iter(data.values())))
    out = []
    for child in np.random.SeedSequence(seed).spawn(B):
        rng = np.random.default_rng(child)
        for _ in range(MAX_REDRAWS + 1):
            rows = rng.integers(0, n, size=n)
            try:
                out.append(_fit(kind, method, {k: v[rows] for k, v in data.items()}))
                break
            except (FitError, np.linalg.LinAlgError):
                continue
        else:
            raise FitError(f"no fittable bootstrap resample in {MAX_REDRAWS + 1} draws")
    return out


def interval(point: np.ndarray, boot: np.ndarray, how: str) -> tuple[np.ndarray, np.ndarray]:
    """95 % interval from refit predictions ``boot`` (B, ...) around ``point`` (...), widened to
    contain the point. ``percentile``: 2.5 / 97.5 % (linear interpolation). ``bias_corrected``:
    percentiles Phi(2 z0 -/+ 1.96), z0 = Phi^-1(share of refits below the point) (Efron 1987)."""
    if how == "percentile":
        lower, upper = np.quantile(boot, [0.025, 0.975], axis=0)
    elif how == "bias_corrected":
        share = np.clip(np.mean(boot < point, axis=0), 0.5 / boot.shape[0], 1 - 0.5 / boot.shape[0])
        z0 = norm.ppf(share)
        lo_q, hi_q = norm.cdf(2 * z0 - 1.959964), norm.cdf(2 * z0 + 1.959964)
        flat = boot.reshape(boot.shape[0], -1)
        lower = np.array([np.quantile(flat[:, j], q) for j, q in enumerate(lo_q.ravel())]).reshape(point.shape)
        upper = np.array([np.quantile(flat[:, j], q) for j, q in enumerate(hi_q.ravel())]).reshape(point.shape)
    else:
        raise ValueError(f"interval must be one of {INTERVALS}; got {how!r}")
    return np.fmin(lower, point), np.fmax(upper, point)


def score_cohort(truth: str, r: int, construction: Construction, seed: int = DEFAULT_SEED,
                 n: int = COHORT_SIZE, truth_by_output=None, draws: int = TRUE_RISK_DRAWS) -> list[dict]:
    """One cohort's rows: for every output and panel patient, point, interval, truth, covered."""
    cohort = truths.sample(truth, seed, n, r, draws=draws)
    panel = panel_frame()
    truth_by_output = truth_by_output or panel_truth(truth, draws)
    rows = []
    boot_seed = [seed, 4, truths.TRUTHS.index(truth), r]
    for outcome in dict.fromkeys(o for _, o, _ in OUTPUTS):
        kind = OUTCOME_KINDS[outcome]
        features = construction.features[outcome]
        data = {"X": design_matrix(cohort, features)}
        if kind == "logistic":
            data["y"] = cohort[outcome].to_numpy(int)
        else:
            data["time"] = cohort[f"{outcome}_months"].to_numpy(float)
            data["event"] = cohort[f"{outcome}_event"].to_numpy(int)
        names = [(name, months) for name, o, months in OUTPUTS if o == outcome]
        months = [m for _, m in names]
        Xp = design_matrix(panel, features)
        method = construction.methods[kind]
        try:
            fit = _fit(kind, method, data)
            boot = refits(kind, method, data, construction.B, boot_seed)
        except (FitError, np.linalg.LinAlgError):
            for name, _ in names:
                rows += [{"truth": truth, "repetition": r, "output": name, "patient": p,
                          "failed": True} for p in panel["patient"]]
            continue
        point = _predict(kind, fit, Xp, months)
        spread = np.stack([_predict(kind, f, Xp, months) for f in boot])
        lower, upper = interval(point, spread, construction.interval)
        for i, (name, _) in enumerate(names):
            true = truth_by_output[name]
            for j, patient in enumerate(panel["patient"]):
                rows.append({"truth": truth, "repetition": r, "output": name, "patient": patient,
                             "failed": False, "true_risk": float(true[j]), "point": float(point[i, j]),
                             "lower": float(lower[i, j]), "upper": float(upper[i, j]),
                             "covered": bool(lower[i, j] <= true[j] <= upper[i, j]),
                             "covered_displayed": bool(round(float(lower[i, j]), DECIMALS) <= true[j]
                                                       <= round(float(upper[i, j]), DECIMALS))})
    return rows


def _score_cohorts(truth, repetitions, construction, seed, n, draws):
    truth_by_output = panel_truth(truth, draws)
    return [row for r in repetitions
            for row in score_cohort(truth, r, construction, seed, n, truth_by_output, draws)]


def run_coverage(construction: Construction, cohorts: int, truths_run=truths.TRUTHS,
                 seed: int = DEFAULT_SEED, n: int = COHORT_SIZE, jobs: int = 1,
                 first: int = 0, draws: int = TRUE_RISK_DRAWS, backend: str | None = None) -> pd.DataFrame:
    """Rows of :func:`score_cohort` for cohorts ``first .. first + cohorts - 1`` of each truth.

    Cohorts are spread over ``jobs`` workers in blocks (``backend``: a joblib backend, e.g.
    ``"dask"`` inside a dask client's context); the rows do not depend on either.
    """
    if cohorts < 1:
        raise ValueError("cohorts must be >= 1")
    blocks = max(1, min(cohorts, 4 * max(1, jobs if jobs > 0 else 2)))
    chunks = [c for c in np.array_split(np.arange(first, first + cohorts), blocks) if c.size]
    tasks = [joblib.delayed(_score_cohorts)(t, [int(r) for r in chunk], construction, seed, n, draws)
             for t in truths_run for chunk in chunks]
    if backend is not None:
        with joblib.parallel_config(backend=backend):
            results = joblib.Parallel(n_jobs=jobs)(tasks)
    else:
        results = joblib.Parallel(n_jobs=jobs)(tasks)
    rows = pd.DataFrame([row for part in results for row in part])
    rows.insert(0, "construction", construction.name)
    return rows


def summarize_coverage(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (construction, truth, output, patient): coverage, mean width, bias (mean point
    minus true risk), each with its Monte Carlo SE, over the cohorts with a fit. ``coverage`` is
    of the interval as displayed (bounds rounded to the API's 3 decimals; Amendment 4's addendum),
    ``coverage_unrounded`` of the unrounded bounds."""
    out = []
    order = {name: i for i, (name, _, _) in enumerate(OUTPUTS)}
    patients = {label: i for i, (label, *_rest) in enumerate(PANEL)}
    for (construction, truth, output, patient), g in rows.groupby(
            ["construction", "truth", "output", "patient"], sort=False):
        ok = g[~g["failed"].astype(bool)]
        m = len(ok)
        cover = float(ok["covered_displayed"].mean()) if m else math.nan
        exact = float(ok["covered"].mean()) if m else math.nan
        width = (ok["upper"] - ok["lower"]).to_numpy(float)
        error = (ok["point"] - ok["true_risk"]).to_numpy(float)
        out.append({"construction": construction, "truth": truth, "output": output,
                    "patient": patient, "cohorts": m, "failed": int(len(g) - m),
                    "true_risk": float(ok["true_risk"].iloc[0]) if m else math.nan,
                    "coverage": cover,
                    "coverage_mcse": math.sqrt(cover * (1 - cover) / m) if m else math.nan,
                    "coverage_unrounded": exact,
                    "mean_width": float(width.mean()) if m else math.nan,
                    "width_mcse": mcse_mean(width), "bias": float(error.mean()) if m else math.nan,
                    "bias_mcse": mcse_mean(error), "_o": order.get(output, 99),
                    "_p": patients.get(patient, 99)})
    table = pd.DataFrame(out).sort_values(["construction", "truth", "_o", "_p"], kind="stable")
    return table.drop(columns=["_o", "_p"]).reset_index(drop=True)


def verdict(summary: pd.DataFrame) -> dict:
    """Per construction and truth: average coverage, the cells below :data:`CELL_TARGET`, and
    whether both targets are met."""
    out = {}
    for (construction, truth), g in summary.groupby(["construction", "truth"], sort=False):
        misses = g[g["coverage"] < CELL_TARGET]
        average = float(g["coverage"].mean())
        out.setdefault(construction, {})[truth] = {
            "average_coverage": average, "cells": int(len(g)),
            "cells_below": [{"output": r.output, "patient": r.patient, "coverage": float(r.coverage),
                             "coverage_mcse": float(r.coverage_mcse), "bias": float(r.bias),
                             "mean_width": float(r.mean_width)} for r in misses.itertuples()],
            "mean_width": float(g["mean_width"].mean()),
            "target_met": bool(misses.empty and average >= AVERAGE_TARGET)}
    return out


def describe(construction: Construction) -> dict:
    return {"features": {o: list(f) for o, f in construction.features.items()},
            "methods": dict(construction.methods), "refits": construction.B,
            "interval": construction.interval}


def write_coverage(rows: pd.DataFrame, constructions: list[Construction], out_dir, command: str,
                   seed: int, shipped: str, packaged_copy: bool = False) -> dict:
    """Write coverage.csv, coverage.md and coverage.json to ``out_dir`` (and, with
    ``packaged_copy``, coverage.csv and coverage.json to training/data/simulation/, which the
    card and the report read)."""
    import json
    from pathlib import Path

    from model.atomic import write_atomic
    from training.simulation.coverage_tables import coverage_csv, coverage_markdown

    summary = summarize_coverage(rows)
    verdicts = verdict(summary)
    specs = {c.name: describe(c) for c in constructions}
    seeds = (f"cohort r of the step truth [{seed}, n, r], of the smooth truth [{seed}, n, r, 1]; "
             f"refits of cohort r SeedSequence([{seed}, 4, truth index, r]).spawn(B)")
    meta = {"command": command, "seed": seed, "shipped": shipped, "constructions": specs,
            "verdicts": verdicts, "seeds": seeds, "panel_covariates": REFERENCE,
            "smooth_truth_checks": truths.smooth_parameters()["checks"]}
    files = {"coverage.csv": coverage_csv(summary, {k: {**v, "features": json.dumps(v["features"]),
                                                        "methods": json.dumps(v["methods"])}
                                                    for k, v in specs.items()}, command, seeds),
             "coverage.json": json.dumps(meta, indent=2, default=float) + "\n",
             "coverage.md": coverage_markdown(summary, verdicts, specs, command)}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        write_atomic(out / name, content)
    if packaged_copy:
        packaged = Path(__file__).parents[1] / "data" / "simulation"
        packaged.mkdir(exist_ok=True)
        for name in ("coverage.csv", "coverage.json"):
            write_atomic(packaged / name, files[name])
    return meta


def shipped_construction(name: str = "C1", B: int = 100, how: str = "percentile",
                         features_path=None, methods: dict | None = None) -> Construction:
    """The single-cohort procedure ``cart-risk train`` runs: the feature configuration's features
    (default: the packaged one) and the default methods (or ``methods``)."""
    from training.development.config import load_config
    from training.development.fit_models import DEFAULT_METHODS

    config = load_config(features_path)
    return Construction(name, dict(config.models), dict(methods or DEFAULT_METHODS), B, how)


def coverage_command(cohorts: int, construction: Construction, seed: int, jobs: int, out_dir,
                     backend: str | None = None, update_packaged: bool = False,
                     earlier_rows=None, shipped: str | None = None, command: str = "") -> int:
    """``cart-risk simulate --study coverage``: score ``construction`` on ``cohorts`` cohorts of
    each truth, add it to the constructions of ``earlier_rows`` (a coverage_rows.csv.gz of an
    earlier run, replacing a construction of the same name), write the tables, print the verdict."""
    import time
    from pathlib import Path

    started = time.perf_counter()
    rows = run_coverage(construction, cohorts, seed=seed, jobs=jobs, backend=backend)
    elapsed = time.perf_counter() - started
    constructions = [construction]
    if earlier_rows is not None:
        import json

        earlier = pd.read_csv(earlier_rows, float_precision="round_trip")
        meta = json.loads(Path(earlier_rows).with_name("coverage.json").read_text())
        keep = earlier[earlier["construction"] != construction.name]
        rows = pd.concat([keep, rows], ignore_index=True)
        constructions = [Construction(name, spec["features"], spec["methods"], spec["refits"],
                                      spec["interval"])
                         for name, spec in meta["constructions"].items()
                         if name != construction.name] + constructions
        command = f"{meta['command']}; then {command}"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows.to_csv(out / "coverage_rows.csv.gz", index=False, compression={"method": "gzip", "mtime": 0})
    meta = write_coverage(rows, constructions, out, command, seed, shipped or construction.name,
                          packaged_copy=update_packaged)
    for truth, v in meta["verdicts"][construction.name].items():
        print(f"{construction.name} {truth}: average coverage {v['average_coverage']:.3f}, "
              f"{len(v['cells_below'])} of {v['cells']} cells below {CELL_TARGET}, mean width "
              f"{v['mean_width']:.3f}: target {'met' if v['target_met'] else 'missed'}")
    print(f"coverage study written to {out_dir} in {elapsed:.0f} s ({cohorts} cohorts a truth, "
          f"B = {construction.B}, --jobs {jobs}{', backend ' + backend if backend else ''}; "
          "synthetic data)")
    return 0
