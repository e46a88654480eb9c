"""Training checkpoints: what one holds, atomic writes, weights-only reads.

A training checkpoint is one ``torch.save`` file holding only tensors, numbers, strings, lists,
tuples, dicts and None, so ``torch.load(path, weights_only=True)`` reads it without unpickling
arbitrary objects::

    format      "predify-train-v1"
    config      the network's config as TOML (c_sqrt and hyperparameters written in)
    pcoders     decoder and hyperparameter tensors, keyed as in ``pnet.pcoders``
    optimizer   optimizer.state_dict()
    scheduler   scheduler.state_dict() or None
    scaler      GradScaler.state_dict() or None (fp16)
    rng         torch, CUDA, numpy and Python RNG states (see
                [`capture_rng_state()`][predify.train.rng.capture_rng_state])
    progress    {"step", "epoch", "batch_in_epoch", "seed"}
    settings    {"timesteps", "tbptt", "optimizer", "world_size"}: checked on resume
    callbacks   the callbacks' own states, keyed "INDEX:CLASS"
    sha256      content_digest of all the above, checked on reading (a garbled file is refused)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch

from .._io import atomic_path, content_digest, load_weights_only
from ..errors import CheckpointError
from .rng import RngState

__all__ = [
    "TRAIN_CHECKPOINT_FORMAT",
    "CheckpointSettings",
    "StateDict",
    "TrainingCheckpoint",
    "TrainingProgress",
    "read_training_checkpoint",
    "write_training_checkpoint",
]

TRAIN_CHECKPOINT_FORMAT = "predify-train-v1"
#: A ``state_dict()`` of torch's (optimiser, scheduler, scaler) or of a callback: the file edge,
#: kept as its owner wrote it.
StateDict = dict[str, Any]
_CHECKSUM = "sha256"  # content_digest of everything else in the file


@dataclass(frozen=True)
class TrainingProgress:
    """Where a run stands: optimiser steps, the 0-based epoch, batches of it done, the data
    order's seed."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    seed: int = 0

    def to_json(self) -> dict[str, int]:
        return {
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "seed": self.seed,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrainingProgress:
        return cls(
            step=int(data["step"]),
            epoch=int(data["epoch"]),
            batch_in_epoch=int(data["batch_in_epoch"]),
            seed=int(data["seed"]),
        )


@dataclass(frozen=True)
class CheckpointSettings:
    """The trainer's settings a checkpoint was written with; a resume must match the first three.

    None: not recorded (checkpoints of earlier versions may lack some).
    """

    timesteps: int | None = None
    tbptt: int | None = None
    optimizer: str | None = None
    world_size: int | None = None

    #: The settings that must be the same to resume exactly.
    CHECKED = ("timesteps", "tbptt", "optimizer")

    def to_json(self) -> dict[str, int | str | None]:
        return {
            "timesteps": self.timesteps,
            "tbptt": self.tbptt,
            "optimizer": self.optimizer,
            "world_size": self.world_size,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> tuple[CheckpointSettings, frozenset[str]]:
        """The settings and the names the file recorded (absent ones are not checked)."""
        data = data or {}
        names = ("timesteps", "tbptt", "optimizer", "world_size")
        return cls(**{name: data[name] for name in names if name in data}), frozenset(data)

    def check_resumable(
        self, current: CheckpointSettings, recorded: frozenset[str], source: str
    ) -> None:
        """Raise a CheckpointError naming the first checked setting that differs."""
        for name in self.CHECKED:
            saved, now = getattr(self, name), getattr(current, name)
            if name in recorded and saved != now:
                raise CheckpointError(
                    f"{source}: was written with {name}={saved!r}, this trainer has {name}={now!r}"
                )


@dataclass
class TrainingCheckpoint:
    """The content of a training checkpoint (see the module docstring), typed.

    The optimiser's, scheduler's, scaler's, RNGs' and callbacks' states are torch's and the
    callbacks' own dictionaries, kept as they are.
    """

    config: str
    pcoders: dict[str, torch.Tensor]
    optimizer: StateDict
    rng: RngState
    progress: TrainingProgress
    settings: CheckpointSettings
    scheduler: StateDict | None = None
    scaler: StateDict | None = None
    callbacks: dict[str, StateDict] = field(default_factory=dict)
    #: The settings the file recorded (all of them for a checkpoint built in this version).
    recorded_settings: frozenset[str] = frozenset(CheckpointSettings.CHECKED)

    def state_dict(self) -> StateDict:
        """The checkpoint as the file holds it (without format marker and checksum)."""
        return {
            "config": self.config,
            "pcoders": self.pcoders,
            "optimizer": self.optimizer,
            "scheduler": self.scheduler,
            "scaler": self.scaler,
            "rng": self.rng,
            "progress": self.progress.to_json(),
            "settings": self.settings.to_json(),
            "callbacks": self.callbacks,
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any], source: str) -> TrainingCheckpoint:
        """Read `state_dict()`'s form back.

        Raises:
            CheckpointError: a field is missing or malformed, naming ``source``.
        """
        try:
            settings, recorded = CheckpointSettings.from_json(state.get("settings"))
            return cls(
                config=str(state["config"]),
                pcoders=dict(state["pcoders"]),
                optimizer=dict(state["optimizer"]),
                rng=cast(RngState, dict(state["rng"])),
                progress=TrainingProgress.from_json(state["progress"]),
                settings=settings,
                scheduler=state.get("scheduler"),
                scaler=state.get("scaler"),
                callbacks=dict(state.get("callbacks") or {}),
                recorded_settings=recorded,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise CheckpointError(
                f"{source}: malformed training checkpoint ({type(error).__name__}: {error})"
            ) from None


def write_training_checkpoint(path: str | os.PathLike[str], payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically: a reader sees the old file or the new one."""
    path = Path(path)
    content = {"format": TRAIN_CHECKPOINT_FORMAT, **payload}
    content[_CHECKSUM] = content_digest(content)
    try:
        with atomic_path(path) as temporary:
            torch.save(content, temporary)
    except OSError as error:
        raise CheckpointError(
            f"{path}: cannot write checkpoint: {error.strerror or error}"
        ) from None
    return path


def read_training_checkpoint(path: str | os.PathLike[str]) -> StateDict:
    """Read a training checkpoint with ``weights_only=True``; errors name the file."""
    path = Path(path)
    payload = load_weights_only(path, "training checkpoint")
    if not isinstance(payload, dict) or payload.get("format") != TRAIN_CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: not a predify training checkpoint (no '{TRAIN_CHECKPOINT_FORMAT}' marker)"
        )
    # Checkpoints of earlier versions have no checksum; they are read as they are.
    stored = payload.pop(_CHECKSUM, None)
    if stored is not None and stored != content_digest(payload):
        raise CheckpointError(
            f"{path}: corrupt training checkpoint (its content does not match its checksum); "
            "resume from a copy or start the run again"
        )
    return payload
