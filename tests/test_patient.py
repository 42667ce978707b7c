"""Patient input checks, the modelled population and the tumour-burden rules."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from model.errors import FieldError, InputError
from model.patient import (ALWAYS_REQUIRED, MAX_TEXT_LENGTH, PATIENT_FIELDS, SUBGROUP_LABELS,
                           burden_group, burden_groups, burden_subgroup, burden_subgroups,
                           in_modelled_population, parse_form, parse_patient,
                           population_refusal, required_patient_fields)
from model.patient_schema import patient_json_schema

ALL_FIELDS = list(PATIENT_FIELDS)
FULL = {"marrow_blasts_pct": 12.0, "mrd_positive": True, "age_years": 30, "sex": "M",
        "ph_positive": False, "prior_therapy_ge_6mo": True, "prior_chemo_ge_3": True,
        "prior_hsct": False, "relapsed": True, "tp53_mutation": False,
        "poor_cytogenetics": False, "tb_assessed": "before_fc"}
FULL_TEXT = {"marrow_blasts_pct": "12.0", "mrd_positive": "true", "age_years": "30", "sex": "M",
             "ph_positive": "no", "prior_therapy_ge_6mo": "YES", "prior_chemo_ge_3": "1",
             "prior_hsct": "0", "relapsed": "True", "tp53_mutation": "false",
             "poor_cytogenetics": "No", "tb_assessed": "before_fc"}


def errors_of(call, *args, **kwargs) -> dict[str, str]:
    with pytest.raises(InputError) as caught:
        call(*args, **kwargs)
    return {error.field: error.message for error in caught.value.errors}


# --------------------------------------------------------------------------- JSON input


def test_valid_json_patient_is_typed():
    patient = parse_patient(FULL, ALL_FIELDS)
    assert patient == {**FULL, "marrow_blasts_pct": 12.0, "age_years": 30.0}
    assert type(patient["age_years"]) is float and type(patient["mrd_positive"]) is bool
    assert list(patient) == ALL_FIELDS


def test_error_message_shape_and_dict():
    with pytest.raises(InputError, match=r"^marrow_blasts_pct: must be between 0 and 100 "
                                         r"\(got 150\)$") as caught:
        parse_patient(dict(FULL, marrow_blasts_pct=150))
    assert caught.value.to_dict() == {"errors": [
        {"field": "marrow_blasts_pct", "message": "must be between 0 and 100 (got 150)"}]}
    assert caught.value.status_code == 422
    assert str(FieldError("age_years", "is required")) == "age_years: is required"


@pytest.mark.parametrize("value, message", [
    (True, r"marrow_blasts_pct: must be a number, not a boolean \(got true\)"),
    (False, r"marrow_blasts_pct: must be a number, not a boolean \(got false\)"),
    (float("nan"), r"marrow_blasts_pct: must be a finite number \(got nan\)"),
    (float("inf"), r"marrow_blasts_pct: must be a finite number \(got inf\)"),
    (float("-inf"), r"marrow_blasts_pct: must be a finite number \(got -inf\)"),
    (10 ** 400, r"marrow_blasts_pct: must be between 0 and 100 \(got a number too large"),
    pytest.param(-10 ** 5000, r"marrow_blasts_pct: must be between 0 and 100 \(got a number "
                 r"too large", id="int-beyond-str-limit"),
    ("12", r"marrow_blasts_pct: must be a number, not text \(got '12'\)"),
    (-0.1, r"marrow_blasts_pct: must be between 0 and 100 \(got -0.1\)"),
    (100.01, r"marrow_blasts_pct: must be between 0 and 100 \(got 100.01\)"),
    ([12], r"marrow_blasts_pct: must be a number \(got list\)"),
])
def test_json_number_errors(value, message):
    with pytest.raises(InputError, match=message):
        parse_patient(dict(FULL, marrow_blasts_pct=value))


def test_age_limits_name_the_unit():
    with pytest.raises(InputError, match=r"age_years: must be between 0.5 and 100 years \(got 0\)"):
        parse_patient(dict(FULL, age_years=0), ["age_years"])


@pytest.mark.parametrize("value, message", [
    (1, r"mrd_positive: must be true or false \(got 1\)"),
    ("true", r"mrd_positive: must be true or false \(got 'true'\)"),
    ({}, r"mrd_positive: must be true or false \(got dict\)"),
])
def test_json_boolean_errors(value, message):
    with pytest.raises(InputError, match=message):
        parse_patient(dict(FULL, mrd_positive=value))


@pytest.mark.parametrize("field, value, message", [
    ("sex", "male", r"sex: must be one of 'M', 'F' \(got 'male'\)"),
    ("sex", "m", r"sex: must be one of 'M', 'F' \(got 'm'\)"),
    ("sex", 1, r"sex: must be one of 'M', 'F' \(got 1\)"),
    ("tb_assessed", "during_fc", r"tb_assessed: must be one of 'before_fc', 'after_fc'"),
])
def test_json_choice_errors(field, value, message):
    with pytest.raises(InputError, match=message):
        parse_patient(dict(FULL, **{field: value}), [field])


def test_unknown_field_is_named_with_a_suggestion():
    with pytest.raises(InputError, match=r"^age: unknown field \(did you mean 'age_years'\?\)$"):
        parse_patient(dict(FULL, age=30))
    with pytest.raises(InputError, match=r"weight_kg: unknown field; known fields are "
                                         r"marrow_blasts_pct, mrd_positive"):
        parse_patient(dict(FULL, weight_kg=70))


def test_missing_required_fields_are_all_reported():
    errors = errors_of(parse_patient, {"sex": "F"}, ["age_years", "sex", "tb_assessed"])
    assert errors == {"marrow_blasts_pct": "is required", "mrd_positive": "is required",
                      "age_years": "is required", "tb_assessed": "is required"}


def test_null_counts_as_absent():
    patient = parse_patient(dict(FULL, age_years=None))
    assert "age_years" not in patient
    with pytest.raises(InputError, match="age_years: is required"):
        parse_patient(dict(FULL, age_years=None), ["age_years"])


def test_absurdly_long_strings_are_refused_without_echoing_them():
    long_text = "M" * 10_000
    with pytest.raises(InputError, match=rf"sex: is too long \(10000 characters; at most "
                                         rf"{MAX_TEXT_LENGTH}\)") as caught:
        parse_patient(dict(FULL, sex=long_text))
    assert long_text not in str(caught.value)
    errors = errors_of(parse_patient, dict(FULL, **{"x" * 10_000: 1}))
    assert all(len(field) < 100 for field in errors)


def test_all_errors_collected_in_one_exception():
    raw = dict(FULL, marrow_blasts_pct=True, mrd_positive="yes", sex="X", age_years=float("nan"),
               tb_assesed="after_fc")
    errors = errors_of(parse_patient, raw, ALL_FIELDS)
    assert list(errors) == ["marrow_blasts_pct", "mrd_positive", "age_years", "sex",
                            "tb_assesed"]
    assert errors["tb_assesed"] == "unknown field (did you mean 'tb_assessed'?)"


@pytest.mark.parametrize("raw", [[1, 2], "patient", None, 12])
def test_body_must_be_an_object(raw):
    with pytest.raises(InputError, match=r"^body: must be an object of patient fields \(got "):
        parse_patient(raw)


def test_numpy_scalars_are_accepted():
    patient = parse_patient(dict(FULL, marrow_blasts_pct=np.float32(12.5),
                                 mrd_positive=np.bool_(True), age_years=np.int64(30)))
    assert patient["marrow_blasts_pct"] == 12.5 and patient["mrd_positive"] is True


def test_unknown_required_name_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown required field"):
        parse_patient(FULL, ["age"])


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_any_float_is_either_accepted_in_range_or_refused(value):
    try:
        patient = parse_patient(dict(FULL, marrow_blasts_pct=value))
    except InputError as error:
        assert error.errors[0].field == "marrow_blasts_pct"
    else:
        assert 0 <= patient["marrow_blasts_pct"] <= 100


# --------------------------------------------------------------------------- text input


def test_valid_form_is_typed():
    patient = parse_form(FULL_TEXT, ALL_FIELDS)
    assert patient == {**FULL, "marrow_blasts_pct": 12.0, "age_years": 30.0}


@pytest.mark.parametrize("text, expected", [
    ("12.5", 12.5), (" 12.5 ", 12.5), ("12", 12.0), ("1e1", 10.0), (".5", 0.5), ("-0", 0.0),
])
def test_form_numbers(text, expected):
    assert parse_form(dict(FULL_TEXT, marrow_blasts_pct=text))["marrow_blasts_pct"] == expected


@pytest.mark.parametrize("text, message", [
    ("12,5", r"marrow_blasts_pct: use a dot as the decimal separator: 12.5 \(got '12,5'\)"),
    ("nan", r"marrow_blasts_pct: must be a number such as 12.5 \(got 'nan'\)"),
    ("inf", r"must be a number such as 12.5 \(got 'inf'\)"),
    ("1e999", r"marrow_blasts_pct: must be a finite number \(got '1e999'\)"),
    ("1_0", r"must be a number such as 12.5 \(got '1_0'\)"),
    ("12 %", r"must be a number such as 12.5"),
    ("0x10", r"must be a number such as 12.5"),
    ("150", r"marrow_blasts_pct: must be between 0 and 100 \(got 150\)"),
])
def test_form_number_errors(text, message):
    with pytest.raises(InputError, match=message):
        parse_form(dict(FULL_TEXT, marrow_blasts_pct=text))


@pytest.mark.parametrize("text", ["", "   ", "\t"])
def test_blank_text_counts_as_missing(text):
    with pytest.raises(InputError, match="^marrow_blasts_pct: is required$"):
        parse_form(dict(FULL_TEXT, marrow_blasts_pct=text))
    assert "age_years" not in parse_form(dict(FULL_TEXT, age_years=text))


def test_pandas_empty_cell_counts_as_missing():
    assert "age_years" not in parse_form(dict(FULL_TEXT, age_years=float("nan")))


@pytest.mark.parametrize("text, expected", [
    ("true", True), ("TRUE", True), ("Yes", True), ("1", True),
    ("false", False), ("no", False), ("NO", False), ("0", False),
])
def test_form_booleans(text, expected):
    assert parse_form(dict(FULL_TEXT, mrd_positive=text))["mrd_positive"] is expected


@pytest.mark.parametrize("text", ["on", "y", "2", "maybe", "t"])
def test_form_boolean_errors(text):
    with pytest.raises(InputError, match=rf"mrd_positive: must be true or false \(yes/no, 1/0\) "
                                         rf"\(got '{text}'\)"):
        parse_form(dict(FULL_TEXT, mrd_positive=text))


@pytest.mark.parametrize("field, text, expected", [
    ("sex", "m", "M"), ("sex", "F", "F"), ("sex", "Female", "F"),
    ("tb_assessed", "AFTER_FC", "after_fc"),
])
def test_form_choices_ignore_case(field, text, expected):
    assert parse_form(dict(FULL_TEXT, **{field: text}))[field] == expected


def test_form_choice_error():
    with pytest.raises(InputError, match=r"sex: must be one of 'M', 'F' \(got 'X'\)"):
        parse_form(dict(FULL_TEXT, sex="X"))


def test_form_unknown_fields_unless_ignored():
    with pytest.raises(InputError, match=r"patient_id: unknown field"):
        parse_form(dict(FULL_TEXT, patient_id="P1"))
    assert parse_form(dict(FULL_TEXT, patient_id="P1"), ignore=["patient_id"]) == parse_form(
        FULL_TEXT)


def test_form_long_text_refused():
    with pytest.raises(InputError, match="age_years: is too long"):
        parse_form(dict(FULL_TEXT, age_years="1" * 1000))


# --------------------------------------------------------------------------- definitions


def test_required_fields_follow_the_features():
    assert required_patient_fields([]) == list(ALWAYS_REQUIRED)
    assert required_patient_fields(["age_years", "male", "log10_blasts", "tb_after_fc"]) == [
        "marrow_blasts_pct", "mrd_positive", "age_years", "sex", "tb_assessed"]


def test_every_field_has_label_help_and_schema():
    for spec in PATIENT_FIELDS.values():
        assert spec.label and spec.help and spec.kind in ("number", "boolean", "choice")
        assert (spec.minimum is not None) == (spec.kind == "number")
        assert bool(spec.choices) == (spec.kind == "choice")
    schema = patient_json_schema(["age_years"])
    assert schema["required"] == ["marrow_blasts_pct", "mrd_positive", "age_years"]
    assert schema["properties"]["marrow_blasts_pct"]["maximum"] == 100
    assert schema["properties"]["sex"]["enum"] == ["M", "F"]
    json.dumps(schema, allow_nan=False)


# --------------------------------------------------------------------------- population, burden


def test_zero_blasts_mrd_negative_is_outside_the_population():
    message = population_refusal({"marrow_blasts_pct": 0.0, "mrd_positive": False})
    assert message and "outside the population the models describe" in message
    assert "MRD-negative remission" in message
    assert population_refusal({"marrow_blasts_pct": 0.0, "mrd_positive": True}) is None
    assert population_refusal({"marrow_blasts_pct": 0.5, "mrd_positive": False}) is None
    assert list(in_modelled_population([0, 0, 3, 0], [0, 1, 0, np.nan])) == [
        False, True, True, False]


@pytest.mark.parametrize("blasts, mrd, subgroup, group", [
    (0.0, True, "a", "low"), (0.001, True, "b", "low"), (0.01, False, "b", "low"), (4.99, True, "b", "low"),
    (5.0, True, "c", "high"), (19.99, True, "c", "high"), (20.0, True, "d", "high"),
    (49.99, True, "d", "high"), (50.0, True, "e", "high"), (100.0, True, "e", "high"),
])
def test_burden_boundaries(blasts, mrd, subgroup, group):
    assert burden_subgroup(blasts, mrd) == subgroup
    assert burden_group(blasts) == group


def test_vectorized_burden_rules_match_scalar():
    blasts = np.array([0, 0.5, 4.99, 5, 19.99, 20, 50, 99])
    mrd = np.ones(blasts.size, dtype=bool)
    assert list(burden_subgroups(blasts, mrd)) == list("abbccdee")
    assert list(burden_groups(blasts)) == ["low"] * 3 + ["high"] * 5
    assert list(burden_subgroups(blasts, mrd)) == [burden_subgroup(b, True) for b in blasts]


def test_vectorized_subgroups_name_the_rows_outside_the_population():
    with pytest.raises(ValueError, match=r"2 patient\(s\) with blasts below 0.01 % are not MRD positive "
                                         r"\(rows 1, 3\)"):
        burden_subgroups([10, 0, 0, 0], [1, 0, 1, np.nan])


def test_subgroup_labels():
    assert SUBGROUP_LABELS["c"] == "5% <= blasts < 20%"
    assert sorted(SUBGROUP_LABELS) == list("abcde")


@pytest.mark.parametrize("blasts, mrd, message", [
    (0.0, False, "outside the modelled population"),
    (0.0, None, "outside the modelled population"),
    (float("nan"), True, "between 0 and 100"),
    (-1.0, True, "between 0 and 100"),
    (101.0, True, "between 0 and 100"),
])
def test_burden_subgroup_refuses_invalid(blasts, mrd, message):
    with pytest.raises(ValueError, match=message):
        burden_subgroup(blasts, mrd)
