"""A tiny predictive shallow CNN on MNIST-5k for the evaluate tests, trained once per process.

The backbone (widths 8/16/32) is trained for a few hundred steps on the MNIST-5k train split
(about 90% test accuracy), then the decoders for a few dozen steps to predict the layer below
from the feed-forward representations (a few seconds in all on two cores).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from predify.config import Hyperparameters
from predify.data import mnist5k_splits
from predify.models import pshallow
from predify.models.shallow import ShallowCNN
from predify.network import PredictiveNet
from predify.runs import RunInfo, save_run

WIDTHS = (8, 16, 32)
TIMESTEPS = 3
BACKBONE_STEPS = 400
DECODER_STEPS = 40


@functools.cache
def _trained_state(
    num_classes: int = 10,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(backbone state, decoder state) after a short training on MNIST-5k train."""
    torch.manual_seed(0)
    backbone = ShallowCNN(in_channels=1, num_classes=num_classes, widths=WIDTHS)
    images, labels = mnist5k_splits(0).train.tensors
    labels = labels % num_classes
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(backbone.parameters(), lr=5e-3)
    for _ in range(BACKBONE_STEPS):
        batch = torch.randint(0, len(images), (64,), generator=generator)
        loss = F.cross_entropy(backbone(images[batch]), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    backbone.eval().requires_grad_(False)
    pnet = _build(backbone, TIMESTEPS, None)
    decoders = pnet.decoder_parameters()
    optimizer = torch.optim.Adam(decoders, lr=1e-2)
    for _ in range(DECODER_STEPS):
        batch = torch.randint(0, len(images), (64,), generator=generator)
        errors = pnet(images[batch], timesteps=0, record=True).errors
        assert errors is not None
        optimizer.zero_grad()
        errors.sum().backward()
        optimizer.step()
    return (
        {key: value.detach().clone() for key, value in backbone.state_dict().items()},
        {
            key: value.detach().clone()
            for key, value in pnet.pcoders.state_dict().items()
            if ".decoder." in key
        },
    )


def _build(
    backbone: ShallowCNN, timesteps: int, hyperparameters: Hyperparameters | None
) -> PredictiveNet:
    torch.manual_seed(1)  # the decoders' initialisation
    kwargs: dict[str, Any] = {} if hyperparameters is None else {"hyperparameters": hyperparameters}
    return pshallow(backbone, image_size=28, timesteps=timesteps, **kwargs)


def make_pnet(
    trained: bool = True,
    timesteps: int = TIMESTEPS,
    hyperparameters: Hyperparameters | None = None,
    num_classes: int = 10,
) -> PredictiveNet:
    """A fresh predictive shallow CNN (1x28x28) in eval mode, decoders seeded."""
    backbone = ShallowCNN(in_channels=1, num_classes=num_classes, widths=WIDTHS)
    if trained:
        backbone_state, decoder_state = _trained_state(num_classes)
        backbone.load_state_dict(backbone_state)
    pnet = _build(backbone, timesteps, hyperparameters)
    if trained:
        # Only the decoders: the hyperparameters asked for must stay.
        pnet.pcoders.load_state_dict(decoder_state, strict=False)
    return pnet.eval()


def sample_images(count: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` images of the MNIST-5k test split, every class represented."""
    images, labels = mnist5k_splits(0).test.tensors
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
    pnet = make_pnet(trained, timesteps, num_classes=num_classes)
    info = RunInfo(
        backbone={
            "name": "shallow_cnn",
            "kwargs": {"in_channels": 1, "num_classes": num_classes, "widths": list(WIDTHS)},
        },
        data={"spec": "mnist5k", "split_seed": 0},
        num_classes=num_classes,
        normalization=normalization,
    )
    if info_changes:
        info = replace(info, **info_changes)
    return save_run(path, pnet, info)


def one_torch_thread() -> Iterator[None]:
    """Run a test module with one intra-op thread, then restore the count.

    These networks are tiny: a second thread barely helps on an idle machine, while on a busy
    one (CI, shared runners) OpenMP's spinning threads made the same tests several times slower.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
