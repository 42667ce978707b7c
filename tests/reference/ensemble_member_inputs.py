"""Writes the inputs of ensemble_member_validation.R: member 0's CR model data and resamples.

Member 0 of the packaged ensemble (training/data/ensemble/), the CR model's columns
(log10_blasts, age_years, cr), and the 200 resamples (1-based rows) that
:func:`training.development.bootstrap.optimism_bootstrap` draws for it with seed 20170201 (the
default bundle's seed for member 0) when refitting by maximum likelihood. Run from the
repository root:

    .venv/bin/python tests/reference/ensemble_member_inputs.py
"""
from pathlib import Path

import numpy as np
import pandas as pd

from model.cohort import read_cohort
from model.defaults import DEFAULT_SEED
from model.features import design_matrix
from training.development.bootstrap import optimism_bootstrap
from training.development.methods import fit_logistic_method
from training.evaluation.metrics import evaluate_logistic
from training.paper.analyses import derive
from training.paper.ensemble import default_ensemble_dir, read_index

HERE = Path(__file__).parent
FEATURES = ("log10_blasts", "age_years")
REPLICATES = 200


def member0_cr() -> tuple[np.ndarray, np.ndarray]:
    """(X, y) of member 0's CR model: log10 blasts and age (original scale), CR 0/1."""
    _, paths = read_index(default_ensemble_dir())
    cohort = derive(read_cohort(paths[0]))
    return design_matrix(cohort, FEATURES), cohort["cr"].to_numpy(int)


def _fit(data):
    return fit_logistic_method("mle", data["X"], data["y"])


def _evaluate(fit, data):
    return evaluate_logistic(fit, data["X"], data["y"])


def mle_bootstrap():
    """The optimism bootstrap of member 0's CR model refitted by maximum likelihood."""
    X, y = member0_cr()
    return optimism_bootstrap(_fit, _evaluate, {"X": X, "y": y}, REPLICATES, DEFAULT_SEED)


if __name__ == "__main__":
    X, y = member0_cr()
    pd.DataFrame({"log10_blasts": X[:, 0], "age_years": X[:, 1], "cr": y}).to_csv(
        HERE / "ensemble_member0_cr.csv", index=False, float_format="%.17g")
    rows = mle_bootstrap().samples + 1
    np.savetxt(HERE / "ensemble_member0_resamples.csv", rows, fmt="%d", delimiter=",")
