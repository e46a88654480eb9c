"""Several processes with ``torch.distributed``, as launched by ``torchrun``.

``torchrun --nproc-per-node 4 -m predify.cli train ...`` (or ``--nnodes``/``--rdzv-endpoint`` for
several machines) starts one process per device and sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``.
[`init_distributed()`][predify.runtime.distributed.init_distributed] reads them and
joins the process group: NCCL for CUDA devices, Gloo for the CPU. Training shards the data
(DDP); evaluation and tuning split independent units of work (corruption cells, noise levels)
with `assigned()` and collect the results on rank 0 with
[`gather_to_main()`][predify.runtime.distributed.gather_to_main], which alone
writes files and shows progress.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from ..errors import ConfigError

__all__ = [
    "DistributedInfo",
    "assigned",
    "barrier",
    "broadcast_from_main",
    "device_for_rank",
    "distributed_from_env",
    "gather_to_main",
    "init_distributed",
    "shutdown_distributed",
]

T = TypeVar("T")


@dataclass(frozen=True)
class DistributedInfo:
    """Where this process sits in a multi-process run.

    Attributes:
        rank: global rank, 0 .. world_size - 1; rank 0 writes every file.
        world_size: number of processes over all nodes.
        local_rank: rank on this node: the CUDA device index of the process.
    """

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int | None = None) -> int | None:
    text = os.environ.get(name)
    if text is None or text.strip() == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"environment variable {name}={text!r}: expected an integer") from None


def distributed_from_env() -> DistributedInfo | None:
    """This process's place, from ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``; None when alone."""
    world_size = _env_int("WORLD_SIZE")
    if world_size is None or world_size <= 1:
        return None
    rank = _env_int("RANK")
    if rank is None or not 0 <= rank < world_size:
        raise ConfigError(f"RANK={rank!r}: expected 0 <= RANK < WORLD_SIZE={world_size}")
    local_rank = _env_int("LOCAL_RANK", 0)
    assert local_rank is not None
    return DistributedInfo(rank=rank, world_size=world_size, local_rank=local_rank)


def init_distributed(device: torch.device) -> DistributedInfo | None:
    """Join the process group the environment describes (once); None when run alone.

    Args:
        device: this process's device; ``cuda`` picks the NCCL backend, anything else Gloo.
    """
    info = distributed_from_env()
    if info is None:
        return None
    if not dist.is_available():
        raise ConfigError("WORLD_SIZE > 1 but this torch build has no torch.distributed support")
    if not dist.is_initialized():
        for name in ("MASTER_ADDR", "MASTER_PORT"):
            if not os.environ.get(name):
                raise ConfigError(
                    f"WORLD_SIZE={info.world_size} but {name} is not set; launch with torchrun"
                )
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            # NCCL's object collectives run on the current device: one GPU per process.
            torch.cuda.set_device(device_for_rank(device, info))
        dist.init_process_group(backend, rank=info.rank, world_size=info.world_size)
    return info


def shutdown_distributed() -> None:
    """Leave the process group if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def device_for_rank(device: torch.device, info: DistributedInfo | None) -> torch.device:
    """``cuda`` becomes ``cuda:LOCAL_RANK`` (one GPU per process); anything else is unchanged."""
    if info is None or device.type != "cuda" or device.index is not None:
        return device
    return torch.device("cuda", info.local_rank)


def assigned(items: Sequence[T], info: DistributedInfo | None) -> list[T]:
    """The items this rank works on: every ``world_size``-th, starting at its rank.

    Deterministic for a given list and world size, whatever the speed of each process, so the
    same list gives every rank a disjoint share and together all of it.
    """
    if info is None:
        return list(items)
    return list(items[info.rank :: info.world_size])


def gather_to_main(value: Any, info: DistributedInfo | None) -> list[Any] | None:
    """Every rank's ``value``, in rank order, on rank 0 (None elsewhere); ``[value]`` alone.

    Values travel pickled (``gather_object``) between the processes of one job; nothing read
    from a file is unpickled.
    """
    if info is None:
        return [value]
    gathered: list[Any] | None = [None] * info.world_size if info.is_main else None
    dist.gather_object(value, gathered, dst=0)
    return gathered


def broadcast_from_main(value: T, info: DistributedInfo | None) -> T:
    """Rank 0's ``value`` on every rank (the others' ``value`` is ignored)."""
    if info is None:
        return value
    holder = [value if info.is_main else None]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]  # type: ignore[return-value]


def barrier(info: DistributedInfo | None) -> None:
    """Wait until every rank gets here (nothing to wait for alone)."""
    if info is not None:
        dist.barrier()
