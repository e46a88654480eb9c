"""The one figure helper: matplotlib figures outside pyplot, saved atomically at one resolution.

Figures are plain `matplotlib.figure.Figure` objects (no pyplot), so no display is needed
and a caller's pyplot backend and open figures are left alone. matplotlib is imported only when a
figure is made.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .._io import atomic_path

__all__ = ["DPI", "new_figure", "save_figure"]

#: Resolution of every PNG predify writes.
DPI = 110


def new_figure(width: float, height: float, *, constrained: bool = False) -> Any:
    """A ``width`` x ``height`` inch figure on an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained" if constrained else None)
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Any, path: str | os.PathLike[str], *, tight: bool = False) -> Path:
    """Write ``figure`` as PNG to ``path`` atomically at [`DPI`][predify.runtime.plotting.DPI];
    returns the path."""
    target = Path(path)
    with atomic_path(target) as temporary:
        figure.savefig(temporary, format="png", dpi=DPI, bbox_inches="tight" if tight else None)
    return target
