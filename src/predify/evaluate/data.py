"""The images an evaluation runs on: a seeded random subset of the run's test split (or of any
data set spec), all of it, or RobustBench's 5,000 ImageNet validation images; checked against
the network and (image files) for readability; and pre-generated corruption benchmarks
(CIFAR-10/100-C, ImageNet-C) aligned with those images.

Nothing here holds the images: [`EvaluationData`][predify.evaluate.data.EvaluationData] names
them (data set, positions, labels), and the evaluation streams them batch by batch
([`predify.evaluate.streaming`][predify.evaluate.streaming]).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from ..data.files import BadFile, SkippedFiles, find_bad_files, image_paths, refuse_or_skip
from ..errors import ConfigError, DataError
from ..runtime.distributed import DistributedInfo, broadcast_from_main
from ..runtime.runs import LoadedRun
from .pixel_space import check_pixel_range

__all__ = [
    "SUBSETS",
    "EvaluationData",
    "benchmark_source",
    "check_classes",
    "load_evaluation_data",
    "open_benchmark",
]


#: What ``subset`` selects: RobustBench's 5,000 ImageNet validation images (its
#: ``imagenet_test_image_ids.txt``, shipped with predify; see ``subsets/PROVENANCE.md``).
SUBSETS = ("robustbench",)
_ROBUSTBENCH_IDS = "imagenet_test_image_ids.txt"


@dataclass
class EvaluationData:
    """The images evaluated: a subset of a data set, read image by image when needed.

    Attributes:
        spec: what was loaded, for the report.
        dataset: the data set, items (float image [C, H, W] in [0, 1], label).
        indices: positions in ``dataset`` of the evaluated images, in evaluation order (any
            prefix is a random sample, or RobustBench's first images).
        labels: int64 [N], the labels of those images.
        dataset_size: size of the full data set.
        num_classes: classes of the data set.
        imagenet_like: an image folder (ImageNet layout) with 1000 classes.
        selection: how the images were chosen (`EvaluatedData.selection`).
        skipped: unreadable files left out (``skip_bad_images``).
    """

    spec: str
    dataset: Dataset[Any]
    indices: list[int]
    labels: torch.Tensor
    dataset_size: int
    num_classes: int
    imagenet_like: bool
    selection: str = "seeded-random"
    skipped: SkippedFiles = field(default_factory=SkippedFiles)

    @property
    def num_images(self) -> int:
        return len(self.indices)

    def head(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``count`` images [n, C, H, W] and labels [n], in memory (for the few
        images that attacks and reconstructions use)."""
        chosen = self.indices[:count]
        if not chosen:
            raise DataError(f"{self.spec}: no images")
        images = torch.stack([self.dataset[index][0] for index in chosen]).float()
        check_pixel_range(images, self.spec)
        return images, self.labels[: len(chosen)]


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


def _targets(dataset: Any) -> Any:
    """The labels of every item without reading the images, where the data set keeps them."""
    while dataset is not None and not isinstance(dataset, Subset):
        if isinstance(dataset, TensorDataset) and len(dataset.tensors) >= 2:
            return dataset.tensors[-1]
        targets = getattr(dataset, "targets", None)
        if targets is not None:
            return targets
        dataset = getattr(dataset, "dataset", None)
    return None


def _labels(dataset: Dataset[Any], indices: Sequence[int]) -> torch.Tensor:
    targets = _targets(dataset)
    if targets is None:
        return torch.tensor([int(dataset[index][1]) for index in indices], dtype=torch.long)
    return torch.as_tensor(targets)[list(indices)].long()


def _robustbench_order(dataset: Dataset[Any], spec: str) -> list[int]:
    """The positions in an image folder of RobustBench's 5,000 images, in its order."""
    from importlib.resources import files

    root = getattr(dataset, "root", None)
    paths = image_paths(dataset)
    if root is None or paths is None:
        raise ConfigError(
            f"--subset robustbench: {spec} is not an image folder; expected the ImageNet "
            "validation folder (class/<file>.JPEG)"
        )
    wanted = (files("predify.evaluate") / "subsets" / _ROBUSTBENCH_IDS).read_text().split()
    where = {Path(path).relative_to(root).as_posix(): index for index, path in enumerate(paths)}
    missing = [name for name in wanted if name not in where]
    if missing:
        raise DataError(
            f"--subset robustbench: {spec} lacks {len(missing)} of RobustBench's "
            f"{len(wanted)} ImageNet validation images (first: {missing[0]}); expected the "
            "ImageNet validation set in class folders"
        )
    return [where[name] for name in wanted]


def _select(
    dataset: Dataset[Any],
    spec: str,
    max_images: int | None,
    seed: int,
    subset: str | None,
    skip_bad_images: bool,
    workers: int,
) -> tuple[list[int], str, SkippedFiles]:
    """(positions, selection, skipped): the images to evaluate, every file among them checked,
    bad ones refused or (with ``skip_bad_images``) replaced by the next ones in order."""
    size = len(dataset)  # type: ignore[arg-type]
    if subset is None:
        order = _choose_indices(size, size, seed)
        selection = "all" if max_images is None or max_images >= size else "seeded-random"
    elif subset == "robustbench":
        order, selection = _robustbench_order(dataset, spec), "robustbench"
    else:
        raise ConfigError(f"--subset: unknown {subset!r}; expected one of {', '.join(SUBSETS)}")
    count = len(order) if max_images is None else min(max_images, len(order))
    paths = image_paths(dataset)
    if paths is None:
        return order[:count], selection, SkippedFiles()
    chosen: list[int] = []
    bad: list[BadFile] = []
    cursor = 0
    while len(chosen) < count and cursor < len(order):
        batch = order[cursor : cursor + count - len(chosen)]
        cursor += len(batch)
        found = find_bad_files([paths[index] for index in batch], workers)
        refuse_or_skip(found, skip_bad_images, "the evaluation")  # raises without skipping
        unreadable = {item.path for item in found}
        chosen += [index for index in batch if paths[index] not in unreadable]
        bad += found
    return chosen, selection, SkippedFiles.of(bad)


def load_evaluation_data(
    run: LoadedRun,
    override: str | None,
    max_images: int | None,
    seed: int,
    *,
    subset: str | None = None,
    skip_bad_images: bool = False,
    workers: int = 0,
    distributed: DistributedInfo | None = None,
) -> EvaluationData:
    """The evaluation images of ``run``: ``--data`` or the run's test split, at most
    ``max_images`` of them (None: all) in a seeded random order, or the ``subset``'s, checked
    against the network. Image files are checked first
    ([`predify.data.files`][predify.data.files]): a bad one is refused, or skipped with
    ``skip_bad_images``; nothing else is read until the images are evaluated."""
    from ..data import dataset_info

    input_size = tuple(run.pnet.input_size)
    spec, dataset, is_folder = _open_dataset(run, override, int(input_size[-1]))
    chosen: tuple[list[int], str, SkippedFiles] | str = ""
    if distributed is None or distributed.is_main:
        try:  # one process checks the files; the others wait for its outcome
            chosen = _select(dataset, spec, max_images, seed, subset, skip_bad_images, workers)
        except (ConfigError, DataError) as error:
            if distributed is None:
                raise
            chosen = f"{type(error).__name__}:{error}"
    chosen = broadcast_from_main(chosen, distributed)
    if isinstance(chosen, str):
        kind, _, message = chosen.partition(":")
        raise (ConfigError if kind == "ConfigError" else DataError)(message)
    indices, selection, skipped = chosen
    if not indices:
        raise DataError(f"{spec}: no images")
    first = dataset[indices[0]][0]
    if not isinstance(first, torch.Tensor) or tuple(first.shape) != input_size:
        shape = list(first.shape) if isinstance(first, torch.Tensor) else type(first).__name__
        raise DataError(f"{spec}: images of shape {shape} but the network takes {list(input_size)}")
    check_pixel_range(first, spec)
    # Through a Subset: dataset[0] itself may be an unreadable file that was skipped.
    num_classes = dataset_info(Subset(dataset, indices[:1])).num_classes
    return EvaluationData(
        spec=spec,
        dataset=dataset,
        indices=indices,
        labels=_labels(dataset, indices),
        dataset_size=len(dataset),  # type: ignore[arg-type]
        num_classes=num_classes,
        imagenet_like=is_folder and num_classes == 1000,
        selection=selection,
        skipped=skipped,
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


def open_benchmark(
    spec: str, corruptions: Sequence[str], severities: Sequence[int], input_size: tuple[int, ...]
) -> tuple[str, Callable[[str, int], Dataset[Any]]]:
    """The kind (``cifar-c`` or ``imagenet-c``) of ``--benchmark`` ``spec`` and its reader,
    ``reader(corruption, severity)`` -> a data set of (image [C, H, W] in [0, 1], label), after
    checking that the root and every file or folder of ``corruptions`` x ``severities`` exist.

    ImageNet-C images are resized and centre-cropped to the side of ``input_size``.

    Raises:
        ConfigError: ``spec`` is not ``cifar-c:ROOT`` or ``imagenet-c:ROOT``.
        DataError: the root, a ``.npy`` file or a severity folder is missing (named).
    """
    from torchvision import transforms

    from .corruptions import CifarCArrays, ImageNetCFolder

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

    return kind, reader


def benchmark_source(
    spec: str,
    corruptions: Sequence[str],
    severities: Sequence[int],
    data: EvaluationData,
    input_size: tuple[int, ...],
    batch_size: int,
    seed: int,
    max_images: int | None,
    device: torch.device,
    workers: int = 0,
) -> tuple[Any, bool]:
    """A [`BenchmarkCorruptions`][predify.evaluate.BenchmarkCorruptions] for ``cifar-c:ROOT`` /
    ``imagenet-c:ROOT`` and whether
    the benchmark is ImageNet-C."""
    from .robustness import BenchmarkCorruptions, OnTheFlyCorruptions

    kind, reader = open_benchmark(spec, corruptions, severities, input_size)
    first = reader(corruptions[0], severities[0])
    size = len(first)  # type: ignore[arg-type]
    # Benchmarks hold the test/val set in order: with the same size, evaluate the same images.
    if size == data.dataset_size:
        indices = data.indices
    else:
        indices = _choose_indices(size, size, seed)[: max_images or size]
    count = min(len(indices), data.num_images)
    clean = OnTheFlyCorruptions(
        data.dataset, batch_size=batch_size, seed=seed, device=device,
        indices=data.indices[:count], workers=workers, where=data.spec,
    )  # fmt: skip
    source = BenchmarkCorruptions(
        reader, indices[:count], batch_size=batch_size, device=device, clean=clean,
        workers=workers,
    )  # fmt: skip
    return source, kind == "imagenet-c"
