"""The JSON API: answer shape, strict input, errors as JSON (never a 500), OpenAPI, health."""
from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model.bundle import load_predictor
from model.errors import BundleError
from model.patient import PATIENT_FIELDS, parse_patient, required_patient_fields
from model.predictor import prediction_answer
PREDICT = "/api/v1/predict"


def _refuse(constant):
    raise AssertionError(f"{constant} in JSON output")


def strict_json(text: bytes):
    """Parse JSON as a strict parser would: NaN / Infinity are errors."""
    return json.loads(text, parse_constant=_refuse)


def post(client, body):
    return client.post(PREDICT, json=body)


def test_answer_has_the_design_shape(client, patient, trained_bundle_path):
    answer = post(client, patient)
    assert answer.status_code == 200
    body = strict_json(answer.get_data())
    assert list(body) == ["cr", "severe_crs", "efs", "os", "warnings", "model"]
    for name in ("cr", "severe_crs"):
        low, high = body[name]["ci95"]
        assert 0 <= low <= high <= 1 and 0 <= body[name]["probability"] <= 1
    band = body["severe_crs"]["band"]
    assert band["subgroup"] == "c" and band["label"] == "5% <= blasts < 20%"
    assert set(band["observed"]) == {"events", "n", "rate", "ci95"}
    for name in ("efs", "os"):
        curve = body[name]
        assert len(curve["months"]) == len(curve["survival"]) == len(curve["lower"]) \
            == len(curve["upper"])
        assert set(curve["at"]) == {"6", "12", "24"}
        assert np.all(np.diff(curve["survival"]) <= 1e-12)
    manifest_bytes = (trained_bundle_path / "manifest.json").read_bytes()
    assert body["model"]["id"] == hashlib.sha256(manifest_bytes).hexdigest()
    assert body["model"]["provenance"] == "reconstructed-from-published-aggregates"
    assert body["model"]["trained_on"] == "78 patients"


def test_answer_is_the_shared_answer_builder(client, patient, loaded_bundle):
    expected = prediction_answer(loaded_bundle, parse_patient(patient))
    assert post(client, patient).get_json() == json.loads(json.dumps(expected))


def test_survival_stops_at_the_cohorts_last_follow_up(client, patient, trained_bundle_path):
    import csv

    with open(trained_bundle_path / "training_cohort.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    body = post(client, patient).get_json()
    for name in ("efs", "os"):
        last = max(float(row[f"{name}_months"]) for row in rows)
        assert body[name]["months"][-1] <= last
        assert body[name]["months"][-1] > last - 1  # and not much earlier: grid step 0.5


@pytest.mark.parametrize("model, coefficient_of_blasts", [("cr", "probability"),
                                                          ("severe_crs", "probability")])
def test_probabilities_move_with_blasts_as_the_coefficient_says(client, patient,
                                                                 loaded_bundle, model,
                                                                 coefficient_of_blasts):
    estimate = loaded_bundle.manifest["models"][model]["coefficients"]["log10_blasts"]["estimate"]
    assert estimate != 0
    values = [post(client, {**patient, "marrow_blasts_pct": blasts}).get_json()[model]
              [coefficient_of_blasts] for blasts in (0.5, 3, 12, 40, 90)]
    steps = np.sign(np.diff(values))
    assert np.all((steps == np.sign(estimate)) | (steps == 0)), values
    assert values[0] != values[-1]


@pytest.mark.parametrize("model", ["efs", "os"])
def test_survival_moves_with_blasts_as_the_hazard_ratio_says(client, patient, loaded_bundle,
                                                             model):
    estimate = loaded_bundle.manifest["models"][model]["coefficients"]["log10_blasts"]["estimate"]
    assert estimate != 0
    at_12 = [post(client, {**patient, "marrow_blasts_pct": blasts}).get_json()[model]["at"]["12"]
             for blasts in (0.5, 3, 12, 40, 90)]
    steps = np.sign(np.diff(at_12))
    # a higher hazard (positive coefficient) means lower survival
    assert np.all((steps == -np.sign(estimate)) | (steps == 0)), at_12
    assert at_12[0] != at_12[-1]


def test_inputs_outside_training_range_warn(client, patient, loaded_bundle):
    top = loaded_bundle.manifest["models"]["cr"]["field_ranges"]["marrow_blasts_pct"][1]
    assert top < 99.5  # the default models read blasts only; age is not asked
    body = post(client, {**patient, "marrow_blasts_pct": 99.5}).get_json()
    assert any("marrow_blasts_pct 99.5 is outside the training range" in w for w in body["warnings"])
    assert post(client, patient).get_json()["warnings"] == []


# --------------------------------------------------------------------------- invalid input


def errors_of(answer) -> dict[str, str]:
    body = strict_json(answer.get_data())
    assert set(body) == {"errors"}
    assert all(set(error) == {"field", "message"} for error in body["errors"])
    return {error["field"]: error["message"] for error in body["errors"]}


def test_unknown_field_is_rejected(client, patient):
    answer = post(client, {**patient, "age": 30})
    assert answer.status_code == 422
    assert "did you mean 'age_years'" in errors_of(answer)["age"]


def test_every_missing_required_field_is_listed(client, loaded_bundle):
    answer = post(client, {"marrow_blasts_pct": 12})
    assert answer.status_code == 422
    missing = set(loaded_bundle.predictor.required_fields) - {"marrow_blasts_pct"}
    assert {field for field, message in errors_of(answer).items()
            if message == "is required"} == missing


@pytest.mark.parametrize("value, message", [
    (150, "must be between 0 and 100 (got 150)"),
    (-1, "must be between 0 and 100 (got -1)"),
    ("12", "must be a number, not text"),
    (True, "must be a number, not a boolean"),
    (None, "is required"),
])
def test_bad_blasts_are_rejected_with_the_reason(client, patient, value, message):
    answer = post(client, {**patient, "marrow_blasts_pct": value})
    assert answer.status_code == 422
    assert message in errors_of(answer)["marrow_blasts_pct"]


def test_zero_blasts_mrd_negative_is_refused_with_the_reason(client, patient):
    answer = post(client, {**patient, "marrow_blasts_pct": 0, "mrd_positive": False})
    assert answer.status_code == 422
    assert "outside the population the models describe" in errors_of(answer)["marrow_blasts_pct"]
    assert post(client, {**patient, "marrow_blasts_pct": 0, "mrd_positive": True}) \
        .get_json()["severe_crs"]["band"]["subgroup"] == "a"


@pytest.mark.parametrize("body, status, message", [
    (b"{", 400, "not valid JSON"),
    (b'{"marrow_blasts_pct": NaN}', 400, "NaN is not valid JSON"),
    (b'{"marrow_blasts_pct": Infinity}', 400, "Infinity is not valid JSON"),
    (b'{"marrow_blasts_pct": 1, "marrow_blasts_pct": 2}', 400, "more than once"),
    (b"\xff\xfe", 400, "not UTF-8"),
    (b"[1, 2]", 422, "must be an object"),
    (b'"text"', 422, "must be an object"),
    (b"[" * 3000 + b"]" * 3000, 400, "nested too deeply"),
])
def test_malformed_bodies_get_json_errors(client, body, status, message):
    answer = client.post(PREDICT, data=body, content_type="application/json")
    assert answer.status_code == status
    assert message in errors_of(answer)["body"]


def test_other_content_types_and_methods_get_json_errors(client, patient):
    answer = client.post(PREDICT, data="marrow_blasts_pct=12",
                         content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 415 and "application/json" in errors_of(answer)["body"]
    assert client.get(PREDICT).status_code == 405
    assert "method" in errors_of(client.get(PREDICT))
    assert client.get("/api/v1/nothing").status_code == 404
    assert "path" in errors_of(client.get("/api/v1/nothing"))
    too_large = client.post(PREDICT, data=b'{"x": "' + b"a" * 100_000 + b'"}',
                            content_type="application/json")
    assert too_large.status_code == 413 and errors_of(too_large)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=80),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5),
                                                                      children, max_size=3),
    max_leaves=5)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(st.sampled_from(sorted(PATIENT_FIELDS) + ["extra", "age"]),
                               json_values, max_size=4))
def test_any_json_patient_gets_an_answer_or_field_errors_never_a_500(client, patient, changes):
    answer = post(client, {**patient, **changes})
    assert answer.status_code in (200, 422), answer.get_data()
    body = strict_json(answer.get_data())
    if answer.status_code == 422:
        assert body["errors"] and all(e["field"] and e["message"] for e in body["errors"])
    else:
        assert 0 <= body["cr"]["probability"] <= 1


# --------------------------------------------------------------------------- openapi, health


def test_openapi_requires_the_loaded_bundles_fields(client, trained_bundle_path):
    document = strict_json(client.get("/api/v1/openapi.json").get_data())
    assert document["openapi"].startswith("3.")
    predictor = json.loads((trained_bundle_path / "predictor.json").read_text())
    features = [feature for model in predictor["models"].values()
                for feature in model["features"]]
    schema = document["components"]["schemas"]["Patient"]
    assert schema["required"] == required_patient_fields(features)
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(PATIENT_FIELDS)
    operation = document["paths"]["/api/v1/predict"]["post"]
    assert {"200", "400", "422"} <= set(operation["responses"])
    assert "/healthz" in document["paths"]


def test_openapi_example_is_a_valid_request(client):
    document = client.get("/api/v1/openapi.json").get_json()
    example = document["paths"]["/api/v1/predict"]["post"]["requestBody"]["content"][
        "application/json"]["example"]
    assert post(client, example).status_code == 200


def test_healthz_names_the_verified_bundle(client, trained_bundle_path):
    answer = client.get("/healthz")
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["status"] == "ok"
    assert body["bundle"]["id"] == load_predictor(trained_bundle_path).id


def test_app_refuses_a_tampered_bundle(trained_bundle_path, tmp_path):
    import shutil

    from calculator import create_app

    copy = tmp_path / "bundle"
    shutil.copytree(trained_bundle_path, copy)
    with open(copy / "predictor.json", "ab") as handle:
        handle.write(b" ")
    with pytest.raises(BundleError, match="file-hash"):
        create_app({"BUNDLE_PATH": str(copy)})
    with pytest.raises(BundleError, match="directory"):
        create_app({"BUNDLE_PATH": str(tmp_path / "missing")})


def test_importing_the_package_creates_nothing():
    code = ("import sys, calculator, calculator.cli; "
            "assert 'flask' not in sys.modules, 'flask imported at import time'; "
            "assert not hasattr(calculator, 'app')")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_answers_never_contain_nan(client, patient):
    for blasts in (0.01, 99.9, 100):
        for age in (0.5, 100):
            text = post(client, {**patient, "marrow_blasts_pct": blasts,
                                 "age_years": age}).get_data()
            body = strict_json(text)
            assert all(math.isfinite(v) for v in _numbers(body))


def _numbers(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from _numbers(item)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield value


def test_an_unexpected_failure_is_still_a_json_error(trained_bundle_path, patient, monkeypatch):
    import calculator.api
    from calculator import create_app

    def broken(*_):
        raise RuntimeError("internal detail that must not leak")

    monkeypatch.setattr(calculator.api, "prediction_answer", broken)
    app = create_app({"BUNDLE_PATH": str(trained_bundle_path)})  # not TESTING: handlers run
    monkeypatch.setattr(app.logger, "disabled", True)  # restored after the test: the logger is shared
    answer = app.test_client().post(PREDICT, json=patient)
    assert answer.status_code == 500
    body = errors_of(answer)
    assert "internal detail" not in json.dumps(body)

