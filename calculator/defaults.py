"""Where the default bundle lives, and building it on first use.

The default bundle is trained on the packaged ensemble of reconstructed cohorts (synthetic, each
rebuilt from the published aggregates of Li et al. under another admissible choice of the
assumptions; ``docs/ensemble.md``) and pools them, so its intervals carry the reconstruction's
uncertainty as well as sampling uncertainty. It lives at ``<home>/bundles/default``, where ``<home>`` is
``$CART_RISK_HOME`` or ``~/.cart-risk``. The training stack is imported only when the bundle has to
be built, so predicting from an existing bundle never loads scikit-learn or lifelines.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from model.bundle import backup_path
from model.defaults import DEFAULT_BOOTSTRAP, DEFAULT_SEED
from model.errors import BundleError

#: Worker processes that train the default bundle (its B and seed: model/defaults.py).
DEFAULT_JOBS = 2
#: Import names of the `train` extra (pyproject.toml) -> the package to name in a message.
TRAINING_STACK = {"sklearn": "scikit-learn", "lifelines": "lifelines", "scipy": "scipy",
                  "joblib": "joblib", "matplotlib": "matplotlib", "tqdm": "tqdm"}
INSTALL_TRAIN = "install the training stack: pip install 'cart-risk[train]'"


def missing_training_package() -> str | None:
    """The first package of the `train` extra that is not installed, or None if all are."""
    from importlib.util import find_spec

    for module, package in TRAINING_STACK.items():
        if find_spec(module) is None:
            return package
    return None


def training_stack_message(package: str) -> str:
    """One line for a command that needs the `train` extra on a serving-only install."""
    return f"this needs {package}, which this serving-only install lacks; {INSTALL_TRAIN}"


def cart_risk_home() -> Path:
    """``$CART_RISK_HOME`` if set and not empty, else ``~/.cart-risk``."""
    configured = os.environ.get("CART_RISK_HOME", "").strip()
    return Path(configured).expanduser() if configured else Path.home() / ".cart-risk"


def configured_bundle_path() -> Path | None:
    """``$CART_RISK_BUNDLE`` if set and not empty (the bundle to serve), else None."""
    configured = os.environ.get("CART_RISK_BUNDLE", "").strip()
    return Path(configured).expanduser() if configured else None


def bundle_or_default(given: str | os.PathLike | None) -> Path:
    """The bundle a command uses: ``--bundle``, else ``$CART_RISK_BUNDLE``, else the default
    bundle (trained first if there is none, see :func:`ensure_default_bundle`)."""
    if given is not None:
        return Path(given)
    return configured_bundle_path() or ensure_default_bundle()


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
    missing = missing_training_package()
    if missing:
        raise BundleError("default-bundle", str(path),
                          "there is no default bundle yet, and building it "
                          + training_stack_message(missing)
                          + "; or give --bundle DIR (or CART_RISK_BUNDLE) of a bundle built "
                            "elsewhere")
    if not quiet:
        print(f"cart-risk: no default bundle yet; training it on the ensemble of reconstructed "
              f"cohorts into {path} (first use only; this may take a minute or two)", file=sys.stderr)
    # Trained in a process of its own: `serve` forks gunicorn's workers from this one, and a
    # process that has run joblib's worker pool leaves exit handlers and a resource tracker that
    # every forked worker would trip over at shutdown (tracebacks in the server's log).
    command = [sys.executable, "-m", "calculator.cli", "train", "--ensemble", "--out", str(path),
               "--bootstrap", str(DEFAULT_BOOTSTRAP), "--seed", str(DEFAULT_SEED),
               "--jobs", str(DEFAULT_JOBS)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or [f"exit code {result.returncode}"])[-1]
        raise BundleError("default-bundle", str(path),
                          f"training the default bundle failed: {reason}")
    return path

