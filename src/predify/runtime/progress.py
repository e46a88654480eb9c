"""When to show progress bars: a ``progress`` argument is ``bool | None`` everywhere, and None
means "only on a terminal"."""

from __future__ import annotations

import sys
from typing import IO

__all__ = ["resolve_progress"]


def resolve_progress(progress: bool | None, stream: IO[str] | None = None) -> bool:
    """Whether to show progress bars: ``progress`` itself, or for None whether ``stream``
    (stderr by default) is a terminal."""
    if progress is not None:
        return bool(progress)
    stream = sys.stderr if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)())
