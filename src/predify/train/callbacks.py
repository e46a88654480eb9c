"""Hooks into [`FeedbackTrainer.fit()`][predify.train.FeedbackTrainer.fit], in the style of
Lightning's callbacks.

>>> trainer.fit(dataset, epochs=5, callbacks=[
...     ModelCheckpoint("run/checkpoint.pt", every_n_steps=500),
...     MetricsLogging("run"),
...     ProgressBar(),
... ])  # doctest: +SKIP

A callback subclasses [`Callback`][predify.train.callbacks.Callback] and overrides the hooks it
needs; every hook gets the
trainer, whose counters (``global_step``, ``epoch``, ``batch_in_epoch``) already describe the
position after the event. Checkpoints, the CSV/TensorBoard log and the progress bar are callbacks
like any other; ``fit`` itself only runs the loop.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from ..runtime.progress import resolve_progress
from ..runtime.validation import check_int
from .logs import MetricsLogger

if TYPE_CHECKING:  # pragma: no cover
    from .trainer import FeedbackTrainer

__all__ = [
    "Callback",
    "LambdaCallback",
    "MetricsLogging",
    "ModelCheckpoint",
    "ProgressBar",
]


class Callback:
    """The hooks of [`FeedbackTrainer.fit()`][predify.train.FeedbackTrainer.fit]; each does nothing
    unless overridden."""

    def on_fit_start(self, trainer: FeedbackTrainer, epochs: int) -> None:
        """Before the first batch of this call to ``fit`` (also after a resume)."""

    def on_epoch_start(self, trainer: FeedbackTrainer, total_batches: int) -> None:
        """Before the (remaining) batches of an epoch; ``total_batches`` counts all of it."""

    def on_step_end(
        self, trainer: FeedbackTrainer, losses: Mapping[str, float], lr: float, epoch: int
    ) -> None:
        """After an optimiser step: its losses, the learning rate it used, its 0-based epoch."""

    def on_epoch_end(self, trainer: FeedbackTrainer, mean_losses: Mapping[str, float]) -> None:
        """After the last batch of an epoch, with the epoch's mean losses (of this call)."""

    def on_checkpoint(self, trainer: FeedbackTrainer, path: Path) -> None:
        """After
        [`FeedbackTrainer.save_checkpoint()`][predify.train.FeedbackTrainer.save_checkpoint] wrote
        ``path``."""

    def on_exception(self, trainer: FeedbackTrainer, error: BaseException) -> None:
        """When ``fit`` stops on an exception (KeyboardInterrupt included), before it re-raises."""

    def on_fit_end(self, trainer: FeedbackTrainer) -> None:
        """After the last epoch (not called when ``fit`` had nothing left to train)."""

    def state_dict(self) -> dict[str, Any]:
        """What this callback needs to continue exactly (kept in the training checkpoint)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore `state_dict()`."""


class LambdaCallback(Callback):
    """``on_step_end`` from a function ``(global_step, losses)``."""

    def __init__(self, on_step: Callable[[int, dict[str, float]], None]) -> None:
        self._on_step = on_step

    def on_step_end(
        self, trainer: FeedbackTrainer, losses: Mapping[str, float], lr: float, epoch: int
    ) -> None:
        self._on_step(trainer.global_step, dict(losses))


class ModelCheckpoint(Callback):
    """Write the training checkpoint every ``every_n_steps`` steps, at the end, and when ``fit``
    is interrupted at a consistent point (Ctrl-C), on the main process.

    Callbacks run in list order: put it after
        [`MetricsLogging`][predify.train.callbacks.MetricsLogging], so that a process killed
    right after a checkpoint has logged that checkpoint's step.

    Args:
        path: the checkpoint file (written atomically).
        every_n_steps: the period in optimiser steps (None: only at the end and on interrupt).
        verbose: say on stderr where an interrupted run's checkpoint went.
    """

    def __init__(
        self, path: str | Path, every_n_steps: int | None = None, *, verbose: bool = False
    ) -> None:
        if every_n_steps is not None:
            check_int(every_n_steps, "checkpoint_every")
        self.path = Path(path)
        self.every_n_steps = every_n_steps
        self.verbose = verbose

    def on_step_end(
        self, trainer: FeedbackTrainer, losses: Mapping[str, float], lr: float, epoch: int
    ) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            trainer.save_checkpoint(self.path)

    def on_fit_end(self, trainer: FeedbackTrainer) -> None:
        trainer.save_checkpoint(self.path)

    def on_exception(self, trainer: FeedbackTrainer, error: BaseException) -> None:
        if not isinstance(error, KeyboardInterrupt) or not trainer.is_consistent:
            return
        trainer.save_checkpoint(self.path)
        if self.verbose and trainer.is_main:
            print(
                f"checkpoint written to {self.path} at step {trainer.global_step}; "
                "resume with the same run directory",
                file=sys.stderr,
            )


class MetricsLogging(Callback):
    """One row per step in ``log_dir/metrics.csv`` (and TensorBoard scalars under
    ``log_dir/tensorboard`` when ``tensorboard`` and the package is installed), main process
    only; a resumed run appends from its step on."""

    def __init__(self, log_dir: str | Path, *, tensorboard: bool = True) -> None:
        self.log_dir = Path(log_dir)
        self.tensorboard = tensorboard
        self._logger: MetricsLogger | None = None

    def on_fit_start(self, trainer: FeedbackTrainer, epochs: int) -> None:
        if trainer.is_main:
            self._logger = MetricsLogger(
                self.log_dir,
                trainer.loss_names,
                resume_step=trainer.global_step,
                tensorboard=self.tensorboard,
            )

    def on_step_end(
        self, trainer: FeedbackTrainer, losses: Mapping[str, float], lr: float, epoch: int
    ) -> None:
        if self._logger is not None:
            self._logger.log(trainer.global_step, epoch, lr, dict(losses))

    def _close(self) -> None:
        if self._logger is not None:
            self._logger.close()
            self._logger = None

    def on_fit_end(self, trainer: FeedbackTrainer) -> None:
        self._close()

    def on_exception(self, trainer: FeedbackTrainer, error: BaseException) -> None:
        self._close()


class ProgressBar(Callback):
    """A tqdm bar per epoch with the running mean loss of each pcoder (main process only).

    Args:
        enabled: True, False, or None for "only when stderr is a terminal".
    """

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = enabled
        self._epochs = 0
        self._bar: Any = None
        self._sums: dict[str, float] = {}
        self._count = 0

    def on_fit_start(self, trainer: FeedbackTrainer, epochs: int) -> None:
        self._epochs = epochs

    def on_epoch_start(self, trainer: FeedbackTrainer, total_batches: int) -> None:
        self._close()
        self._bar = tqdm(
            total=total_batches,
            initial=trainer.batch_in_epoch,
            desc=f"feedback epoch {trainer.epoch + 1}/{self._epochs}",
            disable=not (resolve_progress(self.enabled) and trainer.is_main),
            dynamic_ncols=True,
            leave=True,
        )
        self._sums = dict.fromkeys(trainer.loss_names, 0.0)
        self._count = 0

    def on_step_end(
        self, trainer: FeedbackTrainer, losses: Mapping[str, float], lr: float, epoch: int
    ) -> None:
        if self._bar is None:
            return
        self._count += 1
        for name in self._sums:
            self._sums[name] += losses[name]
        self._bar.update(1)
        self._bar.set_postfix(
            {name: f"{total / self._count:.4g}" for name, total in self._sums.items()},
            refresh=False,
        )

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def on_epoch_end(self, trainer: FeedbackTrainer, mean_losses: Mapping[str, float]) -> None:
        self._close()

    def on_exception(self, trainer: FeedbackTrainer, error: BaseException) -> None:
        self._close()

    def on_fit_end(self, trainer: FeedbackTrainer) -> None:
        self._close()
