"""The web calculator: form, result page with its figures, model card. Works without JavaScript.

Views stay thin: input is parsed by :func:`model.patient.parse_form` only, and the result page is
built by :func:`calculator.results.result_view` from the same answer the API returns. Figures are
inline SVG drawn with the page (:mod:`calculator.plots`): no URL the calculator emits carries a
patient value, and "Change inputs" posts the values back to the form. The form carries a CSRF token
(:mod:`calculator.security`); a post without a valid one shows the form again, values kept,
saying that nothing was calculated and why.
"""
from __future__ import annotations

from typing import Any, Mapping

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from calculator import failures, plots, results
from calculator.extensions import calculator_state
from model import card_text
from model.errors import InputError
from model.outcomes import SURVIVAL_NAMES
from model.patient import PATIENT_FIELDS, parse_form

blueprint = Blueprint("web", __name__, template_folder="templates", static_folder="static",
                      static_url_path="/static")

#: How the form groups the fields, in reading order; fields a bundle does not use are left out.
FORM_SECTIONS = (
    ("Disease burden before infusion", ("marrow_blasts_pct", "mrd_positive", "tb_assessed")),
    ("Patient", ("age_years", "sex")),
    ("Disease history", ("relapsed", "ph_positive", "prior_hsct", "prior_therapy_ge_6mo",
                         "prior_chemo_ge_3", "tp53_mutation", "poor_cytogenetics")),
)
#: Form fields that are not patient input: the CSRF token.
FORM_CONTROL_FIELDS = ("csrf_token",)
CSRF_REFUSAL = ("This form was not accepted, so nothing was calculated: its security token is "
                "missing, invalid or expired (a form stays valid{lifetime}, and only when sent "
                "from this calculator's own page). Check the values below and submit again.")
_FIELD_LABELS = {**{name: spec.label for name, spec in PATIENT_FIELDS.items()},
                 results.TARGET_FIELD: "Target marrow blasts"}


blueprint.add_app_template_filter(results.percent, "pct")
blueprint.add_app_template_filter(results.percent_interval, "pct_interval")
blueprint.add_app_template_filter(results.percentage_points, "points")


def _training_range(name: str) -> str | None:
    """The training cohort's range of a field, as text (None when no model uses it)."""
    ranges = [r[name] for r in calculator_state().bundle.predictor.field_ranges.values()
              if name in r]
    if not ranges:
        return None
    low, high = min(r[0] for r in ranges), max(r[1] for r in ranges)
    spec = PATIENT_FIELDS[name]
    if spec.kind == "boolean":
        if low == high:
            return f"every training patient: {'yes' if low else 'no'}"
        return None
    unit = f" {spec.unit}" if spec.unit else ""
    return f"training cohort {low:g}\u2013{high:g}{unit}"


def form_fields() -> list[dict[str, Any]]:
    """The form's sections and fields (only those the loaded bundle needs), for the template."""
    needed = calculator_state().bundle.predictor.required_fields
    placed = {name for _, names in FORM_SECTIONS for name in names}
    others = ("Other", tuple(name for name in needed if name not in placed))
    sections = []
    for title, names in (*FORM_SECTIONS, others):
        fields = []
        for name in names:
            if name not in needed:
                continue
            spec = PATIENT_FIELDS[name]
            if spec.kind == "boolean":
                choices = [("true", "yes"), ("false", "no")]
            else:
                choices = list(spec.choices.items())
            limits = (f"{spec.minimum:g}\u2013{spec.maximum:g}" if spec.kind == "number" else None)
            fields.append({"name": name, "label": spec.label, "kind": spec.kind,
                           "unit": spec.unit, "help": spec.help, "limits": limits,
                           "training_range": _training_range(name), "choices": choices})
        if fields:
            sections.append({"title": title, "fields": fields})
    return sections


def _raw_values(source: Mapping[str, str]) -> dict[str, str]:
    """The submitted text of the patient fields and the debulking target (kept on error)."""
    wanted = set(PATIENT_FIELDS) | {results.TARGET_FIELD}
    return {name: source.get(name, "") for name in source if name in wanted}


def _shown_value(name: str, text: str) -> str:
    """Submitted text as the form shows it: a yes/no answer matched to its option's value."""
    spec = PATIENT_FIELDS.get(name)
    if spec is not None and spec.kind == "boolean":
        word = text.strip().lower()
        return {"yes": "true", "1": "true", "no": "false", "0": "false"}.get(word, word)
    if spec is not None and spec.kind == "choice":
        for choice in spec.choices:
            if choice.lower() == text.strip().lower():
                return choice
        return spec.aliases.get(text.strip().lower(), text)
    return text


def _render_form(values: Mapping[str, str], errors: list | None = None, status: int = 200,
                 refusal: str | None = None):
    by_field: dict[str, str] = {}
    general = []
    for problem in errors or []:
        if problem.field in by_field:
            by_field[problem.field] += "; " + problem.message
        elif problem.field in PATIENT_FIELDS or problem.field == results.TARGET_FIELD:
            by_field[problem.field] = problem.message
        else:
            general.append(problem)
    shown = {name: _shown_value(name, text) for name, text in values.items()}
    return render_template("form.html", sections=form_fields(), values=shown,
                           errors=by_field, general_errors=general, all_errors=errors or [],
                           target_field=results.TARGET_FIELD, labels=_FIELD_LABELS,
                           refusal=refusal, **_common()), status


def _common() -> dict[str, Any]:
    bundle = calculator_state().bundle
    return {"bundle": bundle, "reconstructed": results.is_reconstructed(bundle)}


@blueprint.get("/")
def index():
    """The form. Query parameters with field names still prefill it for links made elsewhere;
    the calculator itself never emits such a link ("Change inputs" posts, below)."""
    return _render_form(_raw_values(request.args))


@blueprint.post("/")
def change_inputs():
    """The form prefilled with posted values: the result page's "Change inputs" button.

    The values travel in a POST body, never in a URL (browser history, proxy logs, screenshots
    of the address bar); the CSRF token is checked as for the result.
    """
    return _render_form(_raw_values(request.form.to_dict(flat=True)))


@blueprint.post("/result")
def result():
    """Parse the form; show the result, or the form again with each error by its field."""
    return result_response(request.form.to_dict(flat=True))


def result_response(submitted: Mapping[str, str]):
    """The result page of the submitted form values (or the form with its errors, 422).

    Also renders a result link's page (:mod:`calculator.result_links`) inside that GET request,
    so the page's "Change inputs" form gets a CSRF token whose session cookie is sent with it.
    """
    bundle = calculator_state().bundle
    values = _raw_values(submitted)
    try:
        patient = parse_form(submitted, required=bundle.predictor.required_fields,
                             ignore=(results.TARGET_FIELD, *FORM_CONTROL_FIELDS))
        target = results.parse_target(submitted.get(results.TARGET_FIELD), patient)
        view = results.result_view(bundle, patient, target)
    except InputError as error:
        return _render_form(values, error.errors, status=422)
    described = [(PATIENT_FIELDS[name].label, results.describe_value(name, value))
                 for name, value in view["patient"].items()]
    return render_template("result.html", view=view, answer=view["answer"], described=described,
                           basis=results.model_basis(bundle), figures=_figures(view, target),
                           **_common())


def _figures(view: Mapping[str, Any], target: float | None) -> dict[str, Any]:
    """The page's inline SVG figures: ``efs`` / ``os`` survival, ``window`` and ``bands``."""
    state = calculator_state()
    answer = view["answer"]
    figures: dict[str, Any] = {}
    for name in SURVIVAL_NAMES:
        if answer.get(name):
            figures[name] = plots.survival_figure(name, answer[name],
                                                  state.cohort_curves.get(name, {}),
                                                  state.bundle.follow_up.get(name),
                                                  results.at_risk_label(state.bundle))
    patient = view["patient"]
    figures["window"] = plots.treatment_window_figure(
        results.treatment_window(state.bundle, patient), patient["marrow_blasts_pct"], target)
    if answer.get("severe_crs"):
        figures["bands"] = plots.scrs_bands_figure(view["bands"], answer["severe_crs"],
                                                   view["band_basis"]["figure"])
    return figures


@blueprint.get("/result")
def result_without_form():
    """A result needs the form's values; send a bare visit (or a reload) to the empty form."""
    return redirect(url_for("web.index"))


@blueprint.get("/about")
def about():
    """The model card, from the bundle's manifest, in a physician's words."""
    from model.release import __version__
    from model.bundle import FORMAT_VERSION

    bundle = calculator_state().bundle
    return render_template("about.html", manifest=bundle.manifest, release=__version__,
                           bundle_format=FORMAT_VERSION,
                           basis=results.model_basis(bundle),
                           bands=results.band_rows(bundle, None),
                           band_basis=results.band_basis(bundle),
                           coefficients=results.coefficient_table(bundle),
                           card=card_text.card(bundle.manifest),
                           honest=_honest_intervals(bundle),
                           labels=results.OUTCOME_LABELS, kind=bundle.basis, **_common())


#: The served bundle's id -> its honest-intervals section (the latest bundle only).
_HONEST: dict[str, dict] = {}


def _honest_intervals(bundle) -> dict:
    """The packaged coverage study that matches the bundle's kind (read, never typed), read once
    per bundle (keyed by its id, the manifest's hash: a swapped bundle gets its own)."""
    from training.simulation.honest import honest_intervals

    if bundle.id not in _HONEST:
        section = honest_intervals(bundle.manifest)
        _HONEST.clear()
        _HONEST[bundle.id] = section
    return _HONEST[bundle.id]


@blueprint.errorhandler(CSRFError)
def csrf_refused(error: CSRFError):
    """The form again, with the submitted values and a fresh token, saying why it was refused."""
    seconds = current_app.config.get("WTF_CSRF_TIME_LIMIT")
    lifetime = f" for {seconds / 3600:g} hours" if seconds else ""
    try:
        values = _raw_values(request.form.to_dict(flat=True))
    except HTTPException:  # the body itself was refused (too large): show an empty form
        values = {}
    return _render_form(values, status=error.code or 400,
                        refusal=CSRF_REFUSAL.format(lifetime=lifetime))


def error_page(error: HTTPException):
    """The HTML error page, for any HTTP error outside the API (5xx: a plain message and id)."""
    code = error.code or 500
    message = (failures.server_error_message().capitalize() + "."
               if code >= 500 else error.description)
    return render_template("error.html", error=error, message=message), code
