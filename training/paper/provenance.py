"""Recognising the packaged reconstructed cohort, so its synthetic origin is never lost."""
from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

from model.provenance import PROVENANCE_CENTER, PROVENANCE_RECONSTRUCTED


def default_cohort_path() -> Path:
    """The packaged reconstructed cohort (synthetic, from published aggregates)."""
    return Path(str(resources.files("training").joinpath("data/reconstructed_cohort.csv")))


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def provenance_of(path: str | Path) -> str:
    """The reconstructed label for the packaged cohort's exact bytes, else 'center-cohort'."""
    same = sha256_file(path) == sha256_file(default_cohort_path())
    return PROVENANCE_RECONSTRUCTED if same else PROVENANCE_CENTER
