"""What the JSON API and the FHIR / CDS Hooks interfaces share: reading and answering JSON requests.

Strict JSON only (no NaN or Infinity, no repeated keys), and one error shape for every status:
``{"errors": [{"field": ..., "message": ...}]}``. Paths under :data:`JSON_PREFIXES` answer their
errors in JSON too, routing errors included.
"""
from __future__ import annotations

import json
from typing import Any

from flask import jsonify, request

from model.errors import FieldError, InputError

API_PREFIX = "/api/"
#: The prediction endpoint: JSON (calculator.api) or FHIR (calculator.interop.fhir_api).
PREDICT_PATH = "/api/v1/predict"
#: What the prediction endpoint reads, as its 415 names it.
PREDICT_MEDIA_TYPES = ("application/json (the API's patient object)",
                       "application/fhir+json (a FHIR Parameters or Bundle)")
#: Other paths answered only in JSON (their errors too): CDS Hooks and the FHIR code system.
JSON_PREFIXES = (API_PREFIX, "/cds-services", "/fhir/")
JSON_PATHS = ("/healthz",)
#: ``app.extensions`` key: functions that add paths to the API's OpenAPI document, in order.
OPENAPI_EXTENSIONS = "cart_risk.openapi_extensions"
#: ``app.extensions`` key: functions ``(status, message) -> response or None`` that may answer an
#: HTTP error under the JSON paths in another format first (FHIR requests: an OperationOutcome).
ERROR_FORMATS = "cart_risk.error_formats"


class _RejectedJSON(ValueError):
    """A JSON document this API refuses although a lenient parser would accept it."""


def is_api_path() -> bool:
    """Whether the current request is for the API (errors answered as JSON)."""
    return request.path.startswith(JSON_PREFIXES) or request.path in JSON_PATHS


def error_response(status: int, message: str, field: str = "body"):
    """The API's one error shape, for any status."""
    return jsonify(InputError([FieldError(field, message)]).to_dict()), status


def _refuse_constant(name: str) -> Any:
    raise _RejectedJSON(f"{name} is not valid JSON; send finite numbers only")


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise _RejectedJSON(f"field(s) given more than once: {', '.join(repeated)}")
    return dict(pairs)


def read_json_body(media_types: tuple[str, ...] = ("application/json",),
                   named: tuple[str, ...] | None = None) -> Any:
    """The request body parsed as strict JSON (no NaN / Infinity, no repeated keys).

    Parameters
    ----------
    media_types : tuple of str
        The Content-Types accepted (FHIR input is ``application/fhir+json``).
    named : tuple of str, optional
        What a 415 names as accepted (default ``media_types``): the prediction endpoint names
        both of its formats although each reader takes one.

    Raises
    ------
    InputError
        With status 400, 413 or 415 set on the error, field ``body``.
    """
    if request.mimetype not in media_types:  # not any application/*+json: named formats only
        raise _status(InputError([FieldError(
            "body", "send the body with Content-Type: " + " or ".join(named or media_types)
                    + f" (got {request.mimetype or 'no Content-Type'})")]), 415)
    data = request.get_data(cache=False)
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_refuse_constant,
                          object_pairs_hook=_refuse_duplicates)
    except UnicodeDecodeError:
        message = "the body is not UTF-8 text"
    except _RejectedJSON as problem:
        message = str(problem)
    except ValueError as problem:  # json.JSONDecodeError and number overflow
        message = f"the body is not valid JSON ({problem})"
    except RecursionError:
        message = "the body is nested too deeply"
    raise _status(InputError([FieldError("body", message)]), 400)


def _status(error: InputError, status: int) -> InputError:
    error.status_code = status  # instance attribute: the class default (422) stays as it is
    return error
