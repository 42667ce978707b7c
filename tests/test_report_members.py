"""The report of an ensemble computes each figure on every reconstruction and averages it
(training/report/members.py): its bands have one reconstruction's width, not the K-times-larger
stacked file's."""
from __future__ import annotations

import numpy as np
import pandas as pd

from model.cohort import read_cohort
from model.survival import kaplan_meier, mean_kaplan_meier, survival_at
from training.paper.analyses import derive
from training.paper.ensemble import read_index
from training.report import curves, members
from training.report.sections import cohort_rows


def _members(small_ensemble_dir):
    return [derive(read_cohort(p)) for p in read_index(small_ensemble_dir)[1]]


def _width_at(row: dict, months: float) -> float:
    index = np.searchsorted(row["km_months"], months, side="right") - 1
    return float(row["km_upper"][index] - row["km_lower"][index])


class _Predicted:  # the two attributes survival_by_burden_group reads from a prediction
    def __init__(self, n):
        self.months = np.array([0.0, 12.0])
        self.survival = np.ones((n, 2))


def test_the_ensembles_kaplan_meier_band_has_one_reconstructions_width(small_ensemble_dir):
    cohorts = _members(small_ensemble_dir)
    results = [_Predicted(len(c)) for c in cohorts]
    averaged = members.mean_survival_by_burden_group("efs", cohorts, results)
    stacked = curves.survival_by_burden_group("efs", pd.concat(cohorts, ignore_index=True),
                                              _Predicted(sum(map(len, cohorts))))
    each = [curves.survival_by_burden_group("efs", c, r) for c, r in zip(cohorts, results)]
    for group in range(len(averaged)):
        widths = [_width_at(e[group], 12.0) for e in each]
        assert min(widths) - 1e-9 <= _width_at(averaged[group], 12.0) <= max(widths) + 1e-9
        assert _width_at(averaged[group], 12.0) > 1.3 * _width_at(stacked[group], 12.0)
        assert f"mean of {len(cohorts)} reconstructions" in averaged[group]["label"]


def test_mean_kaplan_meier_is_the_pointwise_mean_with_mean_counts(small_ensemble_dir):
    cohorts = _members(small_ensemble_dir)
    each = [kaplan_meier(c["os_months"], c["os_event"]) for c in cohorts]
    mean = mean_kaplan_meier(each)
    months = np.array([3.0, 6.0, 12.0, 24.0])
    expected = np.mean([survival_at(curve, months) for curve in each], axis=0)
    assert np.allclose(survival_at(mean, months), expected)
    counts = np.mean([curve.at_risk(months) for curve in each], axis=0)
    assert mean.at_risk(months).tolist() == np.rint(counts).astype(int).tolist()
    assert mean.n == 78 and mean.events == round(np.mean([c.events for c in each]))


def test_the_cohort_table_of_an_ensemble_is_per_reconstruction(small_ensemble_dir):
    cohorts = _members(small_ensemble_dir)
    table = dict(members.mean_cohort_rows([cohort_rows(c) for c in cohorts]))
    assert table["patients"] == f"78 per reconstruction ({len(cohorts)} reconstructions)"
    deaths = [int(c["os_event"].sum()) for c in cohorts]
    mean = np.mean(deaths)
    expected = f"{mean:.0f}" if float(mean).is_integer() else f"{mean:.1f}"
    assert table["deaths"].startswith(expected + " (")
    if len(set(deaths)) > 1:
        assert table["deaths"].endswith(f"[reconstructions: {min(deaths)}-{max(deaths)}]")
