"""The order of an epoch's batches: seeded, sharded over processes, resumable mid-epoch.

One seeded permutation per epoch (shared by all processes, each reading its shard), so the order
does not depend on any global RNG and a resumed epoch sees the same batches as the interrupted
one.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from ..errors import DataError

__all__ = ["EpochPosition", "ResumableSampler", "epoch_batches"]


class ResumableSampler(Sampler[int]):
    """The shard of one epoch's (seeded) order for this process, minus the items already done."""

    def __init__(self, inner: DistributedSampler[Any], skip: int) -> None:
        self.inner = inner
        self.skip = skip

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(iter(self.inner), self.skip, None)

    def __len__(self) -> int:
        return max(0, len(self.inner) - self.skip)


@dataclass(frozen=True)
class EpochPosition:
    """Where a run stands, as the data order needs it."""

    epoch: int
    batch_in_epoch: int
    seed: int
    rank: int = 0
    world_size: int = 1


def epoch_batches(
    data: Dataset[Any] | DataLoader[Any],
    position: EpochPosition,
    *,
    batch_size: int,
    shuffle: bool,
    workers: int,
    drop_last: bool,
    pin_memory: bool,
) -> tuple[Iterator[Any], int]:
    """This epoch's remaining batches and the epoch's total number of batches.

    A DataLoader's order is its own: the batches already done are read past. A data set gets a
    loader over this process's shard of the epoch's seeded permutation, starting after the
    batches already done.
    """
    if isinstance(data, DataLoader):
        sampler = getattr(data, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(position.epoch)  # type: ignore[union-attr]
        return itertools.islice(iter(data), position.batch_in_epoch, None), len(data)
    if not hasattr(data, "__len__") or len(data) == 0:  # type: ignore[arg-type]
        raise DataError("the training data set is empty (0 images)")
    shard: DistributedSampler[Any] = DistributedSampler(
        data,
        num_replicas=position.world_size,
        rank=position.rank,
        shuffle=shuffle,
        seed=position.seed,
        drop_last=False,
    )
    shard.set_epoch(position.epoch)
    total = len(shard) // batch_size if drop_last else math.ceil(len(shard) / batch_size)
    if total == 0:
        raise DataError(
            f"the training data set has {len(shard)} images per process, fewer than one "
            f"batch of {batch_size} with drop_last"
        )
    generator = torch.Generator().manual_seed(position.seed * 1_000_003 + position.epoch)
    loader = DataLoader(
        data,
        batch_size=batch_size,
        sampler=ResumableSampler(shard, position.batch_in_epoch * batch_size),
        num_workers=workers,
        drop_last=drop_last,
        pin_memory=pin_memory,
        # Worker seeds come from this generator, not from the global RNG.
        generator=generator,
    )
    return iter(loader), total
