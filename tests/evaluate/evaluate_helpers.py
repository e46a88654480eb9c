"""The run directories of the evaluate tests: the small MNIST-5k CNN of tests/testkit.py."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from predify.data import mnist5k_splits
from predify.runtime.runs import RunInfo, save_run
from testkit import SMALL_TIMESTEPS, SMALL_WIDTHS, SPLIT_SEED, small_cnn

WIDTHS = SMALL_WIDTHS
TIMESTEPS = SMALL_TIMESTEPS
make_pnet = small_cnn


def sample_images(count: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` images of the MNIST-5k test split, every class represented."""
    images, labels = mnist5k_splits(SPLIT_SEED).test.tensors
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:count]
    return images[order], labels[order]


def make_run_dir(
    path: Path,
    *,
    trained: bool = True,
    timesteps: int = TIMESTEPS,
    normalization: dict[str, list[float]] | None = None,
    num_classes: int = 10,
    info_changes: dict[str, Any] | None = None,
) -> Path:
    """Write a run directory as ``predify demo`` would (shallow CNN on MNIST-5k)."""
    pnet = small_cnn(trained, timesteps, num_classes=num_classes)
    info = RunInfo(
        backbone={
            "name": "shallow_cnn",
            "kwargs": {"in_channels": 1, "num_classes": num_classes, "widths": list(WIDTHS)},
        },
        data={"spec": "mnist5k", "split_seed": SPLIT_SEED},
        num_classes=num_classes,
        normalization=normalization,
    )
    if info_changes:
        info = replace(info, **info_changes)
    return save_run(path, pnet, info)
