"""Training metrics: one CSV row per optimiser step and, when installed, TensorBoard scalars."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._io import atomic_write_text
from ..errors import DataError

__all__ = ["MetricsLogger"]


class MetricsLogger:
    """Append ``step, epoch, lr, <loss names>`` rows to ``directory/metrics.csv``.

    Each row is flushed as it is written, so a crash loses at most the row being written. On a
    resumed run the rows after ``resume_step`` (written after the checkpoint the run resumes
    from) and a row a kill cut short are dropped first, so the file again reads as one
    uninterrupted run.

    Args:
        directory: where ``metrics.csv`` (and ``tensorboard/``) go.
        names: the loss names, e.g. ``["pcoder1", "pcoder2", "total"]``.
        resume_step: the step of the checkpoint being resumed (0 for a new run).
        tensorboard: also write TensorBoard scalars when ``tensorboard`` is installed.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        names: Sequence[str],
        *,
        resume_step: int = 0,
        tensorboard: bool = True,
    ) -> None:
        self.directory = Path(directory)
        self.fields = ["step", "epoch", "lr", *names]
        self.path = self.directory / "metrics.csv"
        self._rewrite_up_to(resume_step)
        self._file = open(self.path, "a", newline="", encoding="utf-8")  # noqa: SIM115
        self._writer = csv.writer(self._file)
        self._tensorboard: Any = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # the optional extra is not installed: CSV only
                pass
            else:
                self._tensorboard = SummaryWriter(
                    log_dir=str(self.directory / "tensorboard"),
                    purge_step=resume_step + 1 if resume_step > 0 else None,
                )

    def _rewrite_up_to(self, resume_step: int) -> None:
        kept: list[list[str]] = []
        if resume_step > 0 and self.path.is_file():
            with open(self.path, newline="", encoding="utf-8") as handle:
                rows = list(csv.reader(handle))
            if rows and rows[0] != self.fields:
                raise DataError(
                    f"{self.path}: has columns {rows[0]}, expected {self.fields}; "
                    "is it from another run?"
                )
            for number, row in enumerate(rows[1:], start=2):
                # A kill mid-row leaves a short last row (its step number perhaps cut short):
                # only whole rows count, and rows after the checkpoint are dropped anyway.
                if len(row) != len(self.fields):
                    continue
                try:
                    step = int(row[0])
                except ValueError:
                    raise DataError(
                        f"{self.path}: line {number}: step {row[0]!r} is not an integer"
                    ) from None
                if step <= resume_step:
                    kept.append(row)
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(self.fields)
        writer.writerows(kept)
        atomic_write_text(self.path, buffer.getvalue())

    def log(self, step: int, epoch: int, lr: float, losses: Mapping[str, float]) -> None:
        """Write one row (and the TensorBoard scalars ``loss/<name>`` and ``lr``)."""
        self._writer.writerow(
            [step, epoch, f"{lr:.8g}", *(repr(float(losses[name])) for name in self.fields[3:])]
        )
        self._file.flush()
        if self._tensorboard is not None:
            for name in self.fields[3:]:
                self._tensorboard.add_scalar(f"loss/{name}", losses[name], step)
            self._tensorboard.add_scalar("lr", lr, step)

    def close(self) -> None:
        self._file.close()
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
