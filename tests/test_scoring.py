"""calculator.scoring: chunked CSV scoring gives the one-pass answer and parse_form's messages."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from calculator.scoring import TOO_MANY_CELLS, score_csv
from model.errors import InputError
from model.patient import parse_form
from model.rounding import format_values as format_numbers

#: Cells that parse_form refuses, each with a different message.
BAD_CELLS = {"marrow_blasts_pct": ["12,5", "abc", "150", "-1", "inf", "1e400", "x" * 70],
             "mrd_positive": ["maybe", "2", "tru"],
             "age_years": ["0.1", "thirty"]}


def write_rows(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def mixed_rows(loaded_bundle):
    """50 patients, every few one with a problem; one patient_id spans two lines."""
    rng = np.random.default_rng(3)
    header = ["patient_id", *loaded_bundle.predictor.required_fields]
    rows = []
    for i in range(50):
        row = {"patient_id": f"P{i}", "marrow_blasts_pct": f"{rng.uniform(0, 95):.2f}",
               "mrd_positive": str(rng.choice(["true", "false", "1", "0", "Yes"])),
               "age_years": str(int(rng.integers(9, 80))), "sex": str(rng.choice(["M", "f"])),
               "ph_positive": "no", "prior_therapy_ge_6mo": "yes", "prior_chemo_ge_3": "1",
               "prior_hsct": "0", "relapsed": "true", "tp53_mutation": "false",
               "poor_cytogenetics": "false", "tb_assessed": "before_fc"}
        if i % 5 == 1:
            field = list(BAD_CELLS)[i % 3]
            row[field] = BAD_CELLS[field][i % len(BAD_CELLS[field])]
        rows.append([row.get(name, "") for name in header])
    rows[3][0] = "P3\nsecond line"
    rows[8] = rows[8] + ["surplus"]
    rows[12] = rows[12][:2]  # short: the required fields after it are missing
    rows[20][1:3] = ["0", "false"]  # outside the modelled population
    rows[21][1:3] = ["0", "true"]  # subgroup a: scored
    return header, rows


def test_chunked_scoring_equals_one_pass(loaded_bundle, mixed_rows, tmp_path):
    source = write_rows(tmp_path / "in.csv", *mixed_rows)
    whole = score_csv(loaded_bundle, source, tmp_path / "whole.csv", keep_errors=100)
    chunked = score_csv(loaded_bundle, source, tmp_path / "chunked.csv", chunk_rows=7,
                        keep_errors=100)
    assert (tmp_path / "chunked.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    assert chunked == whole
    assert whole.rows == 50 and 10 < whole.failed < 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chunked.csv", "in.csv", "whole.csv"]


def test_row_errors_carry_the_csv_line_and_parse_form_messages(loaded_bundle, mixed_rows,
                                                               tmp_path):
    header, rows = mixed_rows
    source = write_rows(tmp_path / "in.csv", header, rows)
    summary = score_csv(loaded_bundle, source, tmp_path / "out.csv", chunk_rows=4,
                        keep_errors=100)
    scored = read_rows(tmp_path / "out.csv")
    by_id = {error.patient_id: error for error in summary.errors}
    assert [row["patient_id"] for row in scored] == [row[0] for row in rows]
    for i, (cells, out) in enumerate(zip(rows, scored)):
        line = i + 2 + (i > 3)  # row 3's patient_id takes two lines
        if len(cells) > len(header):
            expected = TOO_MANY_CELLS
        elif i == 20:
            assert out["error"].startswith("marrow_blasts_pct: marrow blasts below 0.01 % (the "
                                           "MRD threshold) with negative MRD is outside the "
                                           "population")
            expected = out["error"]
        else:
            try:
                parse_form(dict(zip(header, cells)), required=header[1:], ignore=["patient_id"])
                expected = ""
            except InputError as error:
                expected = "; ".join(str(problem) for problem in error.errors)
        assert out["error"] == expected, i
        if expected:
            assert by_id[cells[0]].line == line and by_id[cells[0]].message == out["error"]
            assert out["cr"] == out["efs_12mo"] == out["burden_subgroup"] == ""
        else:
            assert 0 <= float(out["cr_lower"]) <= float(out["cr"]) <= float(out["cr_upper"]) <= 1
    assert scored[21]["burden_subgroup"] == "a" and scored[12]["error"].endswith("is required")


def test_keep_errors_limits_the_details_not_the_count(loaded_bundle, mixed_rows, tmp_path):
    source = write_rows(tmp_path / "in.csv", *mixed_rows)
    summary = score_csv(loaded_bundle, source, tmp_path / "out.csv", chunk_rows=5,
                        keep_errors=3)
    assert len(summary.errors) == 3 and summary.failed > 3
    assert [error.line for error in summary.errors] == sorted(error.line
                                                              for error in summary.errors)


def test_a_failure_after_the_first_chunk_keeps_the_old_output(loaded_bundle, mixed_rows,
                                                              tmp_path):
    header, rows = mixed_rows
    source = write_rows(tmp_path / "in.csv", header, rows)
    with open(source, "ab") as handle:
        handle.write(b"P99,\xff\xfe,true\n")  # not UTF-8, well after the first chunk
    out = tmp_path / "out.csv"
    out.write_text("earlier output\n")
    with pytest.raises(InputError, match="not UTF-8"):
        score_csv(loaded_bundle, source, out, chunk_rows=5)
    assert out.read_text() == "earlier output\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv"]


def test_header_only_is_no_patient_rows(loaded_bundle, tmp_path):
    source = write_rows(tmp_path / "in.csv", list(loaded_bundle.predictor.required_fields), [])
    with pytest.raises(InputError, match="has no patient rows"):
        score_csv(loaded_bundle, source, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


def test_format_numbers_is_python_round_then_g():
    rng = np.random.default_rng(4)
    values = np.r_[rng.uniform(0, 1, 2000), np.arange(0, 1.0005, 0.0005), 0.0625, 2.675,
                   1234.56789, 1e7 + 0.1234, -0.0001, -3.14159, np.nan, np.inf, 1e-300]
    expected = [f"{round(v, 3):g}" if np.isfinite(v) else "" for v in values.tolist()]
    assert format_numbers(values) == expected
