"""Coverage of the true risk, end to end: trial, published statistics, reconstructions, bundle.

The pipeline a user of the paper runs, on trials whose truth is known (``docs/method-selection.md``,
Amendment 5): trial t is 78 patients of the reconstruction's data-generating process
(:func:`training.simulation.dgp.sample_patients`, seed ``[seed, 78, t]``, the method study's cohort r = t);
its published statistics are recomputed with the code of ``cart-risk reproduce``
(:func:`training.paper.trial_statistics.statistics_of`); K cohorts are reconstructed from them by the
shipped generator, assumptions sampled as for the ensemble (:func:`training.paper.ensemble.build_member`);
the ensemble bundle is trained as ``cart-risk train --ensemble`` does (the command,
:mod:`training.simulate`, passes :func:`training.train_ensemble.train_ensemble` in as ``train``);
its 95 % intervals for a panel of patients are
scored against the true risks. A trial the generator cannot reproduce in K members (within 2K
attempts) is a failure, counted and reported.

What the trials were trained with (features by model, methods by kind) is read from the manifest
of the first reconstructed trial's bundle, not from the defaults of the code that writes the
files, and recorded in ``end_to_end.json`` as ``trained_with`` (:func:`study_trained_with`).
:func:`package_study` copies a study's ``end_to_end.csv`` / ``.json`` into the package data
(``training/data/simulation/``, shown by /about and the report); for a study written before
``trained_with`` existed it re-trains the first reconstructed trial and records the features and
methods only if that reproduces the study's predictions.

Every number is a function of ``seed``: the study is byte-identical for any ``jobs`` and backend.
"""
from __future__ import annotations

import csv
import io
import json
import math
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from model.atomic import write_atomic
from model.cohort import validate_cohort
from training.simulation import dgp
from training.simulation.coverage_tables import AVERAGE_TARGET, CELL_TARGET
from training.simulation.honest import END_TO_END_COLUMNS, END_TO_END_FILES, trained_with
from training.paper import reconstruction as rec

TRIAL_N = 78
DEFAULT_SEED = 20170201
#: Member k of trial t has seed MEMBER_SEED + MEMBER_STRIDE * t + k.
MEMBER_SEED, MEMBER_STRIDE = 20210630, 100
#: Survival draws a trial member's tuned search tries (the shipped member: 3,000; Amendment 5).
TRIAL_TUNED_DRAWS = 500
HORIZONS = (6, 12, 24)
PANEL_BLASTS = (0.5, 3.0, 12.0, 35.0, 80.0)
PANEL_LABEL = ("age 30, female, Ph-negative, no prior HSCT, relapsed, MRD positive, burden "
               "assessed before FC; marrow blasts as listed")
#: Outputs scored: bundle key -> (output name, how the truth is read). Survival becomes risk.
OUTPUTS = (("cr", "cr"), ("severe_crs", "severe_crs"),
           *((f"efs_{h}mo", f"efs_{h}mo_risk") for h in HORIZONS),
           *((f"os_{h}mo", f"os_{h}mo_risk") for h in HORIZONS))
#: Group proportions of CRS grades 0-2 among non-severe, and grade 4 among severe (DOCUMENTED, A3).
MILD_GRADES = {g: np.array(rec.CRS_GRADE_COUNTS[g][:3], float) / sum(rec.CRS_GRADE_COUNTS[g][:3])
               for g in ("low", "high")}
GRADE4_SHARE = {g: rec.CRS_GRADE_COUNTS[g][4] / sum(rec.CRS_GRADE_COUNTS[g][3:]) for g in ("low", "high")}
#: Where ``--update-packaged`` and :func:`package_study` write end_to_end.csv and .json.
PACKAGED_DIR = Path(__file__).parents[1] / "data" / "simulation"
#: Largest difference (risk, 0-1) between a re-trained trial's panel predictions and the study's
#: for :func:`package_study` to hold the study trained as the re-training did.
REPRODUCED_WITHIN = 1e-9
NOT_MODELLED = ("male", "prior_therapy_ge_6mo", "prior_chemo_ge_3", "tb_after_fc", "tp53_mutation",
                "poor_cytogenetics")


def panel() -> dict[str, np.ndarray]:
    """The panel as patient-field arrays (Amendment 5)."""
    n = len(PANEL_BLASTS)
    return {"marrow_blasts_pct": np.array(PANEL_BLASTS), "mrd_positive": np.ones(n, bool),
            "age_years": np.full(n, 30.0), "ph_positive": np.zeros(n), "prior_hsct": np.zeros(n),
            "relapsed": np.ones(n), "sex": np.array(["F"] * n), "tb_assessed": np.array(["before_fc"] * n)}


def panel_subgroups() -> list[str]:
    from model.burden import burden_subgroups

    return list(burden_subgroups(pd.Series(PANEL_BLASTS), pd.Series(np.ones(len(PANEL_BLASTS), int))))


@lru_cache(maxsize=1)
def true_risks() -> dict[str, dict[str, float]]:
    """True risk by subgroup for every scored output (CR, severe CRS, EFS / OS event by 6-24 months).

    The survival risks use :func:`training.simulation.dgp.true_risks`'s draws and seeds, so the 12-month
    values are that function's.
    """
    risks = {"cr": dict(dgp.CR_RATE), "severe_crs": dict(dgp.SEVERE_CRS_RATE)}
    for k, letter in enumerate(dgp.SUBGROUPS):
        rng = np.random.default_rng([dgp.TRUE_RISK_SEED, k])
        letters = np.full(dgp.TRUE_RISK_DRAWS, letter)
        df = pd.DataFrame({"marrow_blasts_pct": dgp._blasts(rng, letters), "response": dgp._response(rng, letters)})
        surv = rec._survival_draw(rng, df, np.full(dgp.TRUE_RISK_DRAWS, np.inf))
        for outcome in ("efs", "os"):
            months = surv[f"{outcome}_months"].to_numpy()
            for h in HORIZONS:
                risks.setdefault(f"{outcome}_{h}mo_risk", {})[letter] = float(np.mean(months <= h))
    return risks


def _place(rng, group: np.ndarray, counts: tuple[int, int]) -> np.ndarray:
    """0/1 with the given count in each burden group (capped at the group's size), at random."""
    out = np.zeros(group.size, int)
    for g, k in zip(("low", "high"), counts):
        idx = np.flatnonzero(group == g)
        out[rng.choice(idx, size=min(k, idx.size), replace=False)] = 1
    return out


def trial_cohort(seed: int, trial: int) -> pd.DataFrame:
    """Trial ``trial``'s 78 patients as a cohort (schema of docs/cohort-csv.md), validated.

    The process's patients (``[seed, 78, trial]``); the columns it does not model from
    ``[seed, 78, trial, 1]`` (Amendment 5, simplification 1).
    """
    patients = dgp.sample_patients(np.random.default_rng([seed, TRIAL_N, trial]), TRIAL_N)
    rng = np.random.default_rng([seed, TRIAL_N, trial, 1])
    group = np.where(patients["marrow_blasts_pct"].to_numpy() >= 5, "high", "low")
    placed = {name: _place(rng, group, rec.TABLE1_COUNTS[name]) for name in NOT_MODELLED}
    severe = patients["severe_crs"].to_numpy(int) == 1
    grade = np.zeros(TRIAL_N, int)
    for g in ("low", "high"):
        rows = group == g
        grade[rows & ~severe] = rng.choice(3, size=int((rows & ~severe).sum()), p=MILD_GRADES[g])
        grade[rows & severe] = 3 + (rng.random(int((rows & severe).sum())) < GRADE4_SHARE[g])
    neurotox = np.zeros(TRIAL_N, int)
    for g, events in (("low", (2, 1, 0)), ("high", (2, 1, 1))):
        idx = rng.permutation(np.flatnonzero(group == g))
        grades = np.repeat([1, 2, 3], events)[: idx.size]
        neurotox[idx[: grades.size]] = grades
    il6 = np.round(np.exp(np.log(40.0) + 0.9 * grade + rng.normal(0, 0.8, TRIAL_N)), 1)
    cart = np.round(np.exp(rng.normal(np.log(3.0e4), 1.0, TRIAL_N)), 0)
    cohort = pd.DataFrame({
        "patient_id": [f"T{i + 1:03d}" for i in range(TRIAL_N)],
        "age_years": patients["age_years"].astype(int),
        "sex": np.where(placed["male"] == 1, "M", "F"),
        "ph_positive": patients["ph_positive"], "prior_therapy_ge_6mo": placed["prior_therapy_ge_6mo"],
        "prior_chemo_ge_3": placed["prior_chemo_ge_3"], "prior_hsct": patients["prior_hsct"],
        "relapsed": patients["relapsed"], "tp53_mutation": placed["tp53_mutation"],
        "poor_cytogenetics": placed["poor_cytogenetics"],
        "tb_assessed": np.where(placed["tb_after_fc"] == 1, "after_fc", "before_fc"),
        "marrow_blasts_pct": patients["marrow_blasts_pct"], "mrd_positive": 1,
        "response": patients["response"], "crs_grade": grade, "neurotox_grade": neurotox,
        "il6_peak_pg_ml": np.maximum(il6, 0.1), "cart_peak_copies_per_ug": np.maximum(cart, 1.0),
        "efs_months": patients["efs_months"], "efs_event": patients["efs_event"],
        "os_months": patients["os_months"], "os_event": patients["os_event"],
    })
    return validate_cohort(cohort.astype(str), source=f"simulated trial {trial}")


def trial_statistics(seed: int, trial: int) -> dict:
    """Trial ``trial``'s published statistics (a ``published_statistics.json``-shaped file)."""
    from training.paper.trial_statistics import statistics_of

    return statistics_of(trial_cohort(seed, trial), f"simulated trial {trial} (seed {seed}), "
                         "the reconstruction's data-generating process; not patient data")


def reconstruct_trial(statistics: dict, trial: int, members: int,
                      tuned_draws: int = TRIAL_TUNED_DRAWS) -> tuple[list, list[str]]:
    """Up to ``members`` verified reconstructions of a trial's statistics, within 2K attempts.

    Returns the members and the reason of every failed attempt (the missed statistic first).
    """
    from training.paper.assumptions import ImpossibleAssumption
    from training.paper.ensemble import Member, build_member, member_plan
    from training.paper.targets import TargetError, targets_from_statistics

    base = MEMBER_SEED + MEMBER_STRIDE * trial
    try:
        plan = member_plan(2 * members, base, targets_from_statistics(statistics))
    except (ImpossibleAssumption, TargetError) as problem:
        return [], [str(problem)]
    built: list[Member] = []
    reasons: list[str] = []
    for k, (seed, split) in enumerate(plan):
        if len(built) == members:
            break
        try:
            member = build_member(len(built), seed, split, statistics, tuned_draws)
        except (ImpossibleAssumption, TargetError, RuntimeError, ValueError) as problem:
            reasons.append(f"attempt {k}: {problem}")
            continue
        built.append(member)
    return built, reasons


def run_trial(train, seed: int, trial: int, members: int, bootstrap: int,
              tuned_draws: int = TRIAL_TUNED_DRAWS) -> dict:
    """One trial end to end: its failure reason, or the bundle's panel predictions.

    ``train(ensemble_dir, out_dir, bootstrap=, seed=, jobs=, progress=)`` writes the bundle (the
    function behind ``cart-risk train --ensemble``).

    Returns ``{"trial", "failed", "reasons", "predictions", "trained_with"}``; ``predictions``
    maps each output of :data:`OUTPUTS` to (point, lower, upper) lists over the panel, as risks
    (EFS / OS: 1 - survival); ``trained_with`` is the bundle manifest's features by model and
    methods by kind (:func:`training.simulation.honest.trained_with`; None for a failed trial).
    """
    from model.bundle import load_predictor
    from model.evaluation import predict_points
    from training.paper.ensemble import write_ensemble

    statistics = trial_statistics(seed, trial)
    built, reasons = reconstruct_trial(statistics, trial, members, tuned_draws)
    out = {"trial": trial, "failed": len(built) < members, "reasons": reasons, "predictions": None,
           "trained_with": None}
    if out["failed"]:
        return out
    with tempfile.TemporaryDirectory() as tmp:
        write_ensemble(Path(tmp) / "ensemble", built, MEMBER_SEED + MEMBER_STRIDE * trial)
        train(Path(tmp) / "ensemble", Path(tmp) / "bundle", bootstrap=bootstrap, seed=rec.DEFAULT_SEED,
              jobs=1, progress=False)
        bundle = load_predictor(Path(tmp) / "bundle")
        predicted = predict_points(bundle, panel(), intervals=True)
        out["trained_with"] = trained_with(bundle.manifest)
    out["predictions"] = {}
    for key, _ in OUTPUTS:
        point, lower, upper = (np.asarray(predicted[key + s], float) for s in ("", "_lower", "_upper"))
        if key not in ("cr", "severe_crs"):
            point, lower, upper = 1 - point, 1 - upper, 1 - lower
        out["predictions"][key] = [point.tolist(), lower.tolist(), upper.tolist()]
    return out


def run_study(train, trials: int, members: int, bootstrap: int, seed: int = DEFAULT_SEED,
              jobs: int = 1, backend: str | None = None, first_trial: int = 0,
              tuned_draws: int = TRIAL_TUNED_DRAWS, verbose: int = 0) -> list[dict]:
    """:func:`run_trial` for trials ``first_trial`` ... ``first_trial + trials - 1``, in order.

    ``jobs`` local processes, or the joblib ``backend`` (``"dask"`` inside a dask client, as
    ``cart-risk train --backend dask`` holds one); the result does not depend on either.
    ``verbose`` is joblib's progress level (messages on stderr).
    """
    from joblib import Parallel, delayed, parallel_config

    calls = [delayed(run_trial)(train, seed, t, members, bootstrap, tuned_draws)
             for t in range(first_trial, first_trial + trials)]
    if jobs == 1 and backend in (None, "loky"):
        return [call[0](*call[1], **call[2]) for call in calls]
    with parallel_config(backend=backend or "loky"):
        return Parallel(n_jobs=jobs, verbose=verbose)(calls)


def trial_rows(results: list[dict]) -> pd.DataFrame:
    """One row per trial, output and panel patient (failed trials: one row with the reason)."""
    rows = []
    for result in results:
        if result["failed"]:
            rows.append({"trial": result["trial"], "failed": 1, "output": "", "patient": "",
                         "point": math.nan, "lower": math.nan, "upper": math.nan,
                         "reason": " | ".join(result["reasons"])})
            continue
        for key, (point, lower, upper) in result["predictions"].items():
            for i, blasts in enumerate(PANEL_BLASTS):
                rows.append({"trial": result["trial"], "failed": 0, "output": key,
                             "patient": f"blasts {blasts:g} %", "point": point[i],
                             "lower": lower[i], "upper": upper[i], "reason": ""})
    return pd.DataFrame(rows)


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """Coverage, width and bias of each (output, patient) cell with Monte Carlo SEs."""
    truth = true_risks()
    subgroups = dict(zip((f"blasts {b:g} %" for b in PANEL_BLASTS), panel_subgroups()))
    failed_trials = rows.loc[rows["failed"] == 1, "trial"].nunique()
    total = rows["trial"].nunique()
    scored = rows[rows["failed"] == 0]
    out = []
    for key, truth_key in OUTPUTS:
        for patient, letter in subgroups.items():
            cell = scored[(scored["output"] == key) & (scored["patient"] == patient)]
            true = truth[truth_key][letter]
            covered = ((cell["lower"] <= true) & (true <= cell["upper"])).to_numpy(float)
            width = (cell["upper"] - cell["lower"]).to_numpy(float)
            error = cell["point"].to_numpy(float) - true
            n = covered.size
            c = covered.mean() if n else math.nan
            out.append({
                "output": key, "patient": patient, "subgroup": letter, "true_risk": round(true, 4),
                "coverage": round(c, 4),
                "coverage_mcse": round(math.sqrt(c * (1 - c) / n), 4) if n else math.nan,
                "mean_width": round(width.mean(), 4) if n else math.nan,
                "width_mcse": round(width.std(ddof=1) / math.sqrt(n), 4) if n > 1 else math.nan,
                "bias": round(error.mean(), 4) if n else math.nan,
                "bias_mcse": round(error.std(ddof=1) / math.sqrt(n), 4) if n > 1 else math.nan,
                "coverage_failures_as_misses": round(covered.sum() / total, 4) if total else math.nan,
                "n_trials": n, "failures": int(failed_trials),
            })
    return pd.DataFrame(out)


def study_trained_with(results: list[dict]) -> dict | None:
    """What the study's trials were trained with: the bundle manifest of the first reconstructed
    trial (every trial is trained by the same function with the same features and methods), with
    ``source`` saying so; None when no trial was reconstructed or the trials disagree."""
    records = [(r["trial"], r.get("trained_with")) for r in results if not r["failed"]]
    if not records or any(record != records[0][1] for _, record in records):
        return None
    return {**records[0][1], "source": f"the bundle manifest of trial {records[0][0]}, the first "
                                       "reconstructed (every scored trial's is the same)"}


def target_met(summary: pd.DataFrame, cell: float = CELL_TARGET, average: float = AVERAGE_TARGET) -> dict:
    """Amendment 5's target: coverage >= 0.90 at every cell and >= 0.93 on average."""
    below = summary[summary["coverage"] < cell]
    return {"every_cell": bool(below.empty), "average": float(summary["coverage"].mean()),
            "average_met": bool(summary["coverage"].mean() >= average),
            "cells_below": [f"{r.output} at {r.patient}: {r.coverage:.3f} (MCSE {r.coverage_mcse:.3f})"
                            for r in below.itertuples()]}


def write_study(rows: pd.DataFrame, out_dir, command: str, seed: int, members: int,
                bootstrap: int, trained: dict | None = None) -> dict:
    """Write ``end_to_end.csv`` (the table), ``end_to_end_trials.csv`` (every trial) and
    ``end_to_end.json`` (the run's parameters, the target check and, when known, ``trained_with``:
    ``trained``, from :func:`study_trained_with`) to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(rows)
    write_atomic(out / "end_to_end.csv", summary.to_csv(index=False, lineterminator="\n"))
    write_atomic(out / "end_to_end_trials.csv",
                 rows.to_csv(index=False, lineterminator="\n", quoting=csv.QUOTE_MINIMAL))
    trials = int(rows["trial"].nunique())
    failures = int(rows.loc[rows["failed"] == 1, "trial"].nunique())
    meta = {"command": command, "seed": seed, "trials": trials, "members": members,
            "bootstrap": bootstrap, "failures": failures,
            "failure_rate": failures / trials if trials else None,
            "failure_rate_mcse": (math.sqrt(failures / trials * (1 - failures / trials) / trials)
                                  if trials else None),
            "panel": PANEL_LABEL, "target": target_met(summary),
            "note": "synthetic trials from the reconstruction's data-generating process "
                    "(docs/method-selection.md, Amendments 5 and 6); not patient data"}
    if trained is not None:
        meta["trained_with"] = trained
    write_atomic(out / "end_to_end.json", json.dumps(meta, indent=2) + "\n")
    return meta


class StudyFilesError(ValueError):
    """A study directory that cannot be packaged; the message names the file and the problem."""


def read_study(source_dir) -> tuple[bytes, dict]:
    """``end_to_end.csv`` (its bytes) and ``end_to_end.json`` of a study directory, checked.

    Raises
    ------
    StudyFilesError
        A file missing or unreadable, a column or key missing, or a table that is not one row per
        output and panel patient.
    """
    source = Path(source_dir)
    table_path, meta_path = (source / name for name in END_TO_END_FILES)
    try:
        table = table_path.read_bytes()
        summary = pd.read_csv(io.BytesIO(table))
    except (OSError, ValueError) as problem:
        raise StudyFilesError(f"{table_path}: cannot be read ({problem})") from None
    missing = [c for c in END_TO_END_COLUMNS if c not in summary.columns]
    if missing:
        raise StudyFilesError(f"{table_path}: no column {', '.join(missing)}")
    if len(summary) != len(OUTPUTS) * len(PANEL_BLASTS) or summary[["output", "patient"]].duplicated().any():
        raise StudyFilesError(f"{table_path}: {len(summary)} rows; expected one per output and panel "
                              f"patient ({len(OUTPUTS) * len(PANEL_BLASTS)})")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as problem:
        raise StudyFilesError(f"{meta_path}: cannot be read ({problem})") from None
    keys = ("command", "seed", "trials", "members", "bootstrap", "failures")
    absent = [k for k in keys if not isinstance(meta, dict) or k not in meta]
    if absent:
        raise StudyFilesError(f"{meta_path}: no key {', '.join(absent)}")
    return table, meta


def reproduce_trained_with(train, source_dir, meta: dict) -> tuple[dict | None, str]:
    """Whether ``train`` (as it trains now) is what the study in ``source_dir`` trained with.

    Re-runs the first reconstructed trial of ``end_to_end_trials.csv`` with the study's seed, K
    and B and compares its panel predictions with the study's (within :data:`REPRODUCED_WITHIN`).
    Returns (the re-trained bundle's features and methods with their ``source``, or None; why).
    """
    path = Path(source_dir) / "end_to_end_trials.csv"
    try:
        rows = pd.read_csv(path, keep_default_na=False)
        scored = rows[rows["failed"].astype(int) == 0]
    except (OSError, ValueError, KeyError) as problem:
        return None, f"{path} cannot be read ({problem})"
    if scored.empty:
        return None, f"{path} holds no reconstructed trial to re-train"
    trial = int(scored["trial"].iloc[0])
    again = run_trial(train, int(meta["seed"]), trial, int(meta["members"]), int(meta["bootstrap"]))
    if again["failed"]:
        return None, f"trial {trial} could not be reconstructed again"
    study = scored[scored["trial"] == trial].set_index(["output", "patient"])
    largest = 0.0
    for key, values in again["predictions"].items():
        for i, blasts in enumerate(PANEL_BLASTS):
            row = study.loc[(key, f"blasts {blasts:g} %")]
            for column, value in zip(("point", "lower", "upper"), values):
                largest = max(largest, abs(float(row[column]) - value[i]))
    if largest > REPRODUCED_WITHIN:
        return None, (f"re-training trial {trial} with today's defaults does not reproduce the "
                      f"study's predictions (largest difference {largest:.3g})")
    source = (f"re-training trial {trial}, the first reconstructed, when the study was packaged "
              f"reproduced its panel predictions within {REPRODUCED_WITHIN:g}; read from that "
              "bundle's manifest")
    return {**again["trained_with"], "source": source}, f"established by re-training trial {trial}"


def package_study(source_dir, target_dir=None, train=None) -> tuple[dict, str]:
    """Copy a study's ``end_to_end.csv`` and ``end_to_end.json`` into the package data.

    ``target_dir`` defaults to :data:`PACKAGED_DIR`. A json without ``trained_with`` gets it only
    when ``train`` is given and :func:`reproduce_trained_with` establishes it; otherwise it stays
    absent and the pages say they cannot tell. Each file is written atomically, the table first.

    Returns (the packaged json, what was done about ``trained_with`` in words).

    Raises
    ------
    StudyFilesError
        When the study's files cannot be packaged (nothing is written then).
    """
    table, meta = read_study(source_dir)
    if "trained_with" in meta:
        how = "recorded by the run"
    elif train is None:
        how = "not recorded by the run, left absent"
    else:
        found, how = reproduce_trained_with(train, source_dir, meta)
        if found is None:
            how = f"not recorded by the run; not established: {how}; left absent"
        else:
            meta["trained_with"] = found
    target = Path(PACKAGED_DIR if target_dir is None else target_dir)
    target.mkdir(parents=True, exist_ok=True)
    write_atomic(target / "end_to_end.csv", table)
    write_atomic(target / "end_to_end.json", json.dumps(meta, indent=2) + "\n")
    return meta, how
