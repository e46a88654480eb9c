"""The images an evaluation runs on: a seeded random subset of the run's test split (or of any
data set spec), in memory, checked against the network; and pre-generated corruption benchmarks
(CIFAR-10/100-C, ImageNet-C) aligned with those images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from ..errors import ConfigError, DataError
from ..runtime.runs import LoadedRun

__all__ = ["EvaluationData", "benchmark_source", "check_classes", "load_evaluation_data"]


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


def check_classes(model_classes: int, run: LoadedRun, data: EvaluationData) -> None:
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


def benchmark_source(
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
    """A [`BenchmarkCorruptions`][predify.evaluate.BenchmarkCorruptions] for ``cifar-c:ROOT`` /
    ``imagenet-c:ROOT`` and whether
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
