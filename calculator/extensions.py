"""The calculator's shared state: one verified bundle and the cohort's reference curves.

:func:`init_app` loads the bundle once, when the app is created, and keeps it in
``app.extensions["cart_risk"]``; views reach it through :func:`calculator_state`. A bundle that
fails verification stops the app from being created (the server refuses to start) rather than
serving pages that cannot predict.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from flask import Flask, current_app

from model.bundle import (LoadedBundle, load_predictor, read_training_members,
                          version_differences)
from model.burden import HIGH_BURDEN_FROM_PCT
from model.errors import BundleError
from model.outcomes import SURVIVAL_COLUMNS
from model.survival import KaplanMeier, kaplan_meier, mean_kaplan_meier

EXTENSION_KEY = "cart_risk"


@dataclass(frozen=True)
class CalculatorState:
    """What every request needs, built once per app.

    Attributes
    ----------
    bundle : LoadedBundle
        The verified bundle predictions come from.
    cohort_curves : dict
        Outcome (``"efs"``, ``"os"``) -> burden group (``"low"``, ``"high"``) -> KaplanMeier, from
        the bundle's training cohort; an outcome the cohort lacks is absent.
    """

    bundle: LoadedBundle
    cohort_curves: dict[str, dict[str, KaplanMeier]] = field(default_factory=dict)


def cohort_curves(bundle: LoadedBundle) -> dict[str, dict[str, KaplanMeier]]:
    """Kaplan-Meier curves of the bundle's training cohort by burden group (low < 5 % <= high).

    The cohort file is read from the bundle, its hash checked against the manifest again and its
    content validated by the cohort schema (:func:`model.bundle.read_training_members`), so the
    curves come from the very data the models were fitted on, and a bad cell refuses the bundle
    before anything is served. An ensemble's curves are fitted on each reconstruction and
    summarized by :func:`model.survival.mean_kaplan_meier` (pointwise mean, mean counts).
    """
    per_member = [_member_curves(cohort) for cohort in read_training_members(bundle)]
    curves: dict[str, dict[str, KaplanMeier]] = {}
    for outcome in per_member[0]:
        groups = per_member[0][outcome]
        curves[outcome] = {group: mean_kaplan_meier(member[outcome][group] for member in per_member
                                                    if group in member.get(outcome, {}))
                           for group in groups}
    return curves


def _member_curves(cohort) -> dict[str, dict[str, KaplanMeier]]:
    blasts = cohort["marrow_blasts_pct"].to_numpy(dtype=float)
    high = blasts >= HIGH_BURDEN_FROM_PCT
    curves: dict[str, dict[str, KaplanMeier]] = {}
    for outcome, (time_column, event_column) in SURVIVAL_COLUMNS.items():
        if time_column not in cohort.columns or event_column not in cohort.columns:
            continue
        time = cohort[time_column].to_numpy(dtype=float)
        event = cohort[event_column].to_numpy(dtype=float)
        curves[outcome] = {group: kaplan_meier(time[mask], event[mask])
                           for group, mask in (("low", ~high), ("high", high)) if mask.any()}
    return curves


def init_app(app: Flask) -> None:
    """Load and verify the bundle at ``app.config["BUNDLE_PATH"]`` into ``app.extensions``.

    Raises
    ------
    BundleError
        If there is no bundle there or it fails verification.
    """
    path = app.config.get("BUNDLE_PATH")
    if not path:
        raise BundleError("directory", None, "no bundle configured (BUNDLE_PATH)")
    bundle = load_predictor(path)
    app.extensions[EXTENSION_KEY] = CalculatorState(bundle, cohort_curves(bundle))
    report_version_differences(app, bundle)


def report_version_differences(app: Flask, bundle: LoadedBundle) -> list[str]:
    """Log, at start-up, each package whose installed version differs from the bundle's record.

    Serving goes on: predictions use ``predictor.json`` (plain numbers, nothing unpickled), so a
    library upgrade cannot change how the bundle loads. Unpickling ``estimators.joblib``
    (``cart-risk report``, audits) is refused across a scikit-learn / lifelines major.minor change
    by :func:`model.bundle.load_estimators`.

    Returns
    -------
    list of str
        The differences logged (empty when the versions match).
    """
    differences = version_differences(bundle.manifest)
    if differences:
        app.logger.warning(
            "bundle %s was written with other package versions (%s); serving it, since "
            "predictions read predictor.json and unpickle nothing", bundle.id[:12],
            "; ".join(differences))
    return differences


def calculator_state() -> CalculatorState:
    """The current app's :class:`CalculatorState` (inside a request or app context)."""
    return current_app.extensions[EXTENSION_KEY]
