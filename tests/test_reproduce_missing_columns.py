"""``cart-risk reproduce --cohort`` with each optional column missing in turn (issue 15, item 7).

Every statistic that needs the dropped column (directly, through a derived column or a stratum)
is marked unavailable, naming the column; every other statistic is recomputed exactly as on the
full cohort. Before, dropping ``tb_assessed`` or ``efs_months`` ended in a KeyError traceback.
"""
from __future__ import annotations

import json

import pytest

from calculator.cli import main
from model.cohort import COLUMNS, REQUIRED_COLUMNS, read_cohort
from training.paper.analyses import load_published
from training.reproduce import default_cohort_path

#: Columns the analyses derive, and the cohort columns each is computed from.
DERIVED_FROM = {"cr": ["response"], "severe_crs": ["crs_grade"],
                "neurotoxicity": ["neurotox_grade"], "efs": ["efs_months", "efs_event"],
                "os": ["os_months", "os_event"], "burden_group": [], "burden_subgroup": []}
OPTIONAL = [column for column in COLUMNS if column not in REQUIRED_COLUMNS]


def _needs(entry: dict) -> set[str]:
    names = [entry.get("variable"), entry.get("by")]
    needed = {column for name in names if name for column in DERIVED_FROM.get(name, [name])}
    return needed | ({"tb_assessed"} if entry.get("stratum") else set())


def _reproduce(path, capsys) -> dict:
    assert main(["reproduce", "--cohort", str(path), "--json"]) == 0
    return {row["id"]: row for row in json.loads(capsys.readouterr().out)["statistics"]}


@pytest.fixture(scope="module")
def cohort():
    return read_cohort(default_cohort_path())


def test_each_optional_column_dropped_in_turn(cohort, tmp_path, capsys):
    full = _reproduce(default_cohort_path(), capsys)
    entries = {entry["id"]: entry for entry in load_published()["statistics"]}
    for column in OPTIONAL:
        path = tmp_path / f"without_{column}.csv"
        cohort.drop(columns=[column]).to_csv(path, index=False)
        rows = _reproduce(path, capsys)
        needing = {key for key, entry in entries.items() if column in _needs(entry)}
        assert needing, column  # every optional column feeds some published statistic
        for key, row in rows.items():
            if key in needing:
                assert row["recomputed"] is None and row["match"] is None, (column, row)
                assert row["note"].startswith("unavailable: cohort has no ") and \
                    column in row["note"], (column, row)
            else:
                assert row["recomputed"] == full[key]["recomputed"], (column, key)
