"""How large the logits and the representations are at every timestep: the sign of a collapse.

Tuning with the ``summed`` objective can lower its loss by shrinking the logits, and the dynamics
can shrink the logits only by shrinking the representations (measured on the demo at sigma 1.0:
representation norms 51 / 52 / 58 at t = 0, 8.8 / 8.8 / 12.4 at t = 10). A
[`ScaleTrace`][predify.tune.ScaleTrace] records, per timestep, the logit scale and each pcoder's
representation norm, so that tables, figures and a warning can show it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._io import JsonObject

__all__ = ["COLLAPSE_RATIO", "ScaleAccumulator", "ScaleTrace", "collapse_warning"]

#: A representation whose norm at t = T is below this fraction of its norm at t = 0 has collapsed.
COLLAPSE_RATIO = 0.5


@dataclass(frozen=True)
class ScaleTrace:
    """Per timestep t = 0..T, means over images.

    Attributes:
        logit_scale: the standard deviation of an image's logits over the classes.
        representation_norm: per pcoder (bottom first), the L2 norm of an image's representation.
    """

    logit_scale: tuple[float, ...]
    representation_norm: tuple[tuple[float, ...], ...]

    def shrunk(self, ratio: float = COLLAPSE_RATIO) -> list[int]:
        """The pcoders (0-based) whose norm at t = T is below ``ratio`` times that at t = 0."""
        return [
            index
            for index, norms in enumerate(self.representation_norm)
            if norms[-1] < ratio * norms[0]
        ]

    def to_json(self) -> JsonObject:
        return {
            "logit_scale": [round(v, 6) for v in self.logit_scale],
            "representation_norm": [
                [round(v, 6) for v in norms] for norms in self.representation_norm
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScaleTrace:
        return cls(
            logit_scale=tuple(float(v) for v in data["logit_scale"]),
            representation_norm=tuple(
                tuple(float(v) for v in norms) for norms in data["representation_norm"]
            ),
        )

    @classmethod
    def mean(cls, traces: Sequence[ScaleTrace]) -> ScaleTrace:
        """The mean of several traces (over seeds), timestep by timestep."""
        count = len(traces)
        return cls(
            logit_scale=tuple(
                sum(values) / count for values in zip(*(t.logit_scale for t in traces), strict=True)
            ),
            representation_norm=tuple(
                tuple(sum(values) / count for values in zip(*per_pcoder, strict=True))
                for per_pcoder in zip(*(t.representation_norm for t in traces), strict=True)
            ),
        )


class ScaleAccumulator:
    """Sums the scales of batches, timestep by timestep; memory bounded by T and the pcoders."""

    def __init__(self, timesteps: int, pcoders: int) -> None:
        self.logits = torch.zeros(timesteps + 1, dtype=torch.float64)
        self.norms = torch.zeros(pcoders, timesteps + 1, dtype=torch.float64)
        self.count = torch.zeros(timesteps + 1, dtype=torch.float64)

    @torch.no_grad()
    def add(self, t: int, logits: Tensor, reps: Sequence[Tensor]) -> None:
        """One batch at timestep ``t``: logits [B, K], reps per pcoder [B, ...]."""
        flat = logits.detach().float().reshape(logits.shape[0], -1)
        self.logits[t] += float(flat.std(dim=1).sum())
        for index, rep in enumerate(reps):
            norms = rep.detach().float().reshape(rep.shape[0], -1).norm(dim=1)
            self.norms[index, t] += float(norms.sum())
        self.count[t] += flat.shape[0]

    def result(self) -> ScaleTrace:
        count = self.count.clamp_min(1)
        return ScaleTrace(
            logit_scale=tuple((self.logits / count).tolist()),
            representation_norm=tuple(tuple(row) for row in (self.norms / count).tolist()),
        )


def collapse_warning(trace: ScaleTrace, pcoder_names: Sequence[str], where: str) -> str | None:
    """A one-line warning when ``trace``'s dynamics shrink a representation below
    `COLLAPSE_RATIO` of its t = 0 norm, else None."""
    shrunk = trace.shrunk()
    if not shrunk:
        return None
    parts = ", ".join(
        f"{pcoder_names[i]} {trace.representation_norm[i][0]:.3g} -> "
        f"{trace.representation_norm[i][-1]:.3g}"
        for i in shrunk
    )
    return (
        f"{where}: the dynamics shrink representations below {COLLAPSE_RATIO:g} of their t = 0 "
        f"norm ({parts}; logit scale {trace.logit_scale[0]:.3g} -> {trace.logit_scale[-1]:.3g}): "
        "the tuning may have lowered its loss by shrinking the logits (see the summed objective "
        "in docs/tutorials/tune.md)"
    )
