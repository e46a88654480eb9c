"""The settings of a feedback-training run: the one place its defaults live.

[`FeedbackTrainer`][predify.train.FeedbackTrainer]'s keyword defaults, ``predify train``'s option
defaults and the demo's
run description all read them from [`TrainSettings`][predify.train.settings.TrainSettings].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..runtime.device import DEFAULT_DEVICE
from ..runtime.precision import Execution

__all__ = ["RUN_SETTINGS", "TrainSettings"]

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
    "amp",
    "precision",
    "seed",
    "scheduler",
    "resize",
    "model",
    "recipe",
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
            bf16 also runs on the CPU. Part of the run (run.json), like ``amp``.
        amp: the older spelling of ``precision="fp16"``: turned into it (and back to False) when
            the settings are made; run.json keeps ``amp = precision == "fp16"`` for readers of
            older runs.
        channels_last: NHWC layout for the network and the batches (how the run executes, may
            change on resume).
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
    amp: bool = False
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

    def __post_init__(self) -> None:
        if self.amp and self.precision not in ("fp32", "fp16"):
            raise ConfigError(
                f"--amp is --precision fp16, and --precision {self.precision} was given; drop one"
            )
        if self.amp:
            self.precision = "fp16"
        # An input alias only: a later replace(precision=...) must not conflict with it.
        self.amp = False
        Execution(self.precision)  # an unknown precision fails here, naming the option

    def run_json(self, image_size: int | None) -> dict[str, Any]:
        """The ``training`` block of run.json (what ``--resume`` continues)."""
        block: dict[str, Any] = {name: getattr(self, name) for name in RUN_SETTINGS}
        block["image_size"] = image_size
        block["amp"] = self.precision == "fp16"  # what readers of older run.json files read
        return block
