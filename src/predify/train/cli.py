"""``predify train``: train the feedback of a network on a data set and write a run directory.

::

    predify train --data mnist5k --out runs/shallow                  # ShallowCNN sized from data
    predify train --config pvgg16.toml --backbone torchvision:vgg16 \\
        --backbone-weights vgg16.pt --normalization imagenet --data folder:/data/train --out runs/v
    predify train --resume runs/shallow --epochs 20                  # continue, exactly
    torchrun --nproc-per-node 4 -m predify.cli train ...             # one process per GPU (DDP)

The run directory holds what :func:`predify.runs.save_run` writes (``run.json``, ``config.toml``,
``backbone.pt``, ``feedback.safetensors``), plus ``checkpoint.pt`` (the full training state,
written every ``--checkpoint-every`` steps, at the end and on Ctrl-C) and ``metrics.csv`` (one row
per step; TensorBoard scalars under ``tensorboard/`` when it is installed).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset
from torchvision import transforms

from .._device import resolve_device
from .._io import atomic_write_json, check_writable_dir, load_weights_only
from ..builder import auto_config, predify
from ..checkpoint import save_feedback
from ..config import PNetConfig, load_config
from ..errors import CheckpointError, ConfigError, DataError
from ..modules import eval_mode
from ..network import PredictiveNet
from ..runs import RunInfo, build_backbone, feedback_path, load_run, read_run_info, save_run
from .distributed import init_distributed, shutdown_distributed
from .state import seed_everything
from .trainer import OPTIMIZERS, FeedbackTrainer

__all__ = ["add_arguments", "default_modules", "run"]

CHECKPOINT_NAME = "checkpoint.pt"
NORMALIZATIONS = ("none", "imagenet", "mnist", "fashionmnist", "cifar10", "cifar100")

#: Options that define a run; ``--resume`` takes them from the run directory instead.
_RUN_OPTIONS = (
    "config",
    "data",
    "backbone",
    "backbone_kwargs",
    "backbone_weights",
    "normalization",
    "batch_size",
    "lr",
    "weight_decay",
    "optimizer",
    "momentum",
    "seed",
    "timesteps",
    "tbptt",
    "checkpoint_activations",
    "amp",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``predify train``."""
    option = parser.add_argument
    # fmt: off
    option("--config", metavar="CFG", help="pcoder config (TOML); default: automatic decoders "
           "at the backbone's usual modules")
    option("--data", metavar="SPEC", help="training data: mnist5k[:train|val|test], "
           "mnist|fashionmnist|cifar10|cifar100[:ROOT], folder:PATH or a directory")
    option("--out", metavar="DIR", help="run directory to write")
    option("--backbone", metavar="NAME", help="shallow_cnn (default, sized from the data), "
           "torchvision:NAME or timm:NAME")
    option("--backbone-kwargs", metavar="JSON",
           help='keyword arguments of the backbone, e.g. \'{"num_classes": 10}\'')
    option("--backbone-weights", metavar="PATH",
           help="the trained backbone's state_dict (read with weights_only=True)")
    option("--normalization", choices=NORMALIZATIONS,
           help="mean/std normalisation the backbone expects (default none)")
    option("--epochs", type=int, help="total number of epochs (default 5)")
    option("--batch-size", type=int, help="per process (default 32)")
    option("--lr", type=float, help="learning rate (default 1e-3)")
    option("--weight-decay", type=float, help="L2 weight decay (default 5e-4)")
    option("--optimizer", choices=OPTIMIZERS, help="default adam")
    option("--momentum", type=float, help="of sgd and rmsprop (default 0.9)")
    option("--workers", type=int, default=0, help="data loader workers (default 0)")
    option("--seed", type=int, help="seed of initialisation and data order (default 0)")
    option("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    option("--timesteps", type=int, help="train through T steps of the dynamics (default 0: "
           "the paper's feed-forward reconstruction objective)")
    option("--tbptt", type=int, metavar="STEPS",
           help="with --timesteps: truncated backprop-through-time window")
    option("--checkpoint-activations", action="store_true",
           help="with --timesteps: recompute each step in backward to save memory")
    option("--checkpoint-every", type=int, metavar="N",
           help="write checkpoint.pt every N steps (always at the end and on Ctrl-C)")
    option("--resume", metavar="DIR",
           help="continue the run in DIR exactly (--epochs may raise its length)")
    option("--amp", action="store_true", help="mixed precision (CUDA only)")
    option("--data-root", metavar="PATH", help="root of a torchvision data set")
    option("--download", action="store_true", help="let torchvision download a missing data set")
    option("--no-progress", action="store_true", help="no progress bars")
    # fmt: on


def default_modules(backbone_name: str) -> tuple[str, ...]:
    """The modules that get pcoders when no ``--config`` is given, for a backbone spec name."""
    from ..models import PEFFNETB0_MODULES, PRESNET18_MODULES, PVGG16_MODULES, SHALLOW_MODULES

    family, _, model = backbone_name.partition(":")
    if backbone_name == "shallow_cnn":
        return SHALLOW_MODULES
    if family == "torchvision":
        if model.startswith(("resnet", "resnext", "wide_resnet")):
            return PRESNET18_MODULES
        if model == "vgg16":
            return PVGG16_MODULES
        if model == "efficientnet_b0":
            return PEFFNETB0_MODULES
    raise ConfigError(
        f"backbone {backbone_name!r}: no default pcoder modules are known for it; pass --config "
        "(see predify.auto_config)"
    )


def _normalization(name: str | None) -> dict[str, list[float]] | None:
    from .. import data

    if name in (None, "none"):
        return None
    key = str(name).upper()
    return {"mean": list(getattr(data, f"{key}_MEAN")), "std": list(getattr(data, f"{key}_STD"))}


def _load_training_data(
    spec: str,
    root: str | None,
    download: bool,
    image_size: int | None,
    normalization: dict[str, list[float]] | None,
) -> Dataset[Any]:
    from ..data import TransformedDataset, load_dataset

    dataset = load_dataset(spec, root=root, download=download, train=True, image_size=image_size)
    if normalization is not None:
        dataset = TransformedDataset(
            dataset, transforms.Normalize(normalization["mean"], normalization["std"])
        )
    return dataset


def _load_backbone_weights(backbone: nn.Module, path: str) -> None:
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


def _parse_kwargs(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"--backbone-kwargs: not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"--backbone-kwargs: expected a JSON object, got {text!r}")
    return value


def _image_size(config: PNetConfig | None) -> int | None:
    if config is None:
        return None
    height, width = config.input_size[-2:]
    return height if height == width else None


def _new_run(
    args: argparse.Namespace, out: Path
) -> tuple[PredictiveNet, RunInfo, dict[str, Any], Dataset[Any]]:
    """Build the network, the data and the run description of a new run."""
    if not args.data:
        raise ConfigError("--data is required (e.g. --data mnist5k), unless --resume is given")
    for name in (CHECKPOINT_NAME, "run.json"):
        if (out / name).exists():
            raise DataError(
                f"{out} already holds a run ({name}); continue it with --resume {out}, or choose "
                "another --out"
            )
    seed = 0 if args.seed is None else args.seed
    seed_everything(seed)
    config = load_config(args.config) if args.config else None
    image_size = _image_size(config)
    normalization = _normalization(args.normalization)
    dataset = _load_training_data(
        args.data, args.data_root, args.download, image_size, normalization
    )
    from ..data import dataset_info

    image_shape = tuple(dataset_info(dataset).image_shape)
    backbone_name = args.backbone or "shallow_cnn"
    kwargs = _parse_kwargs(args.backbone_kwargs)
    if backbone_name == "shallow_cnn":
        classes = dataset_info(dataset).num_classes
        kwargs = {"in_channels": image_shape[0], "num_classes": classes, **kwargs}
    spec = {"name": backbone_name, "kwargs": kwargs}
    backbone = build_backbone(spec)
    if args.backbone_weights:
        _load_backbone_weights(backbone, args.backbone_weights)
    if config is None:
        config = auto_config(backbone, image_shape, default_modules(backbone_name))
    elif tuple(config.input_size) != image_shape:
        raise ConfigError(
            f"{args.config}: input_size {list(config.input_size)} does not match the data's "
            f"images {list(image_shape)}"
        )
    pnet = predify(backbone, config)
    training = {
        "data": args.data,
        "data_root": args.data_root,
        "image_size": image_size,
        "epochs": 5 if args.epochs is None else args.epochs,
        "batch_size": 32 if args.batch_size is None else args.batch_size,
        "lr": 1e-3 if args.lr is None else args.lr,
        "weight_decay": 5e-4 if args.weight_decay is None else args.weight_decay,
        "optimizer": args.optimizer or "adam",
        "momentum": 0.9 if args.momentum is None else args.momentum,
        "timesteps": args.timesteps or 0,
        "tbptt": args.tbptt,
        "checkpoint_activations": bool(args.checkpoint_activations),
        "amp": bool(args.amp),
        "seed": seed,
    }
    data_description: dict[str, Any] = {"spec": args.data, "root": args.data_root}
    if args.data.strip().lower().startswith("mnist5k"):
        data_description["split_seed"] = 0  # load_dataset("mnist5k...") uses the default split
    info = RunInfo(
        backbone=spec,
        data=data_description,
        num_classes=_output_width(backbone, image_shape),
        normalization=normalization,
        seed=seed,
        extra={"training": training},
    )
    return pnet, info, training, dataset


def _resumed_run(
    args: argparse.Namespace, run_dir: Path
) -> tuple[PredictiveNet, RunInfo, dict[str, Any], Dataset[Any]]:
    """The network, data and description of the run in ``run_dir`` (weights from the checkpoint)."""
    given = [
        "--" + name.replace("_", "-")
        for name in _RUN_OPTIONS
        if getattr(args, name) not in (None, False)
    ]
    if given:
        raise ConfigError(
            f"--resume continues the run as it was set up; drop {', '.join(given)} (only --epochs, "
            "--workers, --device, --checkpoint-every, --data-root, --download and --no-progress "
            "may change)"
        )
    info = read_run_info(run_dir)
    training = info.extra.get("training")
    if not isinstance(training, dict):
        raise DataError(f"{run_dir}: not a `predify train` run (run.json has no training settings)")
    if not (run_dir / CHECKPOINT_NAME).is_file():
        raise CheckpointError(f"{run_dir / CHECKPOINT_NAME}: training checkpoint not found")
    pnet = load_run(run_dir, with_feedback=False).pnet
    if args.epochs is not None:
        training["epochs"] = args.epochs
    root = args.data_root if args.data_root is not None else training.get("data_root")
    dataset = _load_training_data(
        training["data"], root, args.download, training.get("image_size"), info.normalization
    )
    return pnet, info, training, dataset


def run(args: argparse.Namespace) -> int:
    """``predify train``; returns the exit status (user errors raise PredifyError)."""
    for name in ("epochs", "batch_size", "checkpoint_every", "tbptt"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')}: expected an integer >= 1, got {value}")
    if args.workers < 0:
        raise ConfigError(f"--workers: expected an integer >= 0, got {args.workers}")
    if args.timesteps is not None and args.timesteps < 0:
        raise ConfigError(f"--timesteps: expected an integer >= 0, got {args.timesteps}")
    if args.resume:
        run_dir = Path(args.resume)
        if args.out and Path(args.out).resolve() != run_dir.resolve():
            raise ConfigError(
                f"--out {args.out} differs from --resume {args.resume}; a resumed run continues "
                "in its own directory"
            )
        out = run_dir
    else:
        if not args.out:
            raise ConfigError("--out is required: the run directory to write")
        out = Path(args.out)
    device = resolve_device(args.device)
    distributed = init_distributed(device)
    try:
        if distributed is not None and device.type == "cuda":
            device = torch.device("cuda", distributed.local_rank)
            torch.cuda.set_device(device)
        is_main = distributed is None or distributed.is_main
        if is_main:
            check_writable_dir(out)
        # With --download, rank 0 fetches the data before the others read it.
        download_first = distributed is not None and args.download
        if download_first and not is_main:
            dist.barrier()
        if args.resume:
            pnet, info, training, dataset = _resumed_run(args, out)
        else:
            pnet, info, training, dataset = _new_run(args, out)
        if download_first and is_main:
            dist.barrier()
        trainer = FeedbackTrainer(
            pnet,
            lr=training["lr"],
            weight_decay=training["weight_decay"],
            optimizer_name=training["optimizer"],
            momentum=training["momentum"],
            timesteps=training["timesteps"],
            tbptt=training["tbptt"],
            checkpoint_activations=training["checkpoint_activations"],
            amp=training["amp"],
            device=device,
            seed=training["seed"],
        )
        if args.resume:
            trainer.load_checkpoint(out / CHECKPOINT_NAME)
        training["status"] = "running"
        # Every process has checked the directory before rank 0 writes into it.
        if distributed is not None:
            dist.barrier()
        if is_main:
            if args.resume:
                atomic_write_json(out / "run.json", asdict(info))
            else:
                save_run(out, pnet, info)
        feedback_file = feedback_path(out) if is_main else None

        def export_feedback(current: FeedbackTrainer) -> None:
            # The run directory always holds the decoders of the latest checkpoint.
            if feedback_file is not None:
                save_feedback(current.pnet, feedback_file)

        means = trainer.fit(
            dataset,
            epochs=training["epochs"],
            batch_size=training["batch_size"],
            workers=args.workers,
            checkpoint_path=out / CHECKPOINT_NAME,
            checkpoint_every=args.checkpoint_every,
            on_checkpoint=export_feedback,
            log_dir=out,
            progress=not args.no_progress,
        )
        training["status"] = "finished"
        training["steps"] = trainer.global_step
        if is_main:
            atomic_write_json(out / "run.json", asdict(info))
            last = means[-1] if means else None
            summary = (
                ", ".join(f"{name} {value:.4g}" for name, value in last.items())
                if last
                else "nothing left to train"
            )
            print(
                f"predify train: {trainer.epoch} epochs, {trainer.global_step} steps; "
                f"last epoch's mean losses: {summary}; run directory: {out}"
            )
        if distributed is not None:
            dist.barrier()
        return 0
    finally:
        shutdown_distributed()
