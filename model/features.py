"""Predictor features: how a patient's fields become the columns a model is fitted on.

One catalogue, shared by training (fitting) and the predictor (evaluation), so both sides
compute exactly the same numbers from the same inputs. Every transform is vectorized: the
input is a mapping of field name to array-like (a pandas DataFrame works), one value a patient.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from model.burden import MRD_THRESHOLD_PCT

#: Blast percentages below this floor are raised to it before the log10 transform.
#: 0.01 % is the MRD threshold of multiparameter flow cytometry used in the paper, so the
#: morphologically 0 %, MRD-positive subgroup (a) sits at the lowest detectable burden.
BLASTS_FLOOR_PCT = MRD_THRESHOLD_PCT


def _flag(field: str) -> Callable[[Mapping], np.ndarray]:
    def transform(data: Mapping) -> np.ndarray:
        return np.asarray(data[field], dtype=float)

    return transform


@dataclass(frozen=True)
class Feature:
    """One model column.

    Attributes
    ----------
    name : str
        Column name in the model (coefficients are keyed by it).
    field : str
        Patient field it is computed from (cohort CSV column and API field).
    label : str
        What a clinician reads in tables.
    transform : callable
        Mapping of fields -> float array (one value a patient).
    """

    name: str
    field: str
    label: str
    transform: Callable[[Mapping], np.ndarray]


def _log10_blasts(data: Mapping) -> np.ndarray:
    blasts = np.asarray(data["marrow_blasts_pct"], dtype=float)
    return np.log10(np.maximum(blasts, BLASTS_FLOOR_PCT))


#: The paper's burden grouping (Li et al.): marrow blasts below / at or above 5 %.
SPLIT_PCT = 5.0
#: Knots (log10 %) of the restricted cubic spline of log10 blasts: 0.01 % (the floor), 5 % (the
#: paper's split) and 80 %, about the 10th, 50th and 90th centiles of the reconstruction's burden
#: (docs/method-selection.md, Amendment 4). Fixed, so that the column is a function of the patient
#: alone.
RCS_KNOTS = (-2.0, float(np.log10(5.0)), float(np.log10(80.0)))


def _blasts_ge_5(data: Mapping) -> np.ndarray:
    return (np.asarray(data["marrow_blasts_pct"], dtype=float) >= SPLIT_PCT).astype(float)


def restricted_cubic_term(x: np.ndarray, knots=RCS_KNOTS) -> np.ndarray:
    """The one non-linear term of a 3-knot restricted cubic spline (Harrell, Regression Modeling
    Strategies, sect. 2.4.5), divided by (k3 - k1)^2 so it is on the scale of x; linear beyond
    the last knot."""
    k1, k2, k3 = knots
    cube = lambda t: np.maximum(x - t, 0.0) ** 3
    return (cube(k1) - cube(k2) * (k3 - k1) / (k3 - k2) + cube(k3) * (k2 - k1) / (k3 - k2)) / (k3 - k1) ** 2


def _log10_blasts_rcs(data: Mapping) -> np.ndarray:
    return restricted_cubic_term(_log10_blasts(data))


def _male(data: Mapping) -> np.ndarray:
    return (np.asarray(data["sex"]).astype(str) == "M").astype(float)


def _after_fc(data: Mapping) -> np.ndarray:
    return (np.asarray(data["tb_assessed"]).astype(str) == "after_fc").astype(float)


FEATURES: dict[str, Feature] = {
    f.name: f
    for f in [
        Feature("log10_blasts", "marrow_blasts_pct",
                "log10 marrow blasts (%), floored at 0.01 %", _log10_blasts),
        Feature("blasts_ge_5", "marrow_blasts_pct", "marrow blasts >= 5 %", _blasts_ge_5),
        Feature("log10_blasts_rcs", "marrow_blasts_pct",
                "spline term of log10 marrow blasts (knots 0.01, 5, 80 %)", _log10_blasts_rcs),
        Feature("age_years", "age_years", "age (years)", _flag("age_years")),
        Feature("male", "sex", "male sex", _male),
        Feature("ph_positive", "ph_positive", "Ph-positive", _flag("ph_positive")),
        Feature("prior_therapy_ge_6mo", "prior_therapy_ge_6mo",
                "prior therapy >= 6 months", _flag("prior_therapy_ge_6mo")),
        Feature("prior_chemo_ge_3", "prior_chemo_ge_3",
                ">= 3 prior chemotherapy lines", _flag("prior_chemo_ge_3")),
        Feature("prior_hsct", "prior_hsct", "prior HSCT", _flag("prior_hsct")),
        Feature("relapsed", "relapsed", "relapsed (vs refractory)", _flag("relapsed")),
        Feature("tp53_mutation", "tp53_mutation", "TP53 mutation", _flag("tp53_mutation")),
        Feature("poor_cytogenetics", "poor_cytogenetics", "poor cytogenetic risk",
                _flag("poor_cytogenetics")),
        Feature("tb_after_fc", "tb_assessed", "blasts measured after FC", _after_fc),
    ]
}


def required_fields(features: Sequence[str]) -> list[str]:
    """Patient fields needed to compute ``features``, in catalogue order, without repeats."""
    unknown = [name for name in features if name not in FEATURES]
    if unknown:
        raise KeyError(f"unknown feature(s): {', '.join(unknown)}; known: {', '.join(FEATURES)}")
    fields: list[str] = []
    for name in features:
        field = FEATURES[name].field
        if field not in fields:
            fields.append(field)
    return fields


def design_matrix(data: Mapping, features: Sequence[str]) -> np.ndarray:
    """Model columns for every patient in ``data``.

    Parameters
    ----------
    data : mapping of field name -> array-like
        One entry a patient field (a DataFrame works); every field named by
        :func:`required_fields` must be present.
    features : sequence of str
        Feature names from :data:`FEATURES`, in model column order.

    Returns
    -------
    numpy.ndarray, shape (n_patients, len(features)), float64
    """
    required_fields(features)
    columns = [np.atleast_1d(FEATURES[name].transform(data)) for name in features]
    return np.column_stack(columns) if columns else np.empty((0, 0))
