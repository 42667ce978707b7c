"""model.rounding: the API's numbers and the scored CSV's text come from one rounding rule."""
from __future__ import annotations

import numpy as np

from model.rounding import format_values, round_value, round_values


def test_scored_text_is_the_api_number_formatted():
    """``format_values`` writes ``f"{x:g}"`` of the very number ``round_values`` gives the API."""
    rng = np.random.default_rng(13)
    values = np.r_[rng.uniform(0, 1, 500), rng.normal(0, 1e4, 100), 0.0005, 0.0015, 2.675,
                   1e-300, 1e300, 5e12 + 0.0005, np.nan, np.inf, -np.inf]
    numbers = round_values(values)
    expected = ["" if number is None else f"{number:g}" for number in numbers]
    assert format_values(values) == expected


def test_negative_zero_keeps_its_sign_beside_zero():
    """``round(-0.0, 3)`` is ``-0.0`` (text ``-0``) even where ``0.0`` is in the same column."""
    values = np.array([-0.0, 0.0, -0.0001, 0.0001])
    assert format_values(values) == [f"{round(v, 3):g}" for v in values.tolist()]
    assert [repr(round_value(v)) for v in values] == [repr(round(v, 3)) for v in values.tolist()]
