"""JSON Schema of a patient, built from the field catalogue :data:`model.patient.PATIENT_FIELDS`.

The OpenAPI document of the JSON API (``calculator/api.py``) describes its request body with it.
"""
from __future__ import annotations

from typing import Any, Collection

from model.burden import MRD_THRESHOLD_PCT
from model.patient import PATIENT_FIELDS, needed_fields


def patient_json_schema(required: Collection[str] = (), *,
                        null_for_absent: bool = False) -> dict[str, Any]:
    """JSON Schema (2020-12, as OpenAPI 3.1 uses) of a patient, as the patient parser reads it.

    The parser is :func:`model.patient.parse_patient`. Unknown fields are refused, and blasts below the MRD threshold with negative MRD are excluded,
    as by
    :func:`~model.burden.population_refusal` (outside the modelled population).

    Parameters
    ----------
    required : collection of str
        As for :func:`model.patient.parse_patient`.
    null_for_absent : bool
        Also allow ``null`` for the optional fields (the parser reads it as absent), so that a
        document of the API describes every body the API accepts.
    """
    needed = needed_fields(required)
    properties = {}
    for name, spec in PATIENT_FIELDS.items():
        value = spec.json_schema()
        if null_for_absent and name not in needed:
            value = {"anyOf": [value, {"type": "null"}], "description": value["description"]}
        properties[name] = value
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name in PATIENT_FIELDS if name in needed],
        "additionalProperties": False,
        "not": {"properties": {"marrow_blasts_pct": {"exclusiveMaximum": MRD_THRESHOLD_PCT},
                               "mrd_positive": {"const": False}},
                "required": ["marrow_blasts_pct", "mrd_positive"],
                "description": f"marrow blasts below {MRD_THRESHOLD_PCT:g} % (the MRD threshold) "
                               "with negative MRD: outside the modelled population"},
    }
