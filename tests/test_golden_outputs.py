"""Refactorings leave every number alone: predictions, the manifest and the report, byte for byte
(``predictor.json`` to a relative 1e-9: see ``tests/golden/outputs.py`` for why).

The stored outputs (``tests/golden/outputs.json``) were written by ``tests/golden/outputs.py``
from a bundle trained exactly as the session's test bundle is; see that module for when (and how)
they may be regenerated.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.golden.outputs import STORED, STORED_PREDICTOR, outputs  # noqa: E402

#: Floats may differ by this (relative) between BLAS kernels, and no more; quantities that are 0
#: in exact arithmetic (an apparent calibration intercept, say) by ABSOLUTE_TOLERANCE.
RELATIVE_TOLERANCE = 1e-9
ABSOLUTE_TOLERANCE = 1e-12


@pytest.fixture(scope="module")
def current(trained_bundle_path) -> dict:
    return json.loads(json.dumps(outputs(trained_bundle_path), sort_keys=True))


@pytest.fixture(scope="module")
def stored() -> dict:
    stored = json.loads(STORED.read_text(encoding="utf-8"))
    stored["predictor"] = json.loads(STORED_PREDICTOR.read_text(encoding="utf-8"))
    return stored


def differences(current, stored, path: str = "") -> list[str]:
    """Where two JSON values differ: structure, strings and integers exactly, floats beyond
    :data:`RELATIVE_TOLERANCE` of the larger magnitude plus :data:`ABSOLUTE_TOLERANCE`."""
    if isinstance(stored, float) and isinstance(current, (int, float)) and not isinstance(
            current, bool):
        allowed = RELATIVE_TOLERANCE * max(abs(stored), abs(current)) + ABSOLUTE_TOLERANCE
        return [] if abs(current - stored) <= allowed else [
            f"{path}: {current!r} != {stored!r}"]
    if type(current) is not type(stored):
        return [f"{path}: {type(current).__name__} != {type(stored).__name__}"]
    if isinstance(stored, dict):
        if set(current) != set(stored):
            return [f"{path}: keys {sorted(set(current) ^ set(stored))}"]
        return [d for key in stored for d in differences(current[key], stored[key], f"{path}/{key}")]
    if isinstance(stored, list):
        if len(current) != len(stored):
            return [f"{path}: length {len(current)} != {len(stored)}"]
        return [d for i, (c, s) in enumerate(zip(current, stored))
                for d in differences(c, s, f"{path}[{i}]")]
    return [] if current == stored else [f"{path}: {current!r} != {stored!r}"]


def test_predictor_json_is_unchanged_to_the_last_bits(current, stored):
    assert differences(current["predictor"], stored["predictor"])[:5] == []


def test_the_predictor_comparison_sees_a_change_beyond_rounding(stored):
    changed = json.loads(json.dumps(stored["predictor"]))
    coefficients = changed["models"]["cr"]["coef"]
    coefficients[0] *= 1 + 1e-7
    assert differences(changed, stored["predictor"]) != []
    coefficients[0] = stored["predictor"]["models"]["cr"]["coef"][0] * (1 + 1e-13)
    assert differences(changed, stored["predictor"]) == []


def test_every_answer_of_the_panel_is_unchanged(current, stored):
    assert current["answers"] == stored["answers"]


def test_the_manifest_numbers_are_unchanged(current, stored):
    assert differences(current["manifest"], stored["manifest"])[:5] == []


def test_the_reports_figures_are_byte_identical(current, stored):
    assert current["report_figures_sha256"] == stored["report_figures_sha256"]
    assert len(stored["report_figures_sha256"]) >= 8


def test_the_reports_text_is_unchanged_but_for_time_and_id(current, stored):
    assert current["report_text_sha256"] == stored["report_text_sha256"]
