"""The one rounding rule for numbers shown to a user: Python's ``round(x, digits)``, vectorized.

The JSON API rounds probabilities and survival to 3 decimals and months to 2
(:func:`round_values`, :func:`round_value`); ``cart-risk score`` writes ``f"{round(x, 3):g}"``
text (:func:`format_values`). Both are the same numbers: each value is rounded here once, in bulk.

``rint(x * 10**digits) / 10**digits`` equals Python's correctly rounded ``round(x, digits)``
unless ``x * 10**digits`` lies near a tie (where the product's own rounding can decide), is too
large to hold every integer exactly, or is not finite; those few values go through ``round``
itself. One API answer holds ~800 numbers and a scored file millions, and ``round`` on each
cost more than the prediction itself.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Decimals of probabilities and survival in the API answer and the scored CSV.
DECIMALS = 3
#: Decimals of the months of a survival curve in the API answer.
MONTH_DECIMALS = 2


def round_value(value: Any, digits: int = DECIMALS) -> float | None:
    """``round(float(value), digits)``, or ``None`` where the value is not finite."""
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def _rounded_array(values: np.ndarray, digits: int) -> np.ndarray:
    """``round(v, digits)`` of each finite value as a float array; non-finite values stay."""
    scale = 10.0 ** digits
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = values * scale
        rounded = np.rint(scaled) / scale
        exceptional = (~(np.abs(scaled) < 2.0 ** 52)
                       | (np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6))
    for i in np.flatnonzero(exceptional & np.isfinite(values)).tolist():
        rounded[i] = round(float(values[i]), digits)
    return rounded


def round_values(values: np.ndarray, digits: int = DECIMALS) -> list[float | None]:
    """``[round_value(v, digits) for v in values]``, the same numbers, vectorized.

    Parameters
    ----------
    values : array-like of float, 1-d
    digits : int
        Decimals kept (3 for probabilities and survival, 2 for months).

    Returns
    -------
    list of float or None
        ``None`` where a value is NaN or infinite.
    """
    values = np.asarray(values, dtype=float)
    rounded = _rounded_array(values, digits).tolist()
    for i in np.flatnonzero(~np.isfinite(values)).tolist():
        rounded[i] = None
    return rounded


def format_values(values: np.ndarray, digits: int = DECIMALS) -> list[str]:
    """``f"{round(v, digits):g}"`` of each value, ``""`` where not finite; vectorized.

    Each distinct rounded number is formatted once (a scored file repeats few of them).

    Parameters
    ----------
    values : array-like of float, 1-d
    digits : int
        Decimals kept before ``:g`` formatting (3 in the scored CSV).
    """
    values = np.asarray(values, dtype=float)
    finite = np.isfinite(values)
    out = np.full(values.shape, "", dtype=object)
    if finite.any():
        # distinct by bit pattern, so that -0.0 keeps its "-0" apart from 0.0
        bits, inverse = np.unique(_rounded_array(values[finite], digits).view(np.int64),
                                  return_inverse=True)
        texts = np.array([f"{number:g}" for number in bits.view(float).tolist()], dtype=object)
        out[finite] = texts[inverse.ravel()]
    return out.tolist()
