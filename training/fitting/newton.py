"""One damped Newton-Raphson solver for every likelihood fit in training/.

The ridge logistic and Cox fits, the recalibration fits of :mod:`training.evaluation.metrics`, Firth's fits
and the intercept re-estimation of :mod:`training.development.methods` all maximize a concave (or nearly
concave) objective by Newton steps with step halving. :func:`maximize` is that loop; each caller
supplies the objective and the Newton direction, and sets the few rules in which the fits differ
(tolerance, iteration cap, divergence bound, when convergence is tested). The loop performs the
same floating-point operations in the same order as the loops it replaced, so fitted coefficients
are unchanged to the last bit (``tests/test_golden_outputs.py``).

Step halving: a step ``t * step`` is accepted when the objective does not fall by more than
rounding (``1e-12 * max(1, |objective|)``) or when ``t`` has fallen below ``min_step``.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

#: objective(theta) -> (value, state); ``state`` is handed to ``direction`` at the same theta
#: (the Cox fit reuses the score and information computed with the objective).
Objective = Callable[[np.ndarray], tuple[float, Any]]
#: direction(theta, state) -> Newton step, or None when no step can be computed (singular).
Direction = Callable[[np.ndarray, Any], "np.ndarray | None"]


def maximize(objective: Objective, direction: Direction, start: np.ndarray, *, tol: float,
             max_iter: int, bound: float = np.inf, bounded_from: int = 0, min_step: float = 1e-8,
             test_proposed_step: bool = False) -> tuple[np.ndarray, bool]:
    """Maximize ``objective`` from ``start`` by Newton steps with step halving.

    Parameters
    ----------
    objective, direction : see :data:`Objective`, :data:`Direction`
    start : (q,) starting parameters (not modified)
    tol : convergence when the largest absolute step taken (``t * step``) is below ``tol``
    max_iter : Newton iterations before giving up (not converged)
    bound : divergence when ``max |theta[bounded_from:]|`` exceeds it after a step (separation,
        monotone likelihood); ``inf`` disables the check
    bounded_from : first parameter the bound applies to (1 leaves an intercept unbounded)
    min_step : smallest step fraction tried before a step is taken regardless
    test_proposed_step : test convergence on the full proposed step *before* the line search and
        return ``theta + step`` (the intercept-with-offset fit) instead of on the step taken

    Returns
    -------
    theta : (q,) last iterate
    converged : False after a divergence, a failed direction or ``max_iter`` iterations
    """
    theta = start.copy()
    current, state = objective(theta)
    for _ in range(max_iter):
        step = direction(theta, state)
        if step is None:
            return theta, False
        if test_proposed_step and np.max(np.abs(step), initial=0.0) < tol:
            return theta + step, True
        t = 1.0
        while True:
            candidate = theta + t * step
            value, candidate_state = objective(candidate)
            if value >= current - 1e-12 * max(1.0, abs(current)) or t < min_step:
                break
            t *= 0.5
        theta, current, state = candidate, value, candidate_state
        if test_proposed_step:
            continue
        if np.max(np.abs(theta[bounded_from:]), initial=0.0) > bound:
            return theta, False
        if np.max(np.abs(t * step), initial=0.0) < tol:
            return theta, True
    return theta, False
