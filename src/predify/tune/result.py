"""What a tuning run returns, and its trajectory as CSV."""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._io import JsonObject, atomic_write_text
from ..config import Hyperparameters, PNetConfig
from ..errors import DataError
from ..network import PredictiveNet
from .hyperparameters import apply_hyperparameters, tuned_config
from .noise import TuneNoise, parse_tune_noise
from .objective import DEFAULT_OBJECTIVE, check_objective

__all__ = [
    "HYPERPARAMETER_NAMES",
    "TrajectoryPoint",
    "TuneResult",
    "hyperparameters_from_json",
    "hyperparameters_to_json",
    "trajectory_csv",
    "write_trajectory",
]

#: The names of one set's four weights in every output (JSON keys, CSV columns, tables): the
#: config's names; memory is ``1 - feedforward - feedback``. The papers' beta, lambda and alpha
#: appear only as math notation beside them.
HYPERPARAMETER_NAMES = ("feedforward", "feedback", "memory", "pc")
#: The keys results files used before the format was versioned (the papers' letters).
_OLD_NAMES = {"beta": "feedforward", "lambda": "feedback", "alpha": "pc"}


def hyperparameters_to_json(value: Hyperparameters) -> dict[str, float]:
    """``{"feedforward", "feedback", "memory", "pc"}`` of one set."""
    return {
        "feedforward": value.feedforward,
        "feedback": value.feedback,
        "memory": value.memory,
        "pc": value.pc,
    }


def hyperparameters_from_json(data: Mapping[str, Any], where: str) -> Hyperparameters:
    """One set from `hyperparameters_to_json()`'s
    layout, or from the older ``{"beta", "lambda", "memory", "alpha"}`` one.

    Raises:
        DataError: a weight is missing or not a number (naming ``where``).
    """
    renamed = {_OLD_NAMES.get(key, key): value for key, value in data.items()}
    numbers = []
    for name in ("feedforward", "feedback", "pc"):
        value = renamed.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DataError(f"{where}: expected a number for {name!r}, got {value!r}")
        numbers.append(float(value))
    return Hyperparameters(*numbers)


def _number(value: float | None) -> float | None:
    """JSON has no NaN or infinity: those are written as null."""
    return None if value is None or not math.isfinite(value) else value


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


@dataclass(frozen=True)
class TrajectoryPoint:
    """One row of a trajectory.

    Attributes:
        step: gradient tuning: the number of Adam updates applied before these values; Optuna:
            the trial number.
        loss: the objective computed with these values (gradient: that step's mini-batch loss;
            Optuna: the trial's value, or its last reported value if pruned); NaN when no batch
            saw them (the final values of gradient tuning).
        values: what each pcoder uses, bottom first (top pcoder: feedback 0).
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
        objective: the loss minimised, a name of `predify.tune.OBJECTIVES`
            (``summed`` for files written before the objective was a choice).
        noise: the noise tuned for.
        shared: one set for all pcoders (True) or one per pcoder.
        timesteps: T of the unrolled dynamics the loss was computed on.
        hyperparameters: the tuned values as installed: one set when shared, else one per pcoder.
        effective: what each pcoder uses with them, bottom first (top pcoder: feedback 0).
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
    noise: TuneNoise
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
    objective: str = DEFAULT_OBJECTIVE

    def apply_to(self, pnet: PredictiveNet) -> None:
        """Install the tuned values in ``pnet`` for good (``pnet.config`` follows)."""
        apply_hyperparameters(pnet, self.hyperparameters, self.shared)

    def config_for(self, pnet: PredictiveNet) -> PNetConfig:
        """``pnet``'s config with the tuned values written in (``.save(path)`` writes TOML)."""
        return tuned_config(pnet, self.hyperparameters, self.shared)

    def to_json(self) -> JsonObject:
        """A JSON-ready summary (without the trajectory: that is ``trajectory.csv``)."""
        return {
            "method": self.method,
            "objective": self.objective,
            "noise": str(self.noise),
            "clip": self.noise.clip,
            "shared": self.shared,
            "timesteps": self.timesteps,
            "initial": [hyperparameters_to_json(v) for v in self.initial],
            "tuned": [hyperparameters_to_json(v) for v in self.hyperparameters],
            "effective": [hyperparameters_to_json(v) for v in self.effective],
            "final_loss": _number(self.final_loss),
            "tuning_loss_before": _number(self.tuning_loss_before),
            "tuning_loss_after": _number(self.tuning_loss_after),
            "steps": self.steps,
            "seconds": round(self.seconds, 3),
            "stopped_by_budget": self.stopped_by_budget,
            "details": self.details,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "result.json") -> TuneResult:
        """The result [`to_json()`][predify.tune.result.TuneResult.to_json] wrote, with an
        empty ``trajectory`` (read ``trajectory.csv`` for it); reads the older key names too.

        Raises:
            DataError: a field is missing or malformed (naming ``where``).
        """

        def sets(key: str) -> list[Hyperparameters]:
            return [hyperparameters_from_json(v, f"{where}: {key}") for v in data[key]]

        try:
            before, after = data.get("tuning_loss_before"), data.get("tuning_loss_after")
            return cls(
                method=str(data["method"]),
                # Before the objective was a choice, every tuning minimised the summed CE.
                objective=check_objective(str(data.get("objective", "summed"))),
                noise=parse_tune_noise(str(data["noise"]), clip=bool(data.get("clip", False))),
                shared=bool(data["shared"]),
                timesteps=int(data["timesteps"]),
                hyperparameters=sets("tuned"),
                effective=sets("effective"),
                initial=sets("initial"),
                trajectory=[],
                final_loss=_float(data.get("final_loss")),
                tuning_loss_before=None if before is None else float(before),
                tuning_loss_after=None if after is None else float(after),
                steps=int(data.get("steps", 0)),
                seconds=float(data.get("seconds", 0.0)),
                stopped_by_budget=bool(data.get("stopped_by_budget", False)),
                details=dict(data.get("details", {})),
            )
        except (KeyError, TypeError, ValueError) as error:
            kind = type(error).__name__
            raise DataError(f"{where}: not a tuning result ({kind}: {error})") from None


def trajectory_csv(trajectory: Sequence[TrajectoryPoint]) -> str:
    """CSV text: ``step, loss, note`` and ``pcoder{n}_{feedforward,feedback,memory,pc}`` per
    pcoder (n = 1..N, as the trainer's loss names)."""
    count = len(trajectory[0].values) if trajectory else 0
    header = ["step", "loss", "note"] + [
        f"pcoder{index + 1}_{name}" for index in range(count) for name in HYPERPARAMETER_NAMES
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for point in trajectory:
        row: list[Any] = [point.step, "" if math.isnan(point.loss) else repr(point.loss)]
        row.append(point.note)
        for value in point.values:
            row.extend(repr(v) for v in hyperparameters_to_json(value).values())
        writer.writerow(row)
    return buffer.getvalue()


def write_trajectory(path: str | os.PathLike[str], trajectory: Sequence[TrajectoryPoint]) -> None:
    """Write [`trajectory_csv()`][predify.tune.result.trajectory_csv] to ``path`` atomically."""
    atomic_write_text(path, trajectory_csv(trajectory))
