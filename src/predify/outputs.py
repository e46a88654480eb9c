"""What every command shares about its outputs: the output folder, the fingerprint of the run it
read, CSV tables, and when to show progress bars.

- :func:`prepare_output_dir` is the one place an output folder is made ready (created and checked
  writable before any work); a lock on the folder belongs here.
- :func:`run_fingerprint` identifies a run directory's weights and config: results computed from
  a run carry it, and :class:`predify.store.ResultStore` refuses to mix results of two runs.
- Progress: a ``progress`` argument is ``bool | None`` everywhere; None means "only on a
  terminal" (:func:`resolve_progress`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from ._io import atomic_write_text, check_writable_dir

__all__ = ["prepare_output_dir", "resolve_progress", "run_fingerprint", "write_csv"]

#: The files of a run directory whose bytes determine every result computed from it.
_RUN_FILES = ("config.toml", "backbone.pt")


def prepare_output_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` if needed and check that it is writable, before any work is done.

    Raises:
        DataError: the folder cannot be created or written, naming it and why.
    """
    return check_writable_dir(path)


def run_fingerprint(run_dir: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) over the names and bytes of a run's config, backbone and feedback files."""
    from .runs import feedback_path

    run_dir = Path(run_dir)
    digest = hashlib.sha256()
    for path in (*(run_dir / name for name in _RUN_FILES), feedback_path(run_dir)):
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def resolve_progress(progress: bool | None, stream: IO[str] | None = None) -> bool:
    """Whether to show progress bars: ``progress`` itself, or for None whether ``stream``
    (stderr by default) is a terminal."""
    if progress is not None:
        return bool(progress)
    stream = sys.stderr if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)())


def write_csv(path: str | os.PathLike[str], header: Sequence[str], rows: Sequence[Any]) -> Path:
    """Write a CSV table (``header`` then ``rows``) to ``path`` atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())
    return Path(path)
