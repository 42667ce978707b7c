"""Cohort CSV size limits (issue 22, item 13): refused before parsing, one line naming the limit."""
from __future__ import annotations

import pytest

from model.cohort import (MAX_COHORT_BYTES, MAX_COHORT_COLUMNS, MAX_COHORT_ROWS, COLUMNS,
                          CohortError, read_cohort)

HEADER = "patient_id,marrow_blasts_pct,mrd_positive\n"




def test_a_hundred_thousand_columns_are_refused_from_the_header_line(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"c{i}" for i in range(1_000_000 // 10)) + "\n1\n")
    message = str(_error(path))
    assert f"the limit is {MAX_COHORT_COLUMNS}" in message and "100,000 columns" in message


def test_a_wide_line_after_the_header_is_refused(tmp_path):
    path = tmp_path / "wide-row.csv"
    path.write_text(HEADER + "R1,12,1" + ",x" * 5000 + "\n")
    assert f"line 2 has 5,003 cells; the limit is {MAX_COHORT_COLUMNS}" in str(_error(path))


def test_too_many_rows_are_refused_while_reading(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text(HEADER + "".join(f"R{i},12,1\n" for i in range(MAX_COHORT_ROWS + 5)))
    assert f"more than {MAX_COHORT_ROWS:,} patient rows" in str(_error(path))


def test_the_row_limit_itself_is_accepted(tmp_path):
    path = tmp_path / "at-limit.csv"
    path.write_text(HEADER + "".join(f"R{i},12,1\n" for i in range(MAX_COHORT_ROWS)))
    assert len(read_cohort(path)) == MAX_COHORT_ROWS


def test_a_file_over_the_byte_limit_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "big.csv"
    with open(path, "w") as handle:
        handle.write(HEADER)
        handle.truncate(MAX_COHORT_BYTES + 1)  # sparse: its size is what is checked
    assert "the limit is 8 MiB" in str(_error(path))


def test_the_limits_leave_room_for_every_known_column():
    assert MAX_COHORT_COLUMNS >= len(COLUMNS)


def test_the_command_line_says_it_in_one_line(tmp_path, trained_bundle_path, capsys):
    from calculator.cli import main

    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"c{i}" for i in range(10_000)) + "\n")
    code = main(["validate", "--bundle", str(trained_bundle_path), "--cohort", str(path)])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1
    assert f"the limit is {MAX_COHORT_COLUMNS}" in err


def _error(path) -> CohortError:
    with pytest.raises(CohortError) as caught:
        read_cohort(path)
    return caught.value
