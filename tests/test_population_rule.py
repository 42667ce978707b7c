"""One modelled-population rule at the MRD threshold (issue 15, item 3).

Blasts below 0.01 % (the flow-cytometry MRD threshold the cohort schema uses) with negative MRD is
MRD-negative remission, outside the population: refused alike by the API, the form (whose result
page is the only place figures are drawn), ``cart-risk score``, ``predict`` and the patient JSON
schema. At the threshold itself the patient is inside.
"""
from __future__ import annotations

import csv
import jsonschema_rs
import pytest

from calculator.cli import main
from calculator.scoring import score_csv
from model.patient_schema import patient_json_schema

#: Below the threshold, MRD negative: each was answered 200 (CR 0.92, band b) before.
BELOW_THRESHOLD = [1e-300, 0.001, 0.0099]


def _with(patient: dict, blasts: float, mrd: bool) -> dict:
    return {**patient, "marrow_blasts_pct": blasts, "mrd_positive": mrd}


@pytest.mark.parametrize("blasts", BELOW_THRESHOLD)
def test_api_form_and_schema_refuse_below_the_threshold(client, patient, blasts):
    body = _with(patient, blasts, False)
    answer = client.post("/api/v1/predict", json=body)
    assert answer.status_code == 422
    fields = {e["field"]: e["message"] for e in answer.get_json()["errors"]}
    assert "outside the population the models describe" in fields["marrow_blasts_pct"]
    form = {name: ("true" if value is True else "false" if value is False else str(value))
            for name, value in body.items()}
    page = client.post("/result", data=form)
    assert page.status_code == 422
    html = page.get_data(as_text=True)
    assert "outside the population the models describe" in html and "<svg" not in html
    schema = jsonschema_rs.validator_for(patient_json_schema(list(patient)))
    assert not schema.is_valid(body)


def test_at_the_threshold_or_mrd_positive_the_patient_is_inside(client, patient):
    schema = jsonschema_rs.validator_for(patient_json_schema(list(patient)))
    for blasts, mrd in ((0.01, False), (0.001, True), (0.0, True)):
        body = _with(patient, blasts, mrd)
        assert client.post("/api/v1/predict", json=body).status_code == 200, body
        assert schema.is_valid(body)


def test_score_and_predict_refuse_below_the_threshold(trained_bundle_path, loaded_bundle,
                                                      patient, tmp_path, capsys):
    header = ["patient_id", *patient]
    source = tmp_path / "in.csv"
    with open(source, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for i, blasts in enumerate([*BELOW_THRESHOLD, 0.01]):
            row = _with(patient, blasts, False)
            writer.writerow([f"P{i}", *(str(row[name]).lower() if isinstance(row[name], bool)
                                        else row[name] for name in patient)])
    summary = score_csv(loaded_bundle, source, tmp_path / "out.csv")
    assert (summary.rows, summary.failed) == (4, 3)
    assert all("outside the population" in error.message for error in summary.errors)
    assert [error.patient_id for error in summary.errors] == ["P0", "P1", "P2"]
    options = ["--blasts", "0.001", "--mrd-positive", "false"]
    options += [item for name, value in patient.items() if name not in ("marrow_blasts_pct",
                                                                         "mrd_positive")
                for item in (f"--{name.replace('_', '-')}",
                             str(value).lower() if isinstance(value, bool) else str(value))]
    assert main(["predict", "--bundle", str(trained_bundle_path), *options]) == 2
    assert "outside the population the models describe" in capsys.readouterr().err
