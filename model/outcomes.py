"""The outcomes the calculator predicts: one record each, which every module iterates.

Adding an outcome (say, relapse after CR) is one :class:`Outcome` entry in :data:`OUTCOMES` plus
its fitting rule (how :func:`training.paper.analyses.derive` builds its model column(s) from the cohort);
training, the bundle checks, the predictor, the API, the pages, the CLI and the reports iterate
this registry. What stays per outcome elsewhere: its cohort CSV columns and their checks
(:mod:`model.cohort`), its features (``training/features.toml``) and its FHIR code
(:mod:`calculator.interop.fhir_codes`). The order of :data:`OUTCOMES` is the order of every answer,
table and report section.
"""
from __future__ import annotations

from dataclasses import dataclass

#: Model kinds: a logistic model predicts a probability, a Cox model a survival curve.
LOGISTIC = "logistic"
COX = "cox"
#: Months at which survival probabilities are answered (Cox outcomes).
SURVIVAL_HORIZONS_MONTHS = (6, 12, 24)


@dataclass(frozen=True)
class Outcome:
    """One predicted outcome.

    Attributes
    ----------
    name : str
        Key in the API answer, the bundle and the feature configuration, e.g. ``"severe_crs"``.
    kind : {"logistic", "cox"}
        The model fitted for it.
    cohort_columns : tuple of str
        Cohort CSV columns (docs/cohort-csv.md) the outcome needs; without them the model is
        unavailable.
    model_columns : tuple of str
        Columns of the modelling frame (after :func:`training.paper.analyses.derive`): the 0/1 outcome of
        a logistic model, or (time in months, event 0/1) of a Cox model.
    label : str
        Full label, as the calculator page and the CLI show it.
    short_label : str
        Label for narrow tables.
    title : str
        Heading of the outcome's section in the reports.
    description : str
        What the outcome is, as the bundle manifest states it.
    events_label : str
        What the "events" count of the model means (the smaller outcome class), e.g. ``"deaths"``.
    study_label : str
        Label in the simulation study's tables (logistic: the outcome; Cox: at 12 months).
    horizons_months : tuple of int
        Months at which survival is answered (empty for logistic outcomes).
    """

    name: str
    kind: str
    cohort_columns: tuple[str, ...]
    model_columns: tuple[str, ...]
    label: str
    short_label: str
    title: str
    description: str
    events_label: str
    study_label: str
    horizons_months: tuple[int, ...] = ()


def _survival(name: str, label: str, title: str, description: str, events_label: str) -> Outcome:
    """A Cox outcome: cohort columns ``NAME_months`` / ``NAME_event``, answered at every horizon."""
    columns = (f"{name}_months", f"{name}_event")
    return Outcome(name, COX, columns, columns, label=label, short_label=label, title=title,
                   description=description, events_label=events_label,
                   study_label=f"{name.upper()} (12 months)", horizons_months=SURVIVAL_HORIZONS_MONTHS)


OUTCOMES: tuple[Outcome, ...] = (
    Outcome("cr", LOGISTIC, ("response",), ("cr",),
            label="Complete remission", short_label="Complete remission",
            title="Complete remission (CR)",
            description="complete remission (MRD-negative or MRD-positive CR) vs no response",
            events_label="non-responders", study_label="CR"),
    Outcome("severe_crs", LOGISTIC, ("crs_grade",), ("severe_crs",),
            label="Severe CRS (grade 3 or higher, CTCAE v4.03)", short_label="Severe CRS",
            title="Severe CRS (grade >= 3)",
            description="severe CRS, CTCAE v4.03 grade >= 3",
            events_label="severe CRS", study_label="severe CRS"),
    _survival("efs", "Event-free survival", "Event-free survival (EFS)",
              "event-free survival (months; event = no response, relapse or death)", "EFS events"),
    _survival("os", "Overall survival", "Overall survival (OS)",
              "overall survival (months; event = death)", "deaths"),
)

#: Outcome record by name, in the order of :data:`OUTCOMES`.
BY_NAME: dict[str, Outcome] = {outcome.name: outcome for outcome in OUTCOMES}
#: Every outcome name, in answer order.
NAMES: tuple[str, ...] = tuple(BY_NAME)
#: Model kind of each outcome.
KINDS: dict[str, str] = {outcome.name: outcome.kind for outcome in OUTCOMES}


def of_kind(kind: str) -> tuple[str, ...]:
    """Names of the outcomes modelled by ``kind`` ("logistic" or "cox"), in answer order."""
    return tuple(outcome.name for outcome in OUTCOMES if outcome.kind == kind)


#: Outcomes answered as one probability, and outcomes answered as a survival curve.
LOGISTIC_NAMES = of_kind(LOGISTIC)
SURVIVAL_NAMES = of_kind(COX)
#: Cohort columns (time in months, event 0/1) of each survival outcome.
SURVIVAL_COLUMNS: dict[str, tuple[str, str]] = {
    name: BY_NAME[name].cohort_columns for name in SURVIVAL_NAMES}  # type: ignore[misc]


def labels(attribute: str = "label") -> dict[str, str]:
    """``{name: label}`` of every outcome, for one label attribute ("label", "title", ...)."""
    return {outcome.name: getattr(outcome, attribute) for outcome in OUTCOMES}
