"""Evaluation images streamed batch by batch, split by batch over processes.

Nothing holds a whole evaluation set: a `DataLoader` (worker processes, pinned memory, prefetch;
[`predify.runtime.loading.loader_options()`][predify.runtime.loading.loader_options]) reads,
checks and corrupts the images of one batch at a time, so memory is bounded by the batch size.

The unit of work is a *batch*: the evaluated images, in their evaluation order (positions
0..N-1), are cut into consecutive batches of ``batch_size``
([`batch_plan()`][predify.evaluate.streaming.batch_plan]), and process ``r`` of ``W`` takes batches
``r, r + W, ...`` ([`Share`][predify.evaluate.streaming.Share]). A batch holds the same images
whatever the number of processes, so each batch's numbers are the same bits in every process
count, and rank 0 reassembles the per-batch results in batch order
([`reassemble()`][predify.evaluate.streaming.reassemble]): one process and many write the same
bytes.

Random draws (corruption noise, the analysis's Gaussian noise) are seeded per image by
[`image_seed()`][predify.evaluate.streaming.image_seed], from (seed, what is drawn, image
position): an image gets the same draws in any batch size, worker count, process count or order.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ..runtime.distributed import DistributedInfo
from ..runtime.loading import device_batches, loader_options

__all__ = [
    "Share",
    "batch_plan",
    "image_seed",
    "reassemble",
    "stream",
]


def image_seed(seed: int, what: str, position: int) -> int:
    """A seed for one image's random draws, fixed by (seed, what, position) only; ``what``
    names the draw, e.g. ``gaussian_noise/3`` (a corruption and severity)."""
    return zlib.crc32(f"{seed}/{what}/{position}".encode())


def batch_plan(count: int, batch_size: int) -> list[list[int]]:
    """Positions 0..count-1 cut into consecutive batches of ``batch_size`` (the last shorter)."""
    return [
        list(range(start, min(start + batch_size, count))) for start in range(0, count, batch_size)
    ]


@dataclass(frozen=True)
class Share:
    """Which batches of a plan one process evaluates: every ``world``-th from ``rank``."""

    rank: int = 0
    world: int = 1

    @classmethod
    def of(cls, info: DistributedInfo | None) -> Share:
        return cls() if info is None else cls(info.rank, info.world_size)

    def batches(self, plan: Sequence[list[int]]) -> list[list[int]]:
        return list(plan[self.rank :: self.world])


def reassemble(parts: Sequence[np.ndarray], plan: Sequence[list[int]], world: int) -> np.ndarray:
    """Per-process results (last axis: the images of each process's batches, in order) back to
    one array in position order, as one process would have computed it."""
    offsets = [0] * world
    pieces = []
    for number, batch in enumerate(plan):
        rank = number % world
        pieces.append(parts[rank][..., offsets[rank] : offsets[rank] + len(batch)])
        offsets[rank] += len(batch)
    return np.concatenate(pieces, axis=-1)


class PositionedImages(Dataset[tuple[Tensor, Any]]):
    """Item ``p``: ``transform(p, image)`` and the label of ``dataset[indices[p]]``.

    ``transform`` (e.g. a corruption seeded by position ``p``) runs where the item is read: in a
    DataLoader worker when there are workers.
    """

    def __init__(
        self,
        dataset: Dataset[Any],
        indices: Sequence[int],
        transform: Callable[[int, Tensor], Tensor] | None = None,
    ) -> None:
        self.dataset = dataset
        self.indices = list(indices)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> tuple[Tensor, Any]:
        image, label = self.dataset[self.indices[position]]
        if self.transform is not None:
            image = self.transform(position, image)
        return image, label


def stream(
    dataset: Dataset[Any], batches: Sequence[list[int]], device: torch.device, workers: int
) -> Iterator[tuple[Tensor, Tensor]]:
    """(images, labels) of each batch of positions of ``dataset``, on ``device``, in order."""
    if not batches:
        return
    loader = DataLoader(dataset, batch_sampler=list(batches), **loader_options(device, workers))
    for batch in device_batches(loader, device):
        images, labels = batch
        yield images, labels
