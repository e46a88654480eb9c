"""The hyperparameters of a pcoder as a module: fixed buffers, or trainable parameters.

The weights are the config's [`Hyperparameters`][predify.config.Hyperparameters]: feedforward
(the papers' beta), feedback (lambda), pc (alpha), and memory = 1 - feedforward - feedback.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import Hyperparameters

__all__ = ["HyperparameterModule", "MixingWeights"]

# Smallest mixing weight a learnable parameterisation starts from: softmax cannot reach 0.
_MIN_LEARNABLE_WEIGHT = 1e-6

# State-dict names of files written before the hyperparameters had one vocabulary: read only.
_OLD_PARAMETER_NAMES = {"alpha_raw": "pc_raw"}


class MixingWeights(NamedTuple):
    """The weights of one update as 0-dim tensors (differentiable when learnable)."""

    feedforward: Tensor
    feedback: Tensor
    memory: Tensor
    pc: Tensor


def rename_old_parameters(state: dict[str, Tensor], prefix: str = "") -> None:
    """Rename, in place, the state-dict keys of earlier versions (``hyperparameters.alpha_raw``)
    under ``prefix`` to the current ones (``hyperparameters.pc_raw``)."""
    for key in [key for key in state if key.startswith(prefix)]:
        head, _, name = key.rpartition(".")
        if name in _OLD_PARAMETER_NAMES:
            new = f"{head}.{_OLD_PARAMETER_NAMES[name]}" if head else _OLD_PARAMETER_NAMES[name]
            state.setdefault(new, state.pop(key))


class HyperparameterModule(nn.Module):
    """feedforward, feedback, memory = 1 - feedforward - feedback, and pc, as a module.

    Fixed values are buffers. Learnable ones are parameterised so that the update stays a convex
    mixture: ``(feedforward, feedback, memory) = softmax(mixing_logits)`` and
    ``pc = softplus(pc_raw)``, so the three mixing weights stay in [0, 1] and sum to 1, and pc
    stays >= 0. A module without feedback (the top pcoder) has feedback = 0 and mixes
    feedforward with memory only.
    """

    fixed: Tensor

    def __init__(self, values: Hyperparameters, has_feedback: bool = True, learnable: bool = False):
        super().__init__()
        self.has_feedback = has_feedback
        self.learnable = False
        self.register_buffer("fixed", torch.zeros(3), persistent=True)
        self.mixing_logits: nn.Parameter | None = None
        self.pc_raw: nn.Parameter | None = None
        self._floats: tuple[float, float, float] | None = None
        self.set(values)
        if learnable:
            self.set_learnable(True)

    # ------------------------------------------------------------------ values
    def set(self, values: Hyperparameters) -> None:
        """Set the values (validated); keeps the module fixed or learnable as it was."""
        values.validate("hyperparameters", has_feedback=True)
        if not self.has_feedback:
            values = Hyperparameters(values.feedforward, 0.0, values.pc)
        with torch.no_grad():
            self.fixed.copy_(torch.tensor([values.feedforward, values.feedback, values.pc]))
            if self.learnable:
                self._set_learnable_from(values)
        self._floats = None if self.learnable else (values.feedforward, values.feedback, values.pc)

    def set_learnable(self, learnable: bool) -> None:
        """Switch between fixed buffers and trainable parameters, keeping the current values."""
        if learnable == self.learnable:
            return
        current = self.values()
        if learnable:
            device = self.fixed.device
            self.mixing_logits = nn.Parameter(torch.zeros(3, device=device))
            self.pc_raw = nn.Parameter(torch.zeros((), device=device))
            self.learnable = True
            with torch.no_grad():
                self._set_learnable_from(current)
            self._floats = None
        else:
            with torch.no_grad():
                self.fixed.copy_(torch.tensor([current.feedforward, current.feedback, current.pc]))
            self.mixing_logits = None
            self.pc_raw = None
            self.learnable = False
            self._floats = (current.feedforward, current.feedback, current.pc)

    def _set_learnable_from(self, values: Hyperparameters) -> None:
        assert self.mixing_logits is not None and self.pc_raw is not None
        memory = max(values.memory, 0.0)
        weights = [max(w, _MIN_LEARNABLE_WEIGHT) for w in (values.feedforward, values.feedback)]
        weights.append(max(memory, _MIN_LEARNABLE_WEIGHT))
        self.mixing_logits.copy_(torch.log(torch.tensor(weights)))
        pc = max(values.pc, _MIN_LEARNABLE_WEIGHT)
        # inverse softplus
        self.pc_raw.copy_(torch.tensor(pc + math.log(-math.expm1(-pc))))

    def weights(self) -> MixingWeights:
        """(feedforward, feedback, memory, pc) as 0-dim tensors (differentiable when learnable)."""
        if self.learnable:
            assert self.mixing_logits is not None and self.pc_raw is not None
            if self.has_feedback:
                feedforward, feedback, memory = torch.softmax(self.mixing_logits, dim=0).unbind()
            else:
                feedforward, memory = torch.softmax(self.mixing_logits[[0, 2]], dim=0).unbind()
                feedback = torch.zeros_like(feedforward)
            return MixingWeights(feedforward, feedback, memory, F.softplus(self.pc_raw))
        feedforward, feedback, pc = self.fixed.unbind()
        return MixingWeights(feedforward, feedback, 1 - feedforward - feedback, pc)

    def floats(self) -> tuple[float, float, float] | None:
        """(feedforward, feedback, pc) as Python floats when fixed, for the fast path; else
        None."""
        return self._floats

    def values(self) -> Hyperparameters:
        """The current values as a plain [`Hyperparameters`][predify.config.Hyperparameters]."""
        if self._floats is not None:
            return Hyperparameters(*self._floats)
        # The shortest decimal that the float32 holds: 0.3, not 0.30000001192092896.
        weights = self.weights()
        feedforward, feedback, pc = (
            float(str(w.detach().cpu().numpy()))
            for w in (weights.feedforward, weights.feedback, weights.pc)
        )
        return Hyperparameters(feedforward=feedforward, feedback=feedback, pc=pc)

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Tensor],
        prefix: str,
        local_metadata: dict[str, object],
        strict: bool,
        missing: list[str],
        unexpected: list[str],
        errors: list[str],
    ) -> None:
        rename_old_parameters(state_dict, prefix)
        # A checkpoint saved with learnable hyperparameters loads into a fixed module and back.
        learnable_in_file = f"{prefix}mixing_logits" in state_dict
        if learnable_in_file != self.learnable:
            self.set_learnable(learnable_in_file)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing, unexpected, errors
        )
        if not self.learnable:
            feedforward, feedback, pc = (float(str(v)) for v in self.fixed.cpu().numpy())
            self._floats = (feedforward, feedback if self.has_feedback else 0.0, pc)

    def extra_repr(self) -> str:
        values = self.values()
        kind = "learnable" if self.learnable else "fixed"
        return (
            f"feedforward={values.feedforward:.4g}, feedback={values.feedback:.4g}, "
            f"memory={values.memory:.4g}, pc={values.pc:.4g}, {kind}"
        )
