"""Command line (issue 22, item 15): --json and --fhir exclusive, a closed pipe ends quietly with
141, score -o into a missing directory names the output, did-you-mean for mistyped options."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO

PATIENT = ["--blasts", "12", "--mrd-positive", "true", "--age-years", "30", "--sex", "M",
           "--ph-positive", "false", "--prior-hsct", "false", "--relapsed", "true"]


def _usage_error(argv, capsys) -> str:
    from calculator.cli import main

    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    return capsys.readouterr().err


def test_json_and_fhir_together_are_a_usage_error(trained_bundle_path, capsys):
    err = _usage_error(["predict", "--bundle", str(trained_bundle_path), *PATIENT,
                        "--json", "--fhir"], capsys)
    assert "--fhir: not allowed with argument --json" in err


@pytest.mark.parametrize("argv, hint", [
    (["predict", "--bundel", "x"], "--bundel: did you mean --bundle?"),
    (["predict", "--mrd-postive", "true"], "did you mean --mrd-positive?"),
    (["score", "in.csv", "-o", "x.csv", "--bundel", "b"], "did you mean --bundle?"),
    (["predcit"], "did you mean 'predict'?"),
])
def test_a_mistyped_option_or_command_gets_a_suggestion(argv, hint, capsys):
    assert hint in _usage_error(argv, capsys)


def test_an_option_like_nothing_gets_no_suggestion(capsys):
    err = _usage_error(["predict", "--zzzzzz"], capsys)
    assert "unrecognized arguments: --zzzzzz" in err and "did you mean" not in err


def test_a_reader_that_closes_the_pipe_ends_predict_quietly_with_141(trained_bundle_path):
    """Before: "cart-risk predict: Broken pipe" and exit 1 (``predict | head``)."""
    reader, writer = os.pipe()
    os.close(reader)  # the reader went away before anything was written
    try:
        done = subprocess.run(
            [sys.executable, "-m", "calculator.cli", "predict", "--bundle",
             str(trained_bundle_path), *PATIENT, "--fhir"],
            stdout=writer, stderr=subprocess.PIPE, cwd=REPO, timeout=120)
    finally:
        os.close(writer)
    assert done.returncode == 141
    assert done.stderr.decode() == ""


def test_score_into_a_missing_directory_names_the_output(trained_bundle_path, tmp_path, capsys):
    """Before: the message named the temporary file (.out.csv.xxxx.tmp)."""
    from calculator.cli import main

    source = tmp_path / "in.csv"
    source.write_text("marrow_blasts_pct,mrd_positive,age_years,sex,ph_positive,prior_hsct,"
                      "relapsed\n12,true,30,M,false,false,true\n")
    output = tmp_path / "missing" / "dir" / "out.csv"
    assert main(["score", "--bundle", str(trained_bundle_path), str(source),
                 "-o", str(output)]) == 1
    err = capsys.readouterr().err
    assert f"({output})" in err and "does not exist" in err and ".tmp" not in err
