"""Hostile input at every entry point: the JSON API, the form, ``predict`` and ``train``'s CSV.

Each bad input is refused with a message naming the field, row or file; the API answers 4xx with
the ``errors`` list (never a 5xx, a stack trace or a file path) and every answer is strict JSON.
"""
from __future__ import annotations

import json
import math
import re

import pytest

from calculator.cli import main

PREDICT = "/api/v1/predict"
#: What must never appear in an answer: a traceback, a source file, this machine's paths.
LEAKS = re.compile(r"Traceback|File \"|\.py\b|/work/|/home/|/tmp/|site-packages")


def _refuse(constant):
    raise AssertionError(f"{constant} in a JSON answer")


def strict_json(data: bytes):
    """Parse as a strict JSON parser would: the literals NaN / Infinity are errors."""
    return json.loads(data, parse_constant=_refuse)


def field_errors(answer) -> dict[str, str]:
    """The ``errors`` list of an answer as field -> message, after checking its shape."""
    assert answer.mimetype == "application/json"
    text = answer.get_data(as_text=True)
    assert not LEAKS.search(text), text
    body = strict_json(answer.get_data())
    assert list(body) == ["errors"] and body["errors"]
    assert all(set(error) == {"field", "message"} and error["field"] and error["message"]
               for error in body["errors"])
    return {error["field"]: error["message"] for error in body["errors"]}


# --------------------------------------------------------------------------- JSON API

@pytest.mark.parametrize("change, field, message", [
    ({"marrow_blasts_pct": True}, "marrow_blasts_pct", "must be a number, not a boolean"),
    ({"marrow_blasts_pct": False}, "marrow_blasts_pct", "must be a number, not a boolean"),
    ({"marrow_blasts_pct": [12]}, "marrow_blasts_pct", "must be a number (got list)"),
    ({"marrow_blasts_pct": {"value": 12}}, "marrow_blasts_pct", "must be a number (got dict)"),
    ({"age_years": "30"}, "age_years", "must be a number, not text"),
    ({"marrow_blasts_pct": "12,5"}, "marrow_blasts_pct", "must be a number, not text"),
    ({"marrow_blasts_pct": ""}, "marrow_blasts_pct", "must be a number, not text"),
    ({"marrow_blasts_pct": "   "}, "marrow_blasts_pct", "must be a number, not text"),
    ({"marrow_blasts_pct": 100.0001}, "marrow_blasts_pct", "must be between 0 and 100"),
    ({"marrow_blasts_pct": -1e-9}, "marrow_blasts_pct", "must be between 0 and 100"),
    ({"marrow_blasts_pct": 1e308}, "marrow_blasts_pct", "must be between 0 and 100"),
    ({"age_years": 0.49}, "age_years", "must be between 0.5 and 100 years"),
    ({"mrd_positive": 1}, "mrd_positive", "must be true or false (got 1)"),
    ({"mrd_positive": "true"}, "mrd_positive", "must be true or false"),
    ({"mrd_positive": [True]}, "mrd_positive", "must be true or false (got list)"),
    ({"sex": "m"}, "sex", "must be one of 'M', 'F'"),
    ({"sex": ["M"]}, "sex", "must be one of 'M', 'F' (got list)"),
    ({"sex": ""}, "sex", "must be one of 'M', 'F'"),
    ({"sex": "M" * 10_000}, "sex", "is too long (10000 characters; at most 64)"),
    ({"marrow_blasts_pct": None}, "marrow_blasts_pct", "is required"),
    ({"blasts": 12}, "blasts", "unknown field (did you mean 'marrow_blasts_pct'?)"),
    ({"x" * 10_000: 1}, "x" * 64 + "...", "unknown field"),
])
def test_invalid_values_are_refused_by_field(client, patient, change, field, message):
    answer = client.post(PREDICT, data=json.dumps({**patient, **change}),
                         content_type="application/json")
    assert answer.status_code == 422
    assert message in field_errors(answer)[field]


@pytest.mark.parametrize("number, message", [
    (b"NaN", "NaN is not valid JSON"),
    (b"-Infinity", "-Infinity is not valid JSON"),
    (b"Infinity", "Infinity is not valid JSON"),
])
def test_nan_and_infinity_literals_are_not_json(client, number, message):
    # Python's json module accepts these literals; a naive `x < 0 or x > 100` lets NaN through.
    body = b'{"marrow_blasts_pct": ' + number + b', "mrd_positive": true}'
    answer = client.post(PREDICT, data=body, content_type="application/json")
    assert answer.status_code == 400 and message in field_errors(answer)["body"]


def test_a_number_too_large_for_a_float_is_not_infinity(client, patient):
    body = json.dumps(patient).replace('"marrow_blasts_pct": 12.0', '"marrow_blasts_pct": 1e400')
    answer = client.post(PREDICT, data=body, content_type="application/json")
    assert answer.status_code == 422
    assert "must be a finite number" in field_errors(answer)["marrow_blasts_pct"]


def test_missing_fields_are_each_named(client, loaded_bundle):
    answer = client.post(PREDICT, data=b"{}", content_type="application/json")
    assert answer.status_code == 422
    assert set(field_errors(answer)) == set(loaded_bundle.predictor.required_fields)


@pytest.mark.parametrize("body, status, message", [
    (b"", 400, "not valid JSON"),
    (b"{", 400, "not valid JSON"),
    (b"{'marrow_blasts_pct': 12}", 400, "not valid JSON"),
    (b'{"marrow_blasts_pct": 12,}', 400, "not valid JSON"),
    (b"\xff\xfe{}", 400, "not UTF-8"),
    ('{"sex": "M\u00e9"}'.encode("latin-1"), 400, "not UTF-8"),
    (b'{"a": 1, "a": 2}', 400, "more than once"),
    (b"[" * 5000 + b"]" * 5000, 400, "nested too deeply"),
    (b"[]", 422, "must be an object of patient fields (got list)"),
    (b'[{"marrow_blasts_pct": 12}]', 422, "must be an object of patient fields (got list)"),
    (b"12", 422, "must be an object of patient fields (got int)"),
    (b'"patient"', 422, "must be an object of patient fields (got str)"),
    (b"null", 422, "must be an object of patient fields (got NoneType)"),
    (b"true", 422, "must be an object of patient fields (got bool)"),
])
def test_malformed_bodies_are_refused(client, body, status, message):
    answer = client.post(PREDICT, data=body, content_type="application/json")
    assert answer.status_code == status
    assert message in field_errors(answer)["body"]


@pytest.mark.parametrize("content_type", [
    None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
    "application/merge-patch+json", "application/jsonx", "text/json",
])
def test_only_application_json_is_accepted(client, patient, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    answer = client.post(PREDICT, data=json.dumps(patient), headers=headers)
    assert answer.status_code == 415
    assert "Content-Type: application/json" in field_errors(answer)["body"]


def test_application_json_with_a_charset_is_accepted(client, patient):
    answer = client.post(PREDICT, data=json.dumps(patient),
                         headers={"Content-Type": "application/json; charset=utf-8"})
    assert answer.status_code == 200


def test_bodies_over_the_limit_get_413(client, patient):
    from calculator import MAX_REQUEST_BYTES

    padded = {**patient, "note": "x" * MAX_REQUEST_BYTES}
    answer = client.post(PREDICT, data=json.dumps(padded), content_type="application/json")
    assert answer.status_code == 413 and field_errors(answer)
    form = client.post("/result", data={"marrow_blasts_pct": "1" * (MAX_REQUEST_BYTES + 1)})
    assert form.status_code == 413 and form.mimetype == "text/html"


def _strict_loads(text):
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


def test_json_out_is_standard_json(app):
    """Non-finite numbers go out as null (docs/api.md: "every number finite or null")."""
    written = app.json.dumps({"probability": math.nan, "upper": math.inf, "at": {6: 0.5}})
    assert _strict_loads(written) == {"probability": None, "upper": None, "at": {"6": 0.5}}
    with app.app_context():  # jsonify's path: the response body, with Flask's trailing newline
        response = app.json.response({"cr": {"probability": math.nan, "ci95": [-math.inf, 0.25]}})
    assert response.mimetype == "application/json" and response.data.endswith(b"\n")
    assert _strict_loads(response.data) == {"cr": {"probability": None, "ci95": [None, 0.25]}}
    # what orjson refuses (an integer beyond 64 bits) is written by the standard library
    assert _strict_loads(app.json.dumps({"n": 2 ** 70})) == {"n": 2 ** 70}


def test_json_out_is_the_standard_librarys_text(client, loaded_bundle, patient):
    """orjson writes the answer byte for byte as json.dumps would (compact, insertion order)."""
    from model.patient import parse_patient
    from model.predictor import prediction_answer

    answer = client.post(PREDICT, json=patient)
    parsed = parse_patient(dict(patient), required=loaded_bundle.predictor.required_fields)
    expected = json.dumps(prediction_answer(loaded_bundle, parsed), separators=(",", ":"),
                          ensure_ascii=False, allow_nan=False)
    assert answer.data == expected.encode() + b"\n"


# --------------------------------------------------------------------------- the form


def as_form(patient: dict) -> dict[str, str]:
    return {name: ("true" if value else "false") if isinstance(value, bool) else str(value)
            for name, value in patient.items()}


@pytest.mark.parametrize("change, field, message", [
    ({"marrow_blasts_pct": "12,5"}, "marrow_blasts_pct", "use a dot as the decimal separator"),
    ({"marrow_blasts_pct": "nan"}, "marrow_blasts_pct", "must be a number such as 12.5"),
    ({"marrow_blasts_pct": "inf"}, "marrow_blasts_pct", "must be a number such as 12.5"),
    ({"marrow_blasts_pct": "1e999"}, "marrow_blasts_pct", "must be a finite number"),
    ({"marrow_blasts_pct": "true"}, "marrow_blasts_pct", "must be a number such as 12.5"),
    ({"marrow_blasts_pct": "100.5"}, "marrow_blasts_pct", "must be between 0 and 100"),
    ({"age_years": "   "}, "age_years", "is required"),
    ({"age_years": ""}, "age_years", "is required"),
    ({"age_years": "3" * 5000}, "age_years", "is too long"),
    ({"mrd_positive": "maybe"}, "mrd_positive", "must be true or false"),
])
def test_form_errors_are_shown_by_their_field(client, patient, change, field, message):
    answer = client.post("/result", data={**as_form(patient), **change})
    assert answer.status_code == 422
    html = answer.get_data(as_text=True)
    block = html[html.index(f'id="field-{field}"'):]
    assert message.replace("'", "&#39;") in block[:block.find('<div class="field', 1)]


def test_unknown_form_fields_are_named(client, patient):
    answer = client.post("/result", data={**as_form(patient), "blasts": "3"})
    assert answer.status_code == 422 and "did you mean" in answer.get_data(as_text=True)


def test_change_inputs_shows_hostile_values_as_text(client):
    answer = client.post("/", data={"marrow_blasts_pct": '"><svg onload=alert(1)>',
                                    "age_years": "nan"})
    html = answer.get_data(as_text=True)
    assert answer.status_code == 200 and "<svg onload" not in html
    assert "&#34;&gt;&lt;svg onload=alert(1)&gt;" in html or "&quot;&gt;&lt;svg" in html


# --------------------------------------------------------------------------- predict


@pytest.mark.parametrize("options, message", [
    (["--blasts", "nan"], "--blasts: must be a number such as 12.5 (got 'nan')"),
    (["--blasts", "inf"], "--blasts: must be a number such as 12.5"),
    (["--blasts", "1e999"], "--blasts: must be a finite number"),
    (["--blasts", "12,5"], "--blasts: use a dot as the decimal separator: 12.5"),
    (["--blasts", ""], "--blasts: is required"),
    (["--blasts", "  "], "--blasts: is required"),
    (["--blasts", "150"], "--blasts: must be between 0 and 100 (got 150)"),
    (["--blasts", "12", "--age-years", "x" * 1000], "--age-years: is too long"),
    (["--blasts", "12", "--mrd-positive", "2"], "--mrd-positive: must be true or false"),
    (["--blasts", "12", "--sex", "unknown"], "--sex: must be one of 'M', 'F'"),
])
def test_predict_refuses_bad_options_by_name(trained_bundle_path, patient, capsys, options,
                                             message):
    given = {"--" + name.replace("_", "-"): value for name, value in as_form(patient).items()
             if name != "marrow_blasts_pct"}
    for option, _ in zip(options[::2], options[1::2]):
        given.pop(option, None)
    argv = ["predict", "--bundle", str(trained_bundle_path), *options]
    for option, value in given.items():
        argv += [option, value]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"cart-risk predict: {message}" in err
    assert not LEAKS.search(err.replace(str(trained_bundle_path), "")), err


# --------------------------------------------------------------------------- train's CSV


@pytest.fixture(scope="module")
def cohort_text() -> str:
    from training.reproduce import default_cohort_path

    return default_cohort_path().read_text(encoding="utf-8")


def _with_cell(text: str, line: int, column: str, value: str) -> str:
    rows = text.splitlines()
    header = rows[0].split(",")
    cells = rows[line - 1].split(",")
    cells[header.index(column)] = value
    rows[line - 1] = ",".join(cells)
    return "\n".join(rows) + "\n"


ROW_5 = r"line 5 \(patient_id R004\), "


@pytest.mark.parametrize("edit, message", [
    (("marrow_blasts_pct", "nan"), ROW_5 + r"marrow_blasts_pct: must be a number"),
    (("marrow_blasts_pct", "1e999"), ROW_5 + r"marrow_blasts_pct: must be a number"),
    (("marrow_blasts_pct", '"12,5"'), ROW_5 + r"marrow_blasts_pct: must be a number \(use a dot"),
    (("age_years", " "), ROW_5 + r"age_years: is empty"),
    (("mrd_positive", "True"), ROW_5 + r"mrd_positive: must be a number"),
    (("patient_id", "P" * 5000), r"line 5 .*patient_id: must be at most 64 characters"),
])
def test_train_refuses_bad_cells_by_line_and_column(tmp_path, cohort_text, capsys, edit,
                                                    message):
    column, value = edit
    source = tmp_path / "cohort.csv"
    source.write_text(_with_cell(cohort_text, 5, column, value), encoding="utf-8")
    out = tmp_path / "bundle"
    assert main(["train", "--cohort", str(source), "--out", str(out), "--bootstrap", "2"]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert "cohort.csv" in err and not out.exists()


@pytest.mark.parametrize("content, message", [
    ("patient_id,marrow_blasts_pct,mrd_positive\nJos\u00e9,1,1\n".encode("latin-1"),
     "is not UTF-8 text"),
    (b"", "is not a readable CSV file"),
    (b'{"patients": []}', "has no patient rows"),
    (b'{"patients": [],\n "n": 1}', "missing required column"),
    (b"patient_id,marrow_blasts,mrd_positive\nR1,1,1\n", "unknown column 'marrow_blasts'"),
])
def test_train_refuses_unreadable_files_naming_the_file(tmp_path, capsys, content, message):
    source = tmp_path / "cohort.csv"
    source.write_bytes(content)
    assert main(["train", "--cohort", str(source), "--out", str(tmp_path / "b"),
                 "--bootstrap", "2"]) == 2
    err = capsys.readouterr().err
    assert "cohort.csv" in err and message in err, err
