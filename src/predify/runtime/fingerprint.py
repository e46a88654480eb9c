"""The fingerprint of a run directory: results computed from a run carry it, and
[`predify.runtime.store.ResultStore`][predify.runtime.store.ResultStore] refuses to mix results of
two runs."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["run_fingerprint"]

#: The files of a run directory whose bytes determine every result computed from it.
_RUN_FILES = ("config.toml", "backbone.pt")


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
