"""Swapping a bundle directory in with renames, and recovering from a swap that was interrupted.

A write builds the new bundle in a hidden sibling (``.NAME.writing-PID-TOKEN``) and swaps it in:
``out -> .out.previous`` (:func:`backup_path`), ``new -> out``, then the earlier bundle is moved
to a ``.NAME.discard-PID-TOKEN`` sibling and deleted. If the process dies between the two renames,
``out`` is missing and ``.out.previous`` holds the earlier bundle, which the next write or load
renames back (:func:`recover_interrupted_swap`). On POSIX the swap holds an exclusive ``flock`` on
the parent directory and loads hold a shared one (:func:`directory_lock`).
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from pathlib import Path


def backup_path(out: Path) -> Path:
    """Where a bundle write keeps the earlier bundle during its swap (``.NAME.previous``)."""
    return out.parent / f".{out.name}.previous"


def sibling_path(out: Path, kind: str) -> Path:
    """A fresh hidden sibling of ``out`` owned by this process: ``.NAME.KIND-PID-TOKEN``.

    ``kind`` is ``"writing"`` (a bundle being built) or ``"discard"`` (one being deleted); a
    sibling whose process no longer runs is removed by :func:`remove_abandoned`.
    """
    return out.parent / f".{out.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}"


def recover_interrupted_swap(out: Path, *, locked: bool = False) -> bool:
    """Put the earlier bundle back if a write died between its two renames; True if it did."""
    backup = backup_path(out)
    if out.exists() or not backup.is_dir():
        return False
    with contextlib.nullcontext() if locked else directory_lock(out.parent, exclusive=True):
        if out.exists() or not backup.is_dir():  # another process recovered meanwhile
            return False
        try:
            os.rename(backup, out)
        except OSError:
            return False  # read-only location: loads read the backup in place
        fsync_directory(out.parent)
        return True


def remove_abandoned(out: Path) -> None:
    """Delete staging / discard directories of writers that no longer run (killed mid-write)."""
    if os.name != "posix":
        return
    for kind in ("writing", "discard"):
        for path in out.parent.glob(f".{out.name}.{kind}-*-*"):
            pid = path.name[len(f".{out.name}.{kind}-"):].split("-")[0]
            if pid.isdigit() and not _process_alive(int(pid)):
                shutil.rmtree(path, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def directory_lock(directory: Path, *, exclusive: bool):
    """Hold ``flock`` on ``directory`` (exclusive for a swap, shared for a load) while inside."""
    try:
        import fcntl
    except ImportError:  # not POSIX: renames stay atomic, only the reader/writer exclusion is lost
        yield
        return
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:  # missing or unreadable parent: the checks that follow report it
        yield
        return
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def fsync_directory(directory: Path) -> None:
    """Make renames inside ``directory`` durable (POSIX; a no-op elsewhere)."""
    if os.name != "posix":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
