"""``cart-risk train --ensemble DIR``: the same models, fitted on every reconstruction, pooled.

Each member cohort of the ensemble (:mod:`training.paper.ensemble`) is fitted with exactly the
procedure ``cart-risk train`` uses on one cohort (:func:`training.development.fit_models.fit_model`, with
``ceil(B / K)`` bootstrap refits per member, so the bundle keeps about B parameter sets a model);
:mod:`training.development.pooling` pools them. The bundle has the single-cohort format, plus an ``ensemble``
block in the manifest: the members, the pooling rule, how much each output moves across members
for a reference panel, and the sCRS bands' range.
"""
from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from model.bundle import write_bundle
from model.bundle_kind import MEMBER_COLUMN, refuse_stacked
from model.cohort import read_cohort, write_cohort
from model.defaults import DEFAULT_BOOTSTRAP, DEFAULT_SEED
from model.features import BLASTS_FLOOR_PCT, design_matrix
from model.outcomes import BY_NAME, COX, NAMES
from model.predictor import compile_predictor, predict_points
from model.provenance import PROVENANCE_RECONSTRUCTED
from training.paper.analyses import derive, load_published
from training.evaluation.bands import scrs_band_table, wilson_interval
from training.development.config import load_config
from training.paper.ensemble import check_members, read_index
from training.development.ensemble_validation import VALIDATION_REPLICATES, validate_pooled
from training.development.fit_models import HORIZON_MONTHS, fit_model, more_refits
from training.fitting.logistic import FitError
from training.development.pooling import POOLING_RULE, pool_cox, pool_logistic, pooled_coefficients, pooled_entry
from training.options import TrainingError, training_options
from training.train import json_safe, models_manifest, month_grid, parallel_backend, plan_models

#: The reference panel of issue 9: age 30, Ph-negative, no prior HSCT, relapsed; blasts 0 % (MRD
#: positive), 2, 12, 35, 70 and 90 %.
PANEL_BLASTS = (0.0, 2.0, 12.0, 35.0, 70.0, 90.0)
PUBLISHED_SCRS = {"low": {"events": 4, "n": 33, "label": "blasts < 5%"},
                  "high": {"events": 19, "n": 45, "label": "blasts >= 5%"}}
LOW_SUBGROUPS = ("a", "b")


def panel() -> dict[str, np.ndarray]:
    """The reference panel as patient-field arrays."""
    n = len(PANEL_BLASTS)
    return {"marrow_blasts_pct": np.array(PANEL_BLASTS), "mrd_positive": np.ones(n, bool),
            "age_years": np.full(n, 30.0), "ph_positive": np.zeros(n), "prior_hsct": np.zeros(n),
            "relapsed": np.ones(n), "sex": np.array(["F"] * n), "tb_assessed": np.array(["before_fc"] * n)}


def _member_predictor(predictor: dict, pooled: dict, k: int) -> dict:
    """``predictor.json`` whose point (and only 'bootstrap' set) is member ``k``'s fit."""
    out = {key: value for key, value in predictor.items() if key != "models"}
    out["models"] = {}
    for name, spec in predictor["models"].items():
        member = {key: value for key, value in spec.items() if key != "bootstrap"}
        parts = pooled[name]["members"]
        if spec["kind"] == "logistic":
            member["intercept"], member["coef"] = parts["intercept"][k], parts["coef"][k]
            member["bootstrap"] = {"intercept": [member["intercept"]], "coef": [member["coef"]]}
        else:
            member["coef"], member["baseline_survival"] = parts["coef"][k], parts["baseline_survival"][k]
            member["bootstrap"] = {"coef": [member["coef"]], "baseline_survival": [member["baseline_survival"]]}
        out["models"][name] = member
    return out


def outputs_across_members(predictor: dict, pooled: dict, manifest: dict, members: int) -> dict:
    """For the panel: each output's min / median / max over the members' own fits, and the pooled
    point and 95 % interval."""
    patients = panel()
    pooled_out = predict_points(compile_predictor(predictor, manifest), patients, intervals=True)
    per_member = [predict_points(compile_predictor(_member_predictor(predictor, pooled, k), manifest),
                                 patients) for k in range(members)]
    keys = [key for key in pooled_out if key != "burden_subgroup" and not key.endswith(("_lower", "_upper"))]
    rows = []
    for i, blasts in enumerate(PANEL_BLASTS):
        row = {"marrow_blasts_pct": blasts}
        for key in keys:
            values = np.array([m[key][i] for m in per_member], float)
            if not np.isfinite(values).all():
                continue
            row[key] = {"members_min": float(values.min()), "members_median": float(np.median(values)),
                        "members_max": float(values.max()), "pooled": float(pooled_out[key][i]),
                        "pooled_ci95": [float(pooled_out[f"{key}_lower"][i]), float(pooled_out[f"{key}_upper"][i])]}
        rows.append(row)
    return {"panel": "age 30, Ph-negative, no prior HSCT, relapsed; marrow blasts as listed "
                     "(0 % = MRD positive)", "rows": rows}


def ensemble_provenance(paths: list[Path]) -> str:
    """Reconstructed when every member is a reconstruction, else center-cohort.

    A member counts as a reconstruction when its bytes are one of the packaged ensemble's members
    or the packaged single cohort, or when it reproduces every published statistic (what only a
    reconstruction of this paper does).
    """
    from model.provenance import PROVENANCE_CENTER
    from training.paper.ensemble import default_ensemble_dir, unmatched
    from training.paper.provenance import default_cohort_path, sha256_file

    _, packaged = read_index(default_ensemble_dir())
    known = {sha256_file(p) for p in packaged} | {sha256_file(default_cohort_path())}
    for path in paths:
        if sha256_file(path) in known:
            continue
        if unmatched(read_cohort(path)):
            return PROVENANCE_CENTER
    return PROVENANCE_RECONSTRUCTED


def ensemble_bands(cohorts: list[pd.DataFrame]) -> list[dict]:
    """sCRS band rows over the members: mean counts, the rate's range, the published groups.

    ``events`` / ``n`` are the members' mean counts (rounded; ``rate`` = events / n, one
    reconstruction's scale) and ``mean_rate`` the mean of their rates: the five-subgroup split is
    assumption A1, so no single reconstructed count is shown as observed. ``ci95`` is the Wilson
    interval of the mean counts widened to cover every member's rate.
    """
    tables = [scrs_band_table(c) for c in cohorts]
    rows = []
    for i, first in enumerate(tables[0]):
        events = np.array([t[i]["events"] for t in tables], float)
        n = np.array([t[i]["n"] for t in tables], float)
        rates = events / np.where(n > 0, n, np.nan)
        e_mean, n_mean = int(round(events.mean())), int(round(n.mean()))
        e_mean = min(e_mean, n_mean)
        wilson = wilson_interval(e_mean, n_mean) or (np.nan, np.nan)
        group = "low" if first["subgroup"] in LOW_SUBGROUPS else "high"
        published = PUBLISHED_SCRS[group]
        rows.append({
            "subgroup": first["subgroup"], "label": first["label"],
            "events": e_mean, "n": n_mean, "rate": e_mean / n_mean if n_mean else None,
            "mean_rate": float(np.nanmean(rates)),
            "ci95": [float(min(wilson[0], np.nanmin(rates))), float(max(wilson[1], np.nanmax(rates)))],
            "smoothed_rate": float(np.nanmean([t[i]["smoothed_rate"] or np.nan for t in tables])),
            "rate_range": [float(np.nanmin(rates)), float(np.nanmax(rates))],
            "n_range": [int(n.min()), int(n.max())], "members": len(tables),
            "evidence": "assumed: subgroup split A1, mean over the reconstructions (not observed)",
            "published_group": {"group": group, "label": published["label"], "events": published["events"],
                                "n": published["n"], "rate": published["events"] / published["n"],
                                "evidence": "published (Fig. 4B; counts derived from Fisher P = 0.0053)"},
        })
    return rows


def _fit_members(name, features, cohorts, per_member, replicates, seed, jobs, show, backend, grid,
                 fit_keywords):
    """Fit ``name`` on every member: ``per_member`` bootstrap refits for the served intervals
    (member k's drawn from ``SeedSequence(seed + k)``, as before the pooled validation), and
    ``replicates`` (at least ``per_member``) refits for the pooled validation, on resamples of
    the same row positions in every member (:func:`validation_seed`); members run in parallel
    (each member's refits serially).

    Spreading whole members over the workers (``jobs`` local processes, or every worker of a dask
    cluster) beats spreading each member's few refits. Every member and refit has its own seed,
    so the result is the same for any ``jobs`` and backend.
    """
    from joblib import Parallel, delayed, parallel_config

    refits = max(per_member, replicates)
    if show:
        print(f"{name}: {len(cohorts)} reconstructions, {per_member} bootstrap refits each for the "
              f"intervals and {refits} for the pooled validation", file=sys.stderr)
    calls = (delayed(_fit_member)(name, df, features, per_member, refits, seed + k,
                                  validation_seed(seed), grid, fit_keywords)
             for k, df in enumerate(cohorts))
    if jobs == 1 and backend in (None, "loky"):
        return [call[0](*call[1], **call[2]) for call in calls]
    with parallel_config(backend=backend or "loky"):
        return Parallel(n_jobs=jobs)(calls)


def _fit_member(name, cohort, features, per_member, replicates, seed, shared_seed, grid, fit_keywords):
    """(member's FittedModel with its ``per_member`` served refits, ``replicates`` validation
    refits on the resamples every member shares, their rows in ``cohort``)."""
    fitted = fit_model(name, cohort, features, B=per_member, seed=seed, jobs=1, progress=False,
                       backend=None, month_grid=grid, **fit_keywords)
    order = matched_order(cohort)
    refits, positions = more_refits(name, cohort.iloc[order].reset_index(drop=True), features,
                                    seed=shared_seed, start=0, stop=replicates,
                                    method=fit_keywords.get("method"))
    return fitted, refits, order[positions]


#: Columns that match patients across reconstructions, most published first: burden group
#: (derived from blasts), then the outcomes whose counts by group are published, then blasts and
#: follow-up to break ties in the same order in every member.
MATCHING = ("burden_group", "cr", "severe_crs", "os_event", "efs_event", "marrow_blasts_pct", "efs_months")


def matched_order(cohort: pd.DataFrame) -> np.ndarray:
    """Row order of a member that puts "the same patient" at the same position in every member.

    Reconstructions share every published cross-tabulation (CR and severe CRS by burden group, the
    events), so sorting by :data:`MATCHING` lines up patients with the same published
    characteristics; the pooled validation resamples positions of this order.
    """
    from model.burden import burden_groups

    frame = cohort.reset_index(drop=True)
    frame = frame.assign(burden_group=burden_groups(frame["marrow_blasts_pct"]))
    keys = [c for c in MATCHING if c in frame]
    return frame.sort_values(keys, kind="stable").index.to_numpy()


def validation_seed(seed: int) -> list[int]:
    """Entropy of the pooled validation's resamples: replicate b draws the same positions of
    :func:`matched_order` in every reconstruction, from ``SeedSequence([seed, 2]).spawn(R)[b]``.

    The reconstructions are versions of the same 78 patients, not 20 samples of 78: resampling
    each independently would give a pooled replicate the information of 1,560 patients and hide
    most of the optimism (if every member were the same cohort, the pooled replicate would be the
    bagged mean of 20 refits instead of one refit). With matched positions that limit is exactly
    the single-cohort bootstrap. docs/ensemble.md, "Validation of the pooled model".
    """
    return [int(seed), 2]


def _member_data(name, cohort, features) -> dict:
    columns = BY_NAME[name].model_columns
    data = {"X": design_matrix(cohort, features)}
    if BY_NAME[name].kind == "logistic":
        data["y"] = cohort[columns[0]].to_numpy(dtype=int)
    else:
        data["time"], data["event"] = cohort[columns[0]].to_numpy(float), cohort[columns[1]].to_numpy(int)
    return data


def _pool(name, features, fitted, grid, per_member, cohorts, jobs):
    refits = [f[1] for f in fitted]
    samples = np.array([f[2] for f in fitted])
    fitted = [f[0] for f in fitted]
    fits = [f.result.fit for f in fitted]
    boots = [f.result.fits for f in fitted]
    center, scale = np.asarray(fits[0].center, float), np.asarray(fits[0].scale, float)
    kind = BY_NAME[name].kind
    parts = (pool_logistic(fits, boots, center, scale) if kind == "logistic"
             else pool_cox(fits, boots, center, scale, grid))
    member_coef = np.array(parts["members"]["coef"], float)
    boot_coef = np.array(parts["bootstrap"]["coef"], float)
    unshrunk = [{f: c.get("unshrunk_ci95") for f, c in e.entry["coefficients"].items()} for e in fitted]
    ratio = "odds_ratio" if kind == "logistic" else "hazard_ratio"
    coefficients = pooled_coefficients(features, member_coef, boot_coef, scale, unshrunk, ratio)
    validation = validate_pooled(kind, fits, refits, samples,
                                 [_member_data(name, c, features) for c in cohorts], center, scale,
                                 grid, HORIZON_MONTHS, jobs)
    entry = pooled_entry([f.entry for f in fitted], coefficients, len(boot_coef), per_member, validation)
    if kind == "logistic":
        entry["intercept"] = float(parts["intercept"] - (center / scale) @ np.array(parts["coef"]))
    else:
        entry["max_follow_up_months"] = float(grid[-1])
    params = {"kind": kind, "features": list(features), "center": center.tolist(),
              "scale": scale.tolist(), **{k: v for k, v in parts.items() if k != "members"}}
    if kind == "cox":
        params["max_follow_up_months"] = float(grid[-1])
    estimators = {"kind": kind, "features": list(features), "center": center, "scale": scale,
                  "estimator": fitted[0].estimator,
                  "members": [{"center": np.asarray(f.params["center"]), "scale": np.asarray(f.params["scale"]),
                               "estimator": f.estimator} for f in fitted],
                  "input": "standardized columns (x - center) / scale; 'estimator' is the first "
                           "reconstruction's, 'members' holds every reconstruction's with its own "
                           "centre and scale"}
    return entry, params, parts, estimators


def train_ensemble(ensemble_dir, out_dir, bootstrap: int = DEFAULT_BOOTSTRAP,
                   seed: int = DEFAULT_SEED, jobs: int = 1, features_path=None,
                   backend: str | None = None, scheduler: str | None = None,
                   progress: bool | None = None, methods: dict[str, str] | None = None,
                   validation_replicates: int = VALIDATION_REPLICATES, **fit_keywords) -> dict:
    """Fit every available model on each ensemble member, pool, and write one bundle.

    Parameters
    ----------
    ensemble_dir : path
        Directory with ``ensemble.json`` and the member CSVs (:mod:`training.paper.ensemble`).
    out_dir, bootstrap, seed, jobs, features_path, backend, scheduler, progress
        As :func:`training.train.train`; ``bootstrap`` is the total over members (each member gets
        ``ceil(bootstrap / K)`` refits, seeded ``seed + k``).
    methods : dict, optional
        Fitting method by model kind, as :func:`training.train.train` (default: the simulation
        study's winners); every member is fitted with the same method.
    validation_replicates : int
        Replicates of the pooled model's optimism bootstrap (each refits every member once;
        docs/ensemble.md); fewer than the default only for quick tests.
    **fit_keywords
        Passed through to :func:`training.development.fit_models.fit_model`.

    Returns
    -------
    dict
        The manifest as written.
    """
    options = training_options(bootstrap, jobs, backend, scheduler, methods)
    bootstrap, jobs, methods = options.bootstrap, options.jobs, options.methods
    index, paths = read_index(ensemble_dir)
    cohorts = [derive(refuse_stacked(read_cohort(p), str(p))) for p in paths]
    check_members(cohorts, paths)
    provenance = ensemble_provenance(paths)
    k = len(cohorts)
    per_member = max(1, math.ceil(bootstrap / k))
    config = load_config(features_path)
    plan, skipped = plan_models(cohorts[0], config)
    if not plan:
        raise TrainingError(f"{ensemble_dir}: no model can be fitted: " + "; ".join(skipped.values()))
    survival = [BY_NAME[name].model_columns[0] for name in plan if BY_NAME[name].kind == COX]
    follow_up = min(max((float(df[c].max()) for c in survival), default=0.0) for df in cohorts)
    grid = month_grid(follow_up)
    show = sys.stderr.isatty() if progress is None else bool(progress)
    entries, params, parts, estimators = {}, {}, {}, {}
    with parallel_backend(options.backend, options.scheduler) as backend_name:
        for name, features in plan.items():
            try:
                fitted = _fit_members(name, features, cohorts, per_member, validation_replicates,
                                      seed, jobs, show,
                                      backend_name, grid,
                                      {"method": methods[BY_NAME[name].kind], **fit_keywords})
            except FitError as problem:
                skipped[name] = f"{name} model could not be fitted on every reconstruction: {problem}"
                continue
            entries[name], params[name], parts[name], estimators[name] = _pool(
                name, features, fitted, grid, per_member, cohorts, jobs)
    if not entries:
        raise TrainingError(f"{ensemble_dir}: no model can be fitted: " + "; ".join(skipped.values()))
    bands = ensemble_bands(cohorts)
    models = {name: entries[name] for name in NAMES if name in entries}
    predictor = {"format_version": 1, "blasts_floor_pct": BLASTS_FLOOR_PCT, "month_grid": grid.tolist(),
                 "models": {name: params[name] for name in models}, "scrs_bands": bands}
    manifest = {
        "format_version": 1,
        "provenance": provenance,
        "source": (load_published()["source"]["citation"] + f" Ensemble of {k} synthetic cohorts "
                   "reconstructed from the paper's published aggregates, each reproducing every "
                   "published statistic; not patient data." if provenance == PROVENANCE_RECONSTRUCTED
                   else f"center cohorts ({k} files of {Path(ensemble_dir).name})"),
        "training_data": {"file": "training_cohort.csv", "n": len(cohorts[0]), "members": k,
                          "source_file": f"{Path(ensemble_dir).name}/ensemble.json"},
        "seed": int(seed), "bootstrap": int(per_member * k),
        **models_manifest(methods, config, models, skipped, bands, provenance),
    }
    manifest["ensemble"] = {
        "members": k, "bootstrap_per_member": per_member, "pooling": POOLING_RULE,
        "validation_replicates": max(per_member, int(validation_replicates)),
        "index": index, "published_scrs": PUBLISHED_SCRS,
        "outputs": outputs_across_members(json_safe(predictor), parts, manifest, k),
    }
    with tempfile.TemporaryDirectory() as tmp:
        combined = Path(tmp) / "training_cohort.csv"
        frames = []
        for member, path in enumerate(paths):
            frame = read_cohort(path)
            frame["patient_id"] = [f"M{member:02d}-{pid}" for pid in frame["patient_id"]]
            frame[MEMBER_COLUMN] = member
            frames.append(frame)
        write_cohort(pd.concat(frames, ignore_index=True), combined)
        return write_bundle(out_dir, json_safe(manifest), json_safe(predictor), estimators, combined)


def ensemble_command(ensemble_dir, out, bootstrap: int = DEFAULT_BOOTSTRAP,
                     seed: int = DEFAULT_SEED, jobs: int = 1, features=None,
                     backend: str | None = None, scheduler: str | None = None,
                     methods: dict[str, str] | None = None) -> int:
    """``cart-risk train --ensemble [DIR]``: train, print a short summary, return the exit code.

    Returns
    -------
    int
        0 on success; 2 for an unusable ensemble, cohort, feature file or option; 1 for other
        failures (:func:`model.errors.exit_code`).
    """
    import time

    from model.bundle import MANIFEST_DIGEST
    from model.cohort import CohortError
    from model.errors import BundleError, report_failure
    from training.development.config import ConfigError
    from training.paper.ensemble import EnsembleError, default_ensemble_dir
    from training.train import summary_lines

    started = time.perf_counter()
    directory = default_ensemble_dir() if ensemble_dir is None else Path(ensemble_dir)
    try:
        manifest = train_ensemble(directory, out, bootstrap=bootstrap, seed=seed, jobs=jobs,
                                  features_path=features, backend=backend, scheduler=scheduler,
                                  methods=methods)
    except (EnsembleError, CohortError, ConfigError, TrainingError, BundleError) as error:
        return report_failure("train", error)
    bundle_id = (Path(out) / MANIFEST_DIGEST).read_text(encoding="ascii").strip()
    print(f"ensemble: {manifest['ensemble']['members']} reconstructions, "
          f"{manifest['ensemble']['bootstrap_per_member']} bootstrap refits each; {POOLING_RULE}")
    for line in summary_lines(manifest):
        print(line)
    print(f"bundle written to {out} (id {bundle_id[:12]}) in {time.perf_counter() - started:.1f} s")
    return 0
