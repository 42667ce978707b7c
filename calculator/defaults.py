"""Where the default bundle lives, and building it on first use.

The default bundle is trained on the packaged reconstructed cohort (synthetic, rebuilt from the
published aggregates of Li et al.). It lives at ``<home>/bundles/default``, where ``<home>`` is
``$CART_RISK_HOME`` or ``~/.cart-risk``. The training stack is imported only when the bundle has to
be built, so predicting from an existing bundle never loads scikit-learn or lifelines.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from model.bundle import backup_path
from model.defaults import DEFAULT_BOOTSTRAP, DEFAULT_SEED
from model.errors import BundleError

#: Worker processes that train the default bundle (its B and seed: model/defaults.py).
DEFAULT_JOBS = 2


def cart_risk_home() -> Path:
    """``$CART_RISK_HOME`` if set and not empty, else ``~/.cart-risk``."""
    configured = os.environ.get("CART_RISK_HOME", "").strip()
    return Path(configured).expanduser() if configured else Path.home() / ".cart-risk"


def default_bundle_path() -> Path:
    """Directory of the default bundle: ``<home>/bundles/default``."""
    return cart_risk_home() / "bundles" / "default"


def ensure_default_bundle(*, quiet: bool = False) -> Path:
    """Return the default bundle's directory, training it first if there is none.

    An existing directory is returned as it is; loading it verifies every hash, so a damaged
    bundle is refused there rather than silently rebuilt here.

    Parameters
    ----------
    quiet : bool
        Do not print the one-line notice about training to stderr.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    BundleError
        If training the default bundle fails.
    """
    path = default_bundle_path()
    if path.exists() or backup_path(path).exists():
        return path
    if not quiet:
        print(f"cart-risk: no default bundle yet; training it on the reconstructed cohort into "
              f"{path} (first use only; this may take a minute)", file=sys.stderr)
    from training.reproduce import default_cohort_path  # the training stack, only now
    from training.train import train

    try:
        train(default_cohort_path(), path, bootstrap=DEFAULT_BOOTSTRAP, seed=DEFAULT_SEED,
              jobs=DEFAULT_JOBS)
    except BundleError:
        raise
    except Exception as problem:  # report any training failure as one line, not a traceback
        raise BundleError("default-bundle", str(path),
                          f"training the default bundle failed: {problem}") from problem
    return path

