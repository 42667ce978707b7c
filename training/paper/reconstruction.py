"""Reconstruct a 78-patient cohort that reproduces every number Li et al. publish.

The paper's individual patient data are not public. This generator writes a synthetic cohort,
deterministic for a given seed, whose counts, percentages and P values (computed with the
paper's tests by :mod:`training.paper.analyses`) equal the published ones. Every choice the paper
does not determine is an assumption, listed in ``training/data/ASSUMPTIONS.md`` and named in
the constants below. Nothing here is patient data.

Run ``python -m training.paper.reconstruction`` to rewrite ``training/data/reconstructed_cohort.csv``
(byte for byte the committed file). Other admissible choices of the assumptions
(:mod:`training.paper.assumptions`) give other cohorts that reproduce the same numbers; the training
ensemble (:mod:`training.paper.ensemble`) is made of them.
"""
from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from model.cohort import write_cohort, validate_cohort
from model.defaults import DEFAULT_SEED
from training.paper.assumptions import (DOCUMENTED, SUBGROUPS, Assumptions, ImpossibleAssumption,
                                  check_assumptions)
from training.paper.targets import Targets
from training.paper.t_test_tuning import tune_shift as _tune_shift
from training.paper.survival_search import (draw_survival, logrank_p, survival_failures, tune_survival,
                                     worth_tuning)

DATA_DIR = Path(__file__).parents[1] / "data"
DEFAULT_PATH = DATA_DIR / "reconstructed_cohort.csv"

# --- Published (Table 1 and Results): counts by burden group (low, high) -------------------
N = {"low": 33, "high": 45}
TABLE1_COUNTS = {
    "male": (15, 23), "ph_positive": (9, 5), "prior_therapy_ge_6mo": (26, 28),
    "prior_chemo_ge_3": (25, 30), "prior_hsct": (11, 8), "relapsed": (28, 29),
    "tb_after_fc": (8, 13), "tp53_mutation": (1, 2), "poor_cytogenetics": (11, 13),
}
AGE_SUMMARY = {"low": (32, 10, 73), "high": (30, 9, 68)}  # median, min, max (years)
AGE_P = 0.4283
CR_COUNTS = {"low": 31, "high": 34}  # derived: 93.94 % of 33, 75.56 % of 45
MRD_NEG_CR_TOTAL = 29
IL6_P, CART_P = 0.0427, 0.2951

# --- Derived by exhaustive search (training.paper.derivations) -----------------------------------
SEVERE_CRS = {"low": 4, "high": 19}  # unique solution of Fisher P = 0.0053 with high > low

# --- Assumptions (ASSUMPTIONS.md explains each) ---------------------------------------------
# The documented choice (training.paper.assumptions.DOCUMENTED), by subgroup and by group.
SUBGROUP_SIZES = dict(zip(SUBGROUPS, DOCUMENTED.subgroup_sizes))                  # A1
SUBGROUP_SEVERE_CRS = dict(zip(SUBGROUPS, DOCUMENTED.subgroup_severe_crs))        # A1
SUBGROUP_NR = dict(zip(SUBGROUPS, DOCUMENTED.subgroup_nr))                        # A2
MRD_NEG_CR = dict(zip(("low", "high"), DOCUMENTED.mrd_neg_cr))                    # A2
CRS_GRADE_COUNTS = {"low": DOCUMENTED.crs_grades_low, "high": DOCUMENTED.crs_grades_high}  # A3
SUBGROUP_GRADE4 = dict(zip(SUBGROUPS, DOCUMENTED.subgroup_grade4))                # A3
NEUROTOX_COUNTS = {"low": (30, 2, 1, 0), "high": (41, 2, 1, 1)}          # A4 grades 0..3
SUBGROUP_BLAST_RANGE = {"b": (0.01, 4.9), "c": (5.0, 19.5), "d": (20.0, 48.0), "e": (50.0, 95.0)}  # A5
ENROLMENT = (date(2017, 2, 1), date(2020, 5, 31))                        # published
DATA_CUTOFF = date(2021, 6, 30)                                           # A7
SURVIVAL_DRAW_LIMIT = 20000
#: Draws tried (each tuned) when the survival search is "tuned" (sampled assumptions).
TUNED_DRAW_LIMIT = 3000
#: Fresh draws of IL-6 / CAR-T values tried before giving up on the printed t-test P.
LAB_DRAW_LIMIT = 50


def _months_between(start: date, end: date) -> float:
    return (end - start).days / (365.25 / 12)


MAX_FOLLOW_UP = _months_between(ENROLMENT[0], DATA_CUTOFF)
MIN_FOLLOW_UP = _months_between(ENROLMENT[1], DATA_CUTOFF)


def _spread(low: float, high: float, n: int, log: bool) -> np.ndarray:
    """n values at the mid-quantiles of a uniform (or log-uniform) distribution on [low, high]."""
    q = (np.arange(n) + 0.5) / n
    if log:
        return 10 ** (np.log10(low) + q * (np.log10(high) - np.log10(low)))
    return low + q * (high - low)


def _random_spread(rng, low: float, high: float, n: int, log: bool) -> np.ndarray:
    """n sorted independent uniform (or log-uniform) draws on [low, high]."""
    q = np.sort(rng.random(n))
    if log:
        return 10 ** (np.log10(low) + q * (np.log10(high) - np.log10(low)))
    return low + q * (high - low)


def _blasts(assumptions: Assumptions = DOCUMENTED, rng=None) -> tuple[np.ndarray, np.ndarray]:
    """Subgroup letters and blast percentages, low-burden patients first (A5)."""
    letters, blasts = [], []
    for letter, size in zip(SUBGROUPS, assumptions.subgroup_sizes):
        letters += [letter] * size
        if letter == "a":
            blasts += [0.0] * size
        else:
            low, high = SUBGROUP_BLAST_RANGE[letter]
            digits = 2 if letter == "b" else 1
            if assumptions.blast_spread == "quantiles":
                values = _spread(low, high, size, log=letter in "bc")
            else:
                values = _random_spread(rng, low, high, size, log=letter in "bc")
            blasts += list(np.round(values, digits))
    return np.array(letters), np.array(blasts)


def _assign(rng: np.random.Generator, n: int, k: int, allowed: np.ndarray | None = None) -> np.ndarray:
    """0/1 vector with exactly k ones at random positions (only where ``allowed``)."""
    pool = np.flatnonzero(np.ones(n, bool) if allowed is None else allowed)
    out = np.zeros(n, int)
    out[rng.choice(pool, size=k, replace=False)] = 1
    return out


def _covariates(rng, group: np.ndarray, table1: dict[str, tuple[int, int]] = TABLE1_COUNTS) -> pd.DataFrame:
    cols: dict[str, np.ndarray] = {}
    for name, counts in table1.items():
        if name == "prior_hsct":
            continue
        col = np.zeros(len(group), int)
        for g, k in zip(("low", "high"), counts):
            idx = np.flatnonzero(group == g)
            col[idx] = _assign(rng, len(idx), k)
        cols[name] = col
    # A6: a transplanted patient who needs CAR-T has relapsed after HSCT.
    hsct = np.zeros(len(group), int)
    for g, k in zip(("low", "high"), table1["prior_hsct"]):
        idx = np.flatnonzero(group == g)
        hsct[idx] = _assign(rng, len(idx), k, allowed=cols["relapsed"][idx] == 1)
    cols["prior_hsct"] = hsct
    return pd.DataFrame(cols)


def _t_test_p(ages: np.ndarray, low: np.ndarray) -> np.ndarray:
    """Student t-test P, low vs high, for each row of ``ages`` (candidates x patients)."""
    n1, n2 = low.sum(), (~low).sum()
    m1, m2 = ages[:, low].mean(1), ages[:, ~low].mean(1)
    ss = ((ages[:, low] - m1[:, None]) ** 2).sum(1) + ((ages[:, ~low] - m2[:, None]) ** 2).sum(1)
    t = (m1 - m2) / np.sqrt(ss / (n1 + n2 - 2) * (1 / n1 + 1 / n2))
    return 2 * stats.t.sf(np.abs(t), n1 + n2 - 2)


def _group_ages(rng, n: int, median: float, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Sorted whole-year starting ages of one group with the printed median and range, and each
    position's (lowest, highest) allowed age; for an even group the two middle ages straddle a
    half-year median."""
    pool = np.round(rng.normal(median, 15, 4 * n))
    draws = np.sort(pool[(pool > lo) & (pool < hi)][:n])
    if n % 2:
        draws[0], draws[-1], draws[n // 2] = lo, hi, median
        draws[: n // 2] = np.minimum(draws[: n // 2], median)
        draws[n // 2 + 1:] = np.maximum(draws[n // 2 + 1:], median)
        bounds = [(lo, median)] * (n // 2) + [(median, median)] + [(median, hi)] * (n - n // 2 - 1)
    else:
        if draws.size < n:
            raise RuntimeError("age tuning: too few starting ages inside the printed range")
        below, above = np.floor(median), np.ceil(median)
        draws[0], draws[-1] = lo, hi
        draws[n // 2 - 1], draws[n // 2] = below, above
        draws[: n // 2 - 1] = np.minimum(draws[: n // 2 - 1], below)
        draws[n // 2 + 1:] = np.maximum(draws[n // 2 + 1:], above)
        bounds = ([(lo, below)] * (n // 2 - 1) + [(below, below), (above, above)]
                  + [(above, hi)] * (n - n // 2 - 1))
    bounds = np.array(bounds, float)
    bounds[[0, -1]] = [(lo, lo), (hi, hi)]
    return np.sort(draws), bounds


def _ages(rng, group: np.ndarray, summary: dict[str, tuple[float, float, float]] = AGE_SUMMARY,
          target_p: float = AGE_P) -> np.ndarray:
    """Whole-year ages with the printed medians and ranges, tuned to the printed t-test P (A8).

    Starting from normal draws around each median, a greedy search moves ages by one year
    (singly, or one up and one down in the same group, which changes only the spread) until the
    unpaired t test gives the printed P; minimum, median and maximum never move.
    """
    ages = np.zeros(len(group))
    low = group == "low"
    bounds = np.zeros((len(group), 2))
    for g, (median, lo, hi) in summary.items():
        idx = np.flatnonzero(group == g)
        ages[idx], bounds[idx] = _group_ages(rng, len(idx), median, lo, hi)
    n = len(ages)
    moves = [np.eye(n), -np.eye(n)]
    for g in (low, ~low):
        i, j = np.meshgrid(np.flatnonzero(g), np.flatnonzero(g), indexing="ij")
        keep = (i != j).ravel()
        pair = np.zeros((keep.sum(), n))
        pair[np.arange(keep.sum()), i.ravel()[keep]] = 1
        pair[np.arange(keep.sum()), j.ravel()[keep]] = -1
        moves.append(pair)
    moves = np.vstack(moves)
    for _ in range(500):
        p = _t_test_p(ages[None, :], low)[0]
        if round(p, 4) == target_p:
            # Shuffle within each group (the P does not change) so age is unrelated to burden.
            for g in (low, ~low):
                ages[g] = rng.permutation(ages[g])
            return ages
        candidates = ages[None, :] + moves
        ok = np.all((candidates >= bounds[:, 0]) & (candidates <= bounds[:, 1]), axis=1)
        gaps = np.abs(_t_test_p(candidates[ok], low) - target_p)
        best = np.argmin(gaps)
        if gaps[best] >= abs(p - target_p):
            break
        ages = candidates[ok][best]
    raise RuntimeError("age tuning did not reach the printed P")


def _crs_and_response(rng, letters: np.ndarray, group: np.ndarray,
                      assumptions: Assumptions = DOCUMENTED) -> pd.DataFrame:
    n = len(letters)
    crs = np.full(n, -1)
    response = np.empty(n, dtype=object)
    a = assumptions
    for k, (letter, size) in enumerate(zip(SUBGROUPS, a.subgroup_sizes)):
        idx = np.flatnonzero(letters == letter)
        severe = idx[_assign(rng, size, a.subgroup_severe_crs[k]).astype(bool)]
        grade4 = rng.choice(severe, a.subgroup_grade4[k], replace=False)
        crs[severe] = 3
        crs[grade4] = 4
        nr = idx[_assign(rng, size, a.subgroup_nr[k]).astype(bool)]
        response[idx] = "cr"
        response[nr] = "nr"
    grades = {"low": a.crs_grades_low, "high": a.crs_grades_high}
    mrd_neg = dict(zip(("low", "high"), a.mrd_neg_cr))
    for g in ("low", "high"):
        idx = np.flatnonzero((group == g) & (crs < 0))
        counts = grades[g][:3]
        crs[idx] = rng.permutation(np.repeat([0, 1, 2], counts))
        cr_idx = np.flatnonzero((group == g) & (response == "cr"))
        neg = rng.choice(cr_idx, mrd_neg[g], replace=False)
        response[cr_idx] = "mrd_pos_cr"
        response[neg] = "mrd_neg_cr"
    return pd.DataFrame({"crs_grade": crs, "response": response})


def _neurotox(rng, group: np.ndarray, counts: dict[str, tuple[int, ...]] = NEUROTOX_COUNTS) -> np.ndarray:
    out = np.zeros(len(group), int)
    for g in ("low", "high"):
        idx = np.flatnonzero(group == g)
        out[idx] = rng.permutation(np.repeat(np.arange(4), counts[g]))
    return out


def _labs(rng, df: pd.DataFrame, group: np.ndarray, il6_p: float = IL6_P,
          cart_p: float = CART_P) -> pd.DataFrame:
    """Peak IL-6 (pg/mL) rising with CRS grade, and peak CAR copies/ug DNA unrelated to it (A9).

    A draw whose tuned values cannot give the printed P at the printed rounding (or would need a
    value <= 0) is replaced by the next draw of the same seeded sequence.
    """
    def tuned(draw, target, decimals, statistic):
        for _ in range(LAB_DRAW_LIMIT):
            try:
                return _tune_shift(draw(), group, target, decimals)
            except (RuntimeError, ValueError):  # ValueError: no root (a target P of 0 or 1)
                continue
        raise ImpossibleAssumption(statistic, f"no draw in {LAB_DRAW_LIMIT} gave t test P = {target}")

    il6 = tuned(lambda: np.exp(np.log(40.0) + 0.9 * df["crs_grade"].to_numpy() + rng.normal(0, 0.8, len(df))),
                il6_p, 1, "il6_peak.p")
    cart = tuned(lambda: np.exp(rng.normal(np.log(3.0e4), 1.0, len(df))), cart_p, 0, "cart_peak.p")
    return pd.DataFrame({"il6_peak_pg_ml": il6, "cart_peak_copies_per_ug": cart})


_logrank_p = logrank_p  # the numpy log-rank used by the survival search


def _survival_draw(rng, df: pd.DataFrame, follow_up: np.ndarray) -> pd.DataFrame:
    """One draw of EFS/OS from the A10 model with the documented parameters (training.simulation.dgp uses it)."""
    return draw_survival(rng, df, follow_up, DOCUMENTED.survival_parameters())


def survival_acceptable(df: pd.DataFrame) -> bool:
    """Whether survival times reproduce the published log-rank results (Fig. 2C/D, Fig. 3)."""
    return not survival_failures(df)


def _search(rng, df, follow_up, params, limit: int, tune: bool, misses: dict,
            targets: Targets | None = None) -> pd.DataFrame | None:
    for _ in range(limit):
        candidate = pd.concat([df, draw_survival(rng, df, follow_up, params)], axis=1)
        failed = survival_failures(candidate, targets)
        if not failed:
            return candidate
        if tune and worth_tuning(candidate, failed, targets):
            tuned = tune_survival(candidate, follow_up, targets)
            if tuned is not None:
                return tuned
        for statistic in failed:
            misses[statistic] = misses.get(statistic, 0) + 1
    return None


def _survival(seed: int, df: pd.DataFrame, follow_up: np.ndarray, a: Assumptions,
              targets: Targets | None = None, tuned_draws: int = TUNED_DRAW_LIMIT) -> pd.DataFrame:
    """Survival times by the assumptions' search rule; names the statistic missed on failure.

    "rejection" takes the first draw of the seeded sequence that reproduces every survival
    statistic (the packaged cohort's rule); if none of :data:`SURVIVAL_DRAW_LIMIT` does, it goes on
    like "tuned", which tunes each near miss (:func:`training.paper.survival_search.tune_survival`).
    """
    params = a.survival_parameters()
    misses: dict[str, int] = {}
    if a.survival_search == "rejection":
        found = _search(np.random.default_rng([seed, 1]), df, follow_up, params,
                        SURVIVAL_DRAW_LIMIT, False, misses, targets)
        if found is not None:
            return found
    found = _search(np.random.default_rng([seed, 1, 1]) if a.survival_search == "rejection"
                    else np.random.default_rng([seed, 1]), df, follow_up, params,
                    tuned_draws, True, misses, targets)
    if found is not None:
        return found
    worst = max(misses, key=misses.get)
    raise ImpossibleAssumption(worst, f"no survival draw reproduced it (missed in {misses[worst]} "
                               "draws; other misses: "
                               + ", ".join(f"{k} {v}" for k, v in misses.items() if k != worst) + ")")


def reconstruct(seed: int = DEFAULT_SEED, assumptions: Assumptions | None = None,
                targets: Targets | None = None, tuned_draws: int = TUNED_DRAW_LIMIT) -> pd.DataFrame:
    """The reconstructed cohort for ``seed`` (78 rows, columns of docs/cohort-csv.md).

    Parameters
    ----------
    seed : int
        Seed of every random placement and draw.
    assumptions : Assumptions, optional
        One admissible choice of A1-A10 (default: the documented one, :data:`DOCUMENTED`).
    targets : Targets, optional
        The statistics to reproduce (:mod:`training.paper.targets`; default: the paper's, whose
        constants are this module's).
    tuned_draws : int
        Survival draws tried by the tuned search before giving up.

    Raises
    ------
    training.paper.assumptions.ImpossibleAssumption
        The choice cannot reproduce a published statistic; ``.statistic`` names it.
    """
    a = DOCUMENTED if assumptions is None else assumptions
    check_assumptions(a, targets)
    table1 = TABLE1_COUNTS if targets is None else targets.table1_counts()
    rng = np.random.default_rng(seed)
    letters, blasts = _blasts(a, np.random.default_rng([seed, 2]))
    group = np.where(np.isin(letters, ["a", "b"]), "low", "high")
    df = pd.DataFrame({"patient_id": [f"R{i + 1:03d}" for i in range(len(letters))]})
    cov = _covariates(rng, group, table1)
    df["age_years"] = (_ages(rng, group) if targets is None
                       else _ages(rng, group, targets.age_summary(), targets.age_p)).astype(int)
    df["sex"] = np.where(cov.pop("male") == 1, "M", "F")
    df["tb_assessed"] = np.where(cov.pop("tb_after_fc") == 1, "after_fc", "before_fc")
    for column in cov:
        df[column] = cov[column]
    df["marrow_blasts_pct"] = blasts
    df["mrd_positive"] = 1
    df = pd.concat([df, _crs_and_response(rng, letters, group, a)], axis=1)
    df["neurotox_grade"] = _neurotox(rng, group, NEUROTOX_COUNTS if targets is None
                                     else targets.neurotox_counts())
    df = pd.concat([df, _labs(rng, df, group) if targets is None
                    else _labs(rng, df, group, targets.il6_p, targets.cart_p)], axis=1)
    # A7: infusion dates spread evenly over the enrolment window; follow-up to the cut-off.
    days = np.sort(rng.integers(0, (ENROLMENT[1] - ENROLMENT[0]).days + 1, len(df)))
    follow_up = rng.permutation(np.array([
        _months_between(date.fromordinal(ENROLMENT[0].toordinal() + int(d)), DATA_CUTOFF) for d in days]))
    return _survival(seed, df, follow_up, a, targets, tuned_draws)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--out", type=Path, default=DEFAULT_PATH)
    args = parser.parse_args(argv)
    try:
        cohort = reconstruct(args.seed)
    except ImpossibleAssumption as problem:
        print(f"reconstruction: {problem}", file=sys.stderr)
        return 1
    validate_cohort(cohort.astype(str), source="reconstructed cohort")
    write_cohort(cohort, args.out)
    print(f"wrote {len(cohort)} patients to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
