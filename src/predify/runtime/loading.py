"""Feeding batches to the device without making it wait.

On CUDA, host-to-device copies from pageable memory are synchronous and serialise with the
compute. [`pinned()`][predify.runtime.loading.pinned] pins a host tensor once (page-locked memory:
copies run by DMA, in the
background), and [`device_batches()`][predify.runtime.loading.device_batches] copies the next batch
on a side stream while the current
one is computed on. On the CPU both do nothing, so callers use them unconditionally.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor

__all__ = ["default_workers", "device_batches", "loader_options", "pinned"]


def pinned(tensor: Tensor, device: torch.device) -> Tensor:
    """``tensor`` in pinned host memory if it is on the CPU and ``device`` is CUDA; else itself."""
    if device.type == "cuda" and tensor.device.type == "cpu" and not tensor.is_pinned():
        return tensor.pin_memory()
    return tensor


def default_workers(device: torch.device) -> int:
    """DataLoader worker processes when the user gives none: 4 with a GPU; on the CPU one reader
    where each process has two cores or more, else none.

    One reader on the CPU, although the network's threads use every core: read in the network's
    process, the per-image tensor work (to-tensor, a corruption) runs on its intra-op threads,
    where small tensors cost most. Evaluating an image folder on 2 shared cores, 0 workers gave
    8.7 images/s and 1 worker 22.1 (benchmarks/README.md, "Evaluation memory").
    """
    if device.type == "cuda":
        return 4
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))  # torchrun's processes per machine
    return 1 if (cores or 1) // max(processes, 1) >= 2 else 0


def loader_options(device: torch.device, workers: int) -> dict[str, Any]:
    """``DataLoader`` keyword arguments for ``device``: worker processes that keep two batches
    each in flight, and pinned batches for CUDA.

    Workers are not persistent: each loader here lives for one pass (an evaluation cell, a
    training epoch gets a new loader over its seeded shard), so keeping workers alive bought
    nothing, and an evaluation run with them kept every batch a worker sent mapped in the main
    process until the loader ended (benchmarks/README.md, "Evaluation memory").
    """
    options: dict[str, Any] = {"num_workers": workers, "pin_memory": device.type == "cuda"}
    if workers > 0:
        options["prefetch_factor"] = 2
    return options


def device_batches(
    batches: Iterable[tuple[Tensor, ...]], device: torch.device
) -> Iterator[tuple[Tensor, ...]]:
    """Each tuple of tensors of ``batches`` on ``device``, in order.

    On CUDA the copy of batch i + 1 (non-blocking, on a side stream; from pinned memory it
    overlaps with the compute) is issued before batch i is handed out. Elsewhere a plain ``.to``.
    """
    if device.type != "cuda":
        for batch in batches:
            yield tuple(tensor.to(device) for tensor in batch)
        return
    stream = torch.cuda.Stream(device)

    def issue(batch: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        with torch.cuda.stream(stream):
            return tuple(tensor.to(device, non_blocking=True) for tensor in batch)

    iterator = iter(batches)
    upcoming = next(iterator, None)
    ahead = issue(upcoming) if upcoming is not None else None
    while ahead is not None:
        compute = torch.cuda.current_stream(device)
        compute.wait_stream(stream)
        for tensor in ahead:
            # Memory allocated on the side stream is now used on the compute stream.
            tensor.record_stream(compute)
        current = ahead
        upcoming = next(iterator, None)
        ahead = issue(upcoming) if upcoming is not None else None
        yield current
