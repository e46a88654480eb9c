"""What a tuning run returns, and its trajectory as CSV."""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .._io import atomic_write_text
from ..config import Hyperparameters, PNetConfig
from ..data.noise import NoiseSpec
from ..network import PredictiveNet
from .hyperparameters import apply_hyperparameters, tuned_config

__all__ = ["TrajectoryPoint", "TuneResult", "trajectory_csv", "values_dict", "write_trajectory"]


def values_dict(value: Hyperparameters) -> dict[str, float]:
    """``{"beta", "lambda", "memory", "alpha"}`` of one set."""
    return {
        "beta": value.feedforward,
        "lambda": value.feedback,
        "memory": value.memory,
        "alpha": value.pc,
    }


@dataclass(frozen=True)
class TrajectoryPoint:
    """One row of a trajectory.

    Attributes:
        step: gradient tuning: the number of Adam updates applied before these values; Optuna:
            the trial number.
        loss: the objective computed with these values (gradient: that step's mini-batch loss;
            Optuna: the trial's value, or its last reported value if pruned); NaN when no batch
            saw them (the final values of gradient tuning).
        values: what each pcoder uses, bottom first (top pcoder: lambda 0).
        note: ``""``, ``"final"`` (gradient), ``"complete"``, ``"pruned"`` or ``"diverged"``.
    """

    step: int
    loss: float
    values: tuple[Hyperparameters, ...]
    note: str = ""


@dataclass
class TuneResult:
    """The outcome of tuning at one noise level.

    Attributes:
        method: ``"gradient"`` or ``"optuna"``.
        noise: the noise tuned for.
        shared: one set for all pcoders (True) or one per pcoder.
        timesteps: T of the unrolled dynamics the loss was computed on.
        hyperparameters: the tuned values as installed: one set when shared, else one per pcoder.
        effective: what each pcoder uses with them, bottom first (top pcoder: lambda 0).
        initial: the starting values, same layout as ``hyperparameters``.
        trajectory: values and losses along the way.
        final_loss: gradient: the mean mini-batch loss over the last epoch's worth of steps
            (NaN if no step ran); Optuna: the best trial's value (the loss on all tuning images).
        tuning_loss_before, tuning_loss_after: the loss on all tuning images, with the same noise,
            before and after tuning (None when not measured).
        steps: Adam updates (gradient) or finished trials (Optuna).
        seconds: wall time of the tuning.
        stopped_by_budget: the time budget ended the tuning before its epochs or trials.
        details: settings and counters (learning rates, batch size, pruned trials, ...).
    """

    method: str
    noise: NoiseSpec
    shared: bool
    timesteps: int
    hyperparameters: list[Hyperparameters]
    effective: list[Hyperparameters]
    initial: list[Hyperparameters]
    trajectory: list[TrajectoryPoint]
    final_loss: float
    tuning_loss_before: float | None = None
    tuning_loss_after: float | None = None
    steps: int = 0
    seconds: float = 0.0
    stopped_by_budget: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    def apply_to(self, pnet: PredictiveNet) -> None:
        """Install the tuned values in ``pnet`` for good (``pnet.config`` follows)."""
        apply_hyperparameters(pnet, self.hyperparameters, self.shared)

    def config_for(self, pnet: PredictiveNet) -> PNetConfig:
        """``pnet``'s config with the tuned values written in (``.save(path)`` writes TOML)."""
        return tuned_config(pnet, self.hyperparameters, self.shared)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (without the trajectory)."""

        def number(value: float | None) -> float | None:
            return None if value is None or not math.isfinite(value) else value

        summary: dict[str, Any] = {
            "method": self.method,
            "noise": str(self.noise),
            "clip": self.noise.clip,
            "shared": self.shared,
            "timesteps": self.timesteps,
            "initial": [values_dict(v) for v in self.initial],
            "tuned": [values_dict(v) for v in self.hyperparameters],
            "effective": [values_dict(v) for v in self.effective],
            "final_loss": number(self.final_loss),
            "tuning_loss_before": number(self.tuning_loss_before),
            "tuning_loss_after": number(self.tuning_loss_after),
            "steps": self.steps,
            "seconds": round(self.seconds, 3),
            "stopped_by_budget": self.stopped_by_budget,
            "details": self.details,
        }
        return summary


def trajectory_csv(trajectory: Sequence[TrajectoryPoint]) -> str:
    """CSV text: ``step, loss, note`` and ``pcoder{n}_{beta,lambda,memory,alpha}`` per pcoder
    (n = 1..N, as the trainer's loss names)."""
    count = len(trajectory[0].values) if trajectory else 0
    header = ["step", "loss", "note"] + [
        f"pcoder{index + 1}_{name}"
        for index in range(count)
        for name in ("beta", "lambda", "memory", "alpha")
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for point in trajectory:
        row: list[Any] = [point.step, "" if math.isnan(point.loss) else repr(point.loss)]
        row.append(point.note)
        for value in point.values:
            row.extend(repr(v) for v in values_dict(value).values())
        writer.writerow(row)
    return buffer.getvalue()


def write_trajectory(path: str | os.PathLike[str], trajectory: Sequence[TrajectoryPoint]) -> None:
    """Write [`trajectory_csv()`][predify.tune.result.trajectory_csv] to ``path`` atomically."""
    atomic_write_text(path, trajectory_csv(trajectory))
