"""One pcoder: a decoder, its hyperparameters, and the update of its representation.

For pcoder n with representation e_n, decoder d_n and target e_{n-1} (the image for n = 1):

    e_n(t) = feedforward * ff_n(t) + feedback * d_{n+1}(t-1)
             + (1 - feedforward - feedback) * e_n(t-1) - pc * s_n * g_n(t-1)

(the papers' beta, lambda and alpha are feedforward, feedback and pc), with g_n the gradient of
MSE(d_n(e_n), e_{n-1}) with respect to e_n and s_n = 1, or numel(d_n) / sqrt(C_n) with gradient
scaling (C_n: the decoder's fan-out, [`decoder_fan_out()`][predify.fan_out.decoder_fan_out]).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .decoder_layers import analytic_layers, decode_with_adjoint, takes_rank
from .errors import ConfigError, DataError
from .hyperparameter_module import HyperparameterModule

__all__ = ["PCoder", "error_gradient"]


def _check_prediction_shape(prediction: Tensor, target: Tensor) -> None:
    if prediction.shape != target.shape:
        raise DataError(
            f"the decoder predicts {list(prediction.shape[1:])} but the layer below is "
            f"{list(target.shape[1:])}"
        )


def error_gradient(
    decoder: nn.Module, rep: Tensor, target: Tensor, coefficient: Tensor | float
) -> tuple[Tensor, Tensor, Tensor]:
    """Predict from ``rep`` and compute the scaled gradient of the prediction error.

    Decoders built only of layers with a hand-written adjoint (transposed and plain 2-D
    convolutions, upsampling, ReLUs, ``Linear``, [`TokensToGrid`][predify.layers.TokensToGrid],
    [`Permute`][predify.layers.Permute]; see the registry
    [`predify.decoder_layers`][predify.decoder_layers]) get their transposed Jacobian applied by
    hand; others through autograd.

    Args:
        decoder: maps ``rep`` ([B, C, H, W], [B, H, W, C] or tokens [B, N, D]) to a prediction
            of ``target``'s shape.
        rep: the representation e_n.
        target: what the decoder predicts, e_{n-1} or the image.
        coefficient: multiplies d - target before the transposed Jacobian; ``2 / numel`` gives the
            gradient of the MSE.

    Returns:
        ``(prediction, prediction - target, J^T (coefficient * (prediction - target)))``. When
        gradients are enabled and anything requires them, all three are differentiable (the
        gradient term with its second-order dependence); otherwise no graph is kept.
    """
    layers = analytic_layers(decoder)
    if layers is not None and takes_rank(layers, rep.dim()):
        prediction, transpose = decode_with_adjoint(layers, rep)
        _check_prediction_shape(prediction, target)
        difference = prediction - target
        return prediction, difference, transpose(difference * coefficient)
    if torch.is_inference_mode_enabled():
        # Autograd does not run on inference tensors: compute on copies outside the mode.
        with torch.inference_mode(False):
            return error_gradient(decoder, rep.clone(), target.clone(), coefficient)
    differentiable = torch.is_grad_enabled() and (
        rep.requires_grad
        or target.requires_grad
        or (isinstance(coefficient, Tensor) and coefficient.requires_grad)
        or any(p.requires_grad for p in decoder.parameters())
    )
    with torch.enable_grad():
        leaf = rep if rep.requires_grad and differentiable else rep.detach().requires_grad_()
        prediction = decoder(leaf)
        _check_prediction_shape(prediction, target)
        difference = prediction - target
        (grad,) = torch.autograd.grad(
            prediction,
            leaf,
            grad_outputs=(difference if differentiable else difference.detach()) * coefficient,
            create_graph=differentiable,
        )
    if not differentiable:
        return prediction.detach(), difference.detach(), grad.detach()
    return prediction, difference, grad


class PCoder(nn.Module):
    """One pcoder: the decoder that predicts the layer below, and the update of its layer.

    Attributes:
        decoder: maps a representation [B, C_n, H_n, W_n] to a prediction of the layer below,
            [B, C_{n-1}, H_{n-1}, W_{n-1}] (the image for the first pcoder).
        hyperparameters: feedforward, feedback, pc (possibly shared with other pcoders).
        has_feedback: False for the top pcoder, which has no pcoder above it.
        gradient_scaling: scale the error gradient by numel(prediction) / c_sqrt.
        module_path: the backbone module whose output this pcoder updates.
    """

    gradient_scale: Tensor

    def __init__(
        self,
        decoder: nn.Module,
        hyperparameters: HyperparameterModule,
        *,
        has_feedback: bool,
        gradient_scaling: bool = False,
        c_sqrt: float = 1.0,
        module_path: str = "",
    ) -> None:
        super().__init__()
        self.decoder = decoder
        self.hyperparameters = hyperparameters
        self.has_feedback = has_feedback
        self.gradient_scaling = gradient_scaling
        self.module_path = module_path
        self._c_sqrt = 1.0
        # 2 / c_sqrt as a tensor for compiled code: a Python float that differs between two
        # compiled networks becomes a symbolic input, which nested compile regions reject.
        self.register_buffer("gradient_scale", torch.tensor(2.0), persistent=False)
        self.c_sqrt = c_sqrt

    @property
    def c_sqrt(self) -> float:
        """sqrt(C), the gradient-scaling constant (used when ``gradient_scaling``)."""
        return self._c_sqrt

    @c_sqrt.setter
    def c_sqrt(self, value: float) -> None:
        value = float(value)
        if not math.isfinite(value) or value <= 0:
            raise ConfigError(f"{self.module_path or 'pcoder'}: c_sqrt must be > 0, got {value}")
        self._c_sqrt = value
        with torch.no_grad():
            self.gradient_scale.fill_(2.0 / value)

    def get_extra_state(self) -> dict[str, float]:
        return {"c_sqrt": self._c_sqrt}

    def set_extra_state(self, state: dict[str, float]) -> None:
        if "c_sqrt" in state:
            self.c_sqrt = float(state["c_sqrt"])

    def _floats_for_eager(self) -> tuple[float, float, float] | None:
        # Compiled code would guard on Python floats and recompile for every new value (each
        # tuning trial); the buffer's tensors are graph inputs instead.
        if torch.compiler.is_compiling():
            return None
        return self.hyperparameters.floats()

    def update(
        self, drive: Tensor, above: Tensor | None, rep: Tensor, error_term: Tensor
    ) -> Tensor:
        """e(t) from the feed-forward drive ff(t), the prediction from above d(t-1), e(t-1) and
        the error term pc * s * g(t-1)."""
        floats = self._floats_for_eager()
        if floats is None:
            weights = self.hyperparameters.weights()
            if not self.has_feedback or above is None:
                return weights.feedforward * drive + (1 - weights.feedforward) * rep - error_term
            return (
                weights.feedforward * drive
                + weights.feedback * above
                + weights.memory * rep
                - error_term
            )
        feedforward, feedback, _ = floats
        top_down = above if self.has_feedback and feedback != 0.0 else None
        memory = 1.0 - feedforward - feedback if self.has_feedback else 1.0 - feedforward
        if torch.is_grad_enabled():
            new = drive * feedforward + rep * memory - error_term
            return new if top_down is None else new + top_down * feedback
        # No graph to keep: accumulate in place, one buffer instead of four temporaries.
        new = torch.mul(drive, feedforward)
        if top_down is not None:
            new.add_(top_down, alpha=feedback)
        new.add_(rep, alpha=memory)
        return new.sub_(error_term)

    def error_coefficient(self, prediction_numel: int) -> Tensor | float:
        """What multiplies (d - target) before the VJP: pc * s * 2 / numel(d)."""
        if self.gradient_scaling and torch.compiler.is_compiling():
            return self.hyperparameters.weights().pc * self.gradient_scale
        floats = self._floats_for_eager()
        scale = 2.0 / self._c_sqrt if self.gradient_scaling else 2.0 / prediction_numel
        if floats is not None and not torch.is_grad_enabled():
            return floats[2] * scale
        return self.hyperparameters.weights().pc * scale

    def predict(self, rep: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(d(t), d(t) - target, pc * s * g(t))`` for the representation e(t)."""
        return error_gradient(self.decoder, rep, target, self.error_coefficient(target.numel()))

    def extra_repr(self) -> str:
        parts = [f"module={self.module_path!r}", f"has_feedback={self.has_feedback}"]
        if self.gradient_scaling:
            parts.append(f"gradient_scaling=True, c_sqrt={self._c_sqrt:.6g}")
        return ", ".join(parts)
