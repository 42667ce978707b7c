"""Synthetic cohorts and patients for the benchmarks, generated from the reconstructed cohort.

The reconstruction (``training/paper/reconstruction.py``) is not a generative model that could simply
be run at a larger n: it searches, for exactly 78 patients, for the one arrangement whose counts
and P values equal the paper's. Larger cohorts are therefore made by resampling its rows with
replacement (seeded) and jittering every continuous value, so that the copies are not exact ties
while every row stays valid under the cohort schema:

- age: + normal noise (SD 2 years), rounded to whole years, clipped to 1-99;
- marrow blasts: 0 % stays 0 % (subgroup a, MRD positive); otherwise multiplied by exp(N(0, 0.1)),
  clipped to 0.01-100 % and rounded to 2 decimals (a patient can cross a subgroup edge);
- EFS and OS months: both multiplied by the same exp(N(0, 0.05)) factor, so EFS <= OS and the order
  of events is kept; event indicators, response and grades are copied unchanged;
- IL-6 and CAR copies: multiplied by exp(N(0, 0.1)).

The copies carry the reconstructed cohort's assumptions (``training/data/ASSUMPTIONS.md``) and
its event rates; they measure speed only.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from model.cohort import read_cohort, validate_cohort, write_cohort
from model.patient import PATIENT_FIELDS

REPO = Path(__file__).resolve().parents[1]
COHORT = REPO / "training" / "data" / "reconstructed_cohort.csv"


def enlarged_cohort(n: int, seed: int = 1) -> pd.DataFrame:
    """``n`` patients resampled with replacement from the reconstructed cohort, with jitter.

    Parameters
    ----------
    n : int
        Number of patients (rows) to generate.
    seed : int
        Seed of the generator (resampling and jitter).

    Returns
    -------
    pandas.DataFrame
        A cohort with every column of the reconstructed one; passes
        :func:`model.cohort.validate_cohort`.
    """
    rng = np.random.default_rng(seed)
    base = read_cohort(COHORT)
    df = base.iloc[rng.integers(0, len(base), size=n)].reset_index(drop=True)
    df["patient_id"] = [f"S{i + 1:07d}" for i in range(n)]
    df["age_years"] = np.clip(np.round(df["age_years"] + rng.normal(0, 2, n)), 1, 99)
    blasts = df["marrow_blasts_pct"].to_numpy(float)
    jittered = np.round(np.clip(blasts * np.exp(rng.normal(0, 0.1, n)), 0.01, 100.0), 2)
    df["marrow_blasts_pct"] = np.where(blasts > 0, jittered, 0.0)
    stretch = np.exp(rng.normal(0, 0.05, n))
    for column in ("efs_months", "os_months"):
        df[column] = np.clip(np.round(df[column] * stretch, 2), 0.01, 360.0)
    for column in ("il6_peak_pg_ml", "cart_peak_copies_per_ug"):
        df[column] = np.round(df[column] * np.exp(rng.normal(0, 0.1, n)), 1)
    return df


def write_enlarged_cohort(n: int, path: Path, seed: int = 1) -> Path:
    """Write :func:`enlarged_cohort` (``n`` patients) as a validated cohort CSV at ``path``."""
    write_cohort(validate_cohort(enlarged_cohort(n, seed).astype(str), str(path)), path)
    return Path(path)


def patient_columns(n: int, fields, seed: int = 2) -> dict[str, np.ndarray]:
    """``n`` generated patients as the predictor's input: field -> typed array.

    Parameters
    ----------
    n : int
    fields : iterable of str
        Patient fields to return (e.g. a bundle's ``required_fields``).
    seed : int

    Returns
    -------
    dict of str -> numpy.ndarray
        Numbers as float, yes/no fields as bool, choices as str.
    """
    df = enlarged_cohort(n, seed)
    kinds = {"number": float, "boolean": bool, "choice": str}
    return {name: df[name].to_numpy().astype(kinds[PATIENT_FIELDS[name].kind]) for name in fields}


def write_patient_csv(n: int, path: Path, seed: int = 2) -> Path:
    """A CSV for ``cart-risk score``: ``patient_id`` and every API field, ``n`` generated rows."""
    df = enlarged_cohort(n, seed)
    columns = ["patient_id"] + [name for name in PATIENT_FIELDS if name in df.columns]
    booleans = [name for name in columns[1:] if PATIENT_FIELDS[name].kind == "boolean"]
    df[booleans] = df[booleans].astype(int).replace({1: "true", 0: "false"})
    df[columns].to_csv(path, index=False)
    return Path(path)
