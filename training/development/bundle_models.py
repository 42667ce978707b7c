"""A bundle's models evaluated on any cohort: linear predictors, risks and baseline hazards.

External validation and updating need more than :mod:`model.predictor` serves: the linear
predictor itself and the baseline cumulative hazard at any follow-up time, not only on the
0.5-month grid. Everything here reads ``predictor.json`` (see ``docs/bundle-format.md``):

* logistic: ``lp = intercept + z @ coef``, ``p = 1 / (1 + exp(-lp))``, ``z = (x - center) / scale``;
* Cox: ``lp = z @ coef``, ``H(t | x) = H0(t) exp(lp)``, with H0 the exact Breslow steps stored in
  ``baseline_steps`` (bundles written before they were stored: the step function through the
  0.5-month ``baseline_survival`` grid, which agrees at every grid point).

A cohort lacking a column that a model needs makes that model "not assessable", with the reason.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit

from model.features import design_matrix, required_fields
from model.outcomes import BY_NAME


@dataclass(frozen=True)
class BaselineHazard:
    """H0(t) at z = 0 (the training mean patient), a right-continuous step function.

    Attributes
    ----------
    months : (K,) ascending jump times
    cumulative_hazard : (K,) H0 just after each jump
    max_follow_up : months beyond which the model does not predict
    exact : True for the stored Breslow steps, False for the 0.5-month grid
    """

    months: np.ndarray
    cumulative_hazard: np.ndarray
    max_follow_up: float
    exact: bool

    def at(self, months) -> np.ndarray:
        """H0 at ``months`` (flat after the last jump)."""
        idx = np.searchsorted(self.months, np.asarray(months, dtype=float), side="right")
        return np.r_[0.0, self.cumulative_hazard][idx]


def baseline_hazard(spec: dict, month_grid) -> BaselineHazard:
    """The baseline cumulative hazard of a Cox model's ``predictor.json`` entry."""
    follow_up = float(spec["max_follow_up_months"])
    steps = spec.get("baseline_steps")
    if steps:
        return BaselineHazard(np.asarray(steps["months"], float),
                              np.asarray(steps["cumulative_hazard"], float), follow_up, True)
    grid = np.asarray(month_grid, dtype=float)
    with np.errstate(divide="ignore"):
        H = -np.log(np.asarray(spec["baseline_survival"], dtype=float))
    keep = grid <= follow_up
    return BaselineHazard(grid[keep], H[keep], follow_up, False)


def unassessable_reason(name: str, spec: dict, cohort: pd.DataFrame) -> str | None:
    """Why ``cohort`` cannot assess model ``name`` (a missing column), or None."""
    missing = [c for c in BY_NAME[name].cohort_columns if c not in cohort.columns]
    if missing:
        return f"the cohort has no {' / '.join(missing)} column (the {name} outcome)"
    fields = [f for f in required_fields(features_of(spec)) if f not in cohort.columns]
    if fields:
        return (f"the cohort has no {' / '.join(fields)} column, needed by the model's "
                f"predictors ({', '.join(features_of(spec))})")
    return None


def features_of(spec: dict) -> tuple[str, ...]:
    return tuple(f["name"] if isinstance(f, dict) else f for f in spec["features"])


def standardized(spec: dict, cohort: pd.DataFrame) -> np.ndarray:
    """z = (x - center) / scale of the model's columns for every patient of ``cohort``."""
    X = design_matrix(cohort, features_of(spec))
    return (X - np.asarray(spec["center"], float)) / np.asarray(spec["scale"], float)


def linear_predictor(spec: dict, cohort: pd.DataFrame) -> np.ndarray:
    """The model's linear predictor (log-odds, or log relative hazard) for each patient."""
    lp = standardized(spec, cohort) @ np.asarray(spec["coef"], float)
    if spec["kind"] == "logistic":
        lp = lp + float(spec["intercept"])
    return lp


def probability(spec: dict, cohort: pd.DataFrame) -> np.ndarray:
    """Predicted probability of a logistic model for each patient, in (0, 1)."""
    return expit(linear_predictor(spec, cohort))


def outcome(name: str, cohort: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """``(y,)`` for a binary model, ``(time, event)`` for a survival model."""
    columns = BY_NAME[name].model_columns
    if len(columns) == 1:
        return (cohort[columns[0]].to_numpy(dtype=int),)
    return cohort[columns[0]].to_numpy(dtype=float), cohort[columns[1]].to_numpy(dtype=int)
