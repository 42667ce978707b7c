"""Optimism-corrected performance by the bootstrap (Efron & Gong 1983; Harrell, Lee & Mark 1996).

For b = 1..B: draw a resample of the rows with replacement, repeat the *whole* modelling procedure
on it (``fit_fn``, including the penalty choice), evaluate the refit on the resample (apparent_b)
and on the original data (test_b). optimism = mean_b(apparent_b - test_b);
corrected = apparent(original fit on original data) - optimism.

The mean is the headline for every metric: it is Efron & Gong's estimator and what the field
reports (``rms::validate``). The median of apparent_b - test_b is computed beside it
(``optimism_median`` / ``optimism_corrected_median``); where the two corrected values differ by
more than :data:`MATERIAL_DIFFERENCE` the model card says so, because then a few resamples
(typically refits whose predictions are nearly flat, with unbounded recalibration slopes) carry
the mean, and neither figure alone describes the bootstrap distribution.

Reproducibility: repetition b draws its rows from its own generator,
``np.random.default_rng(SeedSequence(seed).spawn(B)[b])``, so the result is identical for any
``n_jobs`` / backend and never touches global random state.

Degenerate resamples: when ``fit_fn`` raises :class:`training.fitting.logistic.FitError` or
``numpy.linalg.LinAlgError`` (e.g. a binary outcome with one class, no events, no finite fit),
the repetition redraws from the *same* generator (its next draw), up to ``max_redraws`` times; the
number of redraws is reported. This conditions the bootstrap on fittable resamples, which is what
the original analysis also is. A metric that is NaN in some repetitions (e.g. a recalibration
slope that diverges under separation) is averaged over the finite repetitions only; the count is
reported per metric.
"""
from __future__ import annotations

import sys
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import joblib
import numpy as np

from training.fitting.logistic import FitError

Data = Mapping[str, np.ndarray]

#: Absolute difference between the mean- and median-based corrected values above which the card
#: warns (metric -> threshold). Slope and intercept are unitless, C and the errors are risks.
MATERIAL_DIFFERENCE = {"calibration_slope": 0.1, "calibration_intercept": 0.1, "c_index": 0.02,
                       "brier": 0.01, "ici": 0.02, "e50": 0.02, "e90": 0.02}


@dataclass(frozen=True)
class BootstrapResult:
    """Outcome of :func:`optimism_bootstrap`.

    Attributes
    ----------
    apparent, optimism, optimism_corrected : dict metric -> float (optimism: the mean)
    optimism_mean : dict metric -> float, the same mean optimism (kept for older readers)
    optimism_median, optimism_corrected_median : dict metric -> float, the median-based figures
    apparent_boot, test : dict metric -> (B,) array, per repetition (NaN where not estimable)
    n_finite : dict metric -> number of repetitions with a finite apparent_b - test_b
    fit : the fit on the original data
    fits : list of B bootstrap fits (for the 95 % intervals)
    samples : (B, n) int array, the rows of each repetition's (last drawn) resample
    redraws : (B,) int array, degenerate resamples redrawn in each repetition
    B, seed : as requested
    """

    apparent: dict[str, float]
    optimism: dict[str, float]
    optimism_corrected: dict[str, float]
    optimism_mean: dict[str, float]
    optimism_median: dict[str, float]
    optimism_corrected_median: dict[str, float]
    apparent_boot: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    n_finite: dict[str, int]
    fit: Any
    fits: list
    samples: np.ndarray
    redraws: np.ndarray
    B: int
    seed: int

    def summary(self) -> dict:
        """JSON-serializable summary (NaN becomes None)."""

        def clean(d: dict[str, float]) -> dict[str, float | None]:
            return {k: (float(v) if np.isfinite(v) else None) for k, v in d.items()}

        return {"apparent": clean(self.apparent), "optimism": clean(self.optimism),
                "optimism_corrected": clean(self.optimism_corrected),
                "optimism_mean": clean(self.optimism_mean),
                "optimism_median": clean(self.optimism_median),
                "optimism_corrected_median": clean(self.optimism_corrected_median),
                "optimism_summary": {m: "mean" for m in self.optimism},
                "n_finite": {k: int(v) for k, v in self.n_finite.items()},
                "bootstrap": int(self.B), "seed": int(self.seed),
                "redraws": int(self.redraws.sum())}


def _n_rows(data: Data) -> int:
    sizes = {np.asarray(v).shape[0] for v in data.values()}
    if len(sizes) != 1:
        raise ValueError(f"all arrays in data must have the same number of rows, got {sorted(sizes)}")
    return sizes.pop()


def _take(data: Data, idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: np.asarray(v)[idx] for k, v in data.items()}


def _refit(seed_seq: np.random.SeedSequence, fit_fn: Callable, data: Data, n: int, max_redraws: int):
    """(fit, resample, its rows, redraws) of one repetition: the first fittable draw."""
    rng = np.random.default_rng(seed_seq)
    for redraws in range(max_redraws + 1):
        rows = rng.integers(0, n, size=n)
        sample = _take(data, rows)
        try:
            return fit_fn(sample), sample, rows, redraws
        except (FitError, np.linalg.LinAlgError):
            continue
    raise FitError(f"no fittable bootstrap resample in {max_redraws + 1} draws")


def _repetition(seed_seq: np.random.SeedSequence, fit_fn: Callable, evaluate_fn: Callable,
                data: Data, n: int, max_redraws: int):
    fit, sample, rows, redraws = _refit(seed_seq, fit_fn, data, n, max_redraws)
    return fit, evaluate_fn(fit, sample), evaluate_fn(fit, data), redraws, rows


def bootstrap_refits(fit_fn: Callable[[Data], Any], data: Data, seed, start: int, stop: int,
                     max_redraws: int = 100) -> tuple[list, np.ndarray]:
    """Refits ``start .. stop - 1`` of :func:`optimism_bootstrap` with the same ``seed``, unscored.

    Repetition b draws from ``SeedSequence(seed).spawn(stop)[b]``, the generator
    :func:`optimism_bootstrap` gives its b-th repetition for any B > b, so these refits continue
    that bootstrap's sequence (``seed``: an int or an entropy list). Returns the fits and their
    resamples' rows, (stop - start, n).
    """
    n = _n_rows(data)
    children = np.random.SeedSequence(seed).spawn(stop)[start:]
    results = [_refit(child, fit_fn, data, n, max_redraws) for child in children]
    return [r[0] for r in results], np.array([r[2] for r in results], dtype=int).reshape(len(results), n)


def _progress(iterable, total: int, enabled: bool):
    if not (enabled and sys.stderr.isatty()):
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc="bootstrap", file=sys.stderr)


def optimism_bootstrap(fit_fn: Callable[[Data], Any], evaluate_fn: Callable[[Any, Data], Mapping[str, float]],
                       data: Data, B: int, seed: int, n_jobs: int = 1, progress: bool = False,
                       backend: str | None = None, max_redraws: int = 100) -> BootstrapResult:
    """Harrell / Efron-Gong optimism-corrected performance.

    Parameters
    ----------
    fit_fn : data -> fit
        The complete modelling procedure (penalty choice included). Raise
        :class:`training.fitting.logistic.FitError` for data it cannot fit. Must be picklable for
        ``n_jobs != 1`` (lambdas and closures are fine with joblib's default loky backend).
    evaluate_fn : (fit, data) -> dict metric -> float
    data : mapping of name -> array, all with the same first dimension (rows are resampled)
    B : number of bootstrap repetitions, >= 1
    seed : seed of the ``SeedSequence`` the repetitions' generators are spawned from
    n_jobs : joblib workers (1 = in-process, -1 = all cores)
    progress : show a tqdm progress bar (only if stderr is a terminal)
    backend : joblib backend name for ``joblib.parallel_config`` (e.g. "loky", "threading",
        "dask"); None keeps the default (loky)
    max_redraws : redraws allowed per repetition before giving up (raises FitError)

    Returns
    -------
    BootstrapResult
    """
    if B < 1:
        raise ValueError("B must be >= 1")
    n = _n_rows(data)
    fit = fit_fn(data)
    apparent = dict(evaluate_fn(fit, data))
    children = np.random.SeedSequence(seed).spawn(B)
    tasks = (joblib.delayed(_repetition)(child, fit_fn, evaluate_fn, data, n, max_redraws)
             for child in children)
    config = joblib.parallel_config(backend=backend) if backend is not None else nullcontext()
    with config:
        runner = joblib.Parallel(n_jobs=n_jobs, return_as="generator")
        results = list(_progress(runner(tasks), B, progress))
    fits = [r[0] for r in results]
    metrics = list(apparent)
    apparent_boot = {m: np.array([r[1].get(m, np.nan) for r in results], dtype=float) for m in metrics}
    test = {m: np.array([r[2].get(m, np.nan) for r in results], dtype=float) for m in metrics}
    optimism, median, corrected, corrected_median, n_finite = {}, {}, {}, {}, {}
    for m in metrics:
        diff = apparent_boot[m] - test[m]
        finite = np.isfinite(diff)
        n_finite[m] = int(finite.sum())
        optimism[m] = float(diff[finite].mean()) if finite.any() else float("nan")
        median[m] = float(np.median(diff[finite])) if finite.any() else float("nan")
        corrected[m] = float(apparent[m] - optimism[m])
        corrected_median[m] = float(apparent[m] - median[m])
    return BootstrapResult(
        apparent={m: float(v) for m, v in apparent.items()}, optimism=optimism,
        optimism_corrected=corrected, optimism_mean=dict(optimism), optimism_median=median,
        optimism_corrected_median=corrected_median, apparent_boot=apparent_boot, test=test,
        n_finite=n_finite,
        fit=fit, fits=fits, samples=np.array([r[4] for r in results], dtype=int).reshape(len(results), n),
        redraws=np.array([r[3] for r in results], dtype=int), B=B, seed=seed,
    )

