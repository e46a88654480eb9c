"""The small backbone of the golden reference outputs (tests/data/golden/README.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

GOLDEN_DIR = Path(__file__).parent / "data" / "golden"


class GoldenNet(nn.Module):
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
    return torch.load(GOLDEN_DIR / f"{name}.pt", weights_only=True)


def golden_pnet(name: str) -> Any:
    """The predictive GoldenNet of a golden case, with the case's backbone and decoder weights."""
    import predify

    data = load_case(name)
    backbone = GoldenNet()
    backbone.load_state_dict(data["backbone_state"])
    pnet = predify.predify(backbone, GOLDEN_DIR / f"{name}.toml")
    for pcoder, state in zip(pnet.pcoders, data["decoder_states"], strict=True):
        pcoder.decoder.load_state_dict(state, strict=True)
    return pnet.eval()
