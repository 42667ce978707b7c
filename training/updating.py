"""Update a bundle's models on a center's cohort and write the updated bundle (``cart-risk update``).

For each model of the parent bundle whose columns the cohort has, the method is the one asked for,
or with ``auto`` the one the closed test of :mod:`training.external.update_tests` chooses (``none`` keeps
the model as it is). Then:

* intercept / recalibrate: the parent's point parameters are updated (logistic: intercept
  ``a + b * intercept``, coefficients ``b * coef``; Cox: coefficients ``b * coef``, baseline
  survival ``S0 ** exp(a)``). The update itself is validated by the optimism bootstrap of
  :mod:`training.development.bootstrap` on the center's cohort (the update re-estimated in each resample),
  and the B parameter sets of the prediction intervals are the parent's bootstrap sets, each
  updated with the (a, b) of one resample: they carry the parent's estimation uncertainty and the
  update's.
* refit: the whole training procedure of ``cart-risk train`` (penalty choice, optimism bootstrap)
  on the center's cohort, with the parent's predictors.

The manifest keeps the parent's model cards for unchanged models and records the update under
``lineage`` (``docs/bundle-format.md``): the parent's id and provenance, the update cohort's
SHA-256, patients and bytes, and each model's method, parameters and closed test.
"""
from __future__ import annotations

import copy
import math
import sys
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import numpy as np

from model.bundle import load_predictor, write_bundle
from model.bundle_kind import MAX_UPDATE_DEPTH, bundle_basis, refuse_stacked
from model.cohort import read_cohort
from model.defaults import DEFAULT_BOOTSTRAP, DEFAULT_SEED
from model.provenance import PROVENANCE_CENTER, PROVENANCE_RECONSTRUCTED
from training.development import bundle_models as bm
from training.evaluation import metrics
from training.external import update_tests as ut
from training.external.ranges import covered_ranges, outside_ranges
from training.paper.analyses import derive
from training.evaluation.bands import scrs_band_table
from training.development.bootstrap import optimism_bootstrap
from training.development.fit_models import fit_model
from training.fitting.logistic import FitError
from training.paper.provenance import sha256_file
from training.options import OptionError, training_options
from training.train import json_safe

REQUESTABLE = ("auto", "intercept", "recalibrate", "refit")


class UpdateError(ValueError):
    """The update cannot be made (bad method, nothing to update)."""


class NothingToUpdate(UpdateError):
    """Every model kept as it was: no bundle is written (``lines``: the per-model reasons)."""

    def __init__(self, message: str, lines: list[str]):
        super().__init__(message)
        self.lines = lines


# --------------------------------------------------------------------------- per-model data


def _poisson_data(spec: dict, grid, time: np.ndarray, event: np.ndarray):
    """Event indicator and log H0 at each follow-up, truncated at the model's last follow-up."""
    baseline = bm.baseline_hazard(spec, grid)
    follow = np.minimum(time, baseline.max_follow_up)
    d = ((event == 1) & (time <= baseline.max_follow_up)).astype(float)
    floor = baseline.cumulative_hazard[baseline.cumulative_hazard > 0].min() * 1e-3
    return d, np.log(np.maximum(baseline.at(follow), floor)), baseline


# Module-level callables for the bootstrap (picklable).

def _fit_logistic_update(data: dict, method: str) -> tuple[float, float]:
    a, b = ut.logistic_update_fit(data["y"], data["lp"], method)
    if not (math.isfinite(a) and math.isfinite(b)):
        raise FitError("not estimable on these patients: one outcome class, no events, or separation")
    return a, b


def _evaluate_logistic_update(fit, data: dict) -> dict:
    return metrics.binary_metrics(data["y"], ut.updated_probability(data["lp"], *fit))


def _fit_cox_update(data: dict, method: str) -> tuple[float, float]:
    a, b = ut.cox_update_fit(data["d"], data["log_H0"], data["lp"], method)
    if not (math.isfinite(a) and math.isfinite(b)):
        raise FitError("not estimable on these patients: one outcome class, no events, or separation")
    return a, b


def _evaluate_cox_update(fit, data: dict, months: np.ndarray, cumhaz: np.ndarray,
                         horizon: float) -> dict:
    a, b = fit
    return metrics.survival_metrics(data["time"], data["event"], b * data["lp"], months,
                                    math.exp(a) * cumhaz, horizon)


# --------------------------------------------------------------------------- one model


def _decide(name: str, spec: dict, cohort, method: str, grid) -> dict:
    """The closed test's figures for one model, and the method to apply."""
    Z = bm.standardized(spec, cohort)
    lp = bm.linear_predictor(spec, cohort)
    if spec["kind"] == "logistic":
        (y,) = bm.outcome(name, cohort)
        ll, estimates = ut.logistic_logliks(y, lp, Z)
    else:
        time, event = bm.outcome(name, cohort)
        d, log_H0, _ = _poisson_data(spec, grid, time, event)
        ll, estimates = ut.cox_logliks(d, log_H0, lp, Z)
    test = ut.closed_test(ll, Z.shape[1])
    test["loglik"] = ll
    chosen = test["chosen"] if method == "auto" else method
    return {"method": chosen, "requested": method, "closed_test": test,
            "decided_by": test["decided_by"] if method == "auto" else f"requested: {method}",
            "estimates": estimates}


def _update_parameters(spec: dict, a: float, b: float) -> dict:
    """The parent's ``predictor.json`` entry with one (a, b) update applied (bootstrap: as given)."""
    new = copy.deepcopy(spec)
    new["coef"] = (b * np.asarray(spec["coef"], float)).tolist()
    boot = spec["bootstrap"]
    if spec["kind"] == "logistic":
        new["intercept"] = a + b * float(spec["intercept"])
    else:
        new["baseline_survival"] = (np.asarray(spec["baseline_survival"], float) ** math.exp(a)).tolist()
        if spec.get("baseline_steps"):
            steps = spec["baseline_steps"]
            new["baseline_steps"] = {"months": steps["months"], "cumulative_hazard": (
                math.exp(a) * np.asarray(steps["cumulative_hazard"], float)).tolist()}
    new["bootstrap"] = copy.deepcopy(boot)
    return new


def _bootstrap_sets(parent: dict, fits: list[tuple[float, float]]) -> dict:
    """Parent bootstrap set k (cycled) updated with the (a, b) of center resample k."""
    boot = parent["bootstrap"]
    coef = np.asarray(boot["coef"], float)
    out: dict = {"coef": []}
    if parent["kind"] == "logistic":
        out["intercept"] = []
    else:
        out["baseline_survival"] = []
    for k, (a, b) in enumerate(fits):
        j = k % coef.shape[0]
        out["coef"].append((b * coef[j]).tolist())
        if parent["kind"] == "logistic":
            out["intercept"].append(a + b * float(boot["intercept"][j]))
        else:
            out["baseline_survival"].append(
                (np.asarray(boot["baseline_survival"][j], float) ** math.exp(a)).tolist())
    return out


def _coefficients(entry: dict, spec: dict, new: dict) -> dict:
    """Coefficients block of an updated card: estimates times b, CIs from the updated sets."""
    scale = np.asarray(spec["scale"], float)
    sets = np.asarray(new["bootstrap"]["coef"], float) / scale
    estimate = np.asarray(new["coef"], float) / scale
    out = {}
    for j, (feature, old) in enumerate(entry["coefficients"].items()):
        low, high = np.percentile(sets[:, j], [2.5, 97.5])
        out[feature] = {**old, "estimate": float(estimate[j]), "se": None,
                        "ci95": [float(low), float(high)], "ratio": math.exp(estimate[j]),
                        "ratio_ci95": [math.exp(low), math.exp(high)],
                        "estimate_per_sd": float(new["coef"][j]),
                        "interval": "percentiles of the updated bootstrap sets"}
    return out


def _recalibrated(name, spec, entry, cohort, method, B, seed, grid, jobs):
    lp = bm.linear_predictor(spec, cohort)
    if spec["kind"] == "logistic":
        (y,) = bm.outcome(name, cohort)
        data = {"y": y, "lp": lp}
        result = optimism_bootstrap(partial(_fit_logistic_update, method=method),
                                    _evaluate_logistic_update, data, B, seed, n_jobs=jobs)
        events = min(int(y.sum()), int(y.size - y.sum()))
    else:
        time, event = bm.outcome(name, cohort)
        d, log_H0, baseline = _poisson_data(spec, grid, time, event)
        data = {"time": time, "event": event, "lp": lp, "d": d, "log_H0": log_H0}
        horizon = float(entry.get("horizon_months", 12.0))
        result = optimism_bootstrap(
            partial(_fit_cox_update, method=method),
            partial(_evaluate_cox_update, months=baseline.months,
                    cumhaz=baseline.cumulative_hazard, horizon=horizon), data, B, seed, n_jobs=jobs)
        events = int(event.sum())
    a, b = result.fit
    new = _update_parameters(spec, a, b)
    new["bootstrap"] = _bootstrap_sets(spec, result.fits)
    summary = result.summary()
    card = copy.deepcopy(entry)
    card.update(n=int(lp.size), events=events,
                apparent=summary["apparent"], optimism=summary["optimism"],
                optimism_corrected=summary["optimism_corrected"],
                optimism_mean=summary["optimism_mean"], optimism_summary=summary["optimism_summary"],
                bootstrap=int(B), bootstrap_seed=int(seed), bootstrap_estimable=summary["n_finite"],
                bootstrap_redraws=summary["redraws"])
    card["coefficients"] = _coefficients(entry, spec, new)
    if spec["kind"] == "logistic":
        card["intercept"] = float(new["intercept"] - np.sum(np.asarray(new["coef"]) *
                                  np.asarray(spec["center"]) / np.asarray(spec["scale"])))
    card["warnings"] = [f"Updated on a center cohort of {lp.size} patients by "
                        f"{ut.LABELS[method]} (a = {a:.3f}, b = {b:.3f}); predictors, penalty and "
                        "sample-size figures are the parent model's."] + list(entry["warnings"])
    return new, card, {"intercept_shift": a, "slope": b}, None


def _refitted(name, spec, cohort, B, seed, grid, jobs):
    fitted = fit_model(name, cohort, bm.features_of(spec), B=B, seed=seed, jobs=jobs,
                       month_grid=np.asarray(grid, float))
    card = dict(fitted.entry)
    card["warnings"] = ["Refitted on a center cohort: every coefficient re-estimated."] + card["warnings"]
    estimator = {"kind": fitted.params["kind"], "features": fitted.params["features"],
                 "center": np.asarray(fitted.params["center"]),
                 "scale": np.asarray(fitted.params["scale"]), "estimator": fitted.estimator,
                 "input": "standardized columns (x - center) / scale"}
    return fitted.params, card, {}, estimator


# --------------------------------------------------------------------------- the bundle


def update_bundle(bundle_dir, cohort_path, out_dir, method: str = "auto",
                  bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = DEFAULT_SEED,
                  jobs: int = 1, max_depth: int = MAX_UPDATE_DEPTH) -> dict:
    """Update every model of a bundle on a cohort CSV and write the updated bundle to ``out_dir``.

    Nothing is written when every model is kept as it was (:class:`NothingToUpdate`). Fields of
    the cohort outside a model's training ranges are warned about (``lineage.range_warnings``
    and the model card's warnings), and an updated model records the ranges it now covers.

    Parameters
    ----------
    bundle_dir : path of the parent bundle (verified on loading)
    cohort_path : the center's cohort CSV (validated by :func:`model.cohort.read_cohort`)
    out_dir : where the updated bundle goes (atomically; a non-bundle directory is refused)
    method : "auto" (closed test), "intercept", "recalibrate" or "refit"
    bootstrap : B, repetitions of the optimism bootstrap (>= 1)
    seed, jobs : as for ``cart-risk train``
    max_depth : longest chain of updates built on (the parent's depth must be below it)

    Returns
    -------
    dict
        The updated bundle's manifest as written, with its ``lineage``.

    Raises
    ------
    model.errors.CohortError, model.errors.BundleError, UpdateError (NothingToUpdate),
    training.options.OptionError (a bad ``bootstrap`` or ``jobs``)
    """
    if method not in REQUESTABLE:
        raise UpdateError(f"method must be one of {', '.join(REQUESTABLE)} (got {method!r})")
    options = training_options(bootstrap, jobs)
    bootstrap, jobs = options.bootstrap, options.jobs
    parent = load_predictor(bundle_dir)
    if parent.basis.depth >= max_depth:
        raise UpdateError(f"{bundle_dir} is already update {parent.basis.depth} of a chain; "
                          f"cart-risk update builds chains of at most {max_depth} updates: "
                          "update an earlier bundle of the chain on the pooled center cohorts")
    cohort_path = Path(cohort_path)
    cohort = derive(refuse_stacked(read_cohort(cohort_path), str(cohort_path)))
    params, manifest = copy.deepcopy(parent.params), copy.deepcopy(parent.manifest)
    grid = params["month_grid"]
    from training.report.page import _estimators

    parent_estimators = _estimators(bundle_dir)[0] or {}  # unloadable: only the audit lacks them
    estimators = {}
    lineage_models = {}
    range_warnings = {}
    for name, spec in parent.params["models"].items():
        entry = parent.manifest["models"][name]
        reason = bm.unassessable_reason(name, spec, cohort)
        if reason:
            lineage_models[name] = {"method": "none", "reason": f"kept unchanged: {reason}"}
            if name in parent_estimators:
                estimators[name] = parent_estimators[name]
            continue
        decision = _decide(name, spec, cohort, method, grid)
        chosen = decision["method"]
        outside = outside_ranges(entry, cohort)
        if outside:
            range_warnings[name] = outside
        try:
            if chosen == "none":
                new, card, values, estimator = spec, entry, {}, parent_estimators.get(name)
            elif chosen == "refit":
                new, card, values, estimator = _refitted(name, spec, cohort, bootstrap, seed,
                                                         grid, jobs)
            else:
                new, card, values, estimator = _recalibrated(name, spec, entry, cohort, chosen,
                                                             bootstrap, seed, grid, jobs)
        except FitError as problem:
            raise UpdateError(f"{name}: the {chosen} update cannot be estimated on this cohort "
                              f"({problem})") from None
        if chosen in ("intercept", "recalibrate"):  # rests on the parent's cohort and this one
            card = {**card, "field_ranges": covered_ranges(entry, cohort)}
        if outside and chosen != "none":
            card = {**card, "warnings": [
                f"The update cohort lies outside the parent's training range ({'; '.join(outside)}): "
                "the update extrapolates the parent's model there."] + list(card["warnings"])}
        params["models"][name] = new
        manifest["models"][name] = card
        if estimator is not None:
            estimators[name] = estimator
        lineage_models[name] = {"method": chosen, "requested": method,
                                "decided_by": decision["decided_by"],
                                "closed_test": decision["closed_test"], "parameters": values,
                                "n": int(len(cohort))}
    updated = [m for m, v in lineage_models.items() if v["method"] != "none"]
    summary = (f"updated from bundle {parent.id[:12]} on {len(cohort)} patients "
               f"({cohort_path.name}): " + ", ".join(
                   f"{m} {v['method']}" for m, v in lineage_models.items()))
    if not updated:
        raise NothingToUpdate(
            f"no model changed (each was kept as it was, for the reasons above), so nothing was "
            f"written to {out_dir}; the parent bundle {parent.id[:12]} stays the one to use",
            lineage_lines({"lineage": {"summary": summary,
                                                         "models": lineage_models}}))
    basis = parent.basis
    bands_observed = "crs_grade" in cohort.columns or basis.bands_observed
    if "crs_grade" in cohort.columns:  # the observed bands describe the bundle's own cohort
        params["scrs_bands"] = manifest["scrs_bands"] = scrs_band_table(cohort)
    if all(lineage_models[m]["method"] == "refit" for m in params["models"]):
        manifest["provenance"] = PROVENANCE_CENTER
    manifest["lineage"] = {
        "parent": {"id": parent.id, "created": parent.manifest.get("created"),
                   "provenance": parent.manifest.get("provenance"),
                   "source": parent.manifest.get("source"),
                   "training_data": {k: parent.manifest.get("training_data", {}).get(k)
                                     for k in ("sha256", "n")}},
        "ancestors": ancestors(parent.id, parent.manifest.get("lineage")),
        "basis": {"root": {"n": basis.root_n, "reconstructions": basis.reconstructions,
                           "provenance": PROVENANCE_RECONSTRUCTED if basis.root_reconstructed
                           else PROVENANCE_CENTER},
                  "updates": [*basis.updates, int(len(cohort))], "bands_observed": bands_observed},
        "update_cohort": {"file": cohort_path.name, "sha256": sha256_file(cohort_path),
                          "n": int(len(cohort)), "bytes": cohort_path.stat().st_size},
        "method": method, "alpha": ut.ALPHA, "models": lineage_models,
        "range_warnings": range_warnings,
        "summary": summary,
    }
    manifest["source"] = (f"{parent.manifest.get('source')} Updated on a center cohort "
                          f"({cohort_path.name}, {len(cohort)} patients).")
    manifest["created"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    manifest["bootstrap"] = int(bootstrap) if updated else manifest.get("bootstrap")
    manifest["training_data"] = {"n": int(len(cohort)), "source_file": cohort_path.name}
    manifest["warnings"] = [f"{name}: {w}" for name, entry in manifest["models"].items()
                            for w in entry.get("warnings", [])]
    for key in ("files", "packages"):
        manifest.pop(key, None)
    return write_bundle(out_dir, json_safe(manifest), json_safe(params), estimators, cohort_path)


def ancestors(parent_id: str, lineage: dict | None) -> list[dict]:
    """The earlier updates of a chain, oldest first, as a flat list (a chain of any length keeps
    the manifest's nesting depth constant); ``lineage`` is the parent's, in either format."""
    if not lineage:
        return []
    parent = lineage.get("parent") or {}
    earlier = (lineage["ancestors"] if "ancestors" in lineage
               else ancestors(parent.get("id"), parent.get("lineage")))
    return [*earlier, {"id": parent_id, "parent_id": parent.get("id"),
                       "update_cohort": lineage.get("update_cohort"),
                       "summary": lineage.get("summary")}]


def lineage_lines(manifest: dict) -> list[str]:
    """Human summary of an update: one line per model with its method and deciding test."""
    lineage = manifest.get("lineage") or {}
    lines = [lineage.get("summary", "")]
    for name, record in lineage.get("models", {}).items():
        why = record.get("decided_by") or record.get("reason", "")
        values = ", ".join(f"{k} {v:.3f}" for k, v in record.get("parameters", {}).items())
        lines.append(f"{name:<10} {record['method']:<11} {values}  ({why})")
    return lines


def update_command(bundle, cohort, out, method: str = "auto", bootstrap: int = DEFAULT_BOOTSTRAP,
                   seed: int = DEFAULT_SEED, jobs: int = 1) -> int:
    """``cart-risk update``: 0 on success; 2 for a bad cohort; 1 otherwise (message on stderr)."""
    from model.errors import BundleError, CohortError, report_failure

    try:
        manifest = update_bundle(bundle, cohort, out, method, bootstrap, seed, jobs)
    except NothingToUpdate as nothing:
        for line in nothing.lines:
            print(line)
        print(f"nothing written: {nothing}")
        return 0
    except (CohortError, UpdateError, OptionError, BundleError) as error:
        return report_failure("update", error)
    for name, problems in manifest["lineage"].get("range_warnings", {}).items():
        for problem in problems:
            print(f"cart-risk update: warning: {name}: {problem}", file=sys.stderr)
    for line in lineage_lines(manifest):
        print(line)
    print(f"updated bundle written to {out} ({bundle_basis(manifest).trained_on})")
    return 0
