"""``predify tune RUN_DIR --noise gaussian:0.5 [--noise ...]``: tune beta, lambda and alpha at each
noise level on the run's validation split, report accuracy per timestep before and after on the
test split, and plot the tuned weights against the noise level (the reliance on feedback).

Writes into ``--out`` (default ``RUN_DIR/tune``)::

    <noise>/tuned.toml        the run's config with the tuned values (loadable by predify.predify)
    <noise>/trajectory.csv    step, loss, per-pcoder beta/lambda/memory/alpha along the tuning
    <noise>/result.json       tuned values, losses, accuracies before/after, the settings
    results.json              every level together
    reliance.csv, reliance.png    tuned values per pcoder against the noise level
    accuracy.png              held-out accuracy per timestep, before and after, per level

A level whose ``result.json`` was written with the same settings is skipped on a restart, so an
interrupted call resumes where it stopped. To use a tuned network, load it with
``predify.tune.load_tuned(RUN_DIR, OUT/<noise>/tuned.toml)``: the run's feedback file also holds
(untuned) hyperparameters, so building from ``tuned.toml`` and then loading it would undo them.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .._device import resolve_device
from .._io import atomic_write_json, atomic_write_text
from ..config import Hyperparameters
from ..errors import ConfigError, DataError
from ..runs import LoadedRun, feedback_path, load_run
from .data import check_disjoint_images
from .gradient import DEFAULT_LR_ALPHA, DEFAULT_LR_MIXING
from .hyperparameters import effective_values
from .noise import NOISE_FORMS, NoiseSpec, parse_noise
from .objective import Normalize
from .optuna_search import import_optuna
from .plots import plot_accuracy, plot_reliance
from .reliance import tune_and_evaluate
from .result import values_dict, write_trajectory

__all__ = ["add_arguments", "run"]

_SPLITS = ("train", "val", "test")
_RESULT = "result.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``predify tune``."""
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (predify demo/train)")
    parser.add_argument(
        "--noise",
        action="append",
        required=True,
        metavar="SPEC",
        help=f"noise to tune for, repeatable: {NOISE_FORMS}",
    )
    parser.add_argument(
        "--method",
        choices=("gradient", "optuna"),
        default="gradient",
        help="Adam on the unrolled dynamics (default) or Optuna's TPE search with pruning",
    )
    layout = parser.add_mutually_exclusive_group()
    layout.add_argument(
        "--per-layer",
        dest="shared",
        action="store_false",
        default=None,
        help="one beta/lambda/alpha per pcoder (default unless the run's config shares them)",
    )
    layout.add_argument(
        "--shared", dest="shared", action="store_true", help="one set shared by all pcoders"
    )
    parser.add_argument("--timesteps", type=int, help="T (default: the run's config)")
    parser.add_argument(
        "--epochs", type=int, default=3, help="gradient: passes over the tuning split (default 3)"
    )
    parser.add_argument("--trials", type=int, default=20, help="optuna: trials (default 20)")
    parser.add_argument(
        "--max-images",
        type=int,
        help="use at most this many images of each split (a seeded random subset)",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="images per step (default 64)")
    parser.add_argument(
        "--lr-mixing",
        type=float,
        default=DEFAULT_LR_MIXING,
        help=f"gradient: Adam lr of the beta/lambda/memory logits (default {DEFAULT_LR_MIXING:g})",
    )
    parser.add_argument(
        "--lr-alpha",
        type=float,
        default=DEFAULT_LR_ALPHA,
        help=f"gradient: Adam lr of alpha's softplus parameter (default {DEFAULT_LR_ALPHA:g})",
    )
    parser.add_argument(
        "--time-budget", type=float, metavar="SECONDS", help="stop tuning a level after this long"
    )
    parser.add_argument("--clip", action="store_true", help="clamp noisy images to [0, 1]")
    parser.add_argument(
        "--tune-split", choices=_SPLITS, default="val", help="split tuned on (default val)"
    )
    parser.add_argument(
        "--eval-split", choices=_SPLITS, default="test", help="split reported on (default test)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds subsets, noise, shuffling")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default auto)")
    parser.add_argument("--out", type=Path, help="output directory (default RUN_DIR/tune)")
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bars (default: on a terminal)"
    )


# ---------------------------------------------------------------------------------- settings
def _positive(value: int | float | None, name: str) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{name}: expected a value > 0, got {value}")


def _check_arguments(args: argparse.Namespace) -> list[NoiseSpec]:
    noises = [parse_noise(text, clip=args.clip) for text in args.noise]
    labels = [noise.label for noise in noises]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ConfigError(f"--noise: {', '.join(repeated)} given more than once")
    for name in ("timesteps", "epochs", "trials", "max_images", "batch_size"):
        _positive(getattr(args, name), f"--{name.replace('_', '-')}")
    _positive(args.time_budget, "--time-budget")
    for name in ("lr_mixing", "lr_alpha"):
        value = getattr(args, name)
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"--{name.replace('_', '-')}: expected a value >= 0, got {value}")
    if args.method == "optuna":
        # Optuna logs every trial at INFO level; the progress bar and summary say enough.
        optuna = import_optuna()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    return noises


def _fingerprint(run_dir: Path) -> str:
    """SHA-256 over the run's config, backbone and feedback files: results depend on them."""
    digest = hashlib.sha256()
    for path in (run_dir / "config.toml", run_dir / "backbone.pt", feedback_path(run_dir)):
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


# -------------------------------------------------------------------------------------- data
def _split_data(
    loaded: LoadedRun, tune_split: str, eval_split: str, max_images: int | None, seed: int
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor], dict[str, Any]]:
    """(tuning images, labels), (evaluation images, labels) and a description, disjoint."""
    from ..data import check_disjoint, mnist5k_splits

    spec = str(loaded.info.data.get("spec", ""))
    if spec.split(":")[0].lower() != "mnist5k":
        raise DataError(
            f"{loaded.path}: trained on {spec!r}; predify tune reads the tuning and evaluation "
            "splits of mnist5k runs (use predify.tune.tune_gradient on other data)"
        )
    split_seed = int(loaded.info.data.get("split_seed", 0))
    splits = mnist5k_splits(split_seed)
    chosen = {}
    for role, name in (("tuning", tune_split), ("evaluation", eval_split)):
        dataset = getattr(splits, name)
        indices = getattr(splits, f"{name}_indices")
        images, labels = dataset.tensors
        if max_images is not None and max_images < len(indices):
            generator = torch.Generator().manual_seed(seed + (0 if role == "tuning" else 1))
            keep = torch.randperm(len(indices), generator=generator)[:max_images].sort().values
            images, labels, indices = images[keep], labels[keep], indices[keep]
        chosen[role] = (images, labels, indices)
    # Refuse to report on images the tuning saw: by position in MNIST-5k, then by content.
    check_disjoint(chosen["tuning"][2], chosen["evaluation"][2])
    check_disjoint_images(chosen["tuning"][0], chosen["evaluation"][0])
    description = {
        "spec": "mnist5k",
        "split_seed": split_seed,
        "tuning": f"mnist5k:{tune_split}",
        "tuning_images": len(chosen["tuning"][2]),
        "evaluation": f"mnist5k:{eval_split}",
        "evaluation_images": len(chosen["evaluation"][2]),
    }
    tuning = (chosen["tuning"][0], chosen["tuning"][1])
    evaluation = (chosen["evaluation"][0], chosen["evaluation"][1])
    return tuning, evaluation, description


def _normalizer(loaded: LoadedRun, device: torch.device) -> Normalize | None:
    from ..data import InputNormalization

    normalization = loaded.info.normalization
    if not normalization:
        return None
    return InputNormalization(normalization["mean"], normalization["std"]).to(device)


# ---------------------------------------------------------------------------------- one level
def _tune_level(
    args: argparse.Namespace,
    loaded: LoadedRun,
    noise: NoiseSpec,
    tuning: tuple[Tensor, Tensor],
    evaluation: tuple[Tensor, Tensor],
    normalize: Normalize | None,
    timesteps: int,
    shared: bool,
    settings: dict[str, Any],
    level_dir: Path,
) -> dict[str, Any]:
    """Tune and evaluate one level; write its files, ``result.json`` last."""
    pnet = loaded.pnet
    options: dict[str, Any] = {
        "shared": shared,
        "batch_size": args.batch_size,
        "time_budget_s": args.time_budget,
        "progress": False if args.no_progress else None,
    }
    if args.method == "optuna":
        options["trials"] = args.trials
    else:
        options.update(epochs=args.epochs, lr_mixing=args.lr_mixing, lr_alpha=args.lr_alpha)
    report = tune_and_evaluate(
        pnet,
        tuning,
        *evaluation,
        noise,
        method=args.method,
        timesteps=timesteps,
        seed=args.seed,
        normalize=normalize,
        **options,
    )
    summary = {
        "noise": str(noise),
        "settings": settings,
        "run_values": [values_dict(v) for v in pnet.hyperparameter_values()],
        **report.to_dict(),
    }
    report.result.config_for(pnet).save(level_dir / "tuned.toml")
    write_trajectory(level_dir / "trajectory.csv", report.result.trajectory)
    # Written last: its presence marks the level as finished for a restart.
    atomic_write_json(level_dir / _RESULT, summary)
    return summary


def _finished(level_dir: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The saved result of a level finished with the same settings, else None."""
    path = level_dir / _RESULT
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    complete = all((level_dir / name).is_file() for name in ("tuned.toml", "trajectory.csv"))
    if not complete or not isinstance(saved, dict) or saved.get("settings") != settings:
        return None
    return saved


# ----------------------------------------------------------------------------------- reports
def _reliance_csv(levels: list[dict[str, Any]], modules: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["noise", "pcoder", "module", "beta", "lambda", "memory", "alpha"]
    writer.writerow(header)
    for level in levels:
        for index, values in enumerate(level["effective"]):
            row = [level["noise"], index, modules[index]]
            row += [repr(values[key]) for key in ("beta", "lambda", "memory", "alpha")]
            writer.writerow(row)
    return buffer.getvalue()


def _print_summary(levels: list[dict[str, Any]], modules: list[str], data: dict[str, Any]) -> None:
    print("\nTuned hyperparameters (what each pcoder uses; the top pcoder has no feedback):")
    print(f"{'noise':<16}{'pcoder':<22}{'beta':>8}{'lambda':>8}{'memory':>8}{'alpha':>10}")
    for level in levels:
        for index, values in enumerate(level["effective"]):
            name = f"{index} {modules[index]}"
            print(
                f"{level['noise']:<16}{name:<22}{values['beta']:>8.3f}{values['lambda']:>8.3f}"
                f"{values['memory']:>8.3f}{values['alpha']:>10.4g}"
            )
    print(
        f"\nAccuracy per timestep on {data['evaluation']} ({data['evaluation_images']} images, "
        f"held out; tuned on {data['tuning']}, {data['tuning_images']} images):"
    )
    steps = len(levels[0]["accuracy_before"]) if levels else 0
    print(f"{'noise':<16}{'':<8}" + "".join(f"{'t=' + str(t):>7}" for t in range(steps)))
    for level in levels:
        for when in ("before", "after"):
            accuracies = "".join(f"{a:>7.3f}" for a in level[f"accuracy_{when}"])
            print(f"{level['noise'] if when == 'before' else '':<16}{when:<8}{accuracies}")
    print("\nLoss on the tuning split (CE summed over t = 1..T) and the gain at the last step:")
    for level in levels:
        gain = level["final_timestep_gain"]
        before, after = level["tuning_loss_before"], level["tuning_loss_after"]
        losses = (
            f"{before:.4f} -> {after:.4f}"
            if before is not None and after is not None
            else "not measured"
        )
        print(
            f"{level['noise']:<16}loss {losses}; accuracy at t={gain['timestep']} "
            f"{gain['after_minus_before']:+.3f} (95% CI {gain['ci95'][0]:+.3f} to "
            f"{gain['ci95'][1]:+.3f}); {level['steps']} steps, {level['seconds']:.1f} s"
        )


# --------------------------------------------------------------------------------------- run
def run(args: argparse.Namespace) -> int:
    """``predify tune``; returns the exit status."""
    began = time.perf_counter()
    noises = _check_arguments(args)
    device = resolve_device(args.device)
    run_dir = Path(args.run_dir)
    loaded = load_run(run_dir, device=device)
    fingerprint = _fingerprint(run_dir)
    tuning, evaluation, data = _split_data(
        loaded, args.tune_split, args.eval_split, args.max_images, args.seed
    )
    normalize = _normalizer(loaded, device)
    pnet = loaded.pnet
    timesteps = args.timesteps if args.timesteps is not None else pnet.config.timesteps
    shared = args.shared if args.shared is not None else pnet.config.shared_hyperparameters
    out = Path(args.out) if args.out is not None else run_dir / "tune"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"{out}: cannot create the output directory: {error.strerror}") from None
    modules = [pcoder.module_path for pcoder in pnet.pcoders]
    base_settings: dict[str, Any] = {
        "method": args.method,
        "shared": shared,
        "timesteps": timesteps,
        "batch_size": args.batch_size,
        "max_images": args.max_images,
        "seed": args.seed,
        "clip": args.clip,
        "time_budget_s": args.time_budget,
        "data": data,
        "run_fingerprint": fingerprint,
    }
    if args.method == "optuna":
        base_settings["trials"] = args.trials
    else:
        base_settings.update(epochs=args.epochs, lr_mixing=args.lr_mixing, lr_alpha=args.lr_alpha)
    print(
        f"predify tune: {args.method} tuning of {'shared' if shared else 'per-pcoder'} "
        f"hyperparameters, T={timesteps}, on {data['tuning']} ({data['tuning_images']} images); "
        f"reporting on {data['evaluation']} ({data['evaluation_images']} images); device {device}"
    )
    levels = []
    bar = tqdm(
        noises, desc="noise levels", unit="level", disable=True if args.no_progress else None
    )
    for noise in bar:
        settings = {**base_settings, "noise": str(noise)}
        level_dir = out / noise.label
        saved = _finished(level_dir, settings)
        if saved is not None:
            print(f"{noise}: already tuned with these settings in {level_dir}, skipped")
            levels.append(saved)
            continue
        level_began = time.perf_counter()
        summary = _tune_level(
            args,
            loaded,
            noise,
            tuning,
            evaluation,
            normalize,
            timesteps,
            shared,
            settings,
            level_dir,
        )
        levels.append(summary)
        print(
            f"{noise}: tuned in {time.perf_counter() - level_began:.1f} s; accuracy at "
            f"t={timesteps} {summary['accuracy_before'][-1]:.3f} -> "
            f"{summary['accuracy_after'][-1]:.3f}; saved in {level_dir}"
        )
    bar.close()

    initial = effective_values(pnet, pnet.hyperparameter_values(), shared=False)
    plot_reliance(
        [parse_noise(level["noise"]) for level in levels],
        [[_from_dict(v) for v in level["effective"]] for level in levels],
        out / "reliance.png",
        initial=initial,
        pcoder_names=[f"{i}: {m}" for i, m in enumerate(modules)],
    )
    plot_accuracy(
        [parse_noise(level["noise"]) for level in levels],
        [level["accuracy_before"] for level in levels],
        [level["accuracy_after"] for level in levels],
        out / "accuracy.png",
    )
    atomic_write_text(out / "reliance.csv", _reliance_csv(levels, modules))
    atomic_write_json(
        out / "results.json",
        {
            "run_dir": str(run_dir),
            "pcoders": modules,
            "run_values": [values_dict(v) for v in pnet.hyperparameter_values()],
            "settings": base_settings,
            "levels": levels,
        },
    )
    _print_summary(levels, modules, data)
    print(
        f"\nwrote {out}/{{results.json, reliance.csv, reliance.png, accuracy.png}} and one "
        f"folder per noise level; {time.perf_counter() - began:.1f} s in all"
    )
    sys.stdout.flush()
    return 0


def _from_dict(values: dict[str, float]) -> Hyperparameters:
    return Hyperparameters(values["beta"], values["lambda"], values["alpha"])
