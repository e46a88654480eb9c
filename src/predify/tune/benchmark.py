"""Tuning on a pre-generated corruption benchmark: ``--benchmark cifar-c:ROOT`` (CIFAR-10/100-C
``.npy`` arrays) or ``imagenet-c:ROOT`` (ImageNet-C folders), read by the readers of
``predify evaluate``
(`predify.evaluate.data.open_benchmark`).

Each corruption x severity is one tuning level
([`BenchmarkLevel`][predify.tune.noise.BenchmarkLevel]). Every level holds the same N images
(positions 0..N-1: the benchmark's test or validation set, corrupted), so the split is by
position and the same at every level
([`split_positions()`][predify.tune.benchmark.split_positions]): the tuning images are
``tune_images`` positions (a seeded random subset, or a range such as ``0-999``), the held-out
images the rest (or a range), and a request whose two sets share a position is refused. Images
are read batch by batch ([`BenchmarkBatches`][predify.tune.benchmark.BenchmarkBatches]), so
memory is bounded by the batch, not the benchmark.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from .._io import JsonObject
from ..errors import ConfigError, DataError
from .noise import BenchmarkLevel

__all__ = [
    "BenchmarkBatches",
    "BenchmarkSplit",
    "TuneBenchmark",
    "open_tune_benchmark",
    "split_positions",
]

#: The share of a level's images tuned on when ``tune_images`` is not given.
DEFAULT_TUNE_SHARE = 5


@dataclass(frozen=True)
class BenchmarkSplit:
    """Which benchmark, levels and image positions a tuning run used (``results.json``'s
    ``settings.data.benchmark``).

    Attributes:
        benchmark: ``cifar-c`` or ``imagenet-c``.
        root: the benchmark's folder, as given.
        corruptions, severities: the levels tuned, every corruption at every severity.
        images_per_level: N, the images of each level (positions 0..N-1).
        tune_images: the tuning positions asked for: a count (seeded random positions) or a
            range ``A-B`` (positions A..B).
        eval_images: the held-out positions asked for: ``rest`` or a range ``A-B``.
        max_images: at most this many images of each split (the first of each, in the order
            [`split_positions()`][predify.tune.benchmark.split_positions] draws), or None.
        seed: seeds the random positions and the order the tuning images are read in.
        tuning_sha256, evaluation_sha256: SHA-256 of the positions chosen (comma-separated
            decimal, in reading order), to compare two runs' images.
    """

    benchmark: str
    root: str
    corruptions: tuple[str, ...]
    severities: tuple[int, ...]
    images_per_level: int
    tune_images: str
    eval_images: str
    max_images: int | None
    seed: int
    tuning_sha256: str
    evaluation_sha256: str

    def to_json(self) -> JsonObject:
        return {
            **asdict(self),
            "corruptions": list(self.corruptions),
            "severities": list(self.severities),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BenchmarkSplit:
        maximum = data["max_images"]
        return cls(
            benchmark=str(data["benchmark"]),
            root=str(data["root"]),
            corruptions=tuple(str(name) for name in data["corruptions"]),
            severities=tuple(int(value) for value in data["severities"]),
            images_per_level=int(data["images_per_level"]),
            tune_images=str(data["tune_images"]),
            eval_images=str(data["eval_images"]),
            max_images=None if maximum is None else int(maximum),
            seed=int(data["seed"]),
            tuning_sha256=str(data["tuning_sha256"]),
            evaluation_sha256=str(data["evaluation_sha256"]),
        )


def _positions_digest(positions: Sequence[int]) -> str:
    return hashlib.sha256(",".join(str(p) for p in positions).encode()).hexdigest()


def _parse_positions(spec: str, option: str, size: int) -> int | range:
    """A count ``N`` or a range ``A-B`` (positions A..B of 0..size-1)."""
    low_text, dash, high_text = spec.strip().partition("-")
    try:
        low, high = int(low_text), int(high_text) if dash else None
    except ValueError:
        raise ConfigError(
            f"{option} {spec!r}: expected a number of images or a range of positions such as 0-999"
        ) from None
    if high is None:
        if not 0 < low < size:
            raise ConfigError(
                f"{option} {spec}: expected between 1 and {size - 1} images (each level holds "
                f"{size}, and some must be held out)"
            )
        return low
    if not 0 <= low <= high < size:
        raise ConfigError(
            f"{option} {spec}: expected a range A-B with 0 <= A <= B < {size} (each level holds "
            f"{size} images)"
        )
    return range(low, high + 1)


def split_positions(
    size: int, tune_images: str | None, eval_images: str | None, max_images: int | None, seed: int
) -> tuple[list[int], list[int]]:
    """(tuning positions in the order they are read, held-out positions in increasing order).

    Args:
        size: N, the images of each level.
        tune_images: a count N (positions drawn by a permutation seeded with ``seed``) or a range
            ``A-B``; None: a fifth of the images, drawn at random.
        eval_images: a range ``A-B``, or None / ``rest``: every position not tuned on.
        max_images: keep at most this many of each (the first tuning positions read; held-out
            positions drawn in the seeded order).
        seed: seeds the permutation, which also orders the tuning positions (ImageNet-C lists
            its images class by class: read in order, a batch would hold one class).

    Raises:
        ConfigError: an unparsable or out-of-range spec.
        DataError: the tuning and held-out positions overlap (named).
    """
    from ..data import check_disjoint

    if size < 2:
        raise DataError(
            f"each benchmark level holds {size} image(s); expected at least 2, some to tune on "
            "and some held out"
        )
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed)).tolist()
    rank = {position: index for index, position in enumerate(order)}
    tuned = _parse_positions(
        tune_images or str(max(1, size // DEFAULT_TUNE_SHARE)), "--tune-images", size
    )
    tuning = order[:tuned] if isinstance(tuned, int) else sorted(tuned, key=rank.__getitem__)
    if eval_images is None or eval_images.strip().lower() == "rest":
        taken = set(tuning)
        held_out = [position for position in order if position not in taken]
    else:
        held = _parse_positions(eval_images, "--eval-images", size)
        if isinstance(held, int):
            raise ConfigError(
                f"--eval-images {eval_images}: expected rest or a range of positions such as "
                "1000-9999 (use --max-images to hold out fewer)"
            )
        held_out = sorted(held, key=rank.__getitem__)
    if max_images is not None:
        tuning, held_out = tuning[:max_images], held_out[:max_images]
    check_disjoint(tuning, held_out, ("tuning", "held-out"))
    if not held_out:
        raise ConfigError("--tune-images: every image is tuned on; expected some held out")
    return tuning, sorted(held_out)


class BenchmarkBatches:
    """Some positions of one benchmark level as a re-iterable source of ``(images [B, C, H, W],
    labels [B])`` batches, read batch by batch (by a
    `DataLoader`, ``workers`` processes) in the order given.

    Args:
        dataset: the level, items (image [C, H, W] in [0, 1], label).
        positions: which items, in reading order.
        batch_size: images per batch (the last batch shorter).
        device: where batches go.
        workers: DataLoader worker processes (0: this process).
        num_classes: labels must be below it.
        where: what to call the level in error messages.
    """

    def __init__(
        self,
        dataset: Dataset[Any],
        positions: Sequence[int],
        batch_size: int,
        device: torch.device,
        workers: int,
        num_classes: int,
        where: str,
    ) -> None:
        from ..evaluate.streaming import batch_plan

        self.dataset, self.positions = dataset, list(positions)
        self.plan = batch_plan(len(self.positions), batch_size)
        self.device, self.workers = device, workers
        self.num_classes, self.where = num_classes, where

    def __len__(self) -> int:
        return len(self.plan)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        from ..evaluate.streaming import PositionedImages, stream

        items = PositionedImages(self.dataset, self.positions)
        for images, labels in stream(items, self.plan, self.device, self.workers):
            largest = int(labels.max())
            if largest >= self.num_classes or int(labels.min()) < 0:
                raise DataError(
                    f"{self.where}: label {largest} but the network predicts "
                    f"{self.num_classes} classes; expected labels 0-{self.num_classes - 1}"
                )
            yield images, labels


@dataclass(frozen=True)
class TuneBenchmark:
    """An opened benchmark: its levels, the split, and a reader of each level."""

    split: BenchmarkSplit
    levels: tuple[BenchmarkLevel, ...]
    tuning: tuple[int, ...]
    """Positions tuned on, in reading order."""
    evaluation: tuple[int, ...]
    """Positions held out, in increasing order."""
    reader: Callable[[str, int], Dataset[Any]]

    def sources(
        self,
        level: BenchmarkLevel,
        batch_size: int,
        device: torch.device,
        workers: int,
        num_classes: int,
    ) -> tuple[BenchmarkBatches, BenchmarkBatches]:
        """(tuning batches, held-out batches) of one level."""
        dataset = _open_level(self.reader, self.split, level)
        where = f"--benchmark {self.split.benchmark}:{self.split.root} {level}"
        return tuple(  # type: ignore[return-value]
            BenchmarkBatches(dataset, positions, batch_size, device, workers, num_classes, where)
            for positions in (self.tuning, self.evaluation)
        )


def _open_level(
    reader: Callable[[str, int], Dataset[Any]], split: BenchmarkSplit, level: BenchmarkLevel
) -> Dataset[Any]:
    dataset = reader(level.kind, int(level.level))
    size = len(dataset)  # type: ignore[arg-type]
    if size != split.images_per_level:
        raise DataError(
            f"--benchmark {split.benchmark}:{split.root}: {level} holds {size} images, expected "
            f"{split.images_per_level} as every level (the same images, corrupted)"
        )
    return dataset


def open_tune_benchmark(
    spec: str,
    corruptions: str | Sequence[str],
    severities: str | Sequence[int],
    input_size: tuple[int, ...],
    *,
    tune_images: str | None = None,
    eval_images: str | None = None,
    max_images: int | None = None,
    seed: int = 0,
) -> TuneBenchmark:
    """Open ``spec`` (``cifar-c:ROOT`` or ``imagenet-c:ROOT``) for ``corruptions`` x ``severities``
    (the forms of ``predify evaluate --corruptions/--severities``), check every level, and split
    its positions ([`split_positions()`][predify.tune.benchmark.split_positions]).

    Raises:
        ConfigError, DataError: one line naming the option, file or folder and what was expected.
    """
    from ..evaluate.corruptions import parse_severities, resolve_corruptions
    from ..evaluate.data import open_benchmark

    names = resolve_corruptions(corruptions)
    levels_severities = parse_severities(severities)
    kind, reader = open_benchmark(spec, names, levels_severities, input_size)
    size = len(reader(names[0], levels_severities[0]))  # type: ignore[arg-type]
    tuning, evaluation = split_positions(size, tune_images, eval_images, max_images, seed)
    split = BenchmarkSplit(
        benchmark=kind, root=spec.partition(":")[2], corruptions=tuple(names),
        severities=tuple(levels_severities), images_per_level=size,
        tune_images=tune_images or str(max(1, size // DEFAULT_TUNE_SHARE)),
        eval_images=eval_images or "rest", max_images=max_images, seed=seed,
        tuning_sha256=_positions_digest(tuning), evaluation_sha256=_positions_digest(evaluation),
    )  # fmt: skip
    levels = tuple(BenchmarkLevel(kind, name, s) for name in names for s in levels_severities)
    for level in levels:  # every file readable and the same size before any level is tuned
        dataset = _open_level(reader, split, level)
        shape = tuple(dataset[tuning[0]][0].shape)
        if shape != tuple(input_size):
            raise DataError(
                f"--benchmark {spec}: {level} images are {list(shape)} but the network takes "
                f"{list(input_size)}"
            )
    return TuneBenchmark(split, levels, tuple(tuning), tuple(evaluation), reader)
