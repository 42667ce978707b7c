"""Model bundles: atomic writing, hash verification, and loading (format: docs/bundle-format.md).

Loading verifies every hash before anything is parsed or unpickled, and hashes the very bytes it
then parses, so a file changed between the check and the read cannot slip through.

Writing builds the new bundle in a hidden sibling directory and swaps it in with renames:
``out -> .out.previous``, ``new -> out``, then ``.out.previous`` is discarded. If the process dies
between the two renames, ``out`` is missing and ``.out.previous`` holds the earlier bundle, which
the next write or load renames back. On POSIX the swap holds an exclusive ``flock`` on the parent
directory and loads hold a shared one, so a load never sees half a swap (the renames, locks and
recovery: :mod:`model.bundle_swap`; the recorded package versions: :mod:`model.versions`).
"""
from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import os
import shutil
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from model.bundle_content import check_manifest, check_predictor, parse_json
from model.bundle_kind import Basis, bundle_basis, member_times
from model.errors import BundleError, BundleVersionWarning
from model.bundle_swap import (backup_path, directory_lock, fsync_directory,
                               recover_interrupted_swap, remove_abandoned, sibling_path)
from model.compiling import CompiledPredictor, compile_predictor
from model.versions import (installed_version, installed_versions, major_minor,
                            version_differences)

#: Newest bundle format this code reads and the one it writes.
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MANIFEST_DIGEST = "manifest.sha256"
PREDICTOR = "predictor.json"
ESTIMATORS = "estimators.joblib"
TRAINING_DATA = "training_cohort.csv"
BUNDLE_FILES = (PREDICTOR, ESTIMATORS, TRAINING_DATA)
#: Packages whose pickles are unsafe to load across a major.minor version change.
PICKLE_CRITICAL = ("scikit-learn", "lifelines")


@dataclass(frozen=True, eq=False)
class LoadedBundle:
    """A verified bundle's serving part.

    Attributes
    ----------
    id : str
        SHA-256 (hex) of ``manifest.json``, which records the hash of every other file.
    path : pathlib.Path
        Directory the bundle was read from.
    manifest : dict
        Parsed ``manifest.json``.
    params : dict
        Parsed ``predictor.json``.
    predictor : CompiledPredictor
        ``params`` as numpy arrays, ready for :mod:`model.predictor`.
    follow_up : dict of str -> model.bundle_kind.CohortTimes
        Survival outcome (``efs``, ``os``) -> the training cohort's follow-up times (months,
        sorted), one array per reconstruction, for the numbers at risk behind each estimate.
    basis : model.bundle_kind.Basis
        What the bundle rests on: its kind, cohort sizes and labels.
    """

    id: str
    path: Path
    manifest: dict
    params: dict
    predictor: CompiledPredictor
    follow_up: dict = field(default_factory=dict)
    basis: Basis | None = None


# --------------------------------------------------------------------------- writing


def write_bundle(out_dir: str | os.PathLike, manifest: dict, predictor: dict, estimators: Any,
                 training_csv_path: str | os.PathLike, *, check_cohort: bool = True) -> dict:
    """Write a bundle atomically: ``out_dir`` ends up with the whole new bundle or the old one.

    Parameters
    ----------
    out_dir : path
        Bundle directory. An existing bundle there is replaced; an existing directory that is not a
        bundle (no ``manifest.json``) and not empty is refused rather than replaced.
    manifest : dict
        Model card (see ``docs/bundle-format.md``). Not modified; the written copy adds
        ``format_version``, ``created`` and ``packages`` when absent, and always sets ``files`` and
        ``training_data`` (``sha256``, and ``n`` = data rows when absent).
    predictor : dict
        Content of ``predictor.json``; checked by compiling it before anything is written.
    estimators : object
        Fitted estimators, serialized with joblib.
    training_csv_path : path
        Cohort CSV the bundle was trained on; copied into the bundle.
    check_cohort : bool
        Also validate the copied cohort by the cohort schema (and split it into its
        reconstructions) before the swap, as ``serve`` will; off only for toy files in tests.
        Everything else a load checks (hashes, manifest, predictor) is checked always.

    Returns
    -------
    dict
        The manifest as written.
    """
    out = Path(os.path.abspath(out_dir))
    out.parent.mkdir(parents=True, exist_ok=True)
    _refuse_foreign_directory(out)
    # checked as it will be read back: the JSON round trip makes numpy scalars plain numbers
    check_predictor(json.loads(json.dumps(predictor, allow_nan=True)))
    compile_predictor(predictor, manifest)
    recover_interrupted_swap(out)
    remove_abandoned(out)
    staging = sibling_path(out, "writing")
    staging.mkdir()
    try:
        written = _fill_staging(staging, manifest, predictor, estimators, Path(training_csv_path))
        _check_loadable(staging, out, check_cohort)
        discards = []
        with directory_lock(out.parent, exclusive=True):
            _refuse_foreign_directory(out)
            recover_interrupted_swap(out, locked=True)
            backup = backup_path(out)
            if backup.exists():  # stale: its writer died after putting its own bundle in place
                discards.append(sibling_path(out, "discard"))
                os.rename(backup, discards[-1])
            if out.exists():
                os.rename(out, backup)
            os.rename(staging, out)
            fsync_directory(out.parent)
            if backup.exists():
                discards.append(sibling_path(out, "discard"))
                os.rename(backup, discards[-1])
        for discard in discards:
            shutil.rmtree(discard, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        recover_interrupted_swap(out)  # a rename that failed between the two leaves out missing
        raise
    return written


def _check_loadable(staging: Path, out: Path, check_cohort: bool) -> None:
    """Load the staged bundle as ``predict`` and ``serve`` will (hashes, manifest and predictor
    content, the training cohort's schema and reconstructions), before it may replace ``out``.

    Raises
    ------
    BundleError
        Naming the failed check and saying that ``out`` was left as it was.
    """
    try:
        loaded = load_predictor(staging)
        if check_cohort:
            read_training_members(loaded)
    except BundleError as error:
        detail = str(error).split(": ", 1)[-1]
        raise BundleError(error.check, error.file,
                          f"{detail}; the new bundle would not load, so it was not written and "
                          f"{out} was left as it was") from None


def _fill_staging(staging: Path, manifest: dict, predictor: dict, estimators: Any,
                  training_csv: Path) -> dict:
    import joblib  # a few hundred ms; only writers and audits pay it

    _write_file(staging / PREDICTOR, json.dumps(predictor, allow_nan=False).encode())
    buffer = io.BytesIO()
    joblib.dump(estimators, buffer)
    _write_file(staging / ESTIMATORS, buffer.getvalue())
    _write_file(staging / TRAINING_DATA, training_csv.read_bytes())
    written = copy.deepcopy(manifest)
    written.setdefault("format_version", FORMAT_VERSION)
    written.setdefault("created", datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    written.setdefault("packages", installed_versions())
    written["files"] = {name: _sha256_file(staging / name) for name in BUNDLE_FILES}
    training = dict(written.get("training_data") or {})
    training.update(file=TRAINING_DATA, sha256=written["files"][TRAINING_DATA])
    training.setdefault("n", _count_rows(staging / TRAINING_DATA))
    written["training_data"] = training
    manifest_bytes = json.dumps(written, indent=2, allow_nan=False).encode()
    _write_file(staging / MANIFEST, manifest_bytes)
    _write_file(staging / MANIFEST_DIGEST, (_sha256(manifest_bytes) + "\n").encode())
    fsync_directory(staging)
    return written


def _write_file(path: Path, content: bytes) -> None:
    with open(path, "xb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())


def _count_rows(path: Path) -> int:
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        return max(sum(1 for _ in csv.reader(handle)) - 1, 0)


def _refuse_foreign_directory(out: Path) -> None:
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise BundleError("output-directory", str(out), "exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).exists():
        raise BundleError("output-directory", str(out),
                          "is a non-empty directory without manifest.json; refusing to replace it")


# --------------------------------------------------------------------------- verifying and loading


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _sha256_file(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _readable_path(path: str | os.PathLike) -> Path:
    """The bundle directory to read, after recovering an interrupted swap if there was one."""
    bundle = Path(os.path.abspath(path))
    recover_interrupted_swap(bundle)
    if not bundle.exists() and backup_path(bundle).is_dir():
        return backup_path(bundle)
    return bundle


def _verify(bundle: Path) -> tuple[dict, bytes]:
    """Every check of :func:`verify_bundle`; returns the manifest and its exact bytes."""
    if not bundle.is_dir():
        raise BundleError("directory", str(bundle), "no bundle directory here")
    for name in (MANIFEST, MANIFEST_DIGEST):
        if not (bundle / name).is_file():
            raise BundleError("file-present", name, f"missing from {bundle}")
    manifest_bytes = (bundle / MANIFEST).read_bytes()
    recorded = (bundle / MANIFEST_DIGEST).read_text(encoding="ascii", errors="replace").strip()
    if _sha256(manifest_bytes) != recorded:
        raise BundleError("manifest-hash", MANIFEST,
                          f"does not match {MANIFEST_DIGEST}; the manifest was changed or damaged")
    manifest = parse_json(manifest_bytes, MANIFEST)
    try:
        version, files = manifest["format_version"], manifest["files"]
        if not isinstance(files, dict):
            raise TypeError("'files' is not an object")
    except (ValueError, KeyError, TypeError) as problem:
        raise BundleError("manifest-content", MANIFEST, f"unreadable: {problem}") from None
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise BundleError("format-version", MANIFEST,
                          f"format_version {version!r} is newer than this code reads "
                          f"({FORMAT_VERSION}); update cart-risk")
    for name in BUNDLE_FILES:
        if name not in files:
            raise BundleError("file-listed", name, "not listed in the manifest")
    for name, digest in files.items():
        if name != Path(name).name or name in ("", ".", ".."):
            raise BundleError("file-name", str(name), "bundle files must be plain file names")
        if not (bundle / name).is_file():
            raise BundleError("file-present", name, f"missing from {bundle}")
        if _sha256_file(bundle / name) != digest:
            raise BundleError("file-hash", name, "SHA-256 does not match the manifest; the file "
                              "was changed or damaged after the bundle was written")
    training = manifest.get("training_data", {})
    if training.get("sha256") != files[TRAINING_DATA]:
        raise BundleError("training-data", TRAINING_DATA,
                          "training_data.sha256 differs from the file's recorded hash")
    return manifest, manifest_bytes


def _read_verified(bundle: Path, manifest: dict, name: str) -> bytes:
    content = (bundle / name).read_bytes()
    if _sha256(content) != manifest["files"][name]:
        raise BundleError("file-hash", name, "changed while being loaded")
    return content


def verify_bundle(path: str | os.PathLike) -> dict:
    """Check a bundle's integrity without parsing or unpickling its content files.

    Checks, in order: the directory exists; ``manifest.json`` matches ``manifest.sha256``; its
    ``format_version`` is not newer than this code reads; every required file is listed; every
    listed file exists and its SHA-256 matches; the training-data hash agrees.

    Returns
    -------
    dict
        The parsed manifest.

    Raises
    ------
    BundleError
        Naming the failed check (``error.check``) and the file (``error.file``).
    """
    bundle = _readable_path(path)
    with directory_lock(bundle.parent, exclusive=False):
        return _verify(bundle)[0]


def load_predictor(path: str | os.PathLike) -> LoadedBundle:
    """Verify a bundle, then parse ``predictor.json`` (never unpickles anything).

    Raises
    ------
    BundleError
        On any failed check of :func:`verify_bundle`, or a ``predictor.json`` that cannot be
        evaluated (check ``predictor-structure``).
    """
    bundle = _readable_path(path)
    with directory_lock(bundle.parent, exclusive=False):
        manifest, manifest_bytes = _verify(bundle)
        content = _read_verified(bundle, manifest, PREDICTOR)
        _refuse_oversized(bundle, TRAINING_DATA)
        cohort = _read_verified(bundle, manifest, TRAINING_DATA)
    check_manifest(manifest)
    params = parse_json(content, PREDICTOR)
    check_predictor(params)
    basis = bundle_basis(manifest)
    # An ensemble's cohort file stacks its reconstructions: times are kept per reconstruction
    follow_up = member_times(cohort, basis.stacked)
    return LoadedBundle(_sha256(manifest_bytes), bundle, manifest, params,
                        compile_predictor(params, manifest), follow_up, basis)


def _refuse_oversized(bundle: Path, name: str) -> None:
    from model.bundle_content import CHECKS, MAX_FILE_BYTES

    if (bundle / name).stat().st_size > MAX_FILE_BYTES[name]:
        raise BundleError(CHECKS[name], name, f"larger than {MAX_FILE_BYTES[name]:,} bytes")


def read_training_cohort(bundle: LoadedBundle):
    """The bundle's training cohort, hash-checked again and validated by the cohort schema.

    Returns
    -------
    pandas.DataFrame
        As :func:`model.cohort.validate_cohort` returns it.

    Raises
    ------
    BundleError
        Check ``file-hash`` if the file changed since loading; check ``training-data-content``
        naming the first offending line and column (and how many more) if the schema refuses it.
    """
    from model.bundle_content import CHECKS
    from model.cohort import CohortError, parse_cohort_text

    _refuse_oversized(Path(bundle.path), TRAINING_DATA)
    content = (Path(bundle.path) / TRAINING_DATA).read_bytes()
    if _sha256(content) != bundle.manifest["files"][TRAINING_DATA]:
        raise BundleError("file-hash", TRAINING_DATA, "changed after the bundle was loaded")
    try:
        return parse_cohort_text(content, TRAINING_DATA)
    except CohortError as error:
        more = f" (and {len(error.problems) - 1} more)" if len(error.problems) > 1 else ""
        raise BundleError(CHECKS[TRAINING_DATA], TRAINING_DATA,
                          f"{error.problems[0]}{more}") from None


def read_training_members(bundle: LoadedBundle) -> list:
    """The bundle's training cohort as one frame per reconstruction (one for a single cohort or
    an updated bundle): :func:`read_training_cohort` split by :func:`model.bundle_kind.split_members`.
    """
    from model.bundle_kind import split_members

    return split_members(read_training_cohort(bundle), bundle.basis.stacked)


def load_estimators(path: str | os.PathLike, *, allow_version_mismatch: bool = False) -> Any:
    """Verify a bundle, then unpickle its fitted estimators (for audits and reports only).

    Unpickling runs code: load only bundles you trust. Hashes are checked on the exact bytes that
    are unpickled.

    Parameters
    ----------
    allow_version_mismatch : bool
        Load even when scikit-learn or lifelines differ in major.minor version from the writer's
        (then only warn). Unpickling across such versions can fail or silently misbehave.

    Raises
    ------
    BundleError
        On a failed check, or (check ``package-versions``) a scikit-learn / lifelines version
        differing in major.minor, or not installed.

    Warns
    -----
    BundleVersionWarning
        For any other package version difference.
    """
    bundle = _readable_path(path)
    with directory_lock(bundle.parent, exclusive=False):
        manifest = _verify(bundle)[0]
        content = _read_verified(bundle, manifest, ESTIMATORS)
    differences = version_differences(manifest)
    recorded = manifest.get("packages", {})
    unsafe = [package for package in PICKLE_CRITICAL
              if recorded.get(package) and major_minor(recorded[package])
              != major_minor(installed_version(package))]
    if unsafe and not allow_version_mismatch:
        raise BundleError("package-versions", ESTIMATORS,
                          "estimators were pickled with " + "; ".join(
                              d for d in differences if d.split(":")[0] in unsafe)
                          + "; unpickling across major.minor versions is unsafe (install the "
                          "recorded versions, or retrain)")
    if differences:
        warnings.warn("package versions differ from the bundle's: " + "; ".join(differences),
                      BundleVersionWarning, stacklevel=2)
    import joblib

    return joblib.load(io.BytesIO(content))
