"""The settings of a feedback-training run: the one place its defaults live.

[`FeedbackTrainer`][predify.train.FeedbackTrainer]'s keyword defaults, ``predify train``'s option
defaults and the demo's
run description all read them from [`TrainSettings`][predify.train.settings.TrainSettings].
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .._io import JsonObject
from ..errors import ConfigError, DataError
from ..runtime.device import DEFAULT_DEVICE
from ..runtime.precision import Execution

__all__ = ["RUN_SETTINGS", "TrainSettings", "TrainingRecord"]

#: The settings that define a run (kept in run.json's ``training`` block): ``--resume`` takes
#: them from the run directory, never from the command line.
RUN_SETTINGS = (
    "data",
    "data_root",
    "image_size",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "optimizer",
    "momentum",
    "timesteps",
    "tbptt",
    "checkpoint_activations",
    "precision",
    "seed",
    "scheduler",
    "resize",
    "model",
    "recipe",
    "skip_bad_images",
)


@dataclass
class TrainSettings:
    """What to train and how. New fields get a default, so older run directories still load.

    Attributes:
        data: training data spec: ``mnist5k[:train|val|test]``,
            ``mnist|fashionmnist|cifar10|cifar100[:ROOT]``, ``folder:PATH`` or a directory.
        config: pcoder config (TOML path); None: automatic decoders at the backbone's default
            modules (the zoo's for its backbones,
            [`predify.models.default_modules()`][predify.models.default_modules]; else
            the feature stages [`predify.stages.feature_stages()`][predify.stages.feature_stages]
            finds, e.g. timm's
            ``feature_info``).
        backbone: ``shallow_cnn`` (sized from the data), ``torchvision:NAME`` or ``timm:NAME``.
        backbone_kwargs: keyword arguments of the backbone builder.
        backbone_weights: the trained backbone's state_dict (read with ``weights_only=True``).
        normalization: ``none``, ``imagenet``, ``mnist``, ``fashionmnist``, ``cifar10``,
            ``cifar100``: the mean/std the backbone expects. None: none, except for
            ``timm:NAME`` backbones, which get the mean/std of timm's pretrained config for the
            model
            ([`predify.data.pretrained_normalization()`][predify.data.pretrained_normalization]).
        image_size: side of the square images an image folder or torchvision data set is
            resized to; None: the config's input size, else the data's own (224 for folders).
        epochs: total epochs (a resumed run may raise it).
        timesteps: 0 for the paper's objective; T > 0 trains through T steps of the dynamics.
        tbptt, checkpoint_activations: of training through the dynamics.
        workers: data loader workers; checkpoint_every: checkpoint period in steps.
        progress: progress bars; None: only on a terminal.
        handle_interrupt: Ctrl-C finishes the step and writes a checkpoint (the CLI's default).
        scheduler: the learning-rate schedule, stepped once per epoch:
            [`parse_scheduler()`][predify.train.schedulers.parse_scheduler]'s ``none``, ``cosine``,
            ``cosine-warm-restarts:t0=3``, ``step:step_size=10,gamma=0.1``.
        model: a zoo network ([`predify.models.create_model()`][predify.models.create_model] name)
            to train, with its own
            backbone and pcoders, instead of ``backbone`` + ``config``; ``backbone_kwargs`` are
            then its builder's options (``num_classes``, ``image_size``, ``gradient_scaling``...).
        pretrained: with ``model``, start from the backbone's published weights (torchvision's
            or timm's: a download) instead of ``backbone_weights``.
        resize: image folders: the short side before the center crop (None: size / 0.875; the
            paper's scripts used 224).
        recipe: the `predify.train.recipes` name these settings came from (kept in run.json).
        precision: ``fp32``, ``bf16`` or ``fp16``: autocast of the forward pass and the losses
            (`predify.runtime.precision.Execution`); fp16 adds gradient scaling and needs CUDA,
            bf16 also runs on the CPU. Part of the run (run.json).
        channels_last: NHWC layout for the network and the batches (how the run executes, may
            change on resume).
        skip_bad_images: image folders: leave unreadable files out (counted and named in
            run.json's ``data.skipped_files``) instead of stopping with a one-line error before
            training starts. Every file is checked once when the run starts or resumes
            ([`predify.data.files`][predify.data.files]).
    """

    data: str | None = None
    config: str | None = None
    backbone: str = "shallow_cnn"
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    backbone_weights: str | None = None
    normalization: str | None = None
    image_size: int | None = None
    epochs: int = 5
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 5e-4
    optimizer: str = "adam"
    momentum: float = 0.9
    timesteps: int = 0
    tbptt: int | None = None
    checkpoint_activations: bool = False
    seed: int = 0
    workers: int = 0
    device: str = DEFAULT_DEVICE
    checkpoint_every: int | None = None
    data_root: str | None = None
    download: bool = False
    progress: bool | None = None
    handle_interrupt: bool = False
    scheduler: str = "none"
    model: str | None = None
    pretrained: bool = False
    resize: int | None = None
    recipe: str | None = None
    precision: str = "fp32"
    channels_last: bool = False
    skip_bad_images: bool = False

    def __post_init__(self) -> None:
        Execution(self.precision)  # an unknown precision fails here, naming the option

    def run_json(self, image_size: int | None) -> JsonObject:
        """The ``training`` block of run.json (what ``--resume`` continues)."""
        return TrainingRecord(replace(self, image_size=image_size)).to_json()


@dataclass(frozen=True)
class TrainingRecord:
    """The ``training`` block of a run's run.json: the settings that define the run, and how far
    it got.

    Attributes:
        settings: the run's settings; only those in ``RUN_SETTINGS`` are recorded (``image_size``
            is the size the images were given, whichever option set it).
        status: ``"running"`` until the last epoch is done, then ``"finished"``.
        steps: optimiser steps done when the run finished (None while it runs).
    """

    settings: TrainSettings
    status: str = "running"
    steps: int | None = None

    def to_json(self) -> JsonObject:
        block: JsonObject = {name: getattr(self.settings, name) for name in RUN_SETTINGS}
        block["status"] = self.status
        if self.steps is not None:
            block["steps"] = self.steps
        return block

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str) -> TrainingRecord:
        """Read a block back; blocks of earlier versions are migrated.

        Raises:
            DataError: a block that does not describe training settings, naming ``source``.
        """
        known = {name: data[name] for name in RUN_SETTINGS if name in data}
        # Before --precision, run.json had only "amp" (true: fp16); --amp is gone since.
        if "precision" not in data and data.get("amp") is True:
            known["precision"] = "fp16"
        try:
            settings = TrainSettings(**known)
        except (TypeError, ConfigError) as error:
            raise DataError(f"{source}: training: {error}") from None
        steps = data.get("steps")
        return cls(
            settings,
            status=str(data.get("status", "running")),
            steps=steps if isinstance(steps, int) and not isinstance(steps, bool) else None,
        )

    def run_settings(self, execution: TrainSettings) -> TrainSettings:
        """``execution`` (how to run: workers, device...) with this run's own settings."""
        return replace(execution, **{name: getattr(self.settings, name) for name in RUN_SETTINGS})
