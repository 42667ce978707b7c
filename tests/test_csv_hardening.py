"""A center's CSV, careless or hostile, given to ``score`` and ``train`` (issue 15 items 4, 5, 8;
CSV injection from issue 14)."""
from __future__ import annotations

import csv
import os
import stat

import pytest

from calculator.cli import main
from calculator.scoring import MAX_REPORTED_HEADER_PROBLEMS
from training.reproduce import default_cohort_path


def _as_text(value) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _patients_csv(path, patient, n, *, ids=None, quoting=csv.QUOTE_MINIMAL):
    ids = ids or [f"P{i}" for i in range(n)]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n", quoting=quoting)
        writer.writerow(["patient_id", *patient])
        for identifier in ids:
            writer.writerow([identifier, *map(_as_text, patient.values())])
    return path


def _score(bundle, source, out):
    return main(["score", "--bundle", str(bundle), str(source), "-o", str(out)])


def test_a_million_unknown_columns_get_a_capped_report(trained_bundle_path, patient, tmp_path,
                                                       capsys):
    """Before: quadratic (did not finish in 60 s), and 20,000 columns printed 4.5 MB."""
    source = tmp_path / "wide.csv"
    names = ["patient_id", *patient, *(f"extra_column_{i}" for i in range(1_000_000))]
    source.write_text(",".join(names) + "\n" + ",".join(["P1", *map(_as_text, patient.values())])
                      + "\n", encoding="utf-8")
    assert _score(trained_bundle_path, source, tmp_path / "out.csv") == 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == MAX_REPORTED_HEADER_PROBLEMS + 1, err[:2000]
    assert lines[0] == "cart-risk score: extra_column_0: unknown column; known fields are " \
        + ", ".join(__import__("model.patient", fromlist=["x"]).PATIENT_FIELDS)
    assert lines[-1] == (f"cart-risk score: wide.csv: ... and "
                         f"{1_000_000 - MAX_REPORTED_HEADER_PROBLEMS} more column problems in a "
                         f"header of {len(names):,} columns")
    assert not (tmp_path / "out.csv").exists()


def test_a_stray_quote_is_an_error_naming_its_line(trained_bundle_path, patient, tmp_path,
                                                   capsys):
    """Before: the quote merged the next 98 patients into one cell ("1 of 2 rows failed")."""
    source = _patients_csv(tmp_path / "in.csv", patient, 100)
    lines = source.read_text().splitlines(keepends=True)
    lines[2] = '"' + lines[2]  # patient P1, line 3
    source.write_text("".join(lines))
    out = tmp_path / "out.csv"
    out.write_text("earlier output\n")
    assert _score(trained_bundle_path, source, out) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cart-risk score: {source}: line 3: not valid CSV"), err
    assert err.count("\n") == 1
    assert out.read_text() == "earlier output\n"


def test_a_quote_closing_many_lines_later_is_refused_too(trained_bundle_path, patient, tmp_path,
                                                         capsys):
    source = _patients_csv(tmp_path / "in.csv", patient, 20)
    lines = source.read_text().splitlines(keepends=True)
    lines[2] = '"' + lines[2]
    lines[12] = lines[12].rstrip("\n") + '"\n'  # closes the cell cleanly ten lines on
    source.write_text("".join(lines))
    assert _score(trained_bundle_path, source, tmp_path / "out.csv") == 2
    assert "line 3: a quoted cell runs over 11 lines (to line 13)" in capsys.readouterr().err


FORMULAS = ["=HYPERLINK(\"http://x\",\"y\")", "+41 22", "-3+2", "@SUM(A1)", "\tP9", "\rP10"]


def test_formula_identifiers_are_neutralized_in_the_output(trained_bundle_path, patient,
                                                           tmp_path):
    source = _patients_csv(tmp_path / "in.csv", patient, len(FORMULAS) + 1,
                           ids=[*FORMULAS, "plain"], quoting=csv.QUOTE_ALL)
    out = tmp_path / "out.csv"
    assert _score(trained_bundle_path, source, out) == 0
    with open(out, newline="", encoding="utf-8") as handle:
        ids = [row["patient_id"] for row in csv.DictReader(handle)]
    assert ids == ["'" + identifier for identifier in FORMULAS] + ["plain"]


def test_score_output_keeps_the_mode_of_a_file_it_replaces(trained_bundle_path, patient,
                                                           tmp_path):
    source = _patients_csv(tmp_path / "in.csv", patient, 2)
    fresh = tmp_path / "fresh.csv"
    assert _score(trained_bundle_path, source, fresh) == 0
    assert stat.S_IMODE(os.stat(fresh).st_mode) == 0o600  # new: holds patient data
    shared = tmp_path / "shared.csv"
    shared.write_text("old\n")
    os.chmod(shared, 0o640)
    assert _score(trained_bundle_path, source, shared) == 0
    assert stat.S_IMODE(os.stat(shared).st_mode) == 0o640


@pytest.mark.parametrize("extra, expected", [
    (",surplus", "line 6 has 23 cells but the header has 22 (an extra comma?)"),
    (None, "line 6 has 21 cells but the header has 22 (a missing comma?)"),
])
def test_train_reports_a_row_with_the_wrong_number_of_cells_once(tmp_path, capsys, extra,
                                                                 expected):
    """Before: 829 shifted-column errors for one extra cell."""
    lines = default_cohort_path().read_text(encoding="utf-8").splitlines(keepends=True)
    assert len(lines[0].split(",")) == 22
    row = lines[5].rstrip("\n")
    lines[5] = (row + extra if extra else row.rsplit(",", 1)[0]) + "\n"
    source = tmp_path / "cohort.csv"
    source.write_text("".join(lines), encoding="utf-8")
    out = tmp_path / "bundle"
    assert main(["train", "--cohort", str(source), "--out", str(out), "--bootstrap", "2"]) == 2
    err = capsys.readouterr().err
    assert err == f"cart-risk train: {source}: {expected}\n"
    assert not out.exists()
