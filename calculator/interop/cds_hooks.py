"""A CDS Hooks 2.0 service for the ``patient-view`` hook.

- ``GET /cds-services``: discovery, with prefetch templates for the Patient and the
  Observations the calculator reads (coded as in :mod:`calculator.interop.fhir_codes`).
- ``POST /cds-services/cart-risk-patient-view``: one card. With the data it shows complete
  remission, severe CRS with its burden band, and 12-month EFS and OS, each with its 95 %
  interval, and links to the full result page through a short-lived encrypted link
  (:mod:`calculator.result_links`: no patient value in the URL) on the configured public
  address (never the Host header). Without them it says what is missing. Research use is said
  in the summary, detail and ``source``; the ``indicator`` (urgency) is ``info``. Chart text is
  escaped and cut (:func:`chart_text`).
- Once trusted issuers are configured, every call needs the EHR's signed JWT
  (:mod:`calculator.interop.cds_auth`); else 401.

The service reads only the prefetch: it never calls the EHR's FHIR server. As the specification
requires, a request whose prefetch keys are absent (the client chose not to prefetch) is answered
412; a key sent as ``null`` (the chart has no such data) or an Observation that is missing,
conflicting or unusable gives the "what is missing" card. A request that is not a valid hook
call gets 400 with the API's JSON ``errors``; nothing here answers HTML.
"""
from __future__ import annotations

import re
import uuid
from typing import Any, Mapping

from flask import Blueprint, current_app, jsonify, request

from calculator.extensions import calculator_state
from calculator.interop.fhir_codes import INPUT_SYSTEM, METHOD_SYSTEM, OBSERVATIONS
from model.errors import FieldError, InputError

blueprint = Blueprint("cds_hooks", __name__)

HOOK = "patient-view"
SERVICE_ID = "cart-risk-patient-view"
PREFETCH_KEYS = ("patient", "observations")
#: Observations asked for in the prefetch (newest first): the latest of each of the eleven codes
#: with room for histories; the body limit (calculator.interop.MAX_CHART_BYTES) fits them.
PREFETCH_COUNT = 50
#: CDS Hooks: a card's summary "<140 characters".
MAX_SUMMARY = 139
#: Longest piece of chart text shown in a card's detail, and most problems listed.
MAX_CHART_TEXT = 300
MAX_PROBLEMS = 12
CARD_HORIZON_MONTHS = 12


def prefetch_templates() -> dict[str, str]:
    """The service's prefetch templates (FHIR read and search, CDS Hooks prefetch tokens)."""
    codes = ",".join(f"{INPUT_SYSTEM}|{entry.code}" for entry in OBSERVATIONS)
    return {"patient": "Patient/{{context.patientId}}",
            "observations": "Observation?patient={{context.patientId}}&code=" + codes
                            + f"&_sort=-date&_count={PREFETCH_COUNT}"}


@blueprint.errorhandler(InputError)
def _input_error(error: InputError):
    return jsonify(error.to_dict()), error.status_code


@blueprint.after_request
def _cors(response):
    # CDS clients (the CDS Hooks sandbox among them) call from the browser; nothing here uses
    # cookies, so any origin may read the answer to a request it made itself.
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
    return response


@blueprint.get("/cds-services")
def discovery():
    """The CDS Hooks discovery document."""
    from calculator.results import is_reconstructed

    reconstructed = is_reconstructed(calculator_state().bundle)
    return jsonify({"services": [{
        "hook": HOOK, "id": SERVICE_ID,
        "title": "cart-risk: ssCART-19 CAR-T risks in relapsed/refractory B-ALL",
        "description": (
            "Complete remission, severe CRS (CTCAE v4.03 grade >= 3) and 12-month event-free and "
            "overall survival after ssCART-19, from the pre-infusion marrow blasts, MRD and "
            "history. " + ("Research use only: trained on a cohort reconstructed from published "
                           "aggregates (Li et al., NCT03919240)." if reconstructed else "")),
        "prefetch": prefetch_templates(),
        "usageRequirements": (
            "Observations coded in " + INPUT_SYSTEM + " (see the calculator's docs/fhir.md); "
            "the service reads the prefetch only and never queries the FHIR server."),
    }]})


@blueprint.post("/cds-services/<service_id>")
def call_service(service_id: str):
    """Answer one ``patient-view`` call with one card (see the module docstring)."""
    from calculator.json_requests import error_response, read_json_body

    refusal = _authenticate(service_id)
    if refusal is not None:
        return refusal
    if service_id != SERVICE_ID:
        return error_response(404, f"no CDS service {service_id!r}; GET /cds-services lists "
                                   "them", "path")
    call = _checked_call(read_json_body())
    prefetch = call.get("prefetch") or {}
    absent = [key for key in PREFETCH_KEYS if key not in prefetch]
    if absent:
        return error_response(412, "prefetch key(s) not sent: " + ", ".join(absent) + "; this "
                              "service reads only the prefetch (templates: GET /cds-services)",
                              "prefetch")
    return jsonify({"cards": [_card(prefetch, call["context"]["patientId"],
                                    call.get("fhirServer"))]})


def _authenticate(service_id: str):
    """None when the call may go on; else the 401 answer (calculator.interop.cds_auth)."""
    from calculator.interop.cds_auth import CDS_ISSUERS, Unauthorized
    from calculator.json_requests import error_response

    issuers = current_app.extensions.get(CDS_ISSUERS)
    if issuers is None:
        return None
    audience = f"{issuers.public_url}/cds-services/{service_id}"
    try:
        issuers.verify(request.headers.get("Authorization"), audience)
    except Unauthorized as problem:
        body, status = error_response(401, str(problem), "Authorization")
        response = current_app.make_response((body, status))
        response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return response
    return None


def _checked_call(body: Any) -> dict[str, Any]:
    """The hook call, checked: hook, hookInstance, context.patientId, prefetch an object."""
    if not isinstance(body, Mapping):
        raise InputError([FieldError("body", "must be a CDS Hooks request object")])
    errors = []
    if body.get("hook") != HOOK:
        errors.append(FieldError("hook", f"must be {HOOK!r} (got {_short(body.get('hook'))})"))
    if not isinstance(body.get("hookInstance"), str) or not body["hookInstance"]:
        errors.append(FieldError("hookInstance", "is required (a UUID string)"))
    context = body.get("context")
    if not isinstance(context, Mapping):
        errors.append(FieldError("context", "is required (an object)"))
    else:
        if not isinstance(context.get("patientId"), str) or not context["patientId"]:
            errors.append(FieldError("context.patientId", "is required (a string)"))
        for name in ("userId", "encounterId"):
            if context.get(name) is not None and not isinstance(context[name], str):
                errors.append(FieldError(f"context.{name}", "must be a string"))
    if body.get("fhirServer") is not None and not isinstance(body["fhirServer"], str):
        errors.append(FieldError("fhirServer", "must be a URL string"))
    if body.get("fhirAuthorization") is not None and not isinstance(body["fhirAuthorization"],
                                                                    Mapping):
        errors.append(FieldError("fhirAuthorization", "must be an object"))
    if body.get("prefetch") is not None and not isinstance(body["prefetch"], Mapping):
        errors.append(FieldError("prefetch", "must be an object"))
    if errors:
        error = InputError(errors)
        error.status_code = 400
        raise error
    return dict(body)


def _card(prefetch: Mapping[str, Any], patient_id: str,
          fhir_server: str | None) -> dict[str, Any]:
    from calculator.interop.fhir_input import FhirInputError, patient_from_prefetch
    from model.predictor import prediction_answer

    bundle = calculator_state().bundle
    try:
        found = patient_from_prefetch(prefetch.get("patient"), prefetch.get("observations"),
                                      bundle.predictor.required_fields, patient_id=patient_id,
                                      fhir_server=fhir_server)
        answer = prediction_answer(bundle, found.values)
    except FhirInputError as error:
        return _missing_card([issue.message + (f" (at {issue.expression})"
                                               if "." in issue.expression else "")
                              for issue in error.issues],
                             [issue.field for issue in error.issues])
    except InputError as error:
        return _missing_card([str(problem) for problem in error.errors],
                             [problem.field for problem in error.errors])
    return _result_card(answer, found.values)


def _source() -> dict[str, Any]:
    from calculator.public_links import public_url_for
    from calculator.results import is_reconstructed

    bundle = calculator_state().bundle
    if is_reconstructed(bundle):
        label = ("cart-risk - research use only: reconstructed cohort (Li et al., NCT03919240), "
                 "not patient data")
        topic = {"system": METHOD_SYSTEM, "code": "research-use-reconstructed-cohort",
                 "display": "Research use: model trained on a reconstructed cohort"}
    else:
        label = f"cart-risk - trained on {bundle.manifest.get('provenance')}"
        topic = {"system": METHOD_SYSTEM, "code": "center-cohort",
                 "display": "Model trained on a center's cohort"}
    source = {"label": label, "topic": topic}
    about = public_url_for("web.about")
    if about:
        source["url"] = about
    return source


def _links(label: str, url: str | None) -> list[dict[str, str]]:
    """The card's one link, on the configured public address (none without one)."""
    return [{"label": label, "url": url, "type": "absolute"}] if url else []


def _missing_card(problems: list[str], fields: list[str]) -> dict[str, Any]:
    from calculator.public_links import public_url_for
    from model.patient import PATIENT_FIELDS

    named = [PATIENT_FIELDS[name].label for name in dict.fromkeys(fields)
             if name in PATIENT_FIELDS]
    summary = ("cart-risk: no estimate - missing or unusable: " + ", ".join(named) if named
               else "cart-risk: no estimate - the chart's data could not be used (see details)")
    detail = ("The calculator could not estimate this patient's risks from the chart:\n\n"
              + "\n".join(f"- {chart_text(problem)}" for problem in problems[:MAX_PROBLEMS])
              + (f"\n- and {len(problems) - MAX_PROBLEMS} more" if len(problems) > MAX_PROBLEMS
                 else "")
              + f"\n\nObservations are read by their codes in `{INPUT_SYSTEM}`.")
    return {"uuid": str(uuid.uuid4()), "summary": _cut(summary), "detail": detail,
            "indicator": "info", "source": _source(),
            "links": _links("Open the calculator (enter the values by hand)",
                            public_url_for("web.index"))}


def _result_card(answer: Mapping[str, Any], patient: Mapping[str, Any]) -> dict[str, Any]:
    from calculator.interop.fhir_output import survival_at
    from calculator.result_links import RESULT_LINK_LIFETIME_SECONDS, result_url
    from calculator.results import is_reconstructed, percent, percent_interval

    cr, scrs = answer.get("cr") or {}, answer.get("severe_crs") or {}
    band = scrs.get("band") or {}
    efs = survival_at(answer.get("efs"), CARD_HORIZON_MONTHS)
    os_ = survival_at(answer.get("os"), CARD_HORIZON_MONTHS)
    h = CARD_HORIZON_MONTHS
    reconstructed = is_reconstructed(calculator_state().bundle)

    def value(result):
        return percent(result.get("probability")) if result else "n/a"

    def survival(point):
        return percent(point["survival"]) if point else "beyond follow-up"

    def interval(low, high):
        return percent_interval([low, high]) if low is not None and high is not None else "n/a"

    summary = (f"CR {value(cr)} | severe CRS {value(scrs)}"
               + (f" (burden {band['subgroup']})" if band.get("subgroup") else "")
               + f" | {h}-mo EFS {survival(efs)}, OS {survival(os_)}"
               + (" | research use only" if reconstructed else ""))
    lines = []
    if cr:
        lines.append(f"**Complete remission**: {value(cr)} (95 % CI "
                     f"{interval(*(cr.get('ci95') or [None, None]))})")
    if scrs:
        observed = band.get("observed") or {}
        spread = band.get("reconstructed")  # an ensemble: never one count shown as observed
        counts = (f"severe CRS rate {interval(*spread['rate_range'])} across "
                  f"{spread.get('reconstructions')} reconstructions (assumed split)" if spread else
                  f"{observed.get('events')} of {observed.get('n')} training patients "
                  f"had severe CRS ({percent(observed.get('rate'))})")
        lines.append(f"**Severe CRS** (CTCAE v4.03 grade >= 3): {value(scrs)} (95 % CI "
                     f"{interval(*(scrs.get('ci95') or [None, None]))})"
                     + (f"; burden subgroup {band['subgroup']} ({band.get('label')}): {counts}"
                        if band.get("subgroup") else ""))
    for name, point in (("Event-free survival", efs), ("Overall survival", os_)):
        lines.append(f"**{name} at {h} months**: {survival(point)}"
                     + (f" (95 % CI {interval(point.get('lower'), point.get('upper'))})"
                        if point else ""))
    lines += [f"Warning: {chart_text(warning)}" for warning in answer.get("warnings") or []]
    if reconstructed:
        trained_on = (answer.get("model") or {}).get("trained_on") or "a synthetic cohort"
        lines.append(f"*Research use only: trained on {trained_on} of a cohort reconstructed "
                     "from published aggregates (Li et al., NCT03919240), not patient-level "
                     "data. Not for treatment decisions.*")
    minutes = RESULT_LINK_LIFETIME_SECONDS // 60
    return {"uuid": str(uuid.uuid4()), "summary": _cut(summary), "detail": "\n\n".join(lines),
            "indicator": "info", "source": _source(),
            "links": _links(f"Full result page (link valid {minutes} minutes)",
                            result_url(patient))}


#: Characters that Markdown (CommonMark, GFM tables) would read as syntax in chart text.
_MARKDOWN_SYNTAX = str.maketrans({character: "\\" + character for character in "\\`*_[](){}#|~!:"}
                                 | {"<": "&lt;", ">": "&gt;", "&": "&amp;",
                                    "\n": " ", "\r": " ", "\t": " "})


def chart_text(text: Any, limit: int = MAX_CHART_TEXT) -> str:
    """Text that came from the chart (or names its values), safe inside a card's Markdown:
    on one line, cut to ``limit`` characters, with Markdown syntax and HTML escaped (a link,
    an image or a tag in a dataAbsentReason shows as text)."""
    text = str(text)
    if len(text) > limit:
        text = text[:limit - 3] + "..."
    # ":" is escaped above and "www." here, so that no renderer makes an autolink of them
    return re.sub(r"(?i)www\.", "www\\.", text.translate(_MARKDOWN_SYNTAX))


def _cut(text: str) -> str:
    """A summary under :data:`MAX_SUMMARY` characters, as CDS Hooks asks ("<140")."""
    return text if len(text) <= MAX_SUMMARY else text[:MAX_SUMMARY - 3] + "..."


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 64 else text[:64] + "..."
