"""The two true-risk processes of the direct coverage study (docs/method-selection.md, Amendment 4).

* ``step``: the reconstruction's own process (:mod:`training.dgp`): every risk is a function of
  the burden subgroup a-e.
* ``smooth``: risks piecewise linear in x = log10(max(blasts, 0.01 %)) with exactly the step
  truth's subgroup averages. Knots k_a = -2 and k_s = E[x | s] for s = b..e; phi_k the hat
  functions of linear interpolation on them (constant beyond the ends); A[s, k] = E[phi_k(x) | s]
  by quadrature. Binary outcomes: p(x) = phi(x) @ A^-1 p_sub. Survival: S(t | x) =
  phi(x) @ G(t), G = A^-1 S_sub, so that E[S(t | x) | s] = S_sub,s(t) at every t.

Survival curves are tabulated every :data:`GRID_STEP` months from the fixed-seed draws of
:func:`training.dgp.true_risks` (so the 12-month step risks are the same numbers).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from model.burden import burden_subgroups
from model.features import BLASTS_FLOOR_PCT
from training.simulation import dgp
from training.paper import reconstruction as rec

TRUTHS = ("step", "smooth")
GRID_STEP = 0.01
#: Months tabulated (beyond the longest follow-up of the process, 53 months).
GRID = np.round(np.arange(0, 6001) * GRID_STEP, 2)
QUADRATURE_POINTS = 200_000
SURVIVAL = ("efs", "os")


def log_blasts(blasts_pct) -> np.ndarray:
    """x = log10 of marrow blasts (%), floored at the MRD threshold 0.01 %."""
    return np.log10(np.maximum(np.asarray(blasts_pct, dtype=float), BLASTS_FLOOR_PCT))


@lru_cache(maxsize=2)
def subgroup_survival(draws: int = dgp.TRUE_RISK_DRAWS) -> dict[str, np.ndarray]:
    """S_sub: (5 subgroups, len(GRID)) survival curves of EFS and OS, uncensored, from the draws of
    :func:`training.dgp.true_risks` (same seeds; ``draws`` smaller only in tests)."""
    curves = {o: np.zeros((len(dgp.SUBGROUPS), GRID.size)) for o in SURVIVAL}
    for k, letter in enumerate(dgp.SUBGROUPS):
        rng = np.random.default_rng([dgp.TRUE_RISK_SEED, k])
        letters = np.full(draws, letter)
        df = pd.DataFrame({"marrow_blasts_pct": dgp._blasts(rng, letters),
                           "response": dgp._response(rng, letters)})
        surv = rec._survival_draw(rng, df, np.full(draws, np.inf))
        for o in SURVIVAL:
            times = np.sort(surv[f"{o}_months"].to_numpy(float))
            curves[o][k] = 1.0 - np.searchsorted(times, GRID, side="right") / times.size
    return curves


def _subgroup_x(letter: str) -> np.ndarray:
    """Quadrature points of x within a subgroup, under the process's blast distribution."""
    if letter == "a":
        return np.array([-2.0])
    u = (np.arange(QUADRATURE_POINTS) + 0.5) / QUADRATURE_POINTS
    low, high = rec.SUBGROUP_BLAST_RANGE[letter]
    if letter in "bc":  # log-uniform blasts: x uniform
        return np.log10(low) + u * (np.log10(high) - np.log10(low))
    return np.log10(low + u * (high - low))


@lru_cache(maxsize=1)
def knots() -> np.ndarray:
    return np.array([_subgroup_x(s).mean() for s in dgp.SUBGROUPS])


def hat_basis(x) -> np.ndarray:
    """(n, 5) weights of linear interpolation on :func:`knots` (non-negative, rows sum to 1)."""
    x = np.atleast_1d(np.asarray(x, dtype=float))
    eye = np.eye(len(dgp.SUBGROUPS))
    return np.column_stack([np.interp(x, knots(), eye[k]) for k in range(eye.shape[0])])


@lru_cache(maxsize=1)
def knot_matrix() -> np.ndarray:
    """A[s, k] = E[phi_k(x) | subgroup s]."""
    return np.array([hat_basis(_subgroup_x(s)).mean(axis=0) for s in dgp.SUBGROUPS])


@lru_cache(maxsize=2)
def smooth_parameters(draws: int = dgp.TRUE_RISK_DRAWS) -> dict:
    """Knot values of the smooth truth: ``cr`` / ``severe_crs`` (5,), ``efs`` / ``os`` (5, grid),
    and ``checks``: whether every knot curve was a survival function before any repair, and the
    largest change of a subgroup average that the repair made (0 when none was needed)."""
    A = knot_matrix()
    rates = {"cr": dgp.CR_RATE, "severe_crs": dgp.SEVERE_CRS_RATE}
    out = {o: np.linalg.solve(A, np.array([rates[o][s] for s in dgp.SUBGROUPS]))
           for o in ("cr", "severe_crs")}
    checks = {}
    for o, S in subgroup_survival(draws).items():
        G = np.linalg.solve(A, S)
        valid = bool(np.all(np.diff(G, axis=1) <= 1e-12) and G.min() >= -1e-12 and G.max() <= 1 + 1e-12)
        repaired = np.clip(np.minimum.accumulate(G, axis=1), 0.0, 1.0)
        checks[o] = {"survival_functions": valid,
                     "largest_average_change": float(np.max(np.abs(A @ repaired - S)))}
        out[o] = repaired
    checks["binary_within_0_1"] = bool(all(0 <= v.min() and v.max() <= 1 for v in
                                           (out["cr"], out["severe_crs"])))
    out["checks"] = checks
    return out


def _grid_index(months: float) -> int:
    return int(round(months / GRID_STEP))


def true_risk(truth: str, outcome: str, blasts_pct, mrd_positive, months: float | None = None,
              draws: int = dgp.TRUE_RISK_DRAWS) -> np.ndarray:
    """True risk of ``outcome`` (CR, severe CRS; EFS / OS event by ``months``) for patients.
    ``draws``: Monte Carlo draws a subgroup behind the survival curves (smaller only in tests)."""
    if truth == "step":
        letters = burden_subgroups(blasts_pct, mrd_positive)
        index = np.array([dgp.SUBGROUPS.index(s) for s in letters])
        if outcome in SURVIVAL:
            return 1.0 - subgroup_survival(draws)[outcome][index, _grid_index(months)]
        rates = dgp.CR_RATE if outcome == "cr" else dgp.SEVERE_CRS_RATE
        return np.array([rates[s] for s in letters])
    if truth != "smooth":
        raise ValueError(f"truth must be one of {TRUTHS}; got {truth!r}")
    phi = hat_basis(log_blasts(blasts_pct))
    params = smooth_parameters(draws)
    if outcome in SURVIVAL:
        return 1.0 - phi @ params[outcome][:, _grid_index(months)]
    return phi @ params[outcome]


def sample_smooth(rng: np.random.Generator, n: int, draws: int = dgp.TRUE_RISK_DRAWS) -> pd.DataFrame:
    """``n`` patients of the smooth truth: blasts and covariates as the process draws them, then
    CR, severe CRS, EFS and OS from the smooth risks (independent given blasts), censored at a
    follow-up drawn as in the process."""
    df = dgp.sample_patients(rng, n, with_true_risks=False)
    phi = hat_basis(log_blasts(df["marrow_blasts_pct"]))
    params = smooth_parameters(draws)
    for o in ("cr", "severe_crs"):
        df[o] = (rng.random(n) < phi @ params[o]).astype(int)
    follow_up = rng.uniform(rec.MIN_FOLLOW_UP, rec.MAX_FOLLOW_UP, n)
    cumulative = np.cumsum(phi, axis=1)
    for o in SURVIVAL:
        knot = np.minimum((rng.random(n)[:, None] > cumulative).sum(axis=1), phi.shape[1] - 1)
        u = rng.random(n)
        time = np.full(n, np.inf)
        for k in range(phi.shape[1]):  # inversion: the first grid month with G_k(t) <= u
            rows = np.flatnonzero(knot == k)
            first = np.searchsorted(-params[o][k], -u[rows], side="left")
            reached = first < GRID.size
            time[rows[reached]] = GRID[first[reached]]
        df[f"{o}_months"] = np.round(np.minimum(time, follow_up), 2)
        df[f"{o}_event"] = (time <= follow_up).astype(int)
    return df.drop(columns=["response"])


def sample(truth: str, seed: int, n: int, r: int, draws: int = dgp.TRUE_RISK_DRAWS) -> pd.DataFrame:
    """Cohort r of the coverage study: step ``[seed, n, r]`` (the method study's cohorts), smooth
    ``[seed, n, r, 1]``."""
    if truth == "step":
        return dgp.sample_patients(np.random.default_rng([seed, n, r]), n, with_true_risks=False)
    return sample_smooth(np.random.default_rng([seed, n, r, 1]), n, draws)
