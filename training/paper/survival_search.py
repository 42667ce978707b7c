"""Survival times for a reconstructed cohort: seeded draws from the A10 model, checked and tuned.

:func:`draw_survival` draws EFS and OS from the A10 model (parameters within the literature
ranges of :data:`training.paper.assumptions.SURVIVAL_RANGES`). :func:`survival_failures` names the
published survival statistics a draw misses. :func:`tune_survival` moves one patient's time at a
time (a relapse earlier or later, a death after relapse earlier or later; never an event type,
never past the data cut-off) until both log-rank P values round to the printed ones, so a
reconstruction does not depend on finding one lucky draw among thousands.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from model.survival import kaplan_meier, survival_at
from training.paper.targets import Targets, paper_targets

OS_P, EFS_P = 0.2, 0.57          # published log-rank P (Fig. 2C, 2D), 1 and 2 decimals
TUNE_STEPS = 40
#: Only draws this close to the printed P values (and meeting every other survival statistic)
#: are tuned; farther draws are discarded, which keeps the search fast.
TUNE_REACH = {"os.logrank.p": 0.12, "efs.logrank.p": 0.15}
MOVE_FACTORS = (0.8, 0.93, 1.07, 1.25)


def logrank_p(time, event, in_a) -> float:
    """Two-group log-rank P (chi-square, 1 df), numpy; used inside the searches."""
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
    return math.erfc(math.sqrt(chi2 / 2.0))  # chi-square (1 df) upper tail


def draw_survival(rng, df: pd.DataFrame, follow_up: np.ndarray, params: dict) -> pd.DataFrame:
    """One draw of EFS/OS (months) from the A10 survival model, censored at the data cut-off.

    Parameters
    ----------
    rng : numpy.random.Generator
    df : cohort with ``response`` and ``marrow_blasts_pct``
    follow_up : (n,) months from infusion to the data cut-off
    params : A10 parameters (names of :data:`training.paper.assumptions.SURVIVAL_RANGES`)
    """
    n = len(df)
    nr = (df["response"] == "nr").to_numpy()
    mrd_neg = (df["response"] == "mrd_neg_cr").to_numpy()
    high = (df["marrow_blasts_pct"] >= 5).to_numpy()
    # Relapse after CR: Weibull; the median depends on MRD status and burden.
    median_relapse = (np.where(mrd_neg, params["median_relapse_mrd_neg"], params["median_relapse_mrd_pos"])
                      * np.where(high, params["high_burden_factor"], 1.0))
    relapse = median_relapse * (rng.exponential(1.0, n) / np.log(2)) ** (1 / params["weibull_shape"])
    # Some CR patients are cured of relapse (long-term survivors; Park 2018, CIBMTR 2025).
    cured = rng.random(n) < np.where(mrd_neg, params["cured_mrd_neg"], params["cured_mrd_pos"])
    relapse = np.where(cured, np.inf, relapse)
    nrm = rng.exponential(12 / params["nrm_per_year"], n)   # death without relapse
    response_time = np.round(rng.uniform(0.9, 1.2, n), 2)
    first_event = np.where(nr, response_time, np.minimum(relapse, nrm) + response_time)
    death_after = rng.exponential(params["median_death_after_event"] / np.log(2), n)
    death = np.where(nr | (relapse < nrm), first_event + death_after, first_event)
    os_time = np.minimum(death, follow_up)
    os_event = (death <= follow_up).astype(int)
    efs_time = np.minimum(first_event, follow_up)
    efs_event = (first_event <= follow_up).astype(int)
    return pd.DataFrame({
        "efs_months": np.round(efs_time, 2), "efs_event": efs_event,
        "os_months": np.round(os_time, 2), "os_event": os_event,
    })


def _p_values(targets: Targets | None) -> tuple[tuple[float, int], tuple[float, int]]:
    """(P, decimals) of the OS and EFS log-rank targets (the paper's 0.2 and 0.57 by default)."""
    if targets is None:
        return (OS_P, 1), (EFS_P, 2)
    return targets.os_logrank, targets.efs_logrank


def _statements(targets: Targets | None) -> tuple[dict[str, str], bool, bool]:
    """Fig. 3 comparisons by id, and the two orderings (the paper: all P > 0.05, low above high)."""
    t = paper_targets() if targets is None else targets
    return dict(t.fig3), t.efs_low_above_high_21mo, t.os_low_above_high


def survival_failures(df: pd.DataFrame, targets: Targets | None = None) -> list[str]:
    """Ids of the published survival statistics (``published_statistics.json``) a cohort misses.

    ``targets`` replaces the paper's (for a simulated trial's statistics file).
    """
    (os_p, os_decimals), (efs_p, efs_decimals) = _p_values(targets)
    fig3, efs_order, os_order = _statements(targets)

    def missed(statistic: str, p: float) -> bool:
        return (p <= 0.05) if fig3[statistic] == "greater_than" else (p > 0.05)

    high = (df["marrow_blasts_pct"] >= 5).to_numpy()
    before = (df["tb_assessed"] == "before_fc").to_numpy()
    arrays = {k: (df[f"{k}_months"].to_numpy(float), df[f"{k}_event"].to_numpy(int)) for k in ("os", "efs")}
    failed = []
    if round(logrank_p(*arrays["os"], ~high), os_decimals) != os_p:
        failed.append("os.logrank.p")
    if round(logrank_p(*arrays["efs"], ~high), efs_decimals) != efs_p:
        failed.append("efs.logrank.p")
    for outcome, (time, event) in arrays.items():
        if missed(f"{outcome}.by_tb_assessed.p", logrank_p(time, event, before)):
            failed.append(f"{outcome}.by_tb_assessed.p")
        for stratum, name in ((before, "before_fc"), (~before, "after_fc")):
            if missed(f"{outcome}.{name}.logrank.p",
                      logrank_p(time[stratum], event[stratum], ~high[stratum])):
                failed.append(f"{outcome}.{name}.logrank.p")
    grid = np.r_[np.unique(arrays["efs"][0]), 21.0]
    grid = grid[grid <= 21.0]

    def km(outcome, rows, at):
        time, event = arrays[outcome]
        return survival_at(kaplan_meier(time[rows], event[rows]), at)

    if bool(np.all(km("efs", ~high, grid) >= km("efs", high, grid) - 1e-12)) != efs_order:
        failed.append("efs.low_above_high_21mo")
    if bool(km("os", ~high, [12.0])[0] > km("os", high, [12.0])[0]) != os_order:
        failed.append("os.low_above_high")
    return failed


def _gap(p_os: float, p_efs: float, targets: Targets | None = None) -> float:
    """Distance of the two log-rank P values from their printed values (0 when both round right)."""
    (os_p, os_decimals), (efs_p, efs_decimals) = _p_values(targets)
    os_gap = 0.0 if round(p_os, os_decimals) == os_p else abs(p_os - os_p)
    efs_gap = 0.0 if round(p_efs, efs_decimals) == efs_p else abs(p_efs - efs_p)
    return os_gap / (0.5 * 10.0 ** -os_decimals) + efs_gap / (0.5 * 10.0 ** -efs_decimals)


def worth_tuning(df: pd.DataFrame, failed: list[str], targets: Targets | None = None) -> bool:
    """Whether a draw misses only the two log-rank P values, and by no more than :data:`TUNE_REACH`."""
    if not set(failed) <= set(TUNE_REACH):
        return False
    high = (df["marrow_blasts_pct"] >= 5).to_numpy()
    (os_p, _), (efs_p, _) = _p_values(targets)
    p = {"os.logrank.p": (logrank_p(df["os_months"].to_numpy(float), df["os_event"].to_numpy(int), ~high), os_p),
         "efs.logrank.p": (logrank_p(df["efs_months"].to_numpy(float), df["efs_event"].to_numpy(int), ~high), efs_p)}
    return all(abs(p[k][0] - p[k][1]) <= TUNE_REACH[k] for k in failed)


def tune_survival(df: pd.DataFrame, follow_up: np.ndarray,
                  targets: Targets | None = None) -> pd.DataFrame | None:
    """Move single event times until both log-rank P values round to the printed ones.

    Greedy: each step tries every move (a relapse time, or a death after relapse or no response,
    times one of :data:`MOVE_FACTORS`, kept after the day-28 assessment, before the patient's
    death and inside follow-up) and keeps the one closest to the targets. Returns the tuned
    cohort if every published survival statistic then holds, else ``None``.
    """
    high = (df["marrow_blasts_pct"] >= 5).to_numpy()
    nr = (df["response"] == "nr").to_numpy()
    efs_t, efs_e = df["efs_months"].to_numpy(float).copy(), df["efs_event"].to_numpy(int)
    os_t, os_e = df["os_months"].to_numpy(float).copy(), df["os_event"].to_numpy(int)
    for _ in range(TUNE_STEPS):
        p_os, p_efs = logrank_p(os_t, os_e, ~high), logrank_p(efs_t, efs_e, ~high)
        gap = _gap(p_os, p_efs, targets)
        if gap == 0.0:
            break
        best = (gap, None)
        relapsed = np.flatnonzero((efs_e == 1) & ~nr & (efs_t < os_t - 0.05))
        died_after = np.flatnonzero((os_e == 1) & (os_t > efs_t + 0.05))
        for i in relapsed:
            for f in MOVE_FACTORS:
                new = round(float(np.clip(efs_t[i] * f, 1.3, min(os_t[i] - 0.01, follow_up[i]))), 2)
                trial = efs_t.copy()
                trial[i] = new
                g = _gap(p_os, logrank_p(trial, efs_e, ~high), targets)
                if g < best[0] - 1e-12:
                    best = (g, ("efs", i, new))
        for i in died_after:
            for f in MOVE_FACTORS:
                new = round(float(np.clip(os_t[i] * f, efs_t[i] + 0.01, follow_up[i] - 0.01)), 2)
                trial = os_t.copy()
                trial[i] = new
                g = _gap(logrank_p(trial, os_e, ~high), p_efs, targets)
                if g < best[0] - 1e-12:
                    best = (g, ("os", i, new))
        if best[1] is None:
            return None
        which, i, new = best[1]
        (efs_t if which == "efs" else os_t)[i] = new
    out = df.copy()
    out["efs_months"], out["os_months"] = efs_t, os_t
    return out if not survival_failures(out, targets) else None
