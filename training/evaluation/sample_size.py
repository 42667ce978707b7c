"""Minimum sample size criteria of Riley et al. for developing a prediction model.

References: Riley RD et al. Minimum sample size for developing a multivariable prediction model:
PART II - binary and time-to-event outcomes. Stat Med 2019;38:1276-96 (doi:10.1002/sim.7992), and
Calculating the sample size required for developing a clinical prediction model. BMJ
2020;368:m441. Criteria, as numbered in those papers:

1. expected shrinkage S >= 0.9 [criterion (i)]: n = p / ((S - 1) ln(1 - R2a / S)), R2a the
   anticipated (optimism-adjusted) Cox-Snell R^2;
2. optimism in Nagelkerke's R^2 <= delta [criterion (ii)]: criterion 1 with
   S = R2a / (R2a + delta * maxR2), maxR2 = 1 - exp(2 lnL0 / n);
   binary: lnL0 / n = phi ln(phi) + (1 - phi) ln(1 - phi);
   time to event: lnL0 / n = (E/n) ln(E/n) - E/n (exponential null model);
3. binary: the overall risk within +/- margin, n = (1.96 / margin)^2 phi (1 - phi) [criterion (iii)];
   time to event: the overall risk at the horizon t within +/- margin, the rate lambda = E / PT
   having the Poisson 95 % CI lambda +/- 1.96 sqrt(lambda / PT) and F(t) = 1 - exp(-lambda t):
   pmsampsize only reports this margin at the size required by 1-2; here it is also inverted to
   the person-time (and so n = PT / mean follow-up) that reaches the margin.

Anticipated R^2: ``r2_source="adjusted"`` takes ``r2_cs`` as R2a (from the literature, or
:func:`r2cs_from_c`). ``r2_source="apparent"`` takes it as this cohort's apparent R^2_CS of the
unpenalized model (:func:`cox_snell_r2`) and adjusts it with the heuristic shrinkage factor of
this very fit, R2a = S_VH R2app, S_VH = 1 + p / (n ln(1 - R2app)) = 1 - p / LR (the
van Houwelingen-Le Cessie heuristic shrinkage factor Riley et al. 2019 use to turn an apparent
R^2 into an adjusted one); the achieved shrinkage at this n is then exactly S_VH. Use the LR of
the *unpenalized* model with all p parameters, as the formulas assume maximum likelihood.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import optimize, stats

_Z = 1.959963984540054


def cox_snell_r2(loglik: float, loglik_null: float, n: int) -> float:
    """Cox-Snell R^2 = 1 - exp(-LR / n), LR = 2 (loglik - loglik_null), in [0, 1)."""
    return float(1.0 - math.exp(-2.0 * (loglik - loglik_null) / n))


def r2cs_from_c(c_statistic: float, prevalence: float, nodes: int = 200) -> float:
    """Anticipated Cox-Snell R^2 of a logistic model from its C statistic and the prevalence.

    Riley, Van Calster & Collins (Stat Med 2021;40:859) simulate a large data set whose linear
    predictor is normal with equal variance in events and non-events, means mu = sqrt(2) Phi^-1(C)
    apart, and fit a logistic model to it. Under that binormal model
    logit P(y=1 | x) = logit(phi) - mu^2/2 + mu x holds exactly, so the same population R^2 is
    computed here by Gauss-Hermite quadrature instead, without simulation noise (consistent with
    pmsampsize's simulated value in its worked example, see tests/test_sample_size.py).
    """
    if not 0.5 <= c_statistic < 1 or not 0 < prevalence < 1:
        raise ValueError("need 0.5 <= C < 1 and 0 < prevalence < 1")
    mu = math.sqrt(2.0) * stats.norm.ppf(c_statistic)
    x, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / w.sum()
    alpha = math.log(prevalence / (1 - prevalence)) - mu * mu / 2.0

    def log_p(eta):  # log P(y = 1), log P(y = 0)
        return -np.logaddexp(0.0, -eta), -np.logaddexp(0.0, eta)

    ev = np.sum(w * log_p(alpha + mu * (x + mu))[0])
    nonev = np.sum(w * log_p(alpha + mu * x)[1])
    ll = prevalence * ev + (1 - prevalence) * nonev
    ll0 = prevalence * math.log(prevalence) + (1 - prevalence) * math.log1p(-prevalence)
    return float(1.0 - math.exp(-2.0 * (ll - ll0)))


def _n_for_shrinkage(p: int, r2a: float, shrinkage: float) -> int:
    return math.ceil(p / ((shrinkage - 1.0) * math.log(1.0 - r2a / shrinkage)))


def _shrinkage_at(n: float, p: int, r2a: float) -> float:
    """Expected shrinkage at sample size n: the S solving n = p / ((S-1) ln(1 - R2a/S))."""
    def f(s):
        return (s - 1.0) * math.log(1.0 - r2a / s) * n - p

    lo, hi = r2a * (1.0 + 1e-12), 1.0 - 1e-15
    if f(lo) <= 0:  # n so small that the shrinkage sits at its floor R2a
        return float(lo)
    return float(optimize.brentq(f, lo, hi, xtol=1e-14))


def _overfitting_criteria(n: int, p: int, r2_cs: float, r2_source: str, max_r2: float,
                          shrinkage: float, r2_optimism: float) -> tuple[dict, float | None]:
    if r2_source == "apparent":
        if r2_cs <= 0 or r2_cs >= 1:
            raise ValueError("apparent R^2 must be in (0, 1)")
        s_vh = 1.0 + p / (n * math.log(1.0 - r2_cs))
        r2a = s_vh * r2_cs if s_vh > 0 else None
    elif r2_source == "adjusted":
        r2a = r2_cs if r2_cs > 0 else None
    else:
        raise ValueError("r2_source must be 'adjusted' or 'apparent'")
    if r2a is None:
        crit = {"target": None, "required_n": None, "achieved": None, "pass": False}
        return {"shrinkage": {**crit, "target": shrinkage},
                "r2_optimism": {**crit, "target": r2_optimism}}, None
    if r2a >= max_r2:
        raise ValueError(f"anticipated R^2_CS {r2a:.3f} exceeds its maximum {max_r2:.3f}")
    s_small_diff = r2a / (r2a + r2_optimism * max_r2)
    achieved_s = _shrinkage_at(n, p, r2a)
    achieved_diff = r2a * (1.0 / achieved_s - 1.0) / max_r2
    return {
        "shrinkage": {"target": shrinkage, "required_n": _n_for_shrinkage(p, r2a, shrinkage),
                      "achieved": achieved_s, "pass": bool(achieved_s >= shrinkage)},
        "r2_optimism": {"target": r2_optimism, "required_n": _n_for_shrinkage(p, r2a, s_small_diff),
                        "required_shrinkage": s_small_diff, "achieved": achieved_diff,
                        "pass": bool(achieved_diff <= r2_optimism)},
    }, r2a


def _verdict(out: dict, n: int, what: str) -> dict:
    crit = out["criteria"]
    required = [c["required_n"] for c in crit.values()]
    out["required_n"] = None if any(r is None for r in required) else int(max(required))
    out["pass"] = all(c["pass"] for c in crit.values())
    failed = [name for name, c in crit.items() if not c["pass"]]
    if out["r2_cs_adjusted"] is None:
        out["warning"] = (f"The model explains no more than chance at n = {n} (heuristic shrinkage <= 0): "
                          f"its predictions should not be trusted.")
    elif failed:
        labels = {"shrinkage": "overfitting (expected shrinkage below {:.2f})",
                  "r2_optimism": "optimism in R^2 above {:.2f}",
                  "overall_risk": "imprecise overall risk (margin above {:.2f})"}
        reasons = "; ".join(labels[f].format(crit[f]["target"]) for f in failed)
        consequence = ("Expect its predictions to be too extreme in new patients; treat them as exploratory."
                       if {"shrinkage", "r2_optimism"} & set(failed)
                       else "The average predicted risk is imprecise.")
        out["shortfall"] = (f"{n} patients are fewer than the {out['required_n']} needed for this "
                            f"{what} model: {reasons}.")
        out["warning"] = f"{out['shortfall']} {consequence}"
    else:
        out["warning"] = None
    return out


def riley_binary(n: int, parameters: int, prevalence: float, r2_cs: float, *,
                 r2_source: str = "adjusted", shrinkage: float = 0.9, r2_optimism: float = 0.05,
                 margin: float = 0.05) -> dict:
    """Riley criteria for a logistic model with ``parameters`` predictor parameters.

    Parameters
    ----------
    n : sample size the model is (to be) developed on
    parameters : number of predictor parameters p (excluding the intercept)
    prevalence : outcome proportion phi in (0, 1)
    r2_cs : anticipated Cox-Snell R^2 (see module docstring for ``r2_source``)

    Returns
    -------
    dict (JSON-serializable): inputs, ``r2_cs_adjusted``, ``max_r2_cs``, ``nagelkerke_r2``,
    ``criteria`` {shrinkage, r2_optimism, overall_risk} each with target / required_n / achieved /
    pass, ``required_n`` (max over criteria), ``events``, ``epp``, ``pass`` and ``warning``.
    """
    prevalence, r2_cs = float(prevalence), float(r2_cs)
    if not 0 < prevalence < 1:
        raise ValueError("prevalence must be in (0, 1)")
    max_r2 = 1.0 - math.exp(2.0 * (prevalence * math.log(prevalence)
                                    + (1 - prevalence) * math.log1p(-prevalence)))
    crit, r2a = _overfitting_criteria(n, parameters, r2_cs, r2_source, max_r2, shrinkage, r2_optimism)
    achieved_margin = _Z * math.sqrt(prevalence * (1 - prevalence) / n)
    crit["overall_risk"] = {"target": margin,
                            "required_n": math.ceil((_Z / margin) ** 2 * prevalence * (1 - prevalence)),
                            "achieved": achieved_margin, "pass": bool(achieved_margin <= margin)}
    out = {"outcome": "binary", "n": int(n), "parameters": int(parameters), "prevalence": prevalence,
           "events": n * prevalence, "epp": n * prevalence / parameters, "r2_cs": r2_cs,
           "r2_source": r2_source, "r2_cs_adjusted": r2a, "max_r2_cs": max_r2,
           "nagelkerke_r2": None if r2a is None else r2a / max_r2, "criteria": crit,
           "reference": "Riley et al. Stat Med 2019;38:1276; BMJ 2020;368:m441"}
    return _verdict(out, n, "binary-outcome")


def _risk_margin(rate: float, person_time: float, horizon: float) -> float:
    """Upper 95 % limit of F(t) minus F(t), from the Poisson CI of the rate (as pmsampsize)."""
    upper = rate + _Z * math.sqrt(rate / person_time)
    return float(math.exp(-rate * horizon) - math.exp(-upper * horizon))


def riley_survival(n: int, parameters: int, events: float, person_time: float, horizon: float,
                   r2_cs: float, *, r2_source: str = "adjusted", shrinkage: float = 0.9,
                   r2_optimism: float = 0.05, margin: float = 0.05) -> dict:
    """Riley criteria for a Cox model.

    Parameters
    ----------
    n, parameters : participants and predictor parameters
    events : number of events E (float allowed, for planning values)
    person_time : total follow-up PT, in the unit of ``horizon`` (months here)
    horizon : prediction time t for criterion 3
    r2_cs : anticipated Cox-Snell R^2 (partial likelihood LR, n participants)

    Returns
    -------
    dict as :func:`riley_binary`, with ``rate`` (E / PT), ``mean_follow_up`` and the overall-risk
    criterion on F(t).
    """
    events, person_time, horizon, r2_cs = float(events), float(person_time), float(horizon), float(r2_cs)
    if not 0 < events < n or person_time <= 0:
        raise ValueError("need 0 < events < n and person_time > 0")
    e_n = events / n
    max_r2 = 1.0 - math.exp(2.0 * (e_n * math.log(e_n) - e_n))
    crit, r2a = _overfitting_criteria(n, parameters, r2_cs, r2_source, max_r2, shrinkage, r2_optimism)
    rate, mean_fu = events / person_time, person_time / n
    achieved = _risk_margin(rate, person_time, horizon)
    survival_t = math.exp(-rate * horizon)
    if survival_t > margin:
        # exp(-(rate + delta) t) = S(t) - margin gives the largest acceptable CI half-width delta.
        delta = -math.log(survival_t - margin) / horizon - rate
        required = math.ceil(rate * (_Z / delta) ** 2 / mean_fu)
    else:
        required = 1
    half_width = _Z * math.sqrt(rate / person_time)
    crit["overall_risk"] = {"target": margin, "required_n": required, "achieved": achieved,
                            "pass": bool(achieved <= margin), "horizon": horizon,
                            "risk_at_horizon": 1.0 - survival_t,
                            "rate_ci95": [max(rate - half_width, 0.0), rate + half_width]}
    out = {"outcome": "time_to_event", "n": int(n), "parameters": int(parameters), "events": events,
           "epp": events / parameters, "person_time": person_time, "rate": rate,
           "mean_follow_up": mean_fu, "r2_cs": r2_cs, "r2_source": r2_source, "r2_cs_adjusted": r2a,
           "max_r2_cs": max_r2, "nagelkerke_r2": None if r2a is None else r2a / max_r2,
           "criteria": crit, "reference": "Riley et al. Stat Med 2019;38:1276; BMJ 2020;368:m441"}
    return _verdict(out, n, "time-to-event")
