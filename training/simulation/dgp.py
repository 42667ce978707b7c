"""The reconstruction's data-generating process, as a sampler with known true risks.

Patients are drawn the way :mod:`training.paper.reconstruction` builds its cohort
(``training/data/ASSUMPTIONS.md``), but independently, so that any number of cohorts can be drawn:

* burden subgroup a-e with the probabilities 13, 20, 13, 14, 18 out of 78 (A1);
* marrow blasts inside the subgroup: a 0 % (MRD-positive), b log-uniform 0.01-4.9 %,
  c log-uniform 5-19.5 %, d uniform 20-48 %, e uniform 50-95 %, rounded as the cohort (A5);
* baseline covariates independent of every outcome given the burden group (low = a, b; high =
  c, d, e): Table 1 proportions of the group; prior HSCT only in relapsed patients, with the
  group's HSCT count over its relapsed count (A6); age drawn from the committed cohort's ages of
  the same group (A8);
* CR and severe CRS independently, with the subgroup's rates (A1, A2); among CRs MRD-negative with
  the burden group's proportion 15/31 or 14/34 (A2);
* EFS and OS by the A10 mechanism (:func:`training.paper.reconstruction._survival_draw`) with
  administrative censoring at the data cut-off, infusion dates uniform over the enrolment window
  (A7).

Every outcome depends on the subgroup only, so a patient's true risk is a function of the
subgroup: exact for CR and severe CRS, and for the 12-month EFS / OS event risk a fixed-seed Monte
Carlo estimate over :data:`TRUE_RISK_DRAWS` patients per subgroup (standard error < 7.1e-4).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from training.paper import reconstruction as rec

SUBGROUPS = tuple(rec.SUBGROUP_SIZES)
N_RECONSTRUCTED = sum(rec.SUBGROUP_SIZES.values())
SUBGROUP_P = np.array([rec.SUBGROUP_SIZES[s] / N_RECONSTRUCTED for s in SUBGROUPS])
HIGH = {s: s in "cde" for s in SUBGROUPS}
CR_RATE = {s: 1.0 - rec.SUBGROUP_NR[s] / rec.SUBGROUP_SIZES[s] for s in SUBGROUPS}
SEVERE_CRS_RATE = {s: rec.SUBGROUP_SEVERE_CRS[s] / rec.SUBGROUP_SIZES[s] for s in SUBGROUPS}
MRD_NEG_GIVEN_CR = {"low": rec.MRD_NEG_CR["low"] / rec.CR_COUNTS["low"],
                    "high": rec.MRD_NEG_CR["high"] / rec.CR_COUNTS["high"]}
HORIZON_MONTHS = 12.0
TRUE_RISK_DRAWS = 500_000
TRUE_RISK_SEED = 20170201


def _group(letter: str) -> str:
    return "high" if HIGH[letter] else "low"


@lru_cache(maxsize=1)
def _reference_ages() -> dict[str, np.ndarray]:
    cohort = pd.read_csv(rec.DEFAULT_PATH)
    high = cohort["marrow_blasts_pct"].to_numpy(float) >= 5
    ages = cohort["age_years"].to_numpy(float)
    return {"low": ages[~high], "high": ages[high]}


def _blasts(rng: np.random.Generator, letters: np.ndarray) -> np.ndarray:
    out = np.zeros(letters.size)
    for letter, (low, high) in rec.SUBGROUP_BLAST_RANGE.items():
        rows = letters == letter
        u = rng.random(int(rows.sum()))
        if letter in "bc":
            values = 10 ** (np.log10(low) + u * (np.log10(high) - np.log10(low)))
        else:
            values = low + u * (high - low)
        out[rows] = np.round(values, 2 if letter == "b" else 1)
    return out


def _response(rng: np.random.Generator, letters: np.ndarray) -> np.ndarray:
    cr = rng.random(letters.size) < np.array([CR_RATE[s] for s in letters])
    neg = rng.random(letters.size) < np.array([MRD_NEG_GIVEN_CR[_group(s)] for s in letters])
    return np.where(~cr, "nr", np.where(neg, "mrd_neg_cr", "mrd_pos_cr"))


def sample_patients(rng: np.random.Generator, n: int, censor: bool = True) -> pd.DataFrame:
    """``n`` patients from the process, with outcomes and each one's true risks.

    Columns: burden_subgroup, marrow_blasts_pct, age_years, ph_positive, prior_hsct, relapsed,
    response, cr, severe_crs, efs_months, efs_event, os_months, os_event, and true_cr,
    true_severe_crs, true_efs, true_os (12-month event risks for the last two).
    """
    letters = np.array(SUBGROUPS)[rng.choice(len(SUBGROUPS), size=n, p=SUBGROUP_P)]
    group = np.array([_group(s) for s in letters])
    df = pd.DataFrame({"burden_subgroup": letters, "marrow_blasts_pct": _blasts(rng, letters)})
    ages = _reference_ages()
    age = np.zeros(n)
    for g in ("low", "high"):
        rows = group == g
        age[rows] = rng.choice(ages[g], size=int(rows.sum()))
    df["age_years"] = age
    index = {"low": 0, "high": 1}
    gi = np.array([index[g] for g in group])
    for name in ("ph_positive", "relapsed"):
        p = np.array(rec.TABLE1_COUNTS[name]) / np.array([rec.N["low"], rec.N["high"]])
        df[name] = (rng.random(n) < p[gi]).astype(int)
    hsct_given_relapsed = np.array(rec.TABLE1_COUNTS["prior_hsct"]) / np.array(rec.TABLE1_COUNTS["relapsed"])
    df["prior_hsct"] = ((rng.random(n) < hsct_given_relapsed[gi]) & (df["relapsed"] == 1)).astype(int)
    df["response"] = _response(rng, letters)
    df["cr"] = (df["response"] != "nr").astype(int)
    df["severe_crs"] = (rng.random(n) < np.array([SEVERE_CRS_RATE[s] for s in letters])).astype(int)
    if censor:
        follow_up = rng.uniform(rec.MIN_FOLLOW_UP, rec.MAX_FOLLOW_UP, n)
    else:
        follow_up = np.full(n, np.inf)
    survival = rec._survival_draw(rng, df, follow_up)
    df = pd.concat([df, survival], axis=1)
    risks = true_risks()
    for outcome, by_subgroup in risks.items():
        df[f"true_{outcome}"] = np.array([by_subgroup[s] for s in letters])
    return df


@lru_cache(maxsize=1)
def true_risks() -> dict[str, dict[str, float]]:
    """True risk of each outcome by subgroup: P(CR), P(severe CRS), P(EFS / OS event by 12 months)."""
    risks = {"cr": dict(CR_RATE), "severe_crs": dict(SEVERE_CRS_RATE), "efs": {}, "os": {}}
    for k, letter in enumerate(SUBGROUPS):
        rng = np.random.default_rng([TRUE_RISK_SEED, k])
        letters = np.full(TRUE_RISK_DRAWS, letter)
        df = pd.DataFrame({"marrow_blasts_pct": _blasts(rng, letters), "response": _response(rng, letters)})
        surv = rec._survival_draw(rng, df, np.full(TRUE_RISK_DRAWS, np.inf))
        risks["efs"][letter] = float(np.mean(surv["efs_months"].to_numpy() <= HORIZON_MONTHS))
        risks["os"][letter] = float(np.mean(surv["os_months"].to_numpy() <= HORIZON_MONTHS))
    return risks
