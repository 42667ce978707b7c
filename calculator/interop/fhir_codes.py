"""The codes and units the calculator's FHIR and CDS Hooks interfaces read and write.

One table, :data:`OBSERVATIONS`, says which ``Observation`` carries which patient field: its code,
its value type and, for quantities, the UCUM units accepted (with the factor to the field's unit).
Sex comes from ``Patient.gender`` (FHIR's own administrative-gender codes) and age from an
``age-at-infusion`` Observation or, failing that, from ``Patient.birthDate``.

No LOINC or SNOMED CT code is used: none could be confirmed against the LOINC database or the
SNOMED CT browser while this was written, and codes quoted in third-party material disagree with
each other (docs/fhir.md gives an example). Every input is therefore coded in the calculator's own
code system :data:`INPUT_SYSTEM`, documented in docs/fhir.md and served as a FHIR ``CodeSystem``
at ``GET /fhir/CodeSystem/cart-risk-input`` (every code system and the interval extension are
served: :mod:`calculator.interop.fhir_definitions`). A site that has verified LOINC codes for its own
laboratory maps them to these codes in its interface engine.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

#: Namespace of the calculator's code systems (``.example`` is reserved, RFC 2606: these are
#: identifiers, not addresses to resolve).
CODE_SYSTEM_BASE = "https://cart-risk.example/fhir/CodeSystem/"
INPUT_SYSTEM = CODE_SYSTEM_BASE + "cart-risk-input"
TB_ASSESSED_SYSTEM = CODE_SYSTEM_BASE + "cart-risk-tb-assessed"
OUTCOME_SYSTEM = CODE_SYSTEM_BASE + "cart-risk-outcome"
METHOD_SYSTEM = CODE_SYSTEM_BASE + "cart-risk-method"
BURDEN_SUBGROUP_SYSTEM = CODE_SYSTEM_BASE + "cart-risk-burden-subgroup"
#: Extension on ``RiskAssessment.prediction``: the bootstrap 95 % interval of the probability.
CI95_EXTENSION = "https://cart-risk.example/fhir/StructureDefinition/probability-ci95"
#: Version of the RiskAssessment the calculator writes (``meta.tag`` in this system): 2 since
#: issue 22 (probabilities in percent, R4's scale); 1 wrote them as 0-1 fractions.
OUTPUT_FORMAT_SYSTEM = CODE_SYSTEM_BASE + "cart-risk-output-format"
OUTPUT_FORMAT_VERSION = "2"
UCUM = "http://unitsofmeasure.org"
#: FHIR R4 administrative-gender -> the calculator's ``sex``; other genders are not modelled.
GENDER_TO_SEX = {"male": "M", "female": "F"}
SEX_TO_GENDER = {sex: gender for gender, sex in GENDER_TO_SEX.items()}
#: Observation statuses whose value describes the patient (FHIR R4 observation-status): the
#: others (registered, preliminary, cancelled, entered-in-error, unknown) are not used.
USABLE_STATUSES = ("final", "amended", "corrected")


@dataclass(frozen=True)
class ObservationCode:
    """How one patient field travels as an ``Observation``.

    Attributes
    ----------
    field : str
        Patient field (:data:`model.patient.PATIENT_FIELDS`).
    code : str
        Code in :data:`INPUT_SYSTEM`.
    display : str
        The code's display text.
    value : {"quantity", "boolean", "coded"}
        Which ``Observation.value[x]`` carries it: ``valueQuantity``, ``valueBoolean`` or
        ``valueCodeableConcept`` (codes in :data:`TB_ASSESSED_SYSTEM`).
    units : dict of str -> Fraction
        For quantities: UCUM code -> exact factor to the field's unit (360 ``mo`` is exactly
        30 ``a``).
    """

    field: str
    code: str
    display: str
    value: str
    units: dict[str, Fraction] = field(default_factory=dict)

    @property
    def ucum(self) -> str:
        """The UCUM code written on output (the field's own unit; "" for non-quantities)."""
        return next((unit for unit, factor in self.units.items() if factor == 1), "")


OBSERVATIONS: tuple[ObservationCode, ...] = (
    ObservationCode("marrow_blasts_pct", "marrow-blasts-pct",
                    "Bone-marrow blasts before CAR-T infusion (% of nucleated cells)", "quantity",
                    {"%": Fraction(1)}),
    ObservationCode("mrd_positive", "mrd-positive",
                    "Minimal residual disease detected by flow cytometry (>= 0.01 %) before "
                    "infusion", "boolean"),
    ObservationCode("age_years", "age-at-infusion", "Age at CAR-T infusion", "quantity",
                    {"a": Fraction(1), "mo": Fraction(1, 12)}),
    ObservationCode("ph_positive", "ph-positive",
                    "Philadelphia chromosome (BCR-ABL1) positive", "boolean"),
    ObservationCode("prior_therapy_ge_6mo", "prior-therapy-ge-6mo",
                    "Treated with other approaches for more than 6 months before CAR-T", "boolean"),
    ObservationCode("prior_chemo_ge_3", "prior-chemo-ge-3",
                    "CAR-T given as third or later salvage (>= 3 prior chemotherapy lines)",
                    "boolean"),
    ObservationCode("prior_hsct", "prior-hsct",
                    "Previous haematopoietic stem cell transplantation", "boolean"),
    ObservationCode("relapsed", "relapsed",
                    "Relapsed disease (true) or refractory disease (false)", "boolean"),
    ObservationCode("tp53_mutation", "tp53-mutation", "TP53 mutation detected", "boolean"),
    ObservationCode("poor_cytogenetics", "poor-cytogenetics", "Poor-risk cytogenetics",
                    "boolean"),
    ObservationCode("tb_assessed", "tb-assessed",
                    "When the marrow blasts were measured relative to FC conditioning", "coded"),
)
BY_CODE = {entry.code: entry for entry in OBSERVATIONS}
BY_FIELD = {entry.field: entry for entry in OBSERVATIONS}
#: ``tb_assessed`` values <-> codes in :data:`TB_ASSESSED_SYSTEM`.
TB_ASSESSED_CODES = {"before_fc": "before-fc", "after_fc": "after-fc"}
TB_ASSESSED_VALUES = {code: value for value, code in TB_ASSESSED_CODES.items()}

#: Outcome codes of ``RiskAssessment.prediction.outcome`` (answer key -> code, display).
OUTCOMES = {
    "cr": ("complete-remission", "Complete remission (MRD-negative or MRD-positive/unknown CR)"),
    "severe_crs": ("severe-crs", "Severe cytokine release syndrome (CTCAE v4.03 grade >= 3)"),
    "efs": ("event-free-survival",
            "Event-free survival (alive without no-response, relapse or death)"),
    "os": ("overall-survival", "Overall survival (alive)"),
}
