"""The feature-set candidates of the method study (docs/method-selection.md, Amendment 4).

A candidate of the study is a (feature set, method) pair. ``full`` is the feature set of rounds 1-4
(the shipped ``training/features.toml`` until Amendment 4); the other sets are the same for every
outcome. ``none`` is the
no-covariate comparator: the cohort's outcome rate (logistic) or the Kaplan-Meier risk (Cox);
it is scored like every candidate and never shipped.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.survival import kaplan_meier, survival_at
from training.development.methods import METHODS_BY_KIND

DEFAULT = "full"
NONE = "none"
#: The feature set of rounds 1-4, per outcome.
FULL = {"cr": ("log10_blasts", "age_years"), "severe_crs": ("log10_blasts", "age_years"),
        "efs": ("log10_blasts", "age_years", "ph_positive", "prior_hsct", "relapsed"),
        "os": ("log10_blasts", "age_years", "ph_positive", "prior_hsct", "relapsed")}
#: Columns of the sets that are the same for every outcome.
SETS = {"blasts": ("log10_blasts",), "split": ("blasts_ge_5",),
        "rcs": ("log10_blasts", "log10_blasts_rcs"), NONE: ()}
#: Methods of the new sets: every method of the kind but ``bootstrap_shrinkage`` (Amendment 4).
NEW_SET_METHODS = {kind: tuple(m for m in methods if m != "bootstrap_shrinkage")
                   for kind, methods in METHODS_BY_KIND.items()}
#: The comparator's only "method".
NO_MODEL = "none"
NO_MODEL_LABEL = "no covariates: the cohort's outcome rate (logistic) / Kaplan-Meier (Cox)"
ALL_SETS = (DEFAULT, *SETS)


def features_of(feature_set: str, outcome: str) -> tuple[str, ...]:
    """Model columns of ``outcome`` under ``feature_set``."""
    if feature_set == DEFAULT:
        return FULL[outcome]
    if feature_set not in SETS:
        raise ValueError(f"unknown feature set {feature_set!r} (known: {', '.join(ALL_SETS)})")
    return SETS[feature_set]


def methods_of(feature_set: str, kind: str, methods) -> tuple[str, ...]:
    """The requested ``methods`` that the study fits for ``feature_set`` and ``kind``."""
    if feature_set == NONE:
        return (NO_MODEL,)
    allowed = METHODS_BY_KIND[kind] if feature_set == DEFAULT else NEW_SET_METHODS[kind]
    return tuple(m for m in methods if m in allowed)


@dataclass(frozen=True)
class NoModelFit:
    """The no-covariate comparator, with the fit interface the study scores.

    Logistic: every patient's risk is the cohort's outcome rate. Cox: the linear predictor is 0
    and the cumulative hazard -log S_KM(t), so 1 - exp(-H(t)) is the Kaplan-Meier risk.
    """

    rate: float | None = None
    km: object = None
    edge: bool = False
    null_limit: bool = False
    lam: float = 0.0
    shrinkage: float = 1.0

    def predict_proba(self, X) -> np.ndarray:
        return np.full(np.asarray(X).shape[0], self.rate)

    def linear_predictor(self, X) -> np.ndarray:
        return np.zeros(np.asarray(X).shape[0])

    def cumulative_hazard0(self, months) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return -np.log(survival_at(self.km, months))


def no_model_logistic(y) -> NoModelFit:
    return NoModelFit(rate=float(np.mean(y)))


def no_model_cox(time, event) -> NoModelFit:
    return NoModelFit(km=kaplan_meier(time, event))
