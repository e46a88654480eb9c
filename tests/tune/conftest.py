"""The small trained network (tests/testkit.py) and a run directory of it, shared by the tuning
tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from predify.data import mnist5k_splits
from predify.network import PredictiveNet
from predify.runtime.runs import RunInfo, save_run
from testkit import SMALL_WIDTHS, SPLIT_SEED, small_cnn


def write_run(run_dir: Path, pnet: PredictiveNet) -> Path:
    info = RunInfo(
        backbone={
            "name": "shallow_cnn",
            "kwargs": {"in_channels": 1, "widths": list(SMALL_WIDTHS)},
        },
        data={"spec": "mnist5k", "split_seed": SPLIT_SEED},
        num_classes=10,
    )
    return save_run(run_dir, pnet, info)


@pytest.fixture(scope="session")
def trained_pnet() -> PredictiveNet:
    return small_cnn()


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory, trained_pnet: PredictiveNet) -> Path:
    return write_run(tmp_path_factory.mktemp("tune-run") / "run", trained_pnet)


@pytest.fixture(scope="session")
def val_data() -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = mnist5k_splits(SPLIT_SEED).val.tensors
    return images[:128], labels[:128]
