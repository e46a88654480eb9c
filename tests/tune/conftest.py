"""A small trained run directory (shallow CNN on MNIST-5k) shared by the tuning tests.

The backbone is trained for a few hundred steps on the mnist5k train split, with Gaussian noise
of random strength so that accuracies under noise are above chance, then the decoders are trained
to reconstruct the layer below at t = 0 with the backbone frozen: the recipe of feedback training,
shortened.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from predify.data import mnist5k_splits
from predify.models import pshallow
from predify.network import PredictiveNet
from predify.runs import RunInfo, save_run

SPLIT_SEED = 0
WIDTHS = (8, 16, 32)
TIMESTEPS = 3


def train_small_pnet(
    backbone_steps: int = 300, decoder_steps: int = 100, seed: int = 0
) -> PredictiveNet:
    """pshallow(in_channels=1, image_size=28) with its backbone and decoders briefly trained."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    images, labels = mnist5k_splits(SPLIT_SEED).train.tensors
    pnet = pshallow(in_channels=1, image_size=28, widths=WIDTHS, timesteps=TIMESTEPS)
    optimizer = torch.optim.Adam(pnet.backbone.parameters(), lr=3e-3)
    for _ in range(backbone_steps):
        batch = torch.randint(0, len(labels), (64,), generator=generator)
        sigma = 0.6 * torch.rand(64, 1, 1, 1, generator=generator)
        noisy = images[batch] + sigma * torch.randn(64, 1, 28, 28, generator=generator)
        loss = F.cross_entropy(pnet.backbone(noisy), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for parameter in pnet.backbone.parameters():
        parameter.requires_grad_(False)
    pnet.eval()
    optimizer = torch.optim.Adam(pnet.decoder_parameters(), lr=3e-3)
    for _ in range(decoder_steps):
        batch = torch.randint(0, len(labels), (32,), generator=generator)
        errors = pnet(images[batch], timesteps=0, record=True).errors
        assert errors is not None
        optimizer.zero_grad()
        errors[0].sum().backward()
        optimizer.step()
    for parameter in pnet.backbone.parameters():
        parameter.requires_grad_(True)
    return pnet


def write_run(run_dir: Path, pnet: PredictiveNet) -> Path:
    info = RunInfo(
        backbone={"name": "shallow_cnn", "kwargs": {"in_channels": 1, "widths": list(WIDTHS)}},
        data={"spec": "mnist5k", "split_seed": SPLIT_SEED},
        num_classes=10,
    )
    return save_run(run_dir, pnet, info)


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the small convolutions of these tests on one thread, then restore the setting.

    On a shared two-core machine, two intra-op threads made steps up to 20 times slower while the
    other core was busy (the threads wait for each other); one thread was at most 2x slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _one_thread_per_test() -> Iterator[None]:
    with one_thread():
        yield


@pytest.fixture(scope="session")
def trained_pnet() -> PredictiveNet:
    with one_thread():
        return train_small_pnet()


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory, trained_pnet: PredictiveNet) -> Path:
    return write_run(tmp_path_factory.mktemp("tune-run") / "run", trained_pnet)


@pytest.fixture(scope="session")
def val_data() -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = mnist5k_splits(SPLIT_SEED).val.tensors
    return images[:128], labels[:128]
