"""The report's curve numbers and templates: library computations equal the definitions they replace."""
from __future__ import annotations

import numpy as np
import pytest

from training.report.curves import roc_points


def _roc_by_counting(y, p):
    """ROC points by definition: the share of events (non-events) with p >= t, every distinct t."""
    y = np.asarray(y).astype(bool)
    thresholds = np.unique(p)[::-1]
    tpr = [0.0] + [float((p[y] >= t).sum() / max(y.sum(), 1)) for t in thresholds]
    fpr = [0.0] + [float((p[~y] >= t).sum() / max((~y).sum(), 1)) for t in thresholds]
    return np.array(fpr), np.array(tpr)


@pytest.mark.parametrize("seed", range(40))
def test_roc_points_from_scikit_learn_equal_the_counting_definition(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 90))
    y = rng.integers(0, 2, n)
    y[:2] = (0, 1)  # both classes
    p = np.round(rng.random(n), int(rng.integers(1, 4)))  # coarse rounding makes ties
    fpr, tpr = roc_points(y, p)
    expected_fpr, expected_tpr = _roc_by_counting(y, p)
    assert fpr.shape == expected_fpr.shape
    assert np.max(np.abs(fpr - expected_fpr)) <= 1e-12
    assert np.max(np.abs(tpr - expected_tpr)) <= 1e-12


@pytest.mark.parametrize("outcome", [0, 1])
def test_roc_points_with_one_outcome_class_equal_the_counting_definition(outcome):
    p = np.array([0.2, 0.5, 0.5, 0.9])
    y = np.full(p.size, outcome)
    for got, expected in zip(roc_points(y, p), _roc_by_counting(y, p)):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_wilson_interval_agrees_with_scipy_binomtest_but_is_kept():
    """scipy's Wilson interval agrees to 1e-12 but not bit for bit (last-place differences), and
    the intervals are stored in predictor.json and the manifest, which must stay byte-identical:
    so training.evaluation.bands keeps its closed form. This pins the agreement for a later swap."""
    from scipy import stats

    from training.evaluation.bands import wilson_interval

    worst = 0.0
    for n in range(1, 90):
        for events in range(n + 1):
            ci = stats.binomtest(events, n).proportion_ci(method="wilson")
            low, high = wilson_interval(events, n)
            worst = max(worst, abs(low - ci.low), abs(high - ci.high))
    assert worst <= 1e-12


def test_every_report_template_is_package_data():
    """An installed package renders its reports from training/report/templates/: each file must ship."""
    import fnmatch
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    package_data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))[
        "tool"]["setuptools"]["package-data"]
    # "*" applies to every package (tests/test_wheel.py checks the built wheel itself)
    patterns = [*package_data.get("*", []), *package_data.get("training.report", [])]
    templates = sorted((root / "training" / "report" / "templates").iterdir())
    assert templates
    for path in templates:
        relative = path.relative_to(root / "training" / "report").as_posix()
        assert any(fnmatch.fnmatch(relative, p) for p in patterns), relative
