"""Train the four models on a cohort CSV and write a bundle (``cart-risk train``).

:func:`train` reads and validates the cohort, fits every model the cohort supports with the
prespecified features (:mod:`training.development.config`), runs each model's optimism bootstrap, builds the
manifest and ``predictor.json`` of ``docs/bundle-format.md`` plus the sCRS band table, and writes
the bundle atomically with :func:`model.bundle.write_bundle`. The result depends only on the cohort,
the features, B and the seed: every bootstrap repetition draws from its own seeded generator, so
``jobs`` and the backend change the speed, never a number.
"""
from __future__ import annotations

import contextlib
import math
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from model.bundle import MANIFEST_DIGEST, write_bundle
from model.bundle_kind import refuse_stacked
from model.cohort import CohortError, available_models, read_cohort
from model.defaults import DEFAULT_BOOTSTRAP, DEFAULT_SEED
from model.errors import BundleError, report_failure
from model.features import BLASTS_FLOOR_PCT, required_fields
from model.outcomes import BY_NAME, COX, NAMES
from training.paper.analyses import derive, load_published
from training.evaluation.bands import scrs_band_table
from training.development.config import ConfigError, load_config
from training.development.fit_models import DEFAULT_METHODS, HORIZON_MONTHS, fit_model
from training.options import TrainingError, training_options
from training.fitting.logistic import FitError
from training.paper.provenance import provenance_of, sha256_file
from model.provenance import PROVENANCE_CENTER, PROVENANCE_RECONSTRUCTED  # noqa: F401  (re-exported)

#: Spacing (months) of the survival month grid, which runs from 0 to the last follow-up.
GRID_STEP_MONTHS = 0.5
DOSE_NOTE = ("Every patient in the training cohort received fludarabine-cyclophosphamide and "
             "ssCART-19 at 5 x 10^6 cells/kg (split 10 % / 30 % / 60 %): the models cannot "
             "estimate any effect of dose.")


def month_grid(max_follow_up: float) -> np.ndarray:
    """0, 0.5, 1, ... months up to and including the last multiple of 0.5 <= ``max_follow_up``."""
    steps = int(math.floor(max_follow_up / GRID_STEP_MONTHS + 1e-9))
    return np.arange(steps + 1) * GRID_STEP_MONTHS


def json_safe(value: Any) -> Any:
    """Plain Python containers and floats; NaN and infinities become None."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


@contextlib.contextmanager
def parallel_backend(backend: str | None, scheduler: str | None):
    """Yield the joblib backend name to use; for dask, hold a distributed client meanwhile.

    ``backend`` and ``scheduler`` are validated options (:func:`training.options.training_options`).
    """
    if backend != "dask":
        yield backend
        return
    try:
        from dask.distributed import Client
    except ImportError:
        raise TrainingError("backend 'dask' needs dask.distributed, which is not installed "
                            "(pip install 'dask[distributed]')") from None
    client = Client(scheduler)
    try:
        yield "dask"  # optimism_bootstrap enters joblib.parallel_config(backend="dask")
    finally:
        client.close()


def plan_models(cohort, config) -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
    """Which models to fit (name -> features) and why the others are not."""
    outcome_reasons = available_models(cohort)
    plan, skipped = {}, {}
    for name in NAMES:
        if name not in config.models:
            skipped[name] = f"not configured in {config.source}"
            continue
        if outcome_reasons[name]:
            skipped[name] = f"{name} model unavailable: {outcome_reasons[name]}"
            continue
        features = config.models[name]
        missing = [f for f in required_fields(features) if f not in cohort.columns]
        if missing:
            skipped[name] = (f"{name} model unavailable: the cohort has no {' / '.join(missing)} "
                             f"column, needed by its features ({', '.join(features)})")
            continue
        plan[name] = features
    return plan, skipped


def models_manifest(methods: dict[str, str], config, models: dict[str, dict],
                    skipped: dict[str, str], bands: list, provenance: str) -> dict:
    """The manifest's keys from ``methods`` on, as every training writes them (bundle-format.md):
    methods, scales, feature configuration, model cards, unavailable models, warnings, bands."""
    manifest = {
        "methods": {kind: {"name": method, "default": DEFAULT_METHODS[kind],
                           "selection": "docs/method-selection.md"}
                    for kind, method in methods.items()},
        "crs_scale": "CTCAE v4.03",
        "horizon_months": HORIZON_MONTHS,
        "features_config": {"source": config.source, "sha256": config.sha256},
        "models": models,
        "unavailable_models": {name: skipped[name] for name in NAMES if name in skipped},
        "warnings": [f"{name}: {w}" for name, entry in models.items() for w in entry["warnings"]]
                    + [skipped[name] for name in NAMES if name in skipped],
        "scrs_bands": bands,
    }
    if provenance == PROVENANCE_RECONSTRUCTED:
        manifest["dose_note"] = DOSE_NOTE
    return manifest


def _source(provenance: str, cohort_path: Path) -> str:
    if provenance == PROVENANCE_RECONSTRUCTED:
        return (load_published()["source"]["citation"] + " Synthetic cohort reconstructed from "
                "the paper's published aggregates; not patient data.")
    return f"center cohort ({cohort_path.name})"


def train(cohort_path, out_dir, bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = DEFAULT_SEED, jobs: int = 1,
          features_path=None, backend: str | None = None, scheduler: str | None = None,
          progress: bool | None = None, methods: dict[str, str] | None = None) -> dict:
    """Fit every available model on a cohort CSV and write the bundle to ``out_dir``.

    Parameters
    ----------
    cohort_path : path
        Cohort CSV (columns of docs/cohort-csv.md); validated with :func:`model.cohort.read_cohort`.
    out_dir : path
        Bundle directory; an earlier bundle there is replaced atomically, and kept if training fails.
    bootstrap : int
        Bootstrap repetitions B (>= 1) for optimism correction and the confidence intervals of predictions.
    seed : int
        Seed of the bootstrap's ``SeedSequence``; every model uses the same resamples.
    jobs : int
        Parallel local workers for the bootstrap, >= 1 (results are identical for any value);
        the dask backend uses every worker of its cluster instead.
    features_path : path, optional
        Feature configuration TOML (default: the packaged ``training/features.toml``).
    backend : str, optional
        joblib backend ("loky", "threading", "multiprocessing", "dask"); default loky.
    scheduler : str, optional
        dask scheduler address (implies ``backend="dask"``, which needs it). Every option is
        checked by :func:`training.options.training_options`.
    progress : bool, optional
        Show a bootstrap progress bar; default: only when stderr is a terminal.
    methods : dict, optional
        Fitting method per model kind ({"logistic": ..., "cox": ...}); missing kinds get
        :data:`training.development.fit_models.DEFAULT_METHODS` (the simulation study's winners).

    Returns
    -------
    dict
        The manifest as written.

    Raises
    ------
    model.cohort.CohortError
        The cohort file is unreadable or fails validation.
    training.development.config.ConfigError
        The feature configuration is invalid.
    TrainingError
        No model can be fitted (the message gives each model's reason), or a bad option.
    """
    options = training_options(bootstrap, jobs, backend, scheduler, methods)
    bootstrap, jobs, methods = options.bootstrap, options.jobs, options.methods
    config = load_config(features_path)
    cohort_path = Path(cohort_path)
    cohort = refuse_stacked(read_cohort(cohort_path), str(cohort_path))
    data_sha256 = sha256_file(cohort_path)
    provenance = provenance_of(cohort_path)
    df = derive(cohort)
    plan, skipped = plan_models(df, config)
    if not plan:
        raise TrainingError(f"{cohort_path}: no model can be fitted: " + "; ".join(skipped.values()))
    survival = [BY_NAME[name].model_columns[0] for name in plan if BY_NAME[name].kind == COX]
    follow_up = max((float(df[c].max()) for c in survival), default=0.0)
    grid = month_grid(follow_up)
    show = sys.stderr.isatty() if progress is None else bool(progress)
    fitted = {}
    with parallel_backend(options.backend, options.scheduler) as backend_name:
        for name, features in plan.items():
            if show:
                print(f"{name}: fitting and {bootstrap} bootstrap refits", file=sys.stderr)
            try:
                fitted[name] = fit_model(name, df, features, B=bootstrap, seed=seed, jobs=jobs,
                                         progress=show, backend=backend_name, month_grid=grid,
                                         method=methods[BY_NAME[name].kind])
            except FitError as problem:
                skipped[name] = f"{name} model could not be fitted: {problem}"
    if not fitted:
        raise TrainingError(f"{cohort_path}: no model can be fitted: " + "; ".join(skipped.values()))
    bands = scrs_band_table(df) if "crs_grade" in df.columns else []
    models = {name: fitted[name].entry for name in NAMES if name in fitted}
    manifest = {
        "format_version": 1,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "provenance": provenance,
        "source": _source(provenance, cohort_path),
        "training_data": {"file": "training_cohort.csv", "sha256": data_sha256, "n": len(df),
                          "source_file": cohort_path.name},
        "seed": int(seed), "bootstrap": int(bootstrap),
        **models_manifest(methods, config, models, skipped, bands, provenance),
    }
    predictor = {
        "format_version": 1,
        "blasts_floor_pct": BLASTS_FLOOR_PCT,
        "month_grid": grid.tolist(),
        "models": {name: fitted[name].params for name in models},
        "scrs_bands": bands,
    }
    estimators = {name: {"kind": fitted[name].params["kind"],
                         "features": fitted[name].params["features"],
                         "center": np.asarray(fitted[name].params["center"]),
                         "scale": np.asarray(fitted[name].params["scale"]),
                         "estimator": fitted[name].estimator,
                         "input": "standardized columns (x - center) / scale"}
                  for name in models}
    return write_bundle(out_dir, json_safe(manifest), json_safe(predictor), estimators,
                        cohort_path)


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def summary_lines(manifest: dict) -> list[str]:
    """Short human summary of a written manifest: one line a model, then its warnings."""
    lines = [f"provenance: {manifest['provenance']}; n = {manifest['training_data']['n']}; "
             f"bootstrap B = {manifest['bootstrap']}, seed {manifest['seed']}"]
    for name, entry in manifest["models"].items():
        corrected = entry["optimism_corrected"]
        lines.append(f"{name:<10} method={entry.get('method', {}).get('name', 'aic_ridge')} "
                     f"n={entry['n']} events={entry['events']} "
                     f"({entry['events_label']}) EPV={entry['events_per_variable']:.1f} "
                     f"C(corrected)={_fmt(corrected.get('c_index'), 3)} "
                     f"slope(corrected)={_fmt(corrected.get('calibration_slope'))}")
        lines += [f"  warning: {w}" for w in entry["warnings"]]
    lines += [f"not trained: {reason}" for reason in manifest.get("unavailable_models", {}).values()]
    return lines


def train_command(cohort, out, bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = DEFAULT_SEED, jobs: int = 1,
                  features=None, backend: str | None = None, scheduler: str | None = None,
                  methods: dict[str, str] | None = None) -> int:
    """``cart-risk train``: train, print a short summary, return the exit code.

    Returns
    -------
    int
        0 on success; 2 for an invalid cohort, feature file or option; 1 for any other failure
        (:func:`model.errors.exit_code`). Errors are printed to stderr, prefixed ``cart-risk train:``.
    """
    started = time.perf_counter()
    try:
        manifest = train(cohort, out, bootstrap=bootstrap, seed=seed, jobs=jobs,
                         features_path=features, backend=backend, scheduler=scheduler,
                         methods=methods)
    except (CohortError, ConfigError, TrainingError, BundleError) as error:
        return report_failure("train", error)
    elapsed = time.perf_counter() - started
    bundle_id = (Path(out) / MANIFEST_DIGEST).read_text(encoding="ascii").strip()
    for line in summary_lines(manifest):
        print(line)
    print(f"bundle written to {out} (id {bundle_id[:12]}) in {elapsed:.1f} s")
    return 0
