"""Generated input against the API: property-based tests (hypothesis) and a schema-driven fuzz run
(schemathesis) against ``/api/v1/openapi.json``.

Every answer is either a prediction that satisfies its invariants or a list of field errors:
never a 5xx, never non-JSON, and always what the OpenAPI document says.
"""
from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model.patient import PATIENT_FIELDS

PREDICT = "/api/v1/predict"
UNKNOWN_NAMES = ("blasts", "age", "x" * 80)
#: Fields an error may name: the patient's, the body's, and the unknown names sent (shortened).
KNOWN_ERROR_FIELDS = {*PATIENT_FIELDS, "body", "blasts", "age", "x" * 64 + "..."}
FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.filter_too_much])


def _refuse(constant):
    raise AssertionError(f"{constant} in a JSON answer")


def strict_json(data: bytes):
    return json.loads(data, parse_constant=_refuse)


def valid_value(name: str) -> st.SearchStrategy:
    spec = PATIENT_FIELDS[name]
    if spec.kind == "number":
        edges = st.sampled_from([edge for edge in (spec.minimum, spec.maximum, 0.01, 4.999, 5.0,
                                                   20.0, 50.0)
                                 if spec.minimum <= edge <= spec.maximum])
        return edges | st.floats(spec.minimum, spec.maximum, allow_nan=False)
    if spec.kind == "boolean":
        return st.booleans()
    return st.sampled_from(sorted(spec.choices))


def hostile_value() -> st.SearchStrategy:
    """What a careless or hostile client sends where a value goes."""
    return st.one_of(
        st.none(), st.booleans(), st.integers(-10**20, 10**20),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from(["", " ", "12,5", "NaN", "Infinity", "true", "1e999", "M" * 65,
                         "\u0000", "\ud7ff", "<script>"]),
        st.text(max_size=70), st.lists(st.integers(), max_size=3),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@st.composite
def patients(draw, required, hostile: bool):
    """A patient with every required field; when ``hostile``, some values or names are bad."""
    body = {name: draw(valid_value(name)) for name in required}
    if draw(st.booleans()):
        optional = [name for name in PATIENT_FIELDS if name not in required]
        for name in draw(st.lists(st.sampled_from(optional), unique=True, max_size=3)):
            body[name] = draw(valid_value(name))
    if hostile:
        for name in draw(st.lists(st.sampled_from([*PATIENT_FIELDS, *UNKNOWN_NAMES]),
                                  unique=True, min_size=1, max_size=3)):
            body[name] = draw(hostile_value())
    return body


def assert_prediction_invariants(body: dict) -> None:
    """Probabilities in [0, 1] inside their intervals; survival non-increasing inside its band."""
    for name in ("cr", "severe_crs"):
        if body[name] is None:
            continue
        low, high = body[name]["ci95"]
        assert 0 <= low <= body[name]["probability"] <= high <= 1, (name, body[name])
    for name in ("efs", "os"):
        curve = body[name]
        if curve is None:
            continue
        months, survival, lower, upper = (curve[key] for key in ("months", "survival", "lower",
                                                                 "upper"))
        assert len(months) == len(survival) == len(lower) == len(upper) > 0
        assert months[0] == 0 and all(a < b for a, b in zip(months, months[1:]))
        assert survival[0] == 1.0
        for series in (survival, lower, upper):
            assert all(value is not None and 0 <= value <= 1 for value in series)
            assert all(b <= a for a, b in zip(series, series[1:])), (name, series)
        assert all(lo <= s <= hi for lo, s, hi in zip(lower, survival, upper)), name
        for horizon, value in curve["at"].items():
            assert value is None or value in survival, (name, horizon)


def assert_answer(answer) -> dict:
    assert answer.status_code in (200, 422), answer.get_data()
    assert answer.mimetype == "application/json"
    body = strict_json(answer.get_data())
    if answer.status_code == 200:
        assert list(body) == ["cr", "severe_crs", "efs", "os", "warnings", "model"]
        assert_prediction_invariants(body)
    else:
        assert list(body) == ["errors"] and body["errors"]
        for error in body["errors"]:
            assert error["field"] and error["message"]
            assert error["field"] in KNOWN_ERROR_FIELDS, error
    return body


@pytest.fixture(scope="module")
def required(loaded_bundle) -> tuple[str, ...]:
    return tuple(loaded_bundle.predictor.required_fields)


@FUZZ
@given(data=st.data())
def test_valid_patients_get_predictions_that_keep_their_invariants(client, required, data):
    patient = data.draw(patients(required, hostile=False))
    answer = client.post(PREDICT, json=patient)
    body = assert_answer(answer)
    outside = patient["marrow_blasts_pct"] < 0.01 and not patient["mrd_positive"]  # MRD threshold
    assert (answer.status_code == 422) == outside, body


@FUZZ
@given(data=st.data())
def test_hostile_patients_get_a_prediction_or_field_errors(client, required, data):
    patient = data.draw(patients(required, hostile=True))
    # allow_nan: the literal NaN goes out as Python writes it; the API must refuse it (400).
    text = json.dumps(patient, allow_nan=True)
    answer = client.post(PREDICT, data=text, content_type="application/json")
    if any(token in text for token in ("NaN", "Infinity")) and answer.status_code == 400:
        assert "not valid JSON" in strict_json(answer.get_data())["errors"][0]["message"]
        return
    assert_answer(answer)


@FUZZ
@given(body=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_get_a_json_answer_never_a_500(client, body):
    answer = client.post(PREDICT, data=body, content_type="application/json")
    assert answer.status_code in (200, 400, 422)
    assert list(strict_json(answer.get_data())) in (["errors"], ["cr", "severe_crs", "efs", "os",
                                                                 "warnings", "model"])


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(number=st.floats(allow_nan=True, allow_infinity=True) | st.booleans())
def test_naive_range_checks_are_not_enough(client, patient, number):
    """NaN passes ``x < 0 or x > 100``; True passes ``isinstance(x, int)``: both are refused."""
    text = json.dumps({**patient, "marrow_blasts_pct": number}, allow_nan=True)
    answer = client.post(PREDICT, data=text, content_type="application/json")
    if isinstance(number, bool) or not math.isfinite(number) or not 0 <= number <= 100:
        assert answer.status_code in (400, 422)
    else:
        assert answer.status_code in (200, 422)  # 422: blasts < 0.01 % with negative MRD


# --------------------------------------------------------------------------- schemathesis


@pytest.fixture(scope="module")
def api_schema(app):
    import schemathesis

    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_the_api_conforms_to_its_openapi_document(api_schema, mode):
    """Schemathesis's checks on generated requests: no 5xx, status codes, content types,
    response schemas and headers as documented, schema-valid data accepted, invalid refused.

    The document includes the FHIR media type of ``/api/v1/predict`` and the CDS Hooks service.
    Three exceptions, each for a reason the schema cannot express: schema-valid FHIR may still be
    refused (422: the codes, units and one value per code that make a usable patient are rules
    of docs/fhir.md, checked by the server and by tests/test_fhir.py); the CDS Hooks
    specification requires 412 for a call without the prefetch, and a generated body over the
    16 KiB limit is refused with 413, two refusals schemathesis's default list of statuses does
    not have.
    """
    from schemathesis import GenerationMode
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    refusals = api_schema.config.checks.negative_data_rejection
    refusals.expected_statuses = [*refusals.expected_statuses, "412", "413"]

    @given(case=api_schema.as_strategy(generation_mode=GenerationMode(mode)))
    @settings(max_examples=150, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def run(case):
        fhir = case.media_type == "application/fhir+json"
        case.call_and_validate(excluded_checks=[positive_data_acceptance] if fhir else [])

    run()


# --------------------------------------------------------------------------- answer rounding


@settings(max_examples=300, deadline=None, derandomize=True)
@given(values=st.lists(st.floats(allow_nan=True, allow_infinity=True) | st.floats(0, 1)
                       | st.integers(0, 10**6).map(lambda k: k / 2000), max_size=40),
       digits=st.sampled_from([2, 3]))
def test_vectorized_rounding_is_pythons_round(values, digits):
    """The answer's curves are rounded in bulk; every number equals ``round(x, digits)``."""
    import numpy as np

    from model.rounding import round_value as _num, round_values as _nums

    bulk = _nums(np.asarray(values, dtype=float), digits)
    one_by_one = [_num(value, digits) for value in values]
    assert [repr(value) for value in bulk] == [repr(value) for value in one_by_one]
