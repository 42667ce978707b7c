"""Reconstruct a 78-patient cohort that reproduces every number Li et al. publish.

The paper's individual patient data are not public. This generator writes a synthetic cohort,
deterministic for a given seed, whose counts, percentages and P values (computed with the
paper's tests by :mod:`training.analyses`) equal the published ones. Every choice the paper
does not determine is an assumption, listed in ``training/data/ASSUMPTIONS.md`` and named in
the constants below. Nothing here is patient data.

Run ``python -m training.reconstruction`` to rewrite ``training/data/reconstructed_cohort.csv``
(byte for byte the committed file).
"""
from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize, stats

from model.cohort import write_cohort, validate_cohort
from model.defaults import DEFAULT_SEED
from model.survival import kaplan_meier, survival_at

DATA_DIR = Path(__file__).with_name("data")
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

# --- Derived by exhaustive search (training.derivations) -----------------------------------
SEVERE_CRS = {"low": 4, "high": 19}  # unique solution of Fisher P = 0.0053 with high > low

# --- Assumptions (ASSUMPTIONS.md explains each) ---------------------------------------------
SUBGROUP_SIZES = {"a": 13, "b": 20, "c": 13, "d": 14, "e": 18}           # A1
SUBGROUP_SEVERE_CRS = {"a": 1, "b": 3, "c": 4, "d": 5, "e": 10}           # A1
SUBGROUP_NR = {"a": 0, "b": 2, "c": 2, "d": 3, "e": 6}                    # A2
MRD_NEG_CR = {"low": 15, "high": 14}                                      # A2
CRS_GRADE_COUNTS = {"low": (9, 12, 8, 3, 1), "high": (9, 6, 11, 14, 5)}  # A3 grades 0..4
SUBGROUP_GRADE4 = {"a": 0, "b": 1, "c": 0, "d": 1, "e": 4}                # A3
NEUROTOX_COUNTS = {"low": (30, 2, 1, 0), "high": (41, 2, 1, 1)}          # A4 grades 0..3
SUBGROUP_BLAST_RANGE = {"b": (0.01, 4.9), "c": (5.0, 19.5), "d": (20.0, 48.0), "e": (50.0, 95.0)}  # A5
ENROLMENT = (date(2017, 2, 1), date(2020, 5, 31))                        # published
DATA_CUTOFF = date(2021, 6, 30)                                           # A7
SURVIVAL_DRAW_LIMIT = 20000


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


def _blasts() -> tuple[np.ndarray, np.ndarray]:
    """Subgroup letters and blast percentages, low-burden patients first."""
    letters, blasts = [], []
    for letter, size in SUBGROUP_SIZES.items():
        letters += [letter] * size
        if letter == "a":
            blasts += [0.0] * size
        else:
            low, high = SUBGROUP_BLAST_RANGE[letter]
            digits = 2 if letter == "b" else 1
            blasts += list(np.round(_spread(low, high, size, log=letter in "bc"), digits))
    return np.array(letters), np.array(blasts)


def _assign(rng: np.random.Generator, n: int, k: int, allowed: np.ndarray | None = None) -> np.ndarray:
    """0/1 vector with exactly k ones at random positions (only where ``allowed``)."""
    pool = np.flatnonzero(np.ones(n, bool) if allowed is None else allowed)
    out = np.zeros(n, int)
    out[rng.choice(pool, size=k, replace=False)] = 1
    return out


def _covariates(rng, group: np.ndarray) -> pd.DataFrame:
    cols: dict[str, np.ndarray] = {}
    for name, counts in TABLE1_COUNTS.items():
        if name == "prior_hsct":
            continue
        col = np.zeros(len(group), int)
        for g, k in zip(("low", "high"), counts):
            idx = np.flatnonzero(group == g)
            col[idx] = _assign(rng, len(idx), k)
        cols[name] = col
    # A6: a transplanted patient who needs CAR-T has relapsed after HSCT.
    hsct = np.zeros(len(group), int)
    for g, k in zip(("low", "high"), TABLE1_COUNTS["prior_hsct"]):
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


def _ages(rng, group: np.ndarray) -> np.ndarray:
    """Whole-year ages with the printed medians and ranges, tuned to the printed t-test P (A8).

    Starting from normal draws around each median, a greedy search moves ages by one year
    (singly, or one up and one down in the same group, which changes only the spread) until the
    unpaired t test gives the printed P; minimum, median and maximum never move.
    """
    ages = np.zeros(len(group))
    low = group == "low"
    bounds = np.zeros((len(group), 2))
    for g, (median, lo, hi) in AGE_SUMMARY.items():
        idx = np.flatnonzero(group == g)
        n = len(idx)
        pool = np.round(rng.normal(median, 15, 4 * n))
        draws = np.sort(pool[(pool > lo) & (pool < hi)][:n])
        draws[0], draws[-1], draws[n // 2] = lo, hi, median
        draws[: n // 2] = np.minimum(draws[: n // 2], median)
        draws[n // 2 + 1:] = np.maximum(draws[n // 2 + 1:], median)
        ages[idx] = np.sort(draws)
        bounds[idx] = [(lo, median)] * (n // 2) + [(median, median)] + [(median, hi)] * (n - n // 2 - 1)
        bounds[idx[[0, -1]]] = [(lo, lo), (hi, hi)]
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
        if round(p, 4) == AGE_P:
            # Shuffle within each group (the P does not change) so age is unrelated to burden.
            for g in (low, ~low):
                ages[g] = rng.permutation(ages[g])
            return ages
        candidates = ages[None, :] + moves
        ok = np.all((candidates >= bounds[:, 0]) & (candidates <= bounds[:, 1]), axis=1)
        gaps = np.abs(_t_test_p(candidates[ok], low) - AGE_P)
        best = np.argmin(gaps)
        if gaps[best] >= abs(p - AGE_P):
            break
        ages = candidates[ok][best]
    raise RuntimeError("age tuning did not reach the printed P")


def _tune_shift(values: np.ndarray, group: np.ndarray, target_p: float, decimals: int) -> np.ndarray:
    """Shift the high group's values by one constant so the t-test P equals ``target_p``."""
    low, high = values[group == "low"], values[group == "high"]

    def gap(shift):
        return stats.ttest_ind(low, high + shift).pvalue - target_p

    shift = optimize.brentq(gap, 0.0, 50 * (high.std() + low.std()) + abs(low.mean() - high.mean()), xtol=1e-10)
    out = values.copy()
    out[group == "high"] = high + shift
    out = np.round(out, decimals)
    p = stats.ttest_ind(out[group == "low"], out[group == "high"]).pvalue
    if round(p, 4) != target_p:
        raise RuntimeError(f"could not tune t test to P = {target_p} (got {p:.6f})")
    return out


def _crs_and_response(rng, letters: np.ndarray, group: np.ndarray) -> pd.DataFrame:
    n = len(letters)
    crs = np.full(n, -1)
    response = np.empty(n, dtype=object)
    for letter, size in SUBGROUP_SIZES.items():
        idx = np.flatnonzero(letters == letter)
        severe = idx[_assign(rng, size, SUBGROUP_SEVERE_CRS[letter]).astype(bool)]
        grade4 = rng.choice(severe, SUBGROUP_GRADE4[letter], replace=False)
        crs[severe] = 3
        crs[grade4] = 4
        nr = idx[_assign(rng, size, SUBGROUP_NR[letter]).astype(bool)]
        response[idx] = "cr"
        response[nr] = "nr"
    for g in ("low", "high"):
        idx = np.flatnonzero((group == g) & (crs < 0))
        counts = CRS_GRADE_COUNTS[g][:3]
        crs[idx] = rng.permutation(np.repeat([0, 1, 2], counts))
        cr_idx = np.flatnonzero((group == g) & (response == "cr"))
        neg = rng.choice(cr_idx, MRD_NEG_CR[g], replace=False)
        response[cr_idx] = "mrd_pos_cr"
        response[neg] = "mrd_neg_cr"
    return pd.DataFrame({"crs_grade": crs, "response": response})


def _neurotox(rng, group: np.ndarray) -> np.ndarray:
    out = np.zeros(len(group), int)
    for g in ("low", "high"):
        idx = np.flatnonzero(group == g)
        out[idx] = rng.permutation(np.repeat(np.arange(4), NEUROTOX_COUNTS[g]))
    return out


def _labs(rng, df: pd.DataFrame, group: np.ndarray) -> pd.DataFrame:
    """Peak IL-6 (pg/mL) rising with CRS grade, and peak CAR copies/ug DNA unrelated to it (A9)."""
    log_il6 = np.log(40.0) + 0.9 * df["crs_grade"].to_numpy() + rng.normal(0, 0.8, len(df))
    il6 = _tune_shift(np.exp(log_il6), group, IL6_P, 1)
    cart = _tune_shift(np.exp(rng.normal(np.log(3.0e4), 1.0, len(df))), group, CART_P, 0)
    return pd.DataFrame({"il6_peak_pg_ml": il6, "cart_peak_copies_per_ug": cart})


def _logrank_p(time, event, in_a) -> float:
    """Two-group log-rank P (chi-square, 1 df); numpy version used inside the survival search."""
    order = np.argsort(time, kind="stable")
    t, e, a = time[order], event[order], in_a[order]
    uniq, first = np.unique(t, return_index=True)
    at_risk = len(t) - first
    at_risk_a = np.cumsum(a[::-1])[::-1][first]
    deaths = np.add.reduceat(e, first)
    deaths_a = np.add.reduceat(e * a, first)
    mask = deaths > 0
    d, n, na, da = deaths[mask], at_risk[mask], at_risk_a[mask], deaths_a[mask]
    expected = d * na / n
    var = d * (na / n) * (1 - na / n) * (n - d) / np.maximum(n - 1, 1)
    chi2 = (da - expected).sum() ** 2 / var.sum()
    return float(stats.chi2.sf(chi2, 1))


def _survival_draw(rng, df: pd.DataFrame, follow_up: np.ndarray) -> pd.DataFrame:
    """One draw of EFS/OS (months) from the A10 survival model, censored at the data cut-off."""
    n = len(df)
    nr = (df["response"] == "nr").to_numpy()
    mrd_neg = (df["response"] == "mrd_neg_cr").to_numpy()
    high = (df["marrow_blasts_pct"] >= 5).to_numpy()
    # Relapse after CR: Weibull (shape 0.9); median 14 months for MRD-negative CR, 9 for MRD-positive.
    median_relapse = np.where(mrd_neg, 14.0, 9.0) * np.where(high, 0.85, 1.0)
    relapse = median_relapse * (rng.exponential(1.0, n) / np.log(2)) ** (1 / 0.9)
    # A quarter of CR patients are cured of relapse (long-term survivors; Park 2018, CIBMTR 2025).
    cured = rng.random(n) < np.where(mrd_neg, 0.35, 0.2)
    relapse = np.where(cured, np.inf, relapse)
    # Death without relapse (transplant-related, infection): 4 % a year.
    nrm = rng.exponential(12 / 0.04, n)
    # Death after relapse or no response: median 6 months after the event.
    response_time = np.round(rng.uniform(0.9, 1.2, n), 2)
    first_event = np.where(nr, response_time, np.minimum(relapse, nrm) + response_time)
    death_after = rng.exponential(6.0 / np.log(2), n)
    death = np.where(nr | (relapse < nrm), first_event + death_after, first_event)
    os_time = np.minimum(death, follow_up)
    os_event = (death <= follow_up).astype(int)
    efs_time = np.minimum(first_event, follow_up)
    efs_event = (first_event <= follow_up).astype(int)
    return pd.DataFrame({
        "efs_months": np.round(efs_time, 2), "efs_event": efs_event,
        "os_months": np.round(os_time, 2), "os_event": os_event,
    })


def survival_acceptable(df: pd.DataFrame) -> bool:
    """Whether survival times reproduce the published log-rank results (Fig. 2C/D, Fig. 3)."""
    high = (df["marrow_blasts_pct"] >= 5).to_numpy()
    before = (df["tb_assessed"] == "before_fc").to_numpy()
    arrays = {k: (df[f"{k}_months"].to_numpy(float), df[f"{k}_event"].to_numpy(int)) for k in ("os", "efs")}
    if round(_logrank_p(*arrays["os"], ~high), 1) != 0.2:
        return False
    if round(_logrank_p(*arrays["efs"], ~high), 2) != 0.57:
        return False
    for time, event in arrays.values():
        if _logrank_p(time, event, before) <= 0.05:
            return False
        for stratum in (before, ~before):
            if _logrank_p(time[stratum], event[stratum], ~high[stratum]) <= 0.05:
                return False
    grid = np.r_[np.unique(arrays["efs"][0]), 21.0]
    grid = grid[grid <= 21.0]
    def km(outcome, rows, at):
        time, event = arrays[outcome]
        return survival_at(kaplan_meier(time[rows], event[rows]), at)

    efs_low, efs_high = km("efs", ~high, grid), km("efs", high, grid)
    os_low, os_high = km("os", ~high, [12.0]), km("os", high, [12.0])
    return bool(np.all(efs_low >= efs_high - 1e-12) and os_low[0] > os_high[0])


def reconstruct(seed: int = DEFAULT_SEED) -> pd.DataFrame:
    """The reconstructed cohort for ``seed`` (78 rows, columns of docs/cohort-csv.md)."""
    rng = np.random.default_rng(seed)
    letters, blasts = _blasts()
    group = np.where(np.isin(letters, ["a", "b"]), "low", "high")
    df = pd.DataFrame({"patient_id": [f"R{i + 1:03d}" for i in range(len(letters))]})
    cov = _covariates(rng, group)
    df["age_years"] = _ages(rng, group).astype(int)
    df["sex"] = np.where(cov.pop("male") == 1, "M", "F")
    df["tb_assessed"] = np.where(cov.pop("tb_after_fc") == 1, "after_fc", "before_fc")
    for column in cov:
        df[column] = cov[column]
    df["marrow_blasts_pct"] = blasts
    df["mrd_positive"] = 1
    df = pd.concat([df, _crs_and_response(rng, letters, group)], axis=1)
    df["neurotox_grade"] = _neurotox(rng, group)
    df = pd.concat([df, _labs(rng, df, group)], axis=1)
    # A7: infusion dates spread evenly over the enrolment window; follow-up to the cut-off.
    days = np.sort(rng.integers(0, (ENROLMENT[1] - ENROLMENT[0]).days + 1, len(df)))
    follow_up = rng.permutation(np.array([
        _months_between(date.fromordinal(ENROLMENT[0].toordinal() + int(d)), DATA_CUTOFF) for d in days]))
    survival_rng = np.random.default_rng([seed, 1])
    for _ in range(SURVIVAL_DRAW_LIMIT):
        survival = _survival_draw(survival_rng, df, follow_up)
        candidate = pd.concat([df, survival], axis=1)
        if survival_acceptable(candidate):
            break
    else:
        raise RuntimeError(f"no survival draw in {SURVIVAL_DRAW_LIMIT} reproduced the log-rank results")
    return candidate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--out", type=Path, default=DEFAULT_PATH)
    args = parser.parse_args(argv)
    cohort = reconstruct(args.seed)
    validate_cohort(cohort.astype(str), source="reconstructed cohort")
    write_cohort(cohort, args.out)
    print(f"wrote {len(cohort)} patients to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
