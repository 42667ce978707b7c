"""Every `cart-risk` subcommand answers --help, and every option in it says what it does."""
from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from calculator.cli import build_parser, main


def subcommands() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_subcommand_is_covered():
    assert set(subcommands()) == {"reproduce", "train", "simulate", "report", "validate", "update",
                                  "predict", "score", "serve"}


@pytest.mark.parametrize("command", sorted(subcommands()))
def test_help_of_every_subcommand_lists_each_option_with_its_help(command, capsys):
    with pytest.raises(SystemExit) as stopped:
        main([command, "--help"])
    assert stopped.value.code == 0
    shown = capsys.readouterr().out
    for action in subcommands()[command]._actions:
        assert action.help and action.help.strip(), f"{command}: {action.dest} has no help"
        for flag in action.option_strings or [action.metavar]:
            assert flag in shown, f"{command}: {flag} missing from --help"


def test_predict_help_runs_as_the_installed_command():
    done = subprocess.run([sys.executable, "-m", "calculator.cli", "predict", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Marrow blasts (0-100 %)" in done.stdout and "Traceback" not in done.stderr
