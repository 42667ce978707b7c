"""The feature configuration: which prespecified predictors each model is fitted with.

A TOML file (default: ``training/features.toml``, packaged) of the form::

    [models.cr]
    features = ["log10_blasts", "age_years"]

Models are ``cr``, ``severe_crs``, ``efs`` and ``os``; a model absent from the file is not trained.
Feature names come from :data:`model.features.FEATURES`. Anything else is refused with a message
naming the file and the key, so a typo never silently changes a model.
"""
from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from model.errors import EXIT_USAGE
from model.features import FEATURES
from model.outcomes import NAMES

DEFAULT_CONFIG = "features.toml"


class ConfigError(ValueError):
    """A feature configuration file that cannot be used; the message names file and key."""

    exit_code = EXIT_USAGE


@dataclass(frozen=True)
class FeatureConfig:
    """A validated feature configuration.

    Attributes
    ----------
    models : dict of str -> tuple of str
        Model name -> feature names in model column order (only configured models).
    source : str
        Where it was read from (``"training/features.toml (packaged default)"`` or a path).
    sha256 : str
        SHA-256 of the file's bytes, recorded in the bundle manifest.
    """

    models: dict[str, tuple[str, ...]]
    source: str
    sha256: str


def _fail(source: str, key: str, problem: str) -> ConfigError:
    return ConfigError(f"{source}: {key}: {problem}")


def parse_config(text: bytes, source: str) -> FeatureConfig:
    """Validate the bytes of a feature configuration file.

    Parameters
    ----------
    text : bytes
        The file's content (UTF-8 TOML).
    source : str
        Name used in error messages and recorded in the manifest.

    Returns
    -------
    FeatureConfig

    Raises
    ------
    ConfigError
        Not UTF-8 / not TOML, an unknown key or model, an unknown, repeated or missing feature.
    """
    try:
        data = tomllib.loads(text.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source}: is not valid TOML ({error})") from None
    unknown = [key for key in data if key != "models"]
    if unknown:
        raise _fail(source, unknown[0], "unknown key (the only top-level table is [models.<name>])")
    models = data.get("models")
    if not isinstance(models, dict) or not models:
        raise _fail(source, "models", "no [models.<name>] table; configure at least one of "
                    + ", ".join(NAMES))
    parsed: dict[str, tuple[str, ...]] = {}
    for name, table in models.items():
        key = f"models.{name}"
        if name not in NAMES:
            raise _fail(source, key, f"unknown model (known: {', '.join(NAMES)})")
        if not isinstance(table, dict):
            raise _fail(source, key, "must be a table with a 'features' list")
        extra = [k for k in table if k != "features"]
        if extra:
            raise _fail(source, f"{key}.{extra[0]}", "unknown key (only 'features' is allowed)")
        features = table.get("features")
        if not isinstance(features, list) or not features:
            raise _fail(source, f"{key}.features", "must be a non-empty list of feature names")
        for i, feature in enumerate(features):
            where = f"{key}.features[{i}]"
            if not isinstance(feature, str):
                raise _fail(source, where, f"must be a feature name string (got {feature!r})")
            if feature not in FEATURES:
                raise _fail(source, where, f"unknown feature {feature!r} (known: "
                            f"{', '.join(FEATURES)})")
            if feature in features[:i]:
                raise _fail(source, where, f"feature {feature!r} is listed twice")
        parsed[name] = tuple(features)
    ordered = {name: parsed[name] for name in NAMES if name in parsed}
    return FeatureConfig(ordered, source, hashlib.sha256(text).hexdigest())


def load_config(path: str | Path | None = None) -> FeatureConfig:
    """Read and validate a feature configuration (``None``: the packaged default).

    Raises
    ------
    ConfigError
        The file cannot be read or does not validate (see :func:`parse_config`).
    """
    if path is None:
        text = resources.files("training").joinpath(DEFAULT_CONFIG).read_bytes()
        return parse_config(text, f"training/{DEFAULT_CONFIG} (packaged default)")
    path = Path(path)
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (IsADirectoryError, PermissionError) as error:
        raise ConfigError(f"{path}: cannot be read ({error.strerror})") from None
    return parse_config(text, str(path))
