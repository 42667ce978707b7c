"""Kaplan-Meier estimates agree across three independent implementations."""
import numpy as np
import pytest
from lifelines import KaplanMeierFitter
from statsmodels.duration.survfunc import SurvfuncRight

from model.cohort import read_cohort
from model.survival import kaplan_meier, survival_at
from training.paper.analyses import derive, km_survival
from training.paper.provenance import default_cohort_path

GRID = np.arange(0.0, 52.0, 0.25)


@pytest.fixture(scope="module")
def cohort():
    return derive(read_cohort(default_cohort_path()))


def statsmodels_km(time, event, at):
    fit = SurvfuncRight(time, event)
    index = np.searchsorted(fit.surv_times, at, side="right") - 1
    return np.where(index >= 0, fit.surv_prob[np.maximum(index, 0)], 1.0)


@pytest.mark.parametrize("outcome", ["os", "efs"])
@pytest.mark.parametrize("group", ["low", "high", None])
def test_numpy_lifelines_and_statsmodels_agree(cohort, outcome, group):
    part = cohort if group is None else cohort[cohort.burden_group == group]
    time = part[f"{outcome}_months"].to_numpy(float)
    event = part[f"{outcome}_event"].to_numpy(int)
    reference = statsmodels_km(time, event, GRID)
    ours = survival_at(kaplan_meier(time, event), GRID)
    np.testing.assert_allclose(ours, reference, atol=1e-12)
    np.testing.assert_allclose(km_survival(part, outcome, GRID), reference, atol=1e-12)


def test_ties_and_censoring_at_an_event_time():
    time = np.array([1, 1, 2, 2, 2, 3, 4, 4, 5.0])
    event = np.array([1, 0, 1, 1, 0, 0, 1, 1, 0])
    curve = kaplan_meier(time, event)
    # By hand: at 1, 1 death of 9 at risk; at 2, 2 of 7; at 4, 2 of 3.
    expected = np.cumprod([1 - 1 / 9, 1 - 2 / 7, 1 - 2 / 3])
    np.testing.assert_allclose(survival_at(curve, [1, 2, 4]), expected)
    np.testing.assert_allclose(survival_at(curve, [0.5, 4.5, 5.0]), [1.0, expected[-1], expected[-1]])
    lifelines = KaplanMeierFitter().fit(time, event).survival_function_at_times([1, 2, 4]).to_numpy()
    np.testing.assert_allclose(lifelines, expected)
    assert (curve.n, curve.events) == (9, 5)
