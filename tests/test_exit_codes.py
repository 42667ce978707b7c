"""Exit codes of docs/cli.md: 2 for input the command cannot work with, 1 for work that failed."""
from __future__ import annotations

import pytest

from calculator.cli import main
from model.defaults import DEFAULT_BOOTSTRAP, DEFAULT_SEED
from training.reproduce import default_cohort_path


@pytest.mark.parametrize("options, message", [
    (["--bootstrap", "0"], "--bootstrap must be 1 or more"),
    (["--jobs", "0"], "--jobs must be 1 or more"),
    (["--backend", "dask"], "--backend dask needs --scheduler ADDRESS"),
])
def test_bad_training_options_exit_2_naming_the_option(tmp_path, capsys, options, message):
    out = tmp_path / "bundle"
    code = main(["train", "--cohort", str(default_cohort_path()), "--out", str(out), *options])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_cohort_that_fails_the_schema_exits_2(tmp_path, capsys):
    bad = tmp_path / "cohort.csv"
    bad.write_text("patient_id,marrow_blasts_pct,mrd_positive\nP1,150,1\n", encoding="utf-8")
    assert main(["train", "--cohort", str(bad), "--out", str(tmp_path / "bundle")]) == 2
    assert "line 2 (patient_id P1), marrow_blasts_pct" in capsys.readouterr().err


def test_a_missing_bundle_exits_1(tmp_path, capsys):
    assert main(["report", "--bundle", str(tmp_path / "none"), "--out",
                 str(tmp_path / "r.html")]) == 1
    assert "no bundle directory here" in capsys.readouterr().err


def test_the_command_line_defaults_are_the_shared_ones():
    from calculator.cli import build_parser

    args = build_parser().parse_args(["train", "--cohort", "c.csv", "--out", "o"])
    assert (args.bootstrap, args.seed) == (DEFAULT_BOOTSTRAP, DEFAULT_SEED) == (200, 20170201)
