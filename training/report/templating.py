"""The Jinja2 environment of the training pages (``cart-risk report``, ``cart-risk validate --out``).

Templates live in ``training/report/templates/`` (package data) and are rendered with autoescaping on:
every value is escaped unless a template marks it safe, so no page builder escapes by hand.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape


def num(value, digits: int = 3) -> str:
    """Formatted number, or '-' for None / NaN; integers as integers and never "-0.000"."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def fixed(value, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals, or '-' for None."""
    return "-" if value is None else f"{value:.{digits}f}"


def sci(value: float) -> str:
    """Scientific notation, for differences expected near machine precision."""
    return f"{value:.2e}"


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The shared, autoescaping environment (templates loaded from the installed package)."""
    env = Environment(loader=PackageLoader("training.report", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    env.filters.update(num=num, fixed=fixed, sci=sci)
    return env


def render(template: str, **context) -> str:
    """Render ``training/report/templates/<template>`` with ``context``."""
    return environment().get_template(template).render(**context)
