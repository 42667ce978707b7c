"""Predicting from a bundle with numpy alone: the public names, gathered from their modules.

The work is split by job:

- :mod:`model.compiling` checks ``predictor.json`` and turns it into numpy arrays
  (:func:`compile_predictor`, :class:`CompiledPredictor`);
- :mod:`model.evaluation` evaluates it for many patients with one core, as whole curves
  (:func:`predict`) or at 6 / 12 / 24 months (:func:`predict_points`);
- :mod:`model.inputs` reads patients as columns and warns about inputs the training data did not
  cover (:func:`input_warnings`);
- :mod:`model.answer` shapes one patient's JSON API answer (:func:`prediction_answer`);
- :mod:`model.rounding` is the one rounding rule of every number shown.

Patients come either as a mapping of field -> array (one value a patient; a DataFrame works) or as
a sequence of parsed patient dicts (:func:`model.patient.parse_patient`).
"""
from __future__ import annotations

from model.answer import (EVIDENCE_ASSUMED, EVIDENCE_DERIVED, EVIDENCE_MODEL, EVIDENCE_PUBLISHED,
                          evidence_labels, few_at_risk_warnings, lineage_summary,
                          prediction_answer)
from model.compiling import (MODEL_KINDS, SUPPORTED_FORMAT_VERSION, CompiledModel,
                             CompiledPredictor, compile_predictor)
from model.evaluation import (HORIZONS_MONTHS, Predictions, Probability, SurvivalCurves, predict,
                              predict_points)
from model.inputs import input_warnings

__all__ = ["EVIDENCE_ASSUMED", "EVIDENCE_DERIVED", "EVIDENCE_MODEL", "EVIDENCE_PUBLISHED",
           "HORIZONS_MONTHS", "MODEL_KINDS", "SUPPORTED_FORMAT_VERSION", "CompiledModel",
           "CompiledPredictor", "Predictions", "Probability", "SurvivalCurves",
           "compile_predictor", "evidence_labels", "few_at_risk_warnings", "input_warnings",
           "lineage_summary", "predict", "predict_points", "prediction_answer"]
