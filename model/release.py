"""The release of cart-risk, written here only.

pyproject.toml reads it (``[tool.setuptools.dynamic]``), ``cart-risk --version``, ``/healthz``,
the model card and ``/metrics`` show it, CHANGELOG.md and CITATION.cff name it (a test checks).
It lives in model/, the bottom layer, so that any part of the code can name it.
"""

__version__ = "0.2.0"
