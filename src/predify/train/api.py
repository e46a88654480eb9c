"""Train the feedback of a network and write a run directory: ``train_run(out, TrainSettings())``.

>>> from predify.train.api import TrainSettings, train_run, resume_run
>>> report = train_run("runs/shallow", TrainSettings(data="mnist5k", epochs=3))  # doctest: +SKIP
>>> report = resume_run("runs/shallow", epochs=6)                              # doctest: +SKIP

The run directory holds what [`predify.runtime.runs.save_run()`][predify.runtime.runs.save_run]
writes (``run.json``, ``config.toml``,
``backbone.pt``, ``feedback.safetensors``), plus ``checkpoint.pt`` (the full training state,
written every ``checkpoint_every`` steps, at the end and on Ctrl-C) and ``metrics.csv`` (one row
per step; TensorBoard scalars under ``tensorboard/`` when it is installed). Under ``torchrun``
each process trains its shard; rank 0 writes the files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset

from .._io import JsonObject, atomic_write_json, load_weights_only
from ..builder import auto_config, predify
from ..checkpoint import save_feedback
from ..config import PNetConfig, load_config
from ..data.files import SkippedFiles
from ..errors import CheckpointError, ConfigError, DataError
from ..network import PredictiveNet
from ..runtime.device import resolve_device
from ..runtime.distributed import DistributedInfo, init_distributed, shutdown_distributed
from ..runtime.outputs import prepare_output_dir
from ..runtime.runs import RunInfo, build_backbone, feedback_path, load_run, read_run_info, save_run
from ..runtime.validation import check_int
from ..submodules import eval_mode
from .callbacks import Callback, MetricsLogging, ModelCheckpoint, ProgressBar
from .rng import seed_everything
from .schedulers import parse_scheduler
from .settings import TrainingRecord, TrainSettings
from .trainer import FeedbackTrainer

__all__ = [
    "CHECKPOINT_NAME",
    "NORMALIZATIONS",
    "TRAINING_REPORT_FORMAT",
    "TrainingReport",
    "resume_run",
    "train_run",
]

CHECKPOINT_NAME = "checkpoint.pt"
#: The schema version of [`TrainingReport.to_json()`][predify.train.api.TrainingReport.to_json].
TRAINING_REPORT_FORMAT = "predify-training-report-v1"
NORMALIZATIONS = ("none", "imagenet", "mnist", "fashionmnist", "cifar10", "cifar100")


@dataclass
class TrainingReport:
    """What [`train_run()`][predify.train.api.train_run] /
    [`resume_run()`][predify.train.api.resume_run] did."""

    run_dir: str
    epochs: int
    """Epochs done in all (this call and earlier ones)."""
    steps: int
    """Optimiser steps done in all."""
    epoch_losses: list[dict[str, float]] = field(default_factory=list)
    """The mean losses (``pcoder1``..``pcoderN``, ``total``) of each epoch trained in this call."""
    resumed: bool = False

    def to_json(self) -> JsonObject:
        """The report as JSON, with its schema version (``format``)."""
        return {"format": TRAINING_REPORT_FORMAT, **asdict(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str = "training report") -> TrainingReport:
        """Read `to_json()` back.

        Raises:
            DataError: another format or version, or a malformed report, naming ``source``.
        """
        version = data.get("format") if isinstance(data, Mapping) else None
        if version != TRAINING_REPORT_FORMAT:
            raise DataError(
                f"{source}: format {version!r} is not a training report this predify reads "
                f"(expected {TRAINING_REPORT_FORMAT!r})"
            )
        try:
            return cls(**{key: value for key, value in data.items() if key != "format"})
        except TypeError as error:
            raise DataError(f"{source}: malformed training report: {error}") from None


# ---------------------------------------------------------------------- building blocks
@dataclass(frozen=True)
class _RunSetup:
    """What a run starts from: the network, its run.json, its training record and data."""

    pnet: PredictiveNet
    info: RunInfo
    record: TrainingRecord
    dataset: Dataset[Any]


def _normalization(name: str | None) -> dict[str, list[float]] | None:
    from .. import data

    if name in (None, "none"):
        return None
    if name not in NORMALIZATIONS:
        raise ConfigError(
            f"--normalization: expected one of {', '.join(NORMALIZATIONS)}, got {name!r}"
        )
    key = str(name).upper()
    return {"mean": list(getattr(data, f"{key}_MEAN")), "std": list(getattr(data, f"{key}_STD"))}


def _backbone_normalization(
    settings: TrainSettings, backbone: nn.Module, channels: int
) -> dict[str, list[float]] | None:
    """``--normalization``, or for a timm backbone without it, its pretrained config's."""
    from ..data import pretrained_normalization

    if settings.normalization is not None or not settings.backbone.startswith("timm:"):
        return _normalization(settings.normalization)
    normalization = pretrained_normalization(backbone)
    if normalization is not None and len(normalization["mean"]) != channels:
        raise ConfigError(
            f"--backbone {settings.backbone}: timm's pretrained config normalises "
            f"{len(normalization['mean'])} channels but the images have {channels}; pass "
            f"--normalization ({', '.join(NORMALIZATIONS)})"
        )
    return normalization


def _normalized(dataset: Dataset[Any], normalization: dict[str, list[float]]) -> Dataset[Any]:
    from torchvision import transforms

    from ..data import TransformedDataset

    return TransformedDataset(
        dataset, transforms.Normalize(normalization["mean"], normalization["std"])
    )


def _load_training_data(
    spec: str,
    root: str | None,
    download: bool,
    image_size: int | None,
    normalization: dict[str, list[float]] | None,
    resize: int | None = None,
    skip_bad_images: bool = False,
    workers: int = 0,
) -> tuple[Dataset[Any], SkippedFiles]:
    """The training data set, its image files checked first (a bad one refused, or left out
    with ``skip_bad_images``), and the files left out."""
    from ..data import load_dataset
    from ..data.files import drop_bad_files

    dataset = load_dataset(
        spec, root=root, download=download, train=True, image_size=image_size, resize=resize
    )
    skipped = drop_bad_files(dataset, skip_bad_images, "training", workers)
    return (dataset if normalization is None else _normalized(dataset, normalization)), skipped


def load_backbone_weights(backbone: nn.Module, path: str | os.PathLike[str]) -> None:
    """Load a state_dict file (or a ``{"state_dict": ...}`` wrapper) into ``backbone``.

    Raises:
        CheckpointError: the file is missing, unreadable, not a state_dict or does not fit.
    """
    file = Path(path)
    state = load_weights_only(file, "backbone weights")
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{file}: expected a state_dict (a dict of tensors)")
    try:
        backbone.load_state_dict(state)
    except RuntimeError as error:
        text = " ".join(str(error).split())
        raise CheckpointError(
            f"{file}: does not fit the backbone: {text[:300]}{'...' if len(text) > 300 else ''}"
        ) from None


def _output_width(backbone: nn.Module, input_size: tuple[int, ...]) -> int:
    """The number of outputs (classes) of ``backbone`` for one input of ``input_size``."""
    with torch.no_grad(), eval_mode(backbone):
        parameter = next(backbone.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
        output = backbone(torch.zeros(1, *input_size, device=device))
    return int(output.shape[-1])


def _image_size(config: PNetConfig | None) -> int | None:
    if config is None:
        return None
    height, width = config.input_size[-2:]
    return height if height == width else None


def _check_settings(settings: TrainSettings) -> None:
    for name in ("epochs", "batch_size"):
        check_int(getattr(settings, name), f"--{name.replace('_', '-')}")
    for name in ("checkpoint_every", "tbptt"):
        if getattr(settings, name) is not None:
            check_int(getattr(settings, name), f"--{name.replace('_', '-')}")
    check_int(settings.workers, "--workers", minimum=0)
    check_int(settings.timesteps, "--timesteps", minimum=0)


def _new_run(settings: TrainSettings, out: Path) -> _RunSetup:
    """Build the network, the data and the run description of a new run."""
    if not settings.data:
        raise ConfigError("--data is required (e.g. --data mnist5k), unless --resume is given")
    # run.json is written last when a run starts: without it, the folder holds at most the
    # files of a start that was killed, which a new start replaces.
    if (out / "run.json").exists():
        raise DataError(
            f"{out} already holds a run (run.json); continue it with --resume {out}, or choose "
            "another --out"
        )
    from ..data import dataset_info
    from ..models import entry_for_backbone

    if settings.model is not None:
        return _new_zoo_run(settings)
    if settings.pretrained:
        raise ConfigError("--pretrained applies to a zoo network (--model or --recipe)")
    seed_everything(settings.seed)
    config = load_config(settings.config) if settings.config else None
    image_size = _image_size(config)
    if settings.image_size is not None:
        check_int(settings.image_size, "--image-size")
        if image_size is not None and image_size != settings.image_size:
            raise ConfigError(
                f"--image-size {settings.image_size} differs from the input size {image_size} of "
                f"{settings.config}"
            )
        image_size = settings.image_size
    # Normalised below, once the backbone (whose pretrained config may say how) is built.
    dataset, skipped = _load_training_data(
        settings.data,
        settings.data_root,
        settings.download,
        image_size,
        None,
        settings.resize,
        settings.skip_bad_images,
        settings.workers,
    )
    image_shape = tuple(dataset_info(dataset).image_shape)
    kwargs = dict(settings.backbone_kwargs)
    if settings.backbone == "shallow_cnn":
        classes = dataset_info(dataset).num_classes
        kwargs = {"in_channels": image_shape[0], "num_classes": classes, **kwargs}
    spec = {"name": settings.backbone, "kwargs": kwargs}
    backbone = build_backbone(spec)
    if settings.backbone_weights:
        load_backbone_weights(backbone, settings.backbone_weights)
    normalization = _backbone_normalization(settings, backbone, image_shape[0])
    if normalization is not None:
        dataset = _normalized(dataset, normalization)
    if config is None:
        # The zoo's modules for its backbones; otherwise the backbone's feature stages.
        entry = entry_for_backbone(settings.backbone)
        config = auto_config(backbone, image_shape, entry.modules if entry else None)
    elif tuple(config.input_size) != image_shape:
        raise ConfigError(
            f"{settings.config}: input_size {list(config.input_size)} does not match the data's "
            f"images {list(image_shape)}"
        )
    pnet = predify(backbone, config)
    pnet.normalization = normalization
    record = TrainingRecord(replace(settings, image_size=image_size))
    data_description: dict[str, Any] = {"spec": settings.data, "root": settings.data_root}
    if settings.data.strip().lower().startswith("mnist5k"):
        data_description["split_seed"] = 0  # load_dataset("mnist5k...") uses the default split
    if settings.skip_bad_images:
        data_description["skipped_files"] = skipped.to_json()
    info = RunInfo(
        backbone=spec,
        data=data_description,
        num_classes=_output_width(backbone, image_shape),
        normalization=normalization,
        seed=settings.seed,
        extra={"training": record.to_json()},
    )
    return _RunSetup(pnet, info, record, dataset)


def _new_zoo_run(
    settings: TrainSettings,
) -> _RunSetup:
    """A new run of a zoo network (``settings.model``): its backbone, pcoders and input size."""
    from ..data import dataset_info
    from ..models import create_model, get_model_entry

    assert settings.model is not None and settings.data is not None
    entry = get_model_entry(settings.model)
    if settings.config is not None or settings.backbone != TrainSettings.backbone:
        raise ConfigError(
            f"--model {settings.model} builds its own backbone ({entry.backbone}) and pcoders; "
            "drop --config and --backbone"
        )
    options = dict(settings.backbone_kwargs)
    if "backend" in options or "feedback_weights" in options:
        raise ConfigError(
            f"--backbone-kwargs: {sorted(set(options) & {'backend', 'feedback_weights'})} cannot "
            f"be set for a training run (the backbone is {entry.backbone})"
        )
    if settings.recipe is not None and not (settings.pretrained or settings.backbone_weights):
        raise ConfigError(
            f"recipe {settings.recipe} trains the feedback of a pretrained backbone: pass "
            "--pretrained (downloads its published weights) or --backbone-weights PATH"
        )
    seed_everything(settings.seed)
    pnet = create_model(
        settings.model, weights="DEFAULT" if settings.pretrained else None, **options
    )
    if settings.backbone_weights:
        load_backbone_weights(pnet.backbone, settings.backbone_weights)
    normalization = (
        _normalization(settings.normalization)
        if settings.normalization is not None
        else entry.normalization
    )
    pnet.normalization = normalization
    input_size = tuple(pnet.config.input_size)
    image_size = input_size[-1]
    if settings.image_size is not None and settings.image_size != image_size:
        raise ConfigError(
            f"--image-size {settings.image_size} differs from --model {settings.model}'s input "
            f"size {image_size}; set its image_size in --backbone-kwargs instead"
        )
    dataset, skipped = _load_training_data(
        settings.data,
        settings.data_root,
        settings.download,
        image_size,
        normalization,
        settings.resize,
        settings.skip_bad_images,
        settings.workers,
    )
    image_shape = tuple(dataset_info(dataset).image_shape)
    if image_shape != input_size:
        raise ConfigError(
            f"--model {settings.model}: takes images of {list(input_size)}, the data's are "
            f"{list(image_shape)}"
        )
    num_classes = _output_width(pnet.backbone, input_size)
    spec = {"name": entry.backbone, "kwargs": {"num_classes": num_classes}}
    record = TrainingRecord(replace(settings, image_size=image_size))
    info = RunInfo(
        backbone=spec,
        data={
            "spec": settings.data,
            "root": settings.data_root,
            **({"skipped_files": skipped.to_json()} if settings.skip_bad_images else {}),
        },
        num_classes=num_classes,
        normalization=normalization,
        seed=settings.seed,
        extra={"training": record.to_json(), "network": pnet.config.name},
    )
    return _RunSetup(pnet, info, record, dataset)


def _resumed_run(run_dir: Path, settings: TrainSettings, epochs: int | None) -> _RunSetup:
    """The network, data and description of the run in ``run_dir`` (weights from the checkpoint)."""
    info = read_run_info(run_dir)
    block = info.extra.get("training")
    if not isinstance(block, dict) or not block.get("data"):
        raise DataError(f"{run_dir}: not a `predify train` run (run.json has no training settings)")
    record = replace(TrainingRecord.from_json(block, str(run_dir / "run.json")), status="running")
    run = record.settings
    if not (run_dir / CHECKPOINT_NAME).is_file():
        raise CheckpointError(f"{run_dir / CHECKPOINT_NAME}: training checkpoint not found")
    pnet = load_run(run_dir, with_feedback=False).pnet
    if epochs is not None:
        check_int(epochs, "--epochs")
        record = replace(record, settings=replace(run, epochs=epochs))
    root = settings.data_root if settings.data_root is not None else run.data_root
    assert run.data is not None
    dataset, _ = _load_training_data(
        run.data, root, settings.download, run.image_size, info.normalization, run.resize,
        run.skip_bad_images, settings.workers,
    )  # fmt: skip
    return _RunSetup(pnet, info, record, dataset)


class _ExportFeedback(Callback):
    """After each checkpoint, the run directory's feedback file gets the same decoders."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def on_checkpoint(self, trainer: FeedbackTrainer, path: Path) -> None:
        if self.path is not None:
            save_feedback(trainer.pnet, self.path)


# ---------------------------------------------------------------------- the runs
def train_run(out: str | os.PathLike[str], settings: TrainSettings) -> TrainingReport:
    """Train a new run into ``out`` (which must not hold one yet); see the module docstring.

    Raises:
        ConfigError, DataError, CheckpointError: bad settings, data, weights or folder.
        NonFiniteLossError: a loss became NaN or infinite.
    """
    _check_settings(settings)
    return _train(Path(out), settings, resume=False, epochs=None)


def resume_run(
    run_dir: str | os.PathLike[str],
    *,
    epochs: int | None = None,
    settings: TrainSettings | None = None,
) -> TrainingReport:
    """Continue the run in ``run_dir`` exactly, up to ``epochs`` epochs in all (None: as planned).

    Only how the run is executed is taken from ``settings`` (``workers``, ``device``,
    ``checkpoint_every``, ``data_root``, ``download``, ``progress``, ``handle_interrupt``); what
    defines the run comes from its run.json.
    """
    settings = settings if settings is not None else TrainSettings()
    check_int(settings.workers, "--workers", minimum=0)
    if settings.checkpoint_every is not None:
        check_int(settings.checkpoint_every, "--checkpoint-every")
    return _train(Path(run_dir), settings, resume=True, epochs=epochs)


def _train(
    out: Path, settings: TrainSettings, *, resume: bool, epochs: int | None
) -> TrainingReport:
    device = resolve_device(settings.device)
    if resume:
        read_run_info(out)  # a missing run directory is named before anything is created
    distributed = init_distributed(device)
    # The output folder's lock (rank 0's), held until this function returns or raises.
    outputs = ExitStack()
    try:
        if distributed is not None and device.type == "cuda":
            device = torch.device("cuda", distributed.local_rank)
            torch.cuda.set_device(device)
        is_main = distributed is None or distributed.is_main
        outputs.enter_context(prepare_output_dir(out, is_main=is_main))
        setup = _set_up(out, settings, resume, epochs, distributed, is_main)
        trainer = _trainer(setup, settings, device)
        if resume:
            trainer.load_checkpoint(out / CHECKPOINT_NAME)
        # Every process has checked the directory before rank 0 writes into it.
        if distributed is not None:
            dist.barrier()
        if is_main:
            if resume:
                _write_run_json(out, setup.info, setup.record)
            else:
                # A checkpoint at step 0 before run.json: whenever this run is killed from now
                # on, --resume finds a checkpoint to continue from.
                trainer.save_checkpoint(out / CHECKPOINT_NAME)
                save_run(out, setup.pnet, setup.info)
        run = setup.record.run_settings(settings)
        means = trainer.fit(
            setup.dataset,
            epochs=run.epochs,
            batch_size=run.batch_size,
            workers=settings.workers,
            callbacks=_callbacks(out, settings, is_main),
            handle_interrupt=settings.handle_interrupt,
        )
        if is_main:
            # Also when a resumed fit had nothing left: a kill between the last checkpoint and
            # its export must not leave older decoders in the feedback file.
            save_feedback(trainer.pnet, feedback_path(out))
            finished = replace(setup.record, status="finished", steps=trainer.global_step)
            _write_run_json(out, setup.info, finished)
        if distributed is not None:
            dist.barrier()
        return TrainingReport(
            run_dir=str(out),
            epochs=trainer.epoch,
            steps=trainer.global_step,
            epoch_losses=means,
            resumed=resume,
        )
    finally:
        outputs.close()
        shutdown_distributed()


def _set_up(
    out: Path,
    settings: TrainSettings,
    resume: bool,
    epochs: int | None,
    distributed: DistributedInfo | None,
    is_main: bool,
) -> _RunSetup:
    """The run to train (new or resumed); with ``--download``, rank 0 fetches the data first."""
    download_first = distributed is not None and settings.download
    if download_first and not is_main:
        dist.barrier()
    setup = _resumed_run(out, settings, epochs) if resume else _new_run(settings, out)
    if download_first and is_main:
        dist.barrier()
    return setup


def _trainer(setup: _RunSetup, settings: TrainSettings, device: torch.device) -> FeedbackTrainer:
    """The trainer of the run's own settings (from run.json when resuming), run as ``settings``
    say."""
    run = setup.record.run_settings(settings)
    return FeedbackTrainer(
        setup.pnet,
        scheduler=parse_scheduler(run.scheduler).factory(epochs=run.epochs),
        lr=run.lr,
        weight_decay=run.weight_decay,
        optimizer_name=run.optimizer,
        momentum=run.momentum,
        timesteps=run.timesteps,
        tbptt=run.tbptt,
        checkpoint_activations=run.checkpoint_activations,
        precision=run.precision,
        channels_last=settings.channels_last,
        device=device,
        seed=run.seed,
    )


def _callbacks(out: Path, settings: TrainSettings, is_main: bool) -> list[Callback]:
    return [
        # The step's row is logged before a checkpoint at that step is written: a kill
        # between the two must not leave a checkpoint whose last row is missing.
        MetricsLogging(out),
        ModelCheckpoint(
            out / CHECKPOINT_NAME, settings.checkpoint_every, verbose=settings.handle_interrupt
        ),
        _ExportFeedback(feedback_path(out) if is_main else None),
        ProgressBar(settings.progress),
    ]


def _write_run_json(out: Path, info: RunInfo, record: TrainingRecord) -> None:
    info.extra["training"] = record.to_json()
    atomic_write_json(out / "run.json", info.to_json())
