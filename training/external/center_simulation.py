"""Simulated "center" cohorts whose truth is known: a bundle's own model, deliberately miscalibrated.

Covariates (blasts, MRD, age, sex, history fields) are resampled with replacement from the
bundle's training cohort; outcomes are drawn from the bundle's own predictions after a known
miscalibration (:class:`Miscalibration`):

* binary (CR, severe CRS): y ~ Bernoulli(expit(intercept + slope * lp)), lp the bundle's log-odds;
* survival (EFS, OS): event time from H(t | x) = hazard_ratio * H0(t) exp(lp), administrative
  censoring uniform between ``follow_up`` months (capped at the model's own follow-up).

So validating the bundle on such a cohort should find calibration-in-the-large ``intercept``,
calibration slope ``slope`` and log(O / E) = log(``hazard_ratio``), each inside its 95 % CI in
about 95 % of simulations, and updating should pick the matching method.

Simulated one model at a time (``models=("efs",)``) the truth is exact. Simulated together, EFS
and OS share one random draw a patient (so EFS ends first, as in real patients, and each keeps its
distribution), censoring is common to both, and the cohort schema's rules between columns apply:
a death ends event-free survival (EFS = min(EFS, OS)), a non-responder has an EFS event (at 1
month at the latest), and severe CRS is graded 3 or 4 (never 5): those rules perturb the EFS
truth a little. The result is synthetic, and its
``patient_id`` values say so (``SIM-0001``, ...).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit

from model.cohort import validate_cohort
from model.outcomes import NAMES
from training.development import bundle_models as bm

#: Baseline columns resampled from the training cohort (outcome columns are simulated or dropped).
BASELINE_COLUMNS = ("age_years", "sex", "ph_positive", "prior_therapy_ge_6mo", "prior_chemo_ge_3",
                    "prior_hsct", "relapsed", "tp53_mutation", "poor_cytogenetics", "tb_assessed",
                    "marrow_blasts_pct", "mrd_positive")
#: Months after infusion at which a non-responder's EFS event is recorded at the latest.
NO_RESPONSE_MONTHS = 1.0


@dataclass(frozen=True)
class Miscalibration:
    """The known truth of a simulated center, relative to the bundle's model.

    Attributes
    ----------
    intercept : added to the binary models' log-odds (0 = none)
    slope : multiplies the binary models' log-odds (1 = none)
    hazard_ratio : multiplies every patient's hazard in the survival models (1 = none)
    """

    intercept: float = 0.0
    slope: float = 1.0
    hazard_ratio: float = 1.0


def _event_times(H_steps: np.ndarray, months: np.ndarray, draw: np.ndarray) -> np.ndarray:
    """First jump time at which each patient's cumulative hazard reaches ``draw`` (inf: none).

    ``H_steps`` is (n, K): each patient's cumulative hazard just after each jump ``months``;
    ``draw`` is (n,) Exp(1).
    """
    reached = H_steps >= draw[:, None]
    first = reached.argmax(axis=1)
    return np.where(reached.any(axis=1), months[first], np.inf)


def simulate_center(params: dict, training_cohort: pd.DataFrame, n: int, seed: int,
                    truth: Miscalibration = Miscalibration(),
                    models: tuple[str, ...] = NAMES,
                    follow_up: tuple[float, float] = (12.0, 36.0)) -> pd.DataFrame:
    """A synthetic center cohort of ``n`` patients drawn from a bundle's models under ``truth``.

    Parameters
    ----------
    params : parsed ``predictor.json`` of the bundle
    training_cohort : the bundle's training cohort (validated; covariates are resampled from it)
    n : patients (>= 1)
    seed : seed of the numpy generator
    truth : the miscalibration applied before drawing outcomes
    models : which outcomes to simulate (each must be a model of the bundle)
    follow_up : (earliest, latest) administrative censoring, months

    Returns
    -------
    pandas.DataFrame
        A cohort that passes :func:`model.cohort.validate_cohort` (typed as it returns).
    """
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(training_cohort), size=n)
    columns = [c for c in BASELINE_COLUMNS if c in training_cohort.columns]
    df = training_cohort.iloc[rows][columns].reset_index(drop=True)
    df.insert(0, "patient_id", [f"SIM-{i + 1:04d}" for i in range(n)])
    # One Exp(1) draw a patient drives both survival outcomes (inversion with common random
    # numbers): each keeps its exact distribution, and EFS, whose hazard includes death's, ends
    # before OS as it does in real patients, instead of two independent clocks.
    shared_draw = rng.exponential(size=n)
    censor_draw = rng.uniform(*follow_up, size=n)
    for name in models:
        spec = params["models"][name]
        lp = bm.linear_predictor(spec, df)
        if spec["kind"] == "logistic":
            y = rng.random(n) < expit(truth.intercept + truth.slope * lp)
            if name == "cr":
                df["response"] = np.where(y, "mrd_neg_cr", "nr")
            else:
                df["crs_grade"] = np.where(y, rng.choice([3, 4], size=n),
                                           rng.choice([0, 1, 2], size=n))
            continue
        baseline = bm.baseline_hazard(spec, params["month_grid"])
        H = truth.hazard_ratio * baseline.cumulative_hazard[None, :] * np.exp(lp)[:, None]
        event_time = _event_times(H, baseline.months, shared_draw)
        censor = np.minimum(censor_draw, baseline.max_follow_up)
        df[f"{name}_months"] = np.round(np.maximum(np.minimum(event_time, censor), 0.01), 2)
        df[f"{name}_event"] = (event_time <= censor).astype(int)
    _consistent(df)
    text = df.astype(str).replace({"nan": ""})
    return validate_cohort(text, source="simulated center cohort")


def _consistent(df: pd.DataFrame) -> None:
    """Apply the cohort schema's rules between simulated outcome columns (see module docstring)."""
    if "response" in df and "efs_event" in df:
        nr = (df["response"] == "nr").to_numpy()
        late = nr & ((df["efs_event"] == 0) | (df["efs_months"] > NO_RESPONSE_MONTHS)).to_numpy()
        df.loc[late, "efs_months"] = np.minimum(df.loc[late, "efs_months"], NO_RESPONSE_MONTHS)
        df.loc[nr, "efs_event"] = 1
    if "os_months" in df and "efs_months" in df:
        dead = df["os_event"] == 1
        death_first = dead & ((df["efs_event"] == 0) | (df["os_months"] <= df["efs_months"]))
        df.loc[death_first, "efs_months"] = df.loc[death_first, "os_months"]
        df.loc[death_first, "efs_event"] = 1
        # An EFS event after the end of OS follow-up cannot be seen: censored there.
        unseen = df["efs_months"] > df["os_months"]
        df.loc[unseen, "efs_event"] = 0
        df.loc[unseen, "efs_months"] = df.loc[unseen, "os_months"]


def main(argv: list[str] | None = None) -> int:
    """``python -m training.external.center_simulation``: write a simulated center cohort CSV.

    The worked example of docs/validation-and-updating.md (``tests/data/synthetic_center_cohort.csv``) is::

        python -m training.external.center_simulation --bundle DIR --n 160 --seed 11 \\
            --intercept 1 --hazard-ratio 2 --out tests/data/synthetic_center_cohort.csv

    with DIR any bundle trained on the reconstructed cohort with the default seed (the point
    estimates, and so the cohort, do not depend on B).
    """
    import argparse

    from model.bundle import load_predictor
    from model.cohort import write_cohort
    from training.report.page import _training_cohort

    parser = argparse.ArgumentParser(prog="python -m training.external.center_simulation",
                                     description="Simulate a synthetic center cohort from a "
                                                 "bundle's own models with a known miscalibration.")
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--n", type=int, default=160)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--intercept", type=float, default=0.0)
    parser.add_argument("--slope", type=float, default=1.0)
    parser.add_argument("--hazard-ratio", type=float, default=1.0)
    args = parser.parse_args(argv)
    bundle = load_predictor(args.bundle)
    cohort = simulate_center(bundle.params, _training_cohort(bundle), args.n, args.seed,
                             Miscalibration(args.intercept, args.slope, args.hazard_ratio),
                             models=tuple(bundle.params["models"]))
    write_cohort(cohort, args.out)
    print(f"{args.n} simulated patients written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
