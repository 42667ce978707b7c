"""Optimism bootstrap: reproducibility across n_jobs / backends, bookkeeping, redraws."""
import json

import numpy as np
import pytest

from training.development.bootstrap import optimism_bootstrap
from training.fitting.cox import fit_cox
from training.fitting.logistic import FitError, fit_logistic
from training.evaluation.metrics import evaluate_cox, evaluate_logistic


def binary_data(seed: int, n: int = 80):
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.normal(size=n), rng.binomial(1, 0.4, n), rng.normal(50, 15, n)])
    eta = -1.0 + 0.9 * X[:, 0] + 0.8 * X[:, 1] + 0.03 * (X[:, 2] - 50)
    return {"X": X, "y": rng.binomial(1, 1 / (1 + np.exp(-eta)))}


def survival_data(seed: int, n: int = 80):
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.normal(size=n), rng.binomial(1, 0.4, n)])
    T, C = rng.exponential(15.0 * np.exp(-0.7 * X[:, 0] - 0.5 * X[:, 1])), rng.uniform(6, 36, n)
    return {"X": X, "time": np.minimum(T, C), "event": (T <= C).astype(int)}


def fit_binary(d):
    return fit_logistic(d["X"], d["y"])


def eval_binary(fit, d):
    return evaluate_logistic(fit, d["X"], d["y"])


def fit_surv(d):
    return fit_cox(d["X"], d["time"], d["event"])


def eval_surv(fit, d):
    return evaluate_cox(fit, d["X"], d["time"], d["event"], horizon=12.0)


def assert_identical(a, b):
    np.testing.assert_equal(a.apparent, b.apparent)
    for m in a.apparent:
        np.testing.assert_array_equal(a.apparent_boot[m], b.apparent_boot[m])
        np.testing.assert_array_equal(a.test[m], b.test[m])
    np.testing.assert_equal(a.optimism, b.optimism)  # NaN-aware: a metric may be inestimable
    np.testing.assert_equal(a.optimism_corrected, b.optimism_corrected)
    for fa, fb in zip(a.fits, b.fits):
        np.testing.assert_array_equal(fa.coef, fb.coef)
        assert fa.lam == fb.lam
    np.testing.assert_array_equal(a.redraws, b.redraws)


def test_identical_for_any_n_jobs_and_seed_dependent():
    data = binary_data(1)
    one = optimism_bootstrap(fit_binary, eval_binary, data, B=24, seed=20170201, n_jobs=1)
    two = optimism_bootstrap(fit_binary, eval_binary, data, B=24, seed=20170201, n_jobs=2)
    assert_identical(one, two)
    other = optimism_bootstrap(fit_binary, eval_binary, data, B=24, seed=20170202, n_jobs=1)
    assert other.optimism != one.optimism
    assert not np.array_equal(other.test["c_index"], one.test["c_index"])


def test_identical_with_threading_backend_for_cox():
    data = survival_data(2)
    one = optimism_bootstrap(fit_surv, eval_surv, data, B=12, seed=7, n_jobs=1)
    threads = optimism_bootstrap(fit_surv, eval_surv, data, B=12, seed=7, n_jobs=2, backend="threading")
    assert_identical(one, threads)
    for fa, fb in zip(one.fits, threads.fits):
        np.testing.assert_array_equal(fa.cumhaz0, fb.cumhaz0)


def test_bookkeeping():
    data = binary_data(3)
    res = optimism_bootstrap(fit_binary, eval_binary, data, B=15, seed=3)
    assert len(res.fits) == 15 and res.B == 15
    assert res.apparent == eval_binary(fit_binary(data), data)
    for m, apparent in res.apparent.items():
        diff = res.apparent_boot[m] - res.test[m]
        # Efron-Gong: the mean is the headline for every metric, the median beside it
        assert res.optimism[m] == pytest.approx(np.nanmean(diff))
        assert res.optimism_mean[m] == res.optimism[m]
        assert res.optimism_corrected[m] == pytest.approx(apparent - np.nanmean(diff))
        assert res.optimism_median[m] == pytest.approx(np.nanmedian(diff))
        assert res.optimism_corrected_median[m] == pytest.approx(apparent - np.nanmedian(diff))
    assert res.summary()["optimism_summary"] == {m: "mean" for m in res.apparent}
    assert res.optimism["c_index"] > 0  # apparent discrimination is optimistic
    json.dumps(res.summary())


def test_degenerate_resamples_are_redrawn_deterministically():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(20, 1))
    y = np.zeros(20, dtype=int)
    y[:2] = 1  # a resample misses both events with probability (18/20)^20 = 12 %
    data = {"X": X, "y": y}
    a = optimism_bootstrap(fit_binary, eval_binary, data, B=40, seed=11)
    b = optimism_bootstrap(fit_binary, eval_binary, data, B=40, seed=11, n_jobs=2)
    assert a.redraws.sum() > 0 and len(a.fits) == 40
    assert all(f.n_events > 0 for f in a.fits)
    assert_identical(a, b)
    assert a.summary()["redraws"] == int(a.redraws.sum())


def test_gives_up_after_max_redraws():
    data = binary_data(5)

    def fit_original_only(d):
        if d["X"] is data["X"]:
            return fit_binary(d)
        raise FitError("resample refused")

    with pytest.raises(FitError, match="4 draws"):
        optimism_bootstrap(fit_original_only, eval_binary, data, B=2, seed=1, max_redraws=3)


def test_progress_flag_without_tty(capsys):
    res = optimism_bootstrap(fit_binary, eval_binary, binary_data(6), B=3, seed=1, progress=True)
    assert len(res.fits) == 3
    assert capsys.readouterr().err == ""


def test_rejects_ragged_data_and_bad_b():
    with pytest.raises(ValueError):
        optimism_bootstrap(fit_binary, eval_binary, {"X": np.zeros((3, 1)), "y": np.zeros(4)}, B=2, seed=1)
    with pytest.raises(ValueError):
        optimism_bootstrap(fit_binary, eval_binary, binary_data(7), B=0, seed=1)
