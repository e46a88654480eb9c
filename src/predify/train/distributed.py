"""Multi-process training with ``torch.distributed``, as launched by ``torchrun``.

``torchrun --nproc-per-node 4 -m predify.cli train ...`` (or ``--nnodes``/``--rdzv-endpoint`` for
several machines) starts one process per device and sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``. :func:`init_distributed` reads them and
joins the process group: NCCL for CUDA devices, Gloo for the CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import ConfigError

__all__ = ["DistributedInfo", "distributed_from_env", "init_distributed", "shutdown_distributed"]


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
        dist.init_process_group(backend, rank=info.rank, world_size=info.world_size)
    return info


def shutdown_distributed() -> None:
    """Leave the process group if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
