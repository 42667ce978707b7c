"""Riley minimum sample size criteria reproduce the published worked examples."""
import json
import math

import numpy as np
import pytest

from training.fitting import logistic
from training.evaluation.sample_size import cox_snell_r2, r2cs_from_c, riley_binary, riley_survival


def required(result):
    return [result["criteria"][c]["required_n"] for c in ("shrinkage", "r2_optimism", "overall_risk")]


def test_binary_worked_example():
    """Riley et al., Stat Med 2019;38:1276 (PART II), binary example (diagnostic model for Chagas
    disease; also the binary example of ``pmsampsize``): p = 24 candidate parameters, prevalence
    0.174, anticipated Cox-Snell R^2 = 0.288. Published: criterion (i) n = 623, (ii) n = 662,
    (iii) n = 221, so at least 662 participants, EPP = 662 * 0.174 / 24 = 4.8 ("a new diagnostic
    model for Chagas disease requires an EPP of at least 4.8", abstract)."""
    result = riley_binary(662, 24, 0.174, 0.288)
    assert required(result) == [623, 662, 221]
    assert result["required_n"] == 662
    assert result["epp"] == pytest.approx(4.8, abs=0.005)
    assert result["max_r2_cs"] == pytest.approx(0.603, abs=5e-4)  # published max R^2_CS
    assert result["criteria"]["r2_optimism"]["required_shrinkage"] == pytest.approx(0.905, abs=5e-4)
    assert result["pass"] and result["warning"] is None
    json.dumps(result)


def test_survival_worked_example():
    """Riley et al., BMJ 2020;368:m441, time-to-event example (recurrence of venous
    thromboembolism; Stat Med 2019 PART II; ``pmsampsize`` survival example): 30 candidate
    parameters, R^2_CS = 0.051, event rate 0.065 per person-year, mean follow-up 2.07 years,
    horizon 2 years. Published: criterion (i) n = 5143, (ii) n = 1039, so 5143 participants
    with 692 events, EPP 23."""
    n = 10_000  # planning values only fix E/n = rate * mean follow-up
    result = riley_survival(n, 30, events=0.065 * 2.07 * n, person_time=2.07 * n, horizon=2.0,
                            r2_cs=0.051)
    assert required(result)[:2] == [5143, 1039]
    assert result["required_n"] == 5143
    events_at_required = 5143 * 0.065 * 2.07
    assert math.ceil(events_at_required) == 692
    assert events_at_required / 30 == pytest.approx(23.07, abs=0.005)
    # criterion (iii) at n = 5143: upper 95 % limit of the 2-year risk minus the risk itself, with
    # the rate's Poisson CI 0.065 +/- 1.96 sqrt(0.065 / person-time) (pmsampsize_surv formula)
    person_time = 2.07 * 5143
    at_required = riley_survival(5143, 30, 0.065 * person_time, person_time, 2.0, 0.051)
    risk = at_required["criteria"]["overall_risk"]
    upper = 1 - math.exp(-(0.065 + 1.96 * math.sqrt(0.065 / person_time)) * 2)
    assert risk["risk_at_horizon"] == pytest.approx(1 - math.exp(-0.13))
    assert risk["achieved"] == pytest.approx(upper - (1 - math.exp(-0.13)), rel=1e-4)
    assert risk["pass"] and risk["required_n"] < 5143
    json.dumps(result)


def test_c_statistic_approximation():
    """``pmsampsize(type="b", cstatistic=0.89, parameters=24, prevalence=0.174)`` (Riley, Van
    Calster & Collins, Stat Med 2021) approximates R^2_CS and requires 615 / 660 / 221."""
    r2 = r2cs_from_c(0.89, 0.174)
    assert r2 == pytest.approx(0.2909, abs=2e-4)
    assert required(riley_binary(100, 24, 0.174, round(r2, 4))) == [615, 660, 221]
    assert r2cs_from_c(0.5, 0.2) == pytest.approx(0.0, abs=1e-12)


def test_criteria_are_tight_at_the_required_size():
    at, below = riley_binary(623, 24, 0.174, 0.288), riley_binary(622, 24, 0.174, 0.288)
    assert at["criteria"]["shrinkage"]["achieved"] >= 0.9 > below["criteria"]["shrinkage"]["achieved"]
    assert below["criteria"]["shrinkage"]["pass"] is False
    assert riley_binary(221, 24, 0.174, 0.288)["criteria"]["overall_risk"]["pass"]
    assert not riley_binary(220, 24, 0.174, 0.288)["criteria"]["overall_risk"]["pass"]


def test_apparent_r2_is_adjusted_by_heuristic_shrinkage():
    rng = np.random.default_rng(1)
    n = 78
    X = rng.normal(size=(n, 3))
    y = rng.binomial(1, 1 / (1 + np.exp(-(-1.6 + X[:, 0]))))
    fit = logistic.fit_unpenalized(X, y)
    r2_app = cox_snell_r2(fit.loglik, fit.loglik_null, n)
    lr = 2 * (fit.loglik - fit.loglik_null)
    result = riley_binary(n, 3, y.mean(), r2_app, r2_source="apparent")
    s_vh = 1 - 3 / lr
    assert result["criteria"]["shrinkage"]["achieved"] == pytest.approx(s_vh, rel=1e-9)
    assert result["r2_cs_adjusted"] == pytest.approx(s_vh * r2_app)
    assert result["pass"] is False and "fewer than" in result["warning"]
    json.dumps(result)


def test_no_signal_gives_warning_not_error():
    result = riley_binary(78, 5, 0.2, 0.02, r2_source="apparent")  # LR = 1.6 < p
    assert result["r2_cs_adjusted"] is None and result["required_n"] is None
    assert result["pass"] is False and "no more than chance" in result["warning"]
    json.dumps(result)


def test_survival_cohort_sized_inputs():
    result = riley_survival(78, 4, events=40, person_time=78 * 14.0, horizon=12.0, r2_cs=0.2,
                            r2_source="apparent")
    assert result["rate"] == pytest.approx(40 / (78 * 14.0))
    crit = result["criteria"]["overall_risk"]
    assert crit["pass"] == (crit["achieved"] <= 0.05)
    assert result["required_n"] >= max(required(result)[:2])
    json.dumps(result)


def test_cox_snell_r2():
    assert cox_snell_r2(-40.0, -40.0, 80) == 0.0
    assert cox_snell_r2(-30.0, -40.0, 80) == pytest.approx(1 - math.exp(-20 / 80))
