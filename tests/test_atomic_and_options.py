"""One atomic-write helper (model/atomic.py) and one rule set for training options (training/options.py)."""
from __future__ import annotations

import stat

import pytest

from calculator.cli import main
from model.atomic import atomic_path, write_atomic
from model.outcomes import BY_NAME, NAMES, OUTCOMES, SURVIVAL_NAMES, of_kind
from training.options import OptionError, training_options
from training.reproduce import default_cohort_path


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "report.html"
    write_atomic(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            temporary.write_text("half", encoding="utf-8")
            raise RuntimeError("the writer died")
    assert target.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_keep_existing_keeps_the_first_file_and_private_files_are_0600(tmp_path):
    key = tmp_path / "secret_key"
    with atomic_path(key, keep_existing=True, private=True) as temporary:
        temporary.write_text("first\n", encoding="ascii")
    with atomic_path(key, keep_existing=True, private=True) as temporary:
        temporary.write_text("second\n", encoding="ascii")
    assert key.read_text(encoding="ascii") == "first\n"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]


@pytest.mark.parametrize("options, option", [
    ({"bootstrap": 0, "jobs": 1}, "bootstrap"),
    ({"bootstrap": 10, "jobs": 0}, "jobs"),
    ({"bootstrap": 10, "jobs": -1}, "jobs"),
    ({"bootstrap": 10, "jobs": 1.5}, "jobs"),
    ({"bootstrap": 10, "jobs": 1, "backend": "ray"}, "backend"),
    ({"bootstrap": 10, "jobs": 1, "backend": "dask"}, "backend"),
    ({"bootstrap": 10, "jobs": 1, "backend": "loky", "scheduler": "tcp://h:8786"}, "scheduler"),
    ({"bootstrap": 10, "jobs": 1, "methods": {"cox": "heuristic_shrinkage_fallback"}}, "method"),
])
def test_the_library_refuses_what_the_command_line_refuses_naming_the_option(options, option):
    with pytest.raises(OptionError) as error:
        training_options(**options)
    assert error.value.option == option
    assert str(error.value).startswith(option + " ")


def test_update_refuses_a_bad_bootstrap_as_bad_input(tmp_path, capsys):
    code = main(["update", "--bundle", str(tmp_path / "none"), "--cohort",
                 str(default_cohort_path()), "--out", str(tmp_path / "out"), "--bootstrap", "0"])
    assert code == 2
    assert "cart-risk update: --bootstrap must be 1 or more" in capsys.readouterr().err


def test_the_registry_orders_every_answer_and_groups_outcomes_by_kind():
    assert NAMES == tuple(outcome.name for outcome in OUTCOMES)
    assert of_kind("logistic") + of_kind("cox") == NAMES
    for name in SURVIVAL_NAMES:
        assert BY_NAME[name].cohort_columns == (f"{name}_months", f"{name}_event")
        assert BY_NAME[name].horizons_months
