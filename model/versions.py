"""The package versions a bundle records, and how the installed ones differ from them."""
from __future__ import annotations

import platform

REPORTED_PACKAGES = ("numpy", "pandas", "scipy", "scikit-learn", "lifelines", "joblib")


def installed_version(package: str) -> str | None:
    """Installed version of ``package`` (``"python"`` for Python itself), None if missing."""
    from importlib import metadata  # ~20 ms; only writers and estimator loads need it

    if package == "python":
        return platform.python_version()
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def major_minor(version: str | None) -> tuple[str, ...] | None:
    """``("1", "5")`` of ``"1.5.2"``; None for None."""
    return None if version is None else tuple(version.split(".")[:2])


def installed_versions() -> dict[str, str | None]:
    """Versions of Python and of the packages a bundle records (None when not installed)."""
    return {package: installed_version(package) for package in ("python", *REPORTED_PACKAGES)}


def version_differences(manifest: dict) -> list[str]:
    """One line per package whose installed version differs from the bundle's record.

    E.g. ``"scikit-learn: bundle 1.5.2, installed 1.6.0"``; ``"installed none"`` when missing.
    """
    return [f"{package}: bundle {version}, installed {installed_version(package) or 'none'}"
            for package, version in manifest.get("packages", {}).items()
            if version is not None and installed_version(package) != version]
