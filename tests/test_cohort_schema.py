"""The cohort schema refuses bad CSVs with a message naming the line, patient and column."""
import subprocess
import sys

import pandas as pd
import pytest

from model.cohort import COLUMNS, CohortError, available_models, read_cohort
from training.paper.provenance import default_cohort_path


@pytest.fixture(scope="module")
def good_text() -> pd.DataFrame:
    return pd.read_csv(default_cohort_path(), dtype=str, keep_default_na=False)


def write(tmp_path, frame: pd.DataFrame, name="cohort.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def test_the_reconstructed_cohort_passes(good_text):
    cohort = read_cohort(default_cohort_path())
    assert len(cohort) == 78
    assert list(cohort.columns) == COLUMNS
    assert cohort["crs_grade"].dtype.kind == "i"


@pytest.mark.parametrize("row, column, value, message", [
    (4, "marrow_blasts_pct", "150", r"line 6 \(patient_id R005\), marrow_blasts_pct: must be between 0 and 100 \(got 150.0\)"),
    (0, "marrow_blasts_pct", "12,5", r"line 2 \(patient_id R001\), marrow_blasts_pct: must be a number \(use a dot"),
    (2, "age_years", "", r"line 4 \(patient_id R003\), age_years: is empty"),
    (2, "age_years", "   ", r"line 4 \(patient_id R003\), age_years: is empty"),
    (7, "sex", "X", r"line 9 \(patient_id R008\), sex: must be one of M, F \(got 'X'\)"),
    (7, "crs_grade", "2.5", r"line 9 \(patient_id R008\), crs_grade: must be a whole grade from 0 to 5"),
    (3, "ph_positive", "2", r"line 5 \(patient_id R004\), ph_positive: must be 0 or 1"),
    (3, "efs_months", "0", r"line 5 \(patient_id R004\), efs_months: must be greater than 0"),
    (3, "os_months", "inf", r"line 5 \(patient_id R004\), os_months: must be a number"),
    (3, "il6_peak_pg_ml", "nan", r"line 5 \(patient_id R004\), il6_peak_pg_ml: must be a number"),
    (5, "response", "cr", r"line 7 \(patient_id R006\), response: must be one of mrd_neg_cr, mrd_pos_cr, nr"),
    (5, "tb_assessed", "during_fc", r"line 7 \(patient_id R006\), tb_assessed: must be one of before_fc, after_fc"),
])
def test_a_bad_cell_is_named(tmp_path, good_text, row, column, value, message):
    bad = good_text.copy()
    bad.loc[row, column] = value
    with pytest.raises(CohortError, match=message):
        read_cohort(write(tmp_path, bad))


def test_every_problem_is_listed_not_only_the_first(tmp_path, good_text):
    bad = good_text.copy()
    bad.loc[1, "marrow_blasts_pct"] = "-1"
    bad.loc[60, "sex"] = "male"
    with pytest.raises(CohortError) as caught:
        read_cohort(write(tmp_path, bad))
    assert len(caught.value.problems) == 2
    assert "line 3 (patient_id R002), marrow_blasts_pct" in str(caught.value)
    assert "line 62 (patient_id R061), sex" in str(caught.value)


def _row_with(good_text, **conditions):
    cohort = read_cohort(default_cohort_path())
    mask = pd.Series(True, index=cohort.index)
    for column, value in conditions.items():
        mask &= cohort[column] == value
    return int(cohort.index[mask][0])


@pytest.mark.parametrize("change, message", [
    ({"marrow_blasts_pct": "0", "mrd_positive": "0"}, "MRD-negative patients are outside the population"),
    ({"marrow_blasts_pct": "12", "mrd_positive": "0"}, "MRD negativity means < 0.01 % blasts"),
    ({"efs_months": "40", "os_months": "30"}, "efs_months must not exceed os_months"),
    ({"os_event": "1", "efs_event": "0"}, "death is an event-free-survival event"),
    ({"crs_grade": "5", "os_event": "0", "efs_event": "0"}, r"crs_grade 5 \(death\) with os_event 0"),
])
def test_inconsistent_rows_are_refused(tmp_path, good_text, change, message):
    bad = good_text.copy()
    row = 10
    for column, value in change.items():
        bad.loc[row, column] = value
    with pytest.raises(CohortError, match=rf"line 12 \(patient_id R011\): .*{message}"):
        read_cohort(write(tmp_path, bad))


def test_no_response_must_be_an_efs_event(tmp_path, good_text):
    row = _row_with(good_text, response="nr")
    bad = good_text.copy()
    bad.loc[row, "efs_event"] = "0"
    with pytest.raises(CohortError, match=rf"line {row + 2} .*no response is an event-free-survival event"):
        read_cohort(write(tmp_path, bad))


def test_duplicate_patient_ids(tmp_path, good_text):
    bad = good_text.copy()
    bad.loc[5, "patient_id"] = "R001"
    with pytest.raises(CohortError, match=r"line 7 \(patient_id R001\), patient_id: duplicate patient_id 'R001'"):
        read_cohort(write(tmp_path, bad))


def test_missing_and_unknown_columns(tmp_path, good_text):
    with pytest.raises(CohortError, match="missing required column 'marrow_blasts_pct'"):
        read_cohort(write(tmp_path, good_text.drop(columns=["marrow_blasts_pct"])))
    with pytest.raises(CohortError, match="unknown column 'blasts'"):
        read_cohort(write(tmp_path, good_text.rename(columns={"marrow_blasts_pct": "blasts"})))


def test_optional_outcome_columns_may_be_absent(tmp_path, good_text):
    cohort = read_cohort(write(tmp_path, good_text.drop(columns=["os_months", "os_event"])))
    reasons = available_models(cohort)
    assert reasons["os"] == "the cohort has no os_months / os_event column"
    assert reasons["cr"] is None and reasons["efs"] is None


def test_unreadable_files(tmp_path):
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("patient_id,marrow_blasts_pct,mrd_positive\nJos\xe9,1,1\n".encode("latin-1"))
    with pytest.raises(CohortError, match="latin1.csv: is not UTF-8 text"):
        read_cohort(latin1)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(CohortError, match="empty.csv: is not a readable CSV file"):
        read_cohort(empty)
    header_only = tmp_path / "header.csv"
    header_only.write_text("patient_id,marrow_blasts_pct,mrd_positive\n")
    with pytest.raises(CohortError, match="header.csv: has no patient rows"):
        read_cohort(header_only)
    with pytest.raises(CohortError, match="nowhere.csv: file not found"):
        read_cohort(tmp_path / "nowhere.csv")


def test_the_cli_exits_non_zero_with_the_message(tmp_path, good_text):
    bad = good_text.copy()
    bad.loc[4, "marrow_blasts_pct"] = "150"
    path = write(tmp_path, bad)
    done = subprocess.run([sys.executable, "-m", "calculator.cli", "reproduce", "--cohort", str(path)],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "line 6 (patient_id R005), marrow_blasts_pct: must be between 0 and 100 (got 150.0)" in done.stderr
    assert "Traceback" not in done.stderr
