"""``predify train``: train the feedback of a network on a data set and write a run directory.

::

    predify train --data mnist5k --out runs/shallow                  # ShallowCNN sized from data
    predify train --config pvgg16.toml --backbone torchvision:vgg16 \\
        --backbone-weights vgg16.pt --normalization imagenet --data folder:/data/train --out runs/v
    predify train --data folder:/data/train --backbone timm:convnext_tiny \
        --backbone-weights convnext.pt --out runs/c   # timm: feature stages, timm's mean/std
    predify train --resume runs/shallow --epochs 20                  # continue, exactly
    predify train --recipe peffnetb0-imagenet --pretrained \
        --data folder:/imagenet/train --out runs/peffnetb0            # the paper's recipe
    torchrun --nproc-per-node 4 -m predify.cli train ...             # one process per GPU (DDP)

The options of [`predify.train.settings.TrainSettings`][predify.train.settings.TrainSettings],
passed to
[`predify.train.api.train_run()`][predify.train.api.train_run] (or
[`resume_run()`][predify.train.api.resume_run]), which documents
what the run directory holds.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..runtime.cli_options import (
    add_common_options,
    add_execution_options,
    nonnegative_int,
    positive_int,
    progress_from_args,
)
from .api import NORMALIZATIONS, resume_run, train_run
from .optimizers import OPTIMIZERS
from .recipes import get_recipe, list_recipes
from .schedulers import SCHEDULERS, parse_scheduler
from .settings import RUN_SETTINGS, TrainSettings

__all__ = ["add_arguments", "run", "settings_from_args"]

_DEFAULTS = TrainSettings()
#: Options that define a run; ``--resume`` takes them from the run directory instead.
_RUN_OPTIONS = (
    "pretrained",
    "config",
    "backbone",
    "backbone_kwargs",
    "backbone_weights",
    "normalization",
    *(name for name in RUN_SETTINGS if name not in ("epochs", "data_root")),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``predify train``."""
    option = parser.add_argument
    d = _DEFAULTS
    # fmt: off
    option("--config", metavar="CFG", help="pcoder config (TOML); default: automatic decoders "
           "at the backbone's usual modules")
    option("--data", metavar="SPEC", help="training data: mnist5k[:train|val|test], "
           "mnist|fashionmnist|cifar10|cifar100[:ROOT], folder:PATH or a directory")
    option("--out", metavar="DIR", help="run directory to write")
    option("--recipe", choices=list_recipes(), help="the paper's training setup for a zoo "
           "network (optimiser, lr, weight decay, batch, epochs, schedule, preprocessing); the "
           "other options given override it")
    option("--model", metavar="NAME", help="train a zoo network (predify models), its own "
           "backbone and pcoders, instead of --backbone/--config")
    option("--pretrained", action="store_true", default=None,
           help="with --model/--recipe: start from the backbone's published weights (download)")
    option("--backbone", metavar="NAME", help=f"{d.backbone} (default, sized from the data), "
           "torchvision:NAME or timm:NAME")
    option("--backbone-kwargs", metavar="JSON",
           help='keyword arguments of the backbone, e.g. \'{"num_classes": 10}\'')
    option("--backbone-weights", metavar="PATH",
           help="the trained backbone's state_dict (read with weights_only=True)")
    option("--normalization", choices=NORMALIZATIONS,
           help="mean/std normalisation the backbone expects (default none; for timm:NAME the "
           "model's pretrained config)")
    option("--image-size", type=positive_int, metavar="N",
           help="resize folder/torchvision images to NxN (default: the config's input size, "
           "else the data's own; 224 for folders)")
    option("--epochs", type=positive_int, help=f"total number of epochs (default {d.epochs})")
    option("--batch-size", type=positive_int, help=f"per process (default {d.batch_size})")
    option("--lr", type=float, help=f"learning rate (default {d.lr:g})")
    option("--weight-decay", type=float, help=f"L2 weight decay (default {d.weight_decay:g})")
    option("--optimizer", choices=OPTIMIZERS, help=f"default {d.optimizer}")
    option("--momentum", type=float, help=f"of sgd and rmsprop (default {d.momentum:g})")
    option("--scheduler", metavar="SPEC", help="learning-rate schedule, stepped every epoch: "
           f"{', '.join(SCHEDULERS)}, with options such as cosine-warm-restarts:t0=3 or "
           f"step:step_size=10,gamma=0.1 (default {d.scheduler})")
    option("--resize", type=positive_int, metavar="PIXELS", help="image folders: the short "
           "side before the center crop (default size / 0.875; the paper's scripts used 224)")
    option("--workers", type=nonnegative_int, default=0, help="data loader workers (default 0)")
    option("--skip-bad-images", action="store_true", default=None,
           help="image folders: leave unreadable files out (named in run.json) instead of stopping")
    option("--seed", type=int, help=f"seed of initialisation and data order (default {d.seed})")
    option("--timesteps", type=nonnegative_int, help="train through T steps of the dynamics "
           "(default 0: the paper's feed-forward reconstruction objective)")
    option("--tbptt", type=positive_int, metavar="STEPS",
           help="with --timesteps: truncated backprop-through-time window")
    option("--checkpoint-activations", action="store_true", default=None,
           help="with --timesteps: recompute each step in backward to save memory")
    option("--checkpoint-every", type=positive_int, metavar="N",
           help="write checkpoint.pt every N steps (always at the end and on Ctrl-C)")
    option("--resume", metavar="DIR",
           help="continue the run in DIR exactly (--epochs may raise its length)")
    option("--data-root", metavar="PATH", help="root of a torchvision data set")
    option("--download", action="store_true", help="let torchvision download a missing data set")
    # fmt: on
    add_execution_options(parser)
    # None: not given (a resumed run keeps its own; a new one gets the recipe's or fp32).
    parser.set_defaults(precision=None)
    add_common_options(parser)


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


def settings_from_args(args: argparse.Namespace) -> TrainSettings:
    """The [`TrainSettings`][predify.train.cli.TrainSettings] of parsed options: the given ones
    over the defaults."""
    given = {
        name: getattr(args, name)
        for name in (*_RUN_OPTIONS, "epochs", "data_root", "checkpoint_every")
        if getattr(args, name, None) is not None
    }
    if args.backbone_kwargs is not None:
        given["backbone_kwargs"] = _parse_kwargs(args.backbone_kwargs)
    if "scheduler" in given:
        parse_scheduler(given["scheduler"])  # a bad spec fails before any work
    if getattr(args, "compile", False):
        raise ConfigError(
            "--compile: not offered by predify train (training calls the backbone's and the "
            "decoders' methods, not the network's compiled forward); drop it"
        )
    base = get_recipe(args.recipe).settings() if args.recipe else _DEFAULTS
    return replace(
        base,
        **given,
        workers=args.workers,
        channels_last=bool(getattr(args, "channels_last", False)),
        device=args.device,
        download=args.download,
        progress=progress_from_args(args),
        handle_interrupt=True,
    )


def run(args: argparse.Namespace) -> int:
    """``predify train``; returns the exit status (user errors raise PredifyError)."""
    settings = settings_from_args(args)
    if args.resume:
        given = [
            "--" + name.replace("_", "-")
            for name in _RUN_OPTIONS
            if getattr(args, name, None) not in (None, False)
        ]
        if given:
            raise ConfigError(
                f"--resume continues the run as it was set up; drop {', '.join(given)} (only "
                "--epochs, --workers, --device, --checkpoint-every, --data-root, --download, "
                "--channels-last and --no-progress may change)"
            )
        if args.out and Path(args.out).resolve() != Path(args.resume).resolve():
            raise ConfigError(
                f"--out {args.out} differs from --resume {args.resume}; a resumed run continues "
                "in its own directory"
            )
        report = resume_run(args.resume, epochs=args.epochs, settings=settings)
    else:
        if not args.out:
            raise ConfigError("--out is required: the run directory to write")
        report = train_run(args.out, settings)
    if _is_main_process():
        last = report.epoch_losses[-1] if report.epoch_losses else None
        summary = (
            ", ".join(f"{name} {value:.4g}" for name, value in last.items())
            if last
            else "nothing left to train"
        )
        print(
            f"predify train: {report.epochs} epochs, {report.steps} steps; "
            f"last epoch's mean losses: {summary}; run directory: {report.run_dir}"
        )
    return 0


def _is_main_process() -> bool:
    from ..runtime.distributed import distributed_from_env

    info = distributed_from_env()
    return info is None or info.is_main
