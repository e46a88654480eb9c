"""``predify evaluate RUN_DIR --out DIR``: robustness of a trained run over timesteps.

Reads the run directory that ``predify demo`` or ``predify train`` wrote and evaluates it on its
test split (``mnist5k:test`` with the run's split seed for the demo) or on ``--data SPEC``:

1. corruptions: top-1 error for each corruption x severity x timestep, CE relative to t = 0,
   relative mCE, bootstrap 95% intervals (and AlexNet-normalised CE/mCE for a 1000-class model
   on ImageNet-like data); pre-generated CIFAR-C / ImageNet-C with ``--benchmark``;
2. adversarial attacks through the dynamics: PGD (and BIM) against each timestep's readout,
   a gradient-free Square attack and a transfer attack from t = 0, success per timestep and
   epsilon, with gradient-masking checks;
3. representation analysis: correlation distance between clean and noisy representations per
   pcoder and timestep, prediction errors over time, reconstructions.

Pixel-space operations (corruptions, noise, attack budgets) act on [0, 1] images; the run's
normalisation, if any, is applied after them. Outputs in ``--out``: ``results.json``, CSV
tables, PNG plots, and ``progress/`` (one file per finished cell): a killed run started again
with the same settings skips the cells it finished.

Defaults, chosen so that a run on the demo's shallow MNIST model takes about two minutes on two
CPU cores: 250 images; the nine cheap corruptions of :data:`DEFAULT_CORRUPTIONS` (noise, blur,
digital; the weather ones and zoom/elastic/glass are slower to generate) at severities 1-5; the
run's number of timesteps; PGD against about six readouts (every timestep up to T = 5), Square
(50 queries, at t = 0 and T) and transfer attacks on 32 images at three L-inf budgets (0.05, 0.1,
0.3 for 1-channel images; 1/255, 4/255, 16/255 otherwise); the analysis on 100 images; 1000
bootstrap resamples. For publishable numbers raise ``--max-images`` and ``--attack-images``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from .._device import resolve_device
from .._io import atomic_write_json, atomic_write_text
from ..errors import ConfigError, DataError
from ..runs import LoadedRun, feedback_path, load_run

__all__ = ["DEFAULT_CORRUPTIONS", "add_arguments", "run"]

#: Corruptions evaluated without ``--corruptions``: cheap ones from each family (noise, blur,
#: digital). The weather corruptions and zoom/elastic/glass are slower to generate.
DEFAULT_CORRUPTIONS = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "motion_blur",
    "brightness",
    "contrast",
    "pixelate",
    "jpeg_compression",
)
DEFAULT_ATTACKS = ("pgd", "square", "transfer")
_RESULTS_FORMAT = "predify-evaluate-v1"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``predify evaluate``."""
    parser.add_argument("run_dir", metavar="RUN_DIR", help="what `predify demo`/`train` wrote")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument(
        "--data",
        metavar="SPEC",
        help="data set to evaluate on (default: the run's test split, e.g. mnist5k:test)",
    )
    parser.add_argument(
        "--benchmark",
        metavar="KIND:ROOT",
        help="pre-generated corrupted images instead of corrupting on the fly: "
        "cifar-c:ROOT (CIFAR-10/100-C .npy arrays) or imagenet-c:ROOT (ImageNet-C folders)",
    )
    parser.add_argument(
        "--corruptions",
        default=",".join(DEFAULT_CORRUPTIONS),
        metavar="SPEC",
        help="all, imagenet-c, extra, comma-separated names, or none (default: nine cheap ones "
        "from the noise, blur and digital families)",
    )
    parser.add_argument("--severities", default="1-5", help="e.g. 1-5, 3 or 1,3,5 (default 1-5)")
    parser.add_argument(
        "--timesteps", type=int, metavar="T", help="timesteps to unroll (default: the run's)"
    )
    parser.add_argument(
        "--attacks",
        default=",".join(DEFAULT_ATTACKS),
        metavar="LIST",
        help="comma-separated subset of pgd,bim,square,transfer, or none "
        "(default pgd,square,transfer)",
    )
    parser.add_argument(
        "--epsilons",
        metavar="LIST",
        help="attack budgets in pixel units, e.g. 0.05,0.1,0.3 or 2/255,8/255 (default: "
        "0.05,0.1,0.3 in L-inf and 0.5,1.5,5 in L2 for 1-channel images; 1/255,4/255,16/255 "
        "and 0.25,1,4 otherwise)",
    )
    parser.add_argument("--norm", choices=("linf", "l2"), default="linf", help="attack norm")
    parser.add_argument(
        "--targeted", action="store_true", help="aim at class (label + shift) mod classes"
    )
    parser.add_argument("--target-shift", type=int, default=1, metavar="K", help="default 1")
    parser.add_argument(
        "--attack-timesteps",
        default="auto",
        metavar="LIST",
        help="readouts PGD/BIM attack: auto (every timestep up to T = 5, else about six evenly "
        "spaced ones including 0 and T), all, sum (the summed loss of all timesteps), or a list "
        "such as 0,5,10 (default auto)",
    )
    parser.add_argument(
        "--square-timesteps",
        default="ends",
        metavar="LIST",
        help="readouts the Square attack aims at: ends (0 and T), all, or a list (default ends)",
    )
    parser.add_argument("--attack-images", type=int, default=32, metavar="N", help="default 32")
    parser.add_argument("--attack-steps", type=int, default=10, help="PGD/BIM steps (default 10)")
    parser.add_argument(
        "--square-queries", type=int, default=50, help="Square queries per image (default 50)"
    )
    parser.add_argument(
        "--analysis",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="representation analysis and reconstructions (default on)",
    )
    parser.add_argument("--analysis-images", type=int, default=100, metavar="N", help="default 100")
    parser.add_argument(
        "--max-images", type=int, default=250, metavar="N", help="images evaluated (default 250)"
    )
    parser.add_argument("--batch-size", type=int, default=100, help="default 100")
    parser.add_argument(
        "--bootstrap", type=int, default=1000, metavar="R", help="resamples for the 95%% "
        "intervals (0: none; default 1000)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="images, corruptions, attacks, noise")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default auto)")
    parser.add_argument(
        "--restart",
        action="store_true",
        help="discard the finished cells of a previous evaluation in --out",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")


# ---------------------------------------------------------------------- argument checks
def _positive(value: int, name: str, allow_zero: bool = False) -> int:
    if value < (0 if allow_zero else 1):
        bound = ">= 0" if allow_zero else ">= 1"
        raise ConfigError(f"{name}: expected an integer {bound}, got {value}")
    return value


def _parse_number(text: str, name: str) -> float:
    """A float, or a fraction such as ``8/255``."""
    numerator, slash, denominator = text.strip().partition("/")
    try:
        value = float(numerator) / (float(denominator) if slash else 1.0)
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"{name}: cannot read {text!r} as a number (e.g. 0.1 or 8/255)") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name}: expected numbers >= 0, got {text!r}")
    return value


def _parse_list(spec: str, allowed: Sequence[str], name: str) -> list[str]:
    items = [item.strip().lower() for item in spec.split(",") if item.strip()]
    if items == ["none"]:
        return []
    for item in items:
        if item not in allowed:
            raise ConfigError(f"{name}: unknown {item!r}; expected some of {', '.join(allowed)}")
    return list(dict.fromkeys(items))


def _parse_readouts(
    spec: str, timesteps: int, option: str = "--attack-timesteps", allow_sum: bool = True
) -> list[int] | Literal["sum"]:
    text = spec.strip().lower()
    if text == "all":
        return list(range(timesteps + 1))
    if text == "auto":
        # Attacking readout t costs t + 1 unrolled steps per iteration: thin out long runs.
        stride = max(1, math.ceil(timesteps / 5))
        return sorted({*range(0, timesteps + 1, stride), timesteps})
    if text == "ends":
        return sorted({0, timesteps})
    if text == "sum" and allow_sum:
        return "sum"
    readouts = []
    for item in text.split(","):
        try:
            value = int(item)
        except ValueError:
            raise ConfigError(
                f"{option}: expected a keyword or timesteps such as 0,5,{timesteps}, got {spec!r}"
            ) from None
        if not 0 <= value <= timesteps:
            raise ConfigError(f"{option}: {value} is not in 0..{timesteps}")
        readouts.append(value)
    return sorted(set(readouts))


# ---------------------------------------------------------------------- data
@dataclass
class EvaluationData:
    """The images evaluated: a seeded random subset of a data set, in memory.

    Attributes:
        spec: what was loaded, for the report.
        images: float [N, C, H, W] in [0, 1]; labels: int64 [N].
        indices: positions of the images in the data set.
        dataset_size: size of the full data set.
        num_classes: classes of the data set.
        imagenet_like: an image folder (ImageNet layout) with 1000 classes.
    """

    spec: str
    images: torch.Tensor
    labels: torch.Tensor
    indices: list[int]
    dataset_size: int
    num_classes: int
    imagenet_like: bool


def _open_dataset(
    run: LoadedRun, override: str | None, image_size: int
) -> tuple[str, Dataset[Any], bool]:
    """(description, data set, is an image folder) for ``--data`` or the run's data spec."""
    from ..data import load_dataset, mnist5k_splits
    from ..data.datasets import TransformedDataset

    run_data = run.info.data or {}
    spec = override if override is not None else run_data.get("spec")
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"{run.path}/run.json names no data set; pass --data SPEC")
    name, _, rest = spec.strip().partition(":")
    if name.lower() == "mnist5k":
        split = rest.strip().lower() or "test"
        if split not in ("train", "val", "test"):
            raise DataError(f"unknown mnist5k split {rest!r}; expected train, val or test")
        split_seed = int(run_data.get("split_seed", 0))
        dataset: Dataset[Any] = getattr(mnist5k_splits(split_seed), split)
        if image_size != 28:
            from torchvision import transforms

            resize = transforms.Resize((image_size, image_size), antialias=True)
            dataset = TransformedDataset(dataset, resize)
        return f"mnist5k:{split} (split seed {split_seed})", dataset, False
    root = run_data.get("root") if override is None else None
    dataset = load_dataset(spec, root=root, train=False, image_size=image_size)
    is_folder = name.lower() == "folder" or name.lower() not in (
        "mnist",
        "fashionmnist",
        "cifar10",
        "cifar100",
    )
    split = "" if is_folder else " (test split)"
    return f"{spec}{split}", dataset, is_folder


def _choose_indices(size: int, count: int, seed: int) -> list[int]:
    """A seeded random subset in random order: data sets are often sorted by class, and any
    prefix of the evaluation images (the attacked ones, the analysed ones) must be a random
    sample too."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(size, generator=generator)[:count].tolist()


def _materialize(dataset: Dataset[Any], indices: Sequence[int], where: str) -> tuple[Any, Any]:
    images, labels = [], []
    for batch_images, batch_labels in DataLoader(Subset(dataset, list(indices)), batch_size=256):
        images.append(batch_images)
        labels.append(torch.as_tensor(batch_labels))
    if not images:
        raise DataError(f"{where}: no images")
    return torch.cat(images).float(), torch.cat(labels).long()


def load_evaluation_data(
    run: LoadedRun, override: str | None, max_images: int, seed: int
) -> EvaluationData:
    """The evaluation images of ``run``: ``--data`` or the run's test split, at most
    ``max_images`` of them (a seeded random subset), checked against the network."""
    from ..data import dataset_info
    from .pixel_space import check_pixel_range

    input_size = tuple(run.pnet.input_size)
    spec, dataset, is_folder = _open_dataset(run, override, int(input_size[-1]))
    size = len(dataset)  # type: ignore[arg-type]
    indices = _choose_indices(size, max_images, seed)
    images, labels = _materialize(dataset, indices, spec)
    if tuple(images.shape[1:]) != input_size:
        raise DataError(
            f"{spec}: images of shape {list(images.shape[1:])} but the network takes "
            f"{list(input_size)}"
        )
    check_pixel_range(images, spec)
    num_classes = dataset_info(dataset).num_classes
    return EvaluationData(
        spec=spec,
        images=images,
        labels=labels,
        indices=indices,
        dataset_size=size,
        num_classes=num_classes,
        imagenet_like=is_folder and num_classes == 1000,
    )


def _check_classes(model_classes: int, run: LoadedRun, data: EvaluationData) -> None:
    if run.info.num_classes != model_classes:
        raise ConfigError(
            f"{run.path}/run.json says num_classes = {run.info.num_classes} but the network "
            f"outputs {model_classes} logits"
        )
    largest = int(data.labels.max())
    if data.num_classes > model_classes or largest >= model_classes:
        raise DataError(
            f"{data.spec}: {max(data.num_classes, largest + 1)} classes, but the model predicts "
            f"{model_classes}; evaluate it on data with the classes it was trained on"
        )


def _benchmark_source(
    spec: str,
    corruptions: Sequence[str],
    severities: Sequence[int],
    data: EvaluationData,
    input_size: tuple[int, ...],
    batch_size: int,
    seed: int,
    max_images: int,
    device: torch.device,
) -> tuple[Any, bool]:
    """A :class:`BenchmarkCorruptions` for ``cifar-c:ROOT`` / ``imagenet-c:ROOT`` and whether
    the benchmark is ImageNet-C."""
    from torchvision import transforms

    from .corruptions import CifarCArrays, ImageNetCFolder
    from .robustness import BenchmarkCorruptions

    kind, _, root_text = spec.partition(":")
    kind = kind.strip().lower()
    root = Path(root_text).expanduser()
    if kind not in ("cifar-c", "imagenet-c") or not root_text:
        raise ConfigError(f"--benchmark: expected cifar-c:ROOT or imagenet-c:ROOT, got {spec!r}")
    if not root.is_dir():
        raise DataError(f"--benchmark: {root} is not a directory")
    reader: Callable[[str, int], Dataset[Any]]
    if kind == "cifar-c":
        for name in corruptions:
            if not (root / f"{name}.npy").is_file():
                raise DataError(f"--benchmark: {root / f'{name}.npy'} not found")

        def reader(name: str, severity: int) -> Dataset[Any]:
            return CifarCArrays(root, name, severity)
    else:
        for name in corruptions:
            for severity in severities:
                if not (root / name / str(severity)).is_dir():
                    raise DataError(f"--benchmark: {root / name / str(severity)} not found")
        side = int(input_size[-1])
        resize = transforms.Compose(
            [transforms.Resize(side), transforms.CenterCrop(side), transforms.ToTensor()]
        )

        def reader(name: str, severity: int) -> Dataset[Any]:
            return ImageNetCFolder(root, name, severity, transform=resize)

    first = reader(corruptions[0], severities[0])
    size = len(first)  # type: ignore[arg-type]
    # Benchmarks hold the test/val set in order: with the same size, evaluate the same images.
    indices = data.indices if size == data.dataset_size else _choose_indices(size, max_images, seed)
    clean_images, clean_labels = data.images, data.labels
    if len(indices) != len(clean_images):
        count = min(len(indices), len(clean_images))
        indices, clean_images, clean_labels = (
            indices[:count],
            clean_images[:count],
            data.labels[:count],
        )
    source = BenchmarkCorruptions(
        reader, indices, clean_images, clean_labels, batch_size, device=device
    )
    return source, kind == "imagenet-c"


# ---------------------------------------------------------------------- outputs
def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def _write_tables(out: Path, results: dict[str, Any]) -> list[str]:
    written = []
    corruption = results.get("corruption")
    if corruption is not None:
        steps = range(int(corruption["timesteps"]) + 1)
        rows: list[list[Any]] = [["clean", 0, t, corruption["clean_error"][t]] for t in steps]
        for name, by_severity in corruption["corruption_error"].items():
            for severity, errors in by_severity.items():
                rows += [[name, int(severity), t, errors[t]] for t in steps]
        _write_csv(
            out / "corruption_errors.csv", ["corruption", "severity", "timestep", "error"], rows
        )
        written.append("corruption_errors.csv")
        if "ce_relative_to_t0" in corruption:
            header = ["corruption", *[f"t{t}" for t in steps]]
            table = [[name, *values] for name, values in corruption["ce_relative_to_t0"].items()]
            table.append(["mean", *corruption["mce_relative_to_t0"]])
            _write_csv(out / "ce_relative_to_t0.csv", header, table)
            written.append("ce_relative_to_t0.csv")
    attacks = results.get("attacks")
    if attacks is not None:
        rows = []
        for name in ("pgd", "bim"):
            if name in attacks:
                for eps, values in attacks[name]["success"].items():
                    rows += [
                        [name, eps, r, v] for r, v in zip(attacks["readouts"], values, strict=True)
                    ]
        if "square" in attacks and "success" in attacks["square"]:
            for eps, values in attacks["square"]["success"].items():
                readouts = attacks["square"]["readouts"]
                rows += [["square", eps, r, v] for r, v in zip(readouts, values, strict=True)]
        if "transfer" in attacks:
            for eps, values in attacks["transfer"]["success"].items():
                rows += [["transfer", eps, t, v] for t, v in enumerate(values)]
        _write_csv(out / "attacks.csv", ["attack", "epsilon", "timestep", "success"], rows)
        written.append("attacks.csv")
    analysis = results.get("analysis")
    if analysis is not None:
        rows = []
        for sigma, by_pcoder in analysis["correlation_distance"].items():
            for pcoder, values in by_pcoder.items():
                rows += [[sigma, pcoder, t, v] for t, v in enumerate(values)]
        _write_csv(
            out / "correlation_distance.csv", ["sigma", "pcoder", "timestep", "distance"], rows
        )
        rows = []
        for noise, by_pcoder in analysis["prediction_error"].items():
            for pcoder, values in by_pcoder.items():
                rows += [[noise, pcoder, t, v] for t, v in enumerate(values)]
        _write_csv(out / "prediction_errors.csv", ["noise", "pcoder", "timestep", "mse"], rows)
        written += ["correlation_distance.csv", "prediction_errors.csv"]
    return written


def _write_plots(out: Path, results: dict[str, Any], recon: Any) -> list[str]:
    from . import plots

    written = []
    corruption = results.get("corruption")
    if corruption is not None:
        plots.plot_corruption_errors(corruption, out / "corruption_error.png")
        written.append("corruption_error.png")
        if "ce_relative_to_t0" in corruption:
            plots.plot_ce_heatmap(corruption, out / "ce_relative_to_t0.png")
            written.append("ce_relative_to_t0.png")
    if results.get("attacks") is not None:
        plots.plot_attack_success(results["attacks"], out / "attack_success.png")
        written.append("attack_success.png")
    if results.get("analysis") is not None:
        plots.plot_correlation_distance(results["analysis"], out / "correlation_distance.png")
        plots.plot_prediction_errors(results["analysis"], out / "prediction_errors.png")
        written += ["correlation_distance.png", "prediction_errors.png"]
    if recon is not None:
        plots.plot_reconstructions(recon, out / "reconstructions.png")
        written.append("reconstructions.png")
    return written


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _first_last(values: Sequence[float | None]) -> str:
    return f"{_number(values[0])} -> {_number(values[-1])}"


def _print_summary(results: dict[str, Any], out: Path, seconds: float) -> None:
    """A few lines on stdout: the headline numbers at t = 0 and t = T."""
    last = int(results["timesteps"])
    data = results["data"]
    lines = [f"predify evaluate: {data['spec']}, {data['num_images']} images, t = 0..{last}"]
    corruption = results.get("corruption")
    if corruption is not None:
        lines.append(f"  clean error t=0 -> t={last}: {_first_last(corruption['clean_error'])}")
        if "mean_corruption_error" in corruption:
            lines.append(
                f"  mean corruption error t=0 -> t={last}: "
                f"{_first_last(corruption['mean_corruption_error'])}; CE relative to t=0 at "
                f"t={last}: {_number(corruption['mce_relative_to_t0'][-1])} (95% CI "
                f"{', '.join(map(_number, corruption.get('mce_relative_to_t0_ci', [[None]])[-1]))})"
            )
    attacks = results.get("attacks")
    if attacks is not None:
        readouts = attacks["readouts"]
        for name in ("pgd", "bim"):
            for eps, values in attacks.get(name, {}).get("success", {}).items():
                lines.append(
                    f"  {name} eps={eps}: success at t={readouts[0]} -> t={readouts[-1]}: "
                    f"{_first_last(values)}"
                )
        for name in ("square", "transfer"):
            block = attacks.get(name) or {}
            steps = block.get("readouts", [0, last])
            for eps, values in (block.get("success") or {}).items():
                lines.append(
                    f"  {name} eps={eps}: success at t={steps[0]} -> t={steps[-1]}: "
                    f"{_first_last(values)}"
                )
        lines += [f"  warning: {warning}" for warning in attacks["checks"]["warnings"]]
    analysis = results.get("analysis")
    if analysis is not None:
        sigma = next(iter(analysis["correlation_distance"]))
        for pcoder, values in analysis["correlation_distance"][sigma].items():
            lines.append(f"  correlation distance, sigma {sigma}, {pcoder}: {_first_last(values)}")
    lines.append(f"  wrote {out / 'results.json'} ({seconds:.1f} s)")
    print("\n".join(lines))


# ---------------------------------------------------------------------- command
@dataclass
class _Options:
    """The command-line options, checked, before anything is loaded."""

    corruptions: list[str]
    severities: list[int]
    attacks: list[str]
    epsilons: list[float] | None
    device: torch.device


def _check_options(args: argparse.Namespace) -> _Options:
    from .attacks import ATTACKS
    from .corruptions import parse_severities, resolve_corruptions

    spec = str(args.corruptions).strip()
    corruptions = [] if spec.lower() == "none" else resolve_corruptions(spec)
    severities = parse_severities(args.severities)
    attacks = _parse_list(args.attacks, ATTACKS, "--attacks")
    for name, value, zero_ok in (
        ("--max-images", args.max_images, False),
        ("--batch-size", args.batch_size, False),
        ("--attack-images", args.attack_images, False),
        ("--attack-steps", args.attack_steps, False),
        ("--square-queries", args.square_queries, False),
        ("--analysis-images", args.analysis_images, False),
        ("--bootstrap", args.bootstrap, True),
    ):
        _positive(value, name, allow_zero=zero_ok)
    if args.timesteps is not None and args.timesteps < 0:
        raise ConfigError(f"--timesteps: expected an integer >= 0, got {args.timesteps}")
    epsilons = None
    if args.epsilons is not None:
        items = [item for item in args.epsilons.split(",") if item.strip()]
        epsilons = [_parse_number(item, "--epsilons") for item in items]
        if not epsilons:
            raise ConfigError("--epsilons: expected at least one number")
    return _Options(corruptions, severities, attacks, epsilons, resolve_device(args.device))


def _corruption_section(
    args: argparse.Namespace,
    options: _Options,
    model: Any,
    data: EvaluationData,
    timesteps: int,
    store: Any,
) -> dict[str, Any]:
    from .robustness import OnTheFlyCorruptions, corruption_sweep, summarize_sweep

    imagenet_like = data.imagenet_like
    source: Any
    if args.benchmark:
        source, is_imagenet_c = _benchmark_source(
            args.benchmark, options.corruptions, options.severities, data, model.input_size,
            args.batch_size, args.seed, args.max_images, options.device,
        )  # fmt: skip
        imagenet_like = imagenet_like or is_imagenet_c
    else:
        source = OnTheFlyCorruptions(
            data.images, data.labels, args.batch_size, seed=args.seed, device=options.device
        )
    sweep = corruption_sweep(
        model, source, options.corruptions, options.severities, timesteps=timesteps, store=store
    )
    # AlexNet's ImageNet-C errors only mean something for ImageNet models on ImageNet images.
    alexnet = model.num_classes() == 1000 and imagenet_like
    summary = summarize_sweep(sweep, alexnet=alexnet, n_resamples=args.bootstrap, seed=args.seed)
    summary["cells_evaluated_now"] = sweep.evaluated
    return summary


def _analysis_section(
    args: argparse.Namespace, model: Any, data: EvaluationData, timesteps: int, store: Any
) -> tuple[dict[str, Any], Any]:
    from .analysis import reconstructions, representation_analysis

    count = min(args.analysis_images, len(data.images))
    # Not in the settings fingerprint, so part of the key: other values, another cell.
    key = f"analysis-n{count}-b{args.bootstrap}"
    analysis = store.get(key)
    if analysis is None:
        analysis = representation_analysis(
            model, data.images[:count], timesteps=timesteps, batch_size=args.batch_size,
            seed=args.seed, n_resamples=args.bootstrap,
        ).to_json()  # fmt: skip
        store.put(key, analysis)
    recon = reconstructions(model, data.images[:4], timesteps=timesteps, seed=args.seed)
    return analysis, recon


def run(args: argparse.Namespace) -> int:
    """``predify evaluate``: evaluate, write the outputs, print a summary; returns 0."""
    # Imported here, not at the top: `predify --help` and the other subcommands import this
    # module, and should not pay for torchvision and the corruption kernels.
    from .attacks import default_epsilons, run_attacks
    from .pixel_space import PixelSpaceNet
    from .progress import ProgressStore, file_digest

    started = time.perf_counter()
    options = _check_options(args)  # bad options fail before anything heavy is loaded
    run_dir, out = Path(args.run_dir), Path(args.out)
    loaded = load_run(run_dir, device=options.device)
    model = PixelSpaceNet(loaded.pnet, loaded.info.normalization).eval()
    timesteps = loaded.pnet.config.timesteps if args.timesteps is None else args.timesteps
    model_classes = model.num_classes()
    data = load_evaluation_data(loaded, args.data, args.max_images, args.seed)
    _check_classes(model_classes, loaded, data)
    readouts = _parse_readouts(args.attack_timesteps, timesteps)
    square_readouts = _parse_readouts(
        args.square_timesteps, timesteps, "--square-timesteps", allow_sum=False
    )
    assert not isinstance(square_readouts, str)  # "sum" is refused above
    if args.targeted and not 1 <= args.target_shift < model_classes:
        raise ConfigError(
            f"--target-shift: expected 1..{model_classes - 1} for {model_classes} classes, "
            f"got {args.target_shift}"
        )
    epsilons = options.epsilons or default_epsilons(args.norm, int(data.images.shape[1]))

    # Everything that changes the value of a corruption cell; attack and analysis cells carry
    # their own settings in their keys.
    weights = [run_dir / "backbone.pt", feedback_path(run_dir), run_dir / "config.toml"]
    settings = {
        "format": _RESULTS_FORMAT,
        "weights_sha256": file_digest(weights),
        "normalization": loaded.info.normalization,
        "data": data.spec,
        "benchmark": args.benchmark,
        "image_indices_sha256": _digest_text(",".join(map(str, data.indices))),
        "timesteps": timesteps,
        "batch_size": args.batch_size,
        "seed": args.seed,
    }
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"--out {out}: cannot create: {error.strerror}") from None
    store = ProgressStore(out / "progress", settings, restart=args.restart)

    results: dict[str, Any] = {
        "format": _RESULTS_FORMAT,
        "run_dir": str(run_dir),
        "model": loaded.config.name,
        "num_classes": model_classes,
        "timesteps": timesteps,
        "device": str(options.device),
        "seed": args.seed,
        "data": {
            "spec": data.spec,
            "num_images": len(data.images),
            "dataset_size": data.dataset_size,
            "benchmark": args.benchmark,
        },
    }
    if options.corruptions:
        results["corruption"] = _corruption_section(args, options, model, data, timesteps, store)
    # Also at the top level: {corruption: {"<severity>": [error at t = 0..T]}}.
    results["corruption_error"] = results.get("corruption", {}).get("corruption_error", {})
    if options.attacks:
        count = min(args.attack_images, len(data.images))
        results["attacks"] = run_attacks(
            model, data.images[:count], data.labels[:count], attacks=options.attacks,
            epsilons=epsilons, timesteps=timesteps, norm=args.norm, targeted=args.targeted,
            target_shift=args.target_shift, num_classes=model_classes, readouts=readouts,
            square_readouts=square_readouts, steps=args.attack_steps,
            square_queries=args.square_queries, batch_size=args.batch_size, seed=args.seed,
            n_resamples=args.bootstrap, store=store,
        )  # fmt: skip
    recon = None
    if args.analysis:
        results["analysis"], recon = _analysis_section(args, model, data, timesteps, store)

    results["elapsed_seconds"] = round(time.perf_counter() - started, 2)
    results["tables"] = _write_tables(out, results)
    results["plots"] = [] if args.no_plots else _write_plots(out, results, recon)
    atomic_write_json(out / "results.json", results)
    _print_summary(results, out, time.perf_counter() - started)
    return 0


def _digest_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
