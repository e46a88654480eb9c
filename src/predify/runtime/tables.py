"""CSV tables of results, written atomically."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._io import atomic_write_text

__all__ = ["write_csv"]


def write_csv(path: str | os.PathLike[str], header: Sequence[str], rows: Sequence[Any]) -> Path:
    """Write a CSV table (``header`` then ``rows``) to ``path`` atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())
    return Path(path)
