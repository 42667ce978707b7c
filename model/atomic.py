"""Files written whole, then moved into place: a reader sees the old file or the new, never half.

:func:`atomic_path` is the one way this package writes a single file that must not be seen
half-written (cohort CSVs, reports, validation pages, plots, the signing key, ensemble indexes).
Bundle directories are staged and swapped by :func:`model.bundle.write_bundle`, and the scoring
CSV is streamed, so neither uses it.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | Path, *, keep_existing: bool = False,
                private: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds, move it to ``path``.

    Write the whole file to the yielded path inside the ``with`` block. On success it is flushed to
    disk and renamed over ``path`` (same directory, so the rename is atomic); if the block raises,
    the temporary file is removed and ``path`` is left as it was.

    Parameters
    ----------
    path : path
        The file to write; its directory must exist.
    keep_existing : bool
        Never replace a file already at ``path`` (the new content is dropped): for a file that
        several processes may create at once and whose first version must win (the signing key).
    private : bool
        Create the file readable and writable by its owner only (mode 0600), under a unique
        temporary name; otherwise the temporary file is ``.NAME.tmp`` with the usual umask mode.

    Yields
    ------
    pathlib.Path
        The temporary path to write.
    """
    path = Path(path)
    if private:
        descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        os.close(descriptor)
        temporary = Path(name)
    else:
        temporary = path.with_name(f".{path.name}.tmp")
    try:
        yield temporary
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        if keep_existing:
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)  # atomic, and never replaces a file already there
        else:
            os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_atomic(path: str | Path, content: str | bytes, encoding: str = "utf-8") -> Path:
    """Write ``content`` (text in ``encoding``, or bytes) to ``path`` whole; returns ``path``."""
    path = Path(path)
    data = content.encode(encoding) if isinstance(content, str) else content
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
    return path
