"""What the decoders learn: the objectives of feedback training, by name.

- ``reconstruction`` (``timesteps=0``, the Predify paper's): every decoder reconstructs the layer
  below (the image for the first pcoder) from its own layer's feed-forward activation; the loss
  is the MSE of each pcoder, summed over pcoders. The backbone runs once under
  ``torch.no_grad``; only the decoders build a graph, and backward reaches the decoder weights
  only. That is the least work the objective needs: the benchmark in
  ``benchmarks/bench_training.py`` compares it with a hand-written floor.
- ``dynamics`` (``timesteps=T > 0``): the network runs its predictive-coding dynamics for T steps
  and the prediction errors MSE(d_n(t), e_{n-1}(t)) are summed over pcoders and t = 0..T.
  Gradients flow through the dynamics (the decoders shape later representations through the
  error terms), cut every ``tbptt`` steps (truncated backprop through time: backward runs per
  window, so the graph never spans more than ``tbptt`` steps); ``checkpoint_activations``
  recomputes each step in backward (`torch.utils.checkpoint.checkpoint()`), so only the state
  between steps is kept.

Adding an objective is one subclass of
[`Objective`][predify.train.objectives.Objective] and one entry in ``OBJECTIVES``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint as activation_checkpoint

from ..errors import ConfigError, DataError
from ..network import PNetState, PredictiveNet
from ..runtime.validation import check_int

__all__ = [
    "OBJECTIVES",
    "DynamicsObjective",
    "Objective",
    "ObjectiveSettings",
    "ReconstructionObjective",
    "build_objective",
]

#: Runs the objective's ``forward`` (through DDP and autocast when the trainer uses them).
Forward = Callable[..., object]
#: Backward of a scalar loss into the decoders (scaled when the trainer scales gradients).
Backward = Callable[[Tensor], None]


@dataclass(frozen=True)
class ObjectiveSettings:
    """Which objective, and how the ``dynamics`` one unrolls.

    Attributes:
        timesteps: 0 for ``reconstruction``; T > 0 for ``dynamics`` over T steps.
        tbptt: with ``timesteps > 0``, the truncation window in steps (None: the whole unroll).
        checkpoint_activations: with ``timesteps > 0``, recompute each step during backward.
    """

    timesteps: int = 0
    tbptt: int | None = None
    checkpoint_activations: bool = False

    def __post_init__(self) -> None:
        check_int(self.timesteps, "timesteps", minimum=0)
        if self.tbptt is not None:
            check_int(self.tbptt, "tbptt")
            if self.timesteps == 0:
                raise ConfigError("tbptt: applies to training through the dynamics (timesteps > 0)")
        if self.checkpoint_activations and self.timesteps == 0:
            raise ConfigError(
                "checkpoint_activations: applies to training through the dynamics (timesteps > 0)"
            )

    @property
    def name(self) -> str:
        """The objective these settings select (a key of ``OBJECTIVES``)."""
        return ReconstructionObjective.name if self.timesteps == 0 else DynamicsObjective.name


class Objective(ABC):
    """One way of training the decoders of ``pnet``.

    ``forward`` is the part that runs inside the trainer's DDP wrapper (so DDP synchronises the
    gradients of the backward that follows); ``backward`` drives it over a batch.
    """

    name: ClassVar[str]

    def __init__(self, pnet: PredictiveNet, settings: ObjectiveSettings) -> None:
        self.pnet = pnet
        self.settings = settings

    @abstractmethod
    def forward(self, *args: object) -> object:
        """The losses of one piece of work; called through ``Forward``."""

    @abstractmethod
    def backward(self, images: Tensor, forward: Forward, backward: Backward) -> Tensor:
        """Forward and backward of one batch; the [n_pcoders] detached losses."""


class ReconstructionObjective(Objective):
    """The paper's objective: [n_pcoders] MSE(decoder_n(a_n), a_{n-1}), a_0 = the image."""

    name = "reconstruction"

    def forward(self, *args: object) -> Tensor:
        (images,) = args
        assert isinstance(images, Tensor)
        with torch.no_grad():
            activations = self.pnet.feedforward_activations(images)
        targets = [images, *activations[:-1]]
        losses = []
        for index, pcoder in enumerate(self.pnet.pcoders):
            prediction = pcoder.decoder(activations[index])
            target = targets[index]
            if prediction.shape != target.shape:
                raise DataError(
                    f"pcoders[{index}] ({pcoder.module_path}): the decoder predicts "
                    f"{list(prediction.shape[1:])} but the layer below is "
                    f"{list(target.shape[1:])} for an input of shape {list(images.shape)}"
                )
            # In float32 even under autocast: a float16 sum of squares overflows easily.
            losses.append(F.mse_loss(prediction.float(), target.float()))
        return torch.stack(losses)

    def backward(self, images: Tensor, forward: Forward, backward: Backward) -> Tensor:
        losses = forward(images)
        assert isinstance(losses, Tensor)
        backward(losses.sum())
        return losses.detach()


class DynamicsObjective(Objective):
    """The prediction errors of T steps of the dynamics, summed over pcoders and t = 0..T."""

    name = "dynamics"

    def forward(self, *args: object) -> tuple[Tensor, PNetState]:
        images, state, steps = args
        assert isinstance(images, Tensor) and isinstance(steps, int)
        assert state is None or isinstance(state, PNetState)
        return self._window(images, state, steps)

    def backward(self, images: Tensor, forward: Forward, backward: Backward) -> Tensor:
        timesteps = self.settings.timesteps
        window = self.settings.tbptt or timesteps + 1
        remaining = timesteps + 1  # the start (t = 0) and T steps
        state: PNetState | None = None
        totals = torch.zeros(self.pnet.num_pcoders, device=images.device)
        while remaining > 0:
            # The first window also holds t = 0, so every window but the last has `tbptt` steps.
            steps = min(window, remaining)
            result = forward(images, state, steps)
            assert isinstance(result, tuple)
            window_losses, reached = result
            backward(window_losses.sum())
            totals += window_losses.detach()
            remaining -= steps
            state = _detached(reached)
        return totals

    def _window(
        self, images: Tensor, state: PNetState | None, steps: int
    ) -> tuple[Tensor, PNetState]:
        """Run ``steps`` steps (the start counts as one) and sum their [n_pcoders] errors."""
        total: Tensor | None = None
        for _ in range(steps):
            state = self.pnet.start(images) if state is None else self._step(state)
            assert state.errors is not None
            errors = state.errors.float()
            total = errors if total is None else total + errors
        assert total is not None and state is not None
        return total, state

    def _step(self, state: PNetState) -> PNetState:
        """One step of the dynamics, recomputed in backward when checkpointing activations."""
        if not self.settings.checkpoint_activations:
            return self.pnet.step(state)
        count = self.pnet.num_pcoders
        timestep = state.timestep

        def run(image: Tensor, *flat: Tensor) -> tuple[Tensor, ...]:
            previous = PNetState(
                input=image,
                timestep=timestep,
                logits=flat[0],  # not read by step(): only reps, preds and error terms are
                reps=list(flat[1 : 1 + count]),
                preds=list(flat[1 + count : 1 + 2 * count]),
                error_terms=list(flat[1 + 2 * count :]),
            )
            new = self.pnet.step(previous)
            assert new.errors is not None
            return (new.errors, new.logits, *new.reps, *new.preds, *new.error_terms)  # type: ignore[arg-type]

        outputs = activation_checkpoint(
            run,
            state.input,
            state.logits,
            *state.reps,
            *state.preds,  # type: ignore[arg-type]
            *state.error_terms,  # type: ignore[arg-type]
            use_reentrant=False,
        )
        return PNetState(
            input=state.input,
            timestep=timestep + 1,
            logits=outputs[1],
            reps=list(outputs[2 : 2 + count]),
            preds=list(outputs[2 + count : 2 + 2 * count]),
            error_terms=list(outputs[2 + 2 * count :]),
            errors=outputs[0],
        )


def _detached(state: PNetState) -> PNetState:
    """The state with every tensor cut from the graph: where a TBPTT window ends."""
    return PNetState(
        input=state.input,
        timestep=state.timestep,
        logits=state.logits.detach(),
        reps=[rep.detach() for rep in state.reps],
        preds=[p.detach() if p is not None else None for p in state.preds],
        error_terms=[e.detach() if e is not None else None for e in state.error_terms],
        errors=None,
    )


#: The objectives by name; [`ObjectiveSettings.name`][predify.train.objectives.ObjectiveSettings]
#: picks one.
OBJECTIVES: dict[str, type[Objective]] = {
    objective.name: objective for objective in (ReconstructionObjective, DynamicsObjective)
}


def build_objective(pnet: PredictiveNet, settings: ObjectiveSettings) -> Objective:
    """The objective ``settings`` select, over ``pnet``."""
    return OBJECTIVES[settings.name](pnet, settings)
