"""A small SVG writer for the result page's figures, drawn inline with the page.

The figures are written straight into the HTML (no image URL, so no patient value in any
address, and no second request): a few hundred numbers become path coordinates in well under a
millisecond, where matplotlib took 0.1-0.27 s a figure. Everything is styled with SVG
presentation attributes (``fill``, ``stroke``, ``font-size``...), never a ``style`` attribute or
element, so the page's Content-Security-Policy (``style-src 'self'``) applies unchanged.

:class:`Canvas` collects elements and returns them as :class:`markupsafe.Markup`; every text and
attribute value is escaped. :class:`Scale` maps data to canvas coordinates (linear or log10).
The figures themselves are drawn by :mod:`calculator.plots`.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
from markupsafe import Markup, escape

#: The house palette (also used by the page's legend, in calculator.css).
PATIENT_COLOUR = "#1d3557"
CR_COLOUR = "#2a6f97"
SCRS_COLOUR = "#b3261e"
LOW_BURDEN_COLOUR = "#3d7d7b"
HIGH_BURDEN_COLOUR = "#b86a1e"
INK = "#1b2631"
MUTED = "#5f6b76"
GRID = "#dde2e7"
TAIL_FILL = "#eceff2"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif"


def number(value: float) -> str:
    """A coordinate with one decimal, without a trailing ``.0``."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


class Scale:
    """Maps data values in ``domain`` to canvas coordinates in ``extent`` (linear or log10)."""

    def __init__(self, domain: tuple[float, float], extent: tuple[float, float],
                 log: bool = False):
        self.log = log
        low, high = (math.log10(v) if log else v for v in domain)
        self.low, self.span = low, (high - low) or 1.0
        self.start, self.length = extent[0], extent[1] - extent[0]

    def __call__(self, value):
        """Canvas coordinate(s) of ``value`` (a number or an array)."""
        values = np.log10(value) if self.log else np.asarray(value, dtype=float)
        result = self.start + (values - self.low) / self.span * self.length
        return float(result) if np.ndim(result) == 0 else result


def polyline_path(xs: Sequence[float], ys: Sequence[float]) -> str:
    """``d`` of a path through the points (NaN points are dropped)."""
    points = [(x, y) for x, y in zip(xs, ys) if np.isfinite(x) and np.isfinite(y)]
    if not points:
        return ""
    return "M" + " L".join(f"{number(x)},{number(y)}" for x, y in points)


def step_path(xs: Sequence[float], ys: Sequence[float], end: float | None = None) -> str:
    """``d`` of a right-continuous step curve: each value holds until the next x (or ``end``)."""
    points = [(x, y) for x, y in zip(xs, ys) if np.isfinite(x) and np.isfinite(y)]
    if not points:
        return ""
    parts = [f"M{number(points[0][0])},{number(points[0][1])}"]
    for (_, y_before), (x, y) in zip(points, points[1:]):
        parts.append(f"H{number(x)}")
        if y != y_before:
            parts.append(f"V{number(y)}")
    if end is not None and end > points[-1][0]:
        parts.append(f"H{number(end)}")
    return "".join(parts)


def step_band_path(xs: Sequence[float], lower: Sequence[float],
                   upper: Sequence[float]) -> str:
    """``d`` of the closed area between two step curves on the same ``xs``."""
    keep = [i for i in range(len(xs))
            if np.isfinite(xs[i]) and np.isfinite(lower[i]) and np.isfinite(upper[i])]
    if not keep:
        return ""
    x = [xs[i] for i in keep]
    top = step_path(x, [upper[i] for i in keep])
    bottom_points = []
    for index in range(len(keep) - 1, -1, -1):
        right = x[index + 1] if index + 1 < len(keep) else x[index]
        bottom_points += [(right, lower[keep[index]]), (x[index], lower[keep[index]])]
    bottom = "".join(f"L{number(px)},{number(py)}" for px, py in bottom_points)
    return top + bottom + "Z"


class Canvas:
    """An ``<svg>`` element under construction, ``width`` x ``height`` user units.

    Parameters
    ----------
    width, height : float
        The viewBox; the page's CSS sets the rendered size (the figure scales with it).
    title : str
        The accessible name (``<title>``, announced by screen readers).
    element_id : str, optional
        The ``id`` of the ``<svg>``.
    """

    def __init__(self, width: float, height: float, title: str,
                 element_id: str | None = None, css_class: str = "figure"):
        self.width, self.height = width, height
        self.title, self.element_id, self.css_class = title, element_id, css_class
        self.parts: list[str] = []

    def add(self, tag: str, text: str | None = None, **attributes) -> None:
        """Append one element; ``stroke_width=1`` becomes ``stroke-width="1"``; None is left out."""
        rendered = "".join(
            f' {name.rstrip("_").replace("_", "-")}="{escape(_attribute(value))}"'
            for name, value in attributes.items() if value is not None)
        if text is None:
            self.parts.append(f"<{tag}{rendered}/>")
        else:
            self.parts.append(f"<{tag}{rendered}>{escape(text)}</{tag}>")

    def raw(self, markup: str) -> None:
        """Append markup this module built itself (``<defs>``, groups)."""
        self.parts.append(markup)

    def line(self, x1, y1, x2, y2, stroke=INK, width=1.0, dash=None, **extra) -> None:
        self.add("line", x1=x1, y1=y1, x2=x2, y2=y2, stroke=stroke, stroke_width=width,
                 stroke_dasharray=dash, **extra)

    def text(self, x, y, content: str, size=11, anchor="start", fill=INK, weight=None,
             **extra) -> None:
        self.add("text", content, x=x, y=y, font_size=size, text_anchor=anchor, fill=fill,
                 font_weight=weight, **extra)

    def markup(self) -> Markup:
        """The finished ``<svg>`` element."""
        head = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {number(self.width)} '
                f'{number(self.height)}" class="{escape(self.css_class)}" role="img"'
                + (f' id="{escape(self.element_id)}"' if self.element_id else "")
                + f' font-family="{escape(FONT)}"><title>{escape(self.title)}</title>')
        return Markup(head + "".join(self.parts) + "</svg>")


def _attribute(value) -> str:
    if isinstance(value, float):
        return number(value)
    if isinstance(value, (list, tuple)):
        return " ".join(_attribute(v) for v in value)
    return str(value)


def ticks(low: float, high: float, step: float) -> Iterable[float]:
    """Multiples of ``step`` from ``low`` up to and including ``high``."""
    value = math.ceil(low / step) * step
    while value <= high + 1e-9:
        yield value
        value += step
