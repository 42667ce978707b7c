"""Penalty grids that never bind silently.

A penalty chosen at the end of its grid is not a minimum of the criterion, only the best point
that was looked at. :func:`search_grid` therefore evaluates the starting grid and then extends it
past whichever end holds the best value, one step of :data:`GRID_STEP` at a time, until the
criterion has turned (a worse value beyond the best) or a limit is reached:

* upwards to :data:`GRID_CAP`, where every coefficient is shrunk to practically zero (the
  intercept-only model); a criterion still falling there is minimized by "no predictor effect";
* downwards to :data:`GRID_FLOOR`, only when lambda = 0 has no finite fit (separation).

A choice at the final grid's end is flagged ``edge`` so that every caller can count it.
The criterion is anything lower-is-better (AIC, cross-validated deviance); ties go to the larger
penalty, as in :func:`training.fitting.ridge.select_lambda`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

#: Ratio between neighbouring extension points: three per decade, as the starting grid.
GRID_STEP = 10.0 ** (1.0 / 3.0)
#: Largest penalty the upward extension reaches (summed log-likelihood scale, standardized
#: columns): a coefficient is shrunk by a factor of about information / lambda < 1e-4.
GRID_CAP = 1.0e6
#: Smallest positive penalty the downward extension reaches (only under separation).
GRID_FLOOR = 1.0e-6


@dataclass(frozen=True)
class GridSearch:
    """Outcome of :func:`search_grid`.

    Attributes
    ----------
    grid : (m,) penalties evaluated, ascending (the starting grid sorted, with its extensions)
    criterion : (m,) criterion values (+inf where the fit does not exist)
    best : index of the chosen penalty in ``grid``
    results : dict index -> whatever ``evaluate`` returned for the finite points
    edge : True when the chosen penalty is an end point of the final grid at which the criterion
        had not turned: the lowest finite point when the one below has no fit (separation), or
        the largest one short of :data:`GRID_CAP`. With the extension this happens only under
        separation; it is counted, never silent.
    extended : number of points added beyond the starting grid
    null_limit : the criterion fell all the way to :data:`GRID_CAP`: its minimum is the limit
        lambda -> infinity, the model without predictor effects (intercept / baseline only).
        This is a choice, not a binding grid: the fits (:func:`training.fitting.logistic.fit_logistic`,
        :func:`training.fitting.cox.fit_cox`) then return that model exactly, every coefficient 0.
    """

    grid: np.ndarray
    criterion: np.ndarray
    best: int
    results: dict
    edge: bool
    extended: int
    null_limit: bool = False


def best_index(grid: np.ndarray, criterion: np.ndarray) -> int:
    """Index of the smallest finite criterion (ties within 1e-9 to the larger penalty); -1 if none."""
    finite = np.isfinite(criterion)
    if not finite.any():
        return -1
    low = np.min(criterion[finite])
    candidates = np.flatnonzero(finite & (criterion <= low + 1e-9))
    return int(candidates[np.argmax(grid[candidates])])


def search_grid(grid, evaluate: Callable[[float], tuple[float, Any] | None],
                extend: bool = True) -> GridSearch:
    """Evaluate ``evaluate`` over ``grid`` (largest first) and extend past a best end point.

    Parameters
    ----------
    grid : sequence of penalties >= 0
    evaluate : lambda -> (criterion, result), or None where no finite fit exists. It is called
        in decreasing order of lambda over the starting grid (callers warm-start from the
        previous solution), then at the extension points.
    extend : False evaluates the starting grid only (a single fixed penalty, for instance).

    Returns
    -------
    GridSearch ; ``best`` is -1 when no point gives a finite fit.
    """
    lams = [float(v) for v in grid]
    crit = [np.inf] * len(lams)
    results: dict[int, Any] = {}

    def run(i: int) -> None:
        out = evaluate(lams[i])
        if out is not None and np.isfinite(out[0]):
            crit[i], results[i] = float(out[0]), out[1]

    for i in np.argsort(-np.asarray(lams), kind="stable"):
        run(int(i))
    added = 0
    while extend:
        g, c = np.asarray(lams), np.asarray(crit)
        best = best_index(g, c)
        if best < 0:
            break
        finite = g[np.isfinite(c)]
        if g[best] == finite.max() and g[best] > 0 and g[best] * GRID_STEP <= GRID_CAP * (1 + 1e-9):
            lams.append(float(g[best] * GRID_STEP))
        elif g[best] == finite.min() and g[best] > 0 and 0.0 not in finite:
            below = g[(g < g[best]) & (g >= g[best] / GRID_STEP * 0.999)]
            if below.size or g[best] / GRID_STEP < GRID_FLOOR * (1 - 1e-9):
                break  # the next point down has no finite fit, or the floor is reached
            lams.append(float(g[best] / GRID_STEP))
        else:
            break
        crit.append(np.inf)
        run(len(lams) - 1)
        added += 1
    order = np.argsort(np.asarray(lams), kind="stable")  # ascending, extensions in place
    g, c = np.asarray(lams)[order], np.asarray(crit, dtype=float)[order]
    position = {int(old): new for new, old in enumerate(order)}
    results = {position[i]: r for i, r in results.items()}
    best = best_index(g, c)
    edge, null_limit = False, False
    if best >= 0 and extend and g.size > 1:
        finite = g[np.isfinite(c)]
        at_top = g[best] == finite.max() and g[best] > 0
        at_bottom = g[best] == finite.min() and g[best] > 0 and finite.size > 1
        null_limit = bool(at_top and g[best] >= GRID_CAP * (1 - 1e-9))
        edge = bool((at_top and not null_limit) or at_bottom)
    return GridSearch(grid=g, criterion=c, best=best, results=results, edge=edge,
                      extended=added, null_limit=null_limit)
