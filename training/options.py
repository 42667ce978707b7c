"""Training options, validated once: bootstrap B, workers, joblib backend, fitting methods.

``cart-risk train`` (:mod:`calculator.cli`), :func:`training.train.train` and
:func:`training.train_ensemble.train_ensemble` all call :func:`training_options`, so the command
line and the library accept the same values and refuse the rest with the same words.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass

from model.defaults import BACKENDS
from model.errors import EXIT_USAGE
from training.development.fit_models import DEFAULT_METHODS
from training.development.methods import METHODS_BY_KIND


class TrainingError(ValueError):
    """Training cannot produce a bundle (no model fittable, bad option, missing backend)."""


class OptionError(TrainingError):
    """One training option with a value training cannot use.

    Attributes
    ----------
    option : str
        The parameter's name ("bootstrap", "jobs", "backend", "scheduler", "method"); the command
        line shows it as ``--NAME``.
    problem : str
        What is wrong, readable after the option's name.
    """

    exit_code = EXIT_USAGE

    def __init__(self, option: str, problem: str):
        self.option, self.problem = option, problem
        super().__init__(f"{option} {problem}")


@dataclass(frozen=True)
class TrainingOptions:
    """Validated options of one training run (see :func:`training_options`)."""

    bootstrap: int
    jobs: int
    backend: str | None
    scheduler: str | None
    methods: dict[str, str]


def _whole(value, option: str) -> int:
    if isinstance(value, bool):
        raise OptionError(option, f"must be a whole number (got {value!r})")
    try:
        return operator.index(value)
    except TypeError:
        raise OptionError(option, f"must be a whole number (got {value!r})") from None


def training_options(bootstrap, jobs, backend: str | None = None, scheduler: str | None = None,
                     methods: dict[str, str] | None = None) -> TrainingOptions:
    """Check every training option and return them with defaults filled in.

    Parameters
    ----------
    bootstrap : int
        Bootstrap refits B, >= 1: the confidence intervals of predictions come from them.
    jobs : int
        Local worker processes, >= 1 (with dask every worker of the cluster is used instead).
    backend : str, optional
        One of :data:`model.defaults.BACKENDS`; default loky (local processes), or dask when
        ``scheduler`` is given.
    scheduler : str, optional
        Address of a dask scheduler; needed by, and only by, the dask backend.
    methods : dict, optional
        Fitting method by model kind ({"logistic": ..., "cox": ...}); missing kinds get
        :data:`training.development.fit_models.DEFAULT_METHODS`.

    Raises
    ------
    OptionError
        The first option that cannot be used, named in the message.
    """
    bootstrap, jobs = _whole(bootstrap, "bootstrap"), _whole(jobs, "jobs")
    if bootstrap < 1:
        raise OptionError("bootstrap", "must be 1 or more: the confidence intervals of predictions "
                                       "come from the bootstrap refits")
    if jobs < 1:
        raise OptionError("jobs", "must be 1 or more")
    if backend is None and scheduler:
        backend = "dask"
    if backend is not None and backend not in BACKENDS:
        raise OptionError("backend", f"{backend!r} is unknown (known: {', '.join(BACKENDS)})")
    if backend == "dask" and not scheduler:
        raise OptionError("backend", "dask needs --scheduler ADDRESS")
    if scheduler and backend != "dask":
        raise OptionError("scheduler", f"needs backend 'dask', not {backend!r}")
    methods = {**DEFAULT_METHODS, **(methods or {})}
    unknown = {k: v for k, v in methods.items()
               if k not in DEFAULT_METHODS or v not in METHODS_BY_KIND[k]}
    if unknown:
        raise OptionError("method", f"{unknown} is unknown: kinds are logistic (methods "
                                    f"{', '.join(METHODS_BY_KIND['logistic'])}) and cox (methods "
                                    f"{', '.join(METHODS_BY_KIND['cox'])})")
    return TrainingOptions(bootstrap, jobs, backend, scheduler, methods)
