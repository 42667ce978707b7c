"""Refactorings leave every number alone: predictions, the manifest and the report, byte for byte.

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
from tests.golden.outputs import STORED, outputs  # noqa: E402


@pytest.fixture(scope="module")
def current(trained_bundle_path) -> dict:
    return json.loads(json.dumps(outputs(trained_bundle_path), sort_keys=True))


@pytest.fixture(scope="module")
def stored() -> dict:
    return json.loads(STORED.read_text(encoding="utf-8"))


def test_predictor_json_is_byte_identical(current, stored):
    assert current["predictor_sha256"] == stored["predictor_sha256"]


def test_every_answer_of_the_panel_is_unchanged(current, stored):
    assert current["answers"] == stored["answers"]


def test_the_manifest_numbers_are_unchanged(current, stored):
    for key in stored["manifest"]:
        assert current["manifest"].get(key) == stored["manifest"][key], key
    assert set(current["manifest"]) == set(stored["manifest"])


def test_the_reports_figures_are_byte_identical(current, stored):
    assert current["report_figures_sha256"] == stored["report_figures_sha256"]
    assert len(stored["report_figures_sha256"]) >= 8


def test_the_reports_text_is_unchanged_but_for_time_and_id(current, stored):
    assert current["report_text_sha256"] == stored["report_text_sha256"]
