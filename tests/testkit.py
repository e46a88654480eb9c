"""Helpers shared by the test folders (importable because pyproject puts tests/ on pytest's path).

- the golden network (tests/data/golden/README.md) and one builder of its predictive versions;
- ``OpaqueDecoder``, which hides a decoder from the analytic path so autograd computes the VJP;
- one recipe that trains the small MNIST-5k CNN the evaluate and tune tests share;
- ``error_line``, the check of a CLI's one-line error.

Fixtures live in tests/conftest.py; what is here are plain functions and classes.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import predify
from predify.config import Hyperparameters
from predify.data import mnist5k_splits
from predify.decoder_layers import analytic_layers
from predify.models import pshallow
from predify.models.shallow import ShallowCNN
from predify.network import PredictiveNet

GOLDEN_DIR = Path(__file__).parent / "data" / "golden"


# ---------------------------------------------------------------------- the golden network
class GoldenNet(nn.Module):
    """The small backbone of the golden reference outputs: [B, 3, 32, 32] -> [B, 10]."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        )  # fmt: skip
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def load_case(name: str) -> dict[str, Any]:
    """The stored golden case (config, weights, input, expected outputs)."""
    return torch.load(GOLDEN_DIR / f"{name}.pt", weights_only=True)


def golden_pnet(
    case: str = "case_a", *, trained: bool = True, generic: bool = False, seed: int = 0
) -> PredictiveNet:
    """The golden network predified with ``case``'s TOML.

    trained: load the case's stored backbone and decoder weights (the network of the golden
        outputs); otherwise a fresh backbone and decoders drawn after ``torch.manual_seed(seed)``.
    generic: wrap every decoder in :class:`OpaqueDecoder` (the autograd path).
    """
    if trained:
        data = load_case(case)
        backbone = GoldenNet()
        backbone.load_state_dict(data["backbone_state"])
        pnet = predify.predify(backbone, GOLDEN_DIR / f"{case}.toml")
        assert len(pnet.pcoders) == len(data["decoder_states"])
        for pcoder, state in zip(pnet.pcoders, data["decoder_states"], strict=True):
            pcoder.decoder.load_state_dict(state, strict=True)
    else:
        torch.manual_seed(seed)
        pnet = predify.predify(GoldenNet(), GOLDEN_DIR / f"{case}.toml")
    return make_generic(pnet) if generic else pnet


class OpaqueDecoder(nn.Module):
    """Calls the wrapped decoder; unknown to the analytic path, so autograd computes the VJP."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


def make_generic(pnet: PredictiveNet) -> PredictiveNet:
    """Hide every decoder of ``pnet`` from the analytic path (in place)."""
    for pcoder in pnet.pcoders:
        pcoder.decoder = OpaqueDecoder(pcoder.decoder)
        assert analytic_layers(pcoder.decoder) is None
    return pnet


# ---------------------------------------------------------------------- small MNIST-5k CNN
SMALL_WIDTHS = (8, 16, 32)
SMALL_TIMESTEPS = 3
SPLIT_SEED = 0


@functools.cache
def _small_cnn_state(
    num_classes: int,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(backbone state, decoder state) of the small CNN after its short training.

    The backbone (widths 8/16/32) takes 400 Adam steps on the MNIST-5k train split with Gaussian
    noise of random strength (so accuracies under noise stay above chance; clean test accuracy
    is about 90%), then the decoders take 100 steps to predict the layer below from the frozen
    feed-forward representations: the recipe of feedback training, shortened.
    """
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    images, labels = mnist5k_splits(SPLIT_SEED).train.tensors
    labels = labels % num_classes
    backbone = ShallowCNN(in_channels=1, num_classes=num_classes, widths=SMALL_WIDTHS)
    optimizer = torch.optim.Adam(backbone.parameters(), lr=4e-3)
    for _ in range(400):
        batch = torch.randint(0, len(labels), (64,), generator=generator)
        sigma = 0.6 * torch.rand(64, 1, 1, 1, generator=generator)
        noisy = images[batch] + sigma * torch.randn(64, 1, 28, 28, generator=generator)
        loss = F.cross_entropy(backbone(noisy), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    backbone.eval().requires_grad_(False)
    pnet = _small_pnet(backbone, SMALL_TIMESTEPS, None)
    optimizer = torch.optim.Adam(pnet.decoder_parameters(), lr=5e-3)
    for _ in range(100):
        batch = torch.randint(0, len(labels), (64,), generator=generator)
        errors = pnet(images[batch], timesteps=0, record=True).errors
        assert errors is not None
        optimizer.zero_grad()
        errors.sum().backward()
        optimizer.step()
    decoders = {
        k: v.detach().clone() for k, v in pnet.pcoders.state_dict().items() if ".decoder." in k
    }
    backbone_state = {k: v.detach().clone() for k, v in backbone.state_dict().items()}
    return backbone_state, decoders


def _small_pnet(
    backbone: ShallowCNN, timesteps: int, hyperparameters: Hyperparameters | None
) -> PredictiveNet:
    torch.manual_seed(1)  # the decoders' initialisation
    kwargs: dict[str, Any] = {} if hyperparameters is None else {"hyperparameters": hyperparameters}
    return pshallow(backbone, image_size=28, timesteps=timesteps, **kwargs)


def small_cnn(
    trained: bool = True,
    timesteps: int = SMALL_TIMESTEPS,
    hyperparameters: Hyperparameters | None = None,
    num_classes: int = 10,
) -> PredictiveNet:
    """A fresh predictive shallow CNN (1x28x28 -> num_classes) in eval mode, decoders seeded;
    ``trained``: with the weights of the short MNIST-5k training (computed once per process)."""
    backbone = ShallowCNN(in_channels=1, num_classes=num_classes, widths=SMALL_WIDTHS)
    if trained:
        backbone_state, decoder_state = _small_cnn_state(num_classes)
        backbone.load_state_dict(backbone_state)
    pnet = _small_pnet(backbone, timesteps, hyperparameters)
    if trained:
        # Only the decoders: the hyperparameters asked for must stay.
        pnet.pcoders.load_state_dict(decoder_state, strict=False)
    return pnet.eval()


# ---------------------------------------------------------------------- CLI errors
def error_line(capsys: pytest.CaptureFixture[str], command: str | None = None) -> str:
    """The single line a CLI wrote to stderr; no traceback; ``predify COMMAND: error: `` first
    when ``command`` is given."""
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    if command is not None:
        assert lines[0].startswith(f"predify {command}: error: "), lines[0]
    return lines[0]


def torchrun(processes: int, *arguments: str) -> str:
    """``predify ARGUMENTS`` under torchrun with ``processes`` CPU processes (``--standalone``:
    torchrun binds its own free port, so parallel runs cannot race); returns its output."""
    source = str(Path(__file__).resolve().parents[1] / "src")
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")])),
    }
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        "--nproc-per-node", str(processes), "-m", "predify.cli", *arguments,
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout
