"""One pcoder: a decoder, its hyperparameters, and the update of its representation.

For pcoder n with representation e_n, decoder d_n and target e_{n-1} (the image for n = 1):

    e_n(t) = beta * ff_n(t) + lambda * d_{n+1}(t-1) + (1 - beta - lambda) * e_n(t-1)
             - alpha * s_n * g_n(t-1)

with g_n the gradient of MSE(d_n(e_n), e_{n-1}) with respect to e_n and s_n = 1, or
numel(d_n) / sqrt(C_n) with gradient scaling (C_n: the decoder's fan-out,
[`decoder_fan_out()`][predify.pcoder.decoder_fan_out]).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.grad import conv2d_input

from .config import Hyperparameters
from .errors import ConfigError, DataError
from .layers import Permute, TokensToGrid

__all__ = [
    "HyperparameterModule",
    "PCoder",
    "decoder_fan_out",
    "error_gradient",
]

# Smallest mixing weight a learnable parameterisation starts from: softmax cannot reach 0.
_MIN_LEARNABLE_WEIGHT = 1e-6


class HyperparameterModule(nn.Module):
    """beta (feedforward), lambda (feedback), memory = 1 - beta - lambda and alpha (pc).

    Fixed values are buffers. Learnable ones are parameterised so that the update stays a convex
    mixture: ``(beta, lambda, memory) = softmax(mixing_logits)`` and
    ``alpha = softplus(alpha_raw)``,
    so beta, lambda and memory stay in [0, 1] and sum to 1, and alpha stays >= 0. A module without
    feedback (the top pcoder) has lambda = 0 and mixes beta with memory only.
    """

    fixed: Tensor

    def __init__(self, values: Hyperparameters, has_feedback: bool = True, learnable: bool = False):
        super().__init__()
        self.has_feedback = has_feedback
        self.learnable = False
        self.register_buffer("fixed", torch.zeros(3), persistent=True)
        self.mixing_logits: nn.Parameter | None = None
        self.alpha_raw: nn.Parameter | None = None
        self._floats: tuple[float, float, float] | None = None
        self.set(values)
        if learnable:
            self.set_learnable(True)

    # ------------------------------------------------------------------ values
    def set(self, values: Hyperparameters) -> None:
        """Set the values (validated); keeps the module fixed or learnable as it was."""
        values.validate("hyperparameters", has_feedback=True)
        feedback = values.feedback if self.has_feedback else 0.0
        with torch.no_grad():
            self.fixed.copy_(torch.tensor([values.feedforward, feedback, values.pc]))
            if self.learnable:
                self._set_learnable_from(values.feedforward, feedback, values.pc)
        self._floats = None if self.learnable else (values.feedforward, feedback, values.pc)

    def set_learnable(self, learnable: bool) -> None:
        """Switch between fixed buffers and trainable parameters, keeping the current values."""
        if learnable == self.learnable:
            return
        current = self.values()
        if learnable:
            device = self.fixed.device
            self.mixing_logits = nn.Parameter(torch.zeros(3, device=device))
            self.alpha_raw = nn.Parameter(torch.zeros((), device=device))
            self.learnable = True
            with torch.no_grad():
                self._set_learnable_from(current.feedforward, current.feedback, current.pc)
            self._floats = None
        else:
            with torch.no_grad():
                self.fixed.copy_(torch.tensor([current.feedforward, current.feedback, current.pc]))
            self.mixing_logits = None
            self.alpha_raw = None
            self.learnable = False
            self._floats = (current.feedforward, current.feedback, current.pc)

    def _set_learnable_from(self, beta: float, lam: float, alpha: float) -> None:
        assert self.mixing_logits is not None and self.alpha_raw is not None
        memory = max(1.0 - beta - lam, 0.0)
        weights = [max(w, _MIN_LEARNABLE_WEIGHT) for w in (beta, lam, memory)]
        self.mixing_logits.copy_(torch.log(torch.tensor(weights)))
        alpha = max(alpha, _MIN_LEARNABLE_WEIGHT)
        # inverse softplus
        self.alpha_raw.copy_(torch.tensor(alpha + math.log(-math.expm1(-alpha))))

    def weights(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(beta, lambda, memory, alpha) as 0-dim tensors (differentiable when learnable)."""
        if self.learnable:
            assert self.mixing_logits is not None and self.alpha_raw is not None
            if self.has_feedback:
                beta, lam, memory = torch.softmax(self.mixing_logits, dim=0).unbind()
            else:
                beta, memory = torch.softmax(self.mixing_logits[[0, 2]], dim=0).unbind()
                lam = torch.zeros_like(beta)
            return beta, lam, memory, F.softplus(self.alpha_raw)
        beta, lam, alpha = self.fixed.unbind()
        return beta, lam, 1 - beta - lam, alpha

    def floats(self) -> tuple[float, float, float] | None:
        """(beta, lambda, alpha) as Python floats when fixed, for the fast path; else None."""
        return self._floats

    def values(self) -> Hyperparameters:
        """The current values as a plain [`Hyperparameters`][predify.config.Hyperparameters]."""
        if self._floats is not None:
            return Hyperparameters(*self._floats)
        # The shortest decimal that the float32 holds: 0.3, not 0.30000001192092896.
        beta, lam, _, alpha = (float(str(w.detach().cpu().numpy())) for w in self.weights())
        return Hyperparameters(feedforward=beta, feedback=lam, pc=alpha)

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
        # A checkpoint saved with learnable hyperparameters loads into a fixed module and back.
        learnable_in_file = f"{prefix}mixing_logits" in state_dict
        if learnable_in_file != self.learnable:
            self.set_learnable(learnable_in_file)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing, unexpected, errors
        )
        if not self.learnable:
            beta, lam, alpha = (float(str(v)) for v in self.fixed.cpu().numpy())
            self._floats = (beta, lam if self.has_feedback else 0.0, alpha)

    def extra_repr(self) -> str:
        values = self.values()
        kind = "learnable" if self.learnable else "fixed"
        return (
            f"beta={values.feedforward:.4g}, lambda={values.feedback:.4g}, "
            f"memory={values.memory:.4g}, alpha={values.pc:.4g}, {kind}"
        )


# ---------------------------------------------------------------------- decoders
def _flatten(decoder: nn.Module) -> list[nn.Module] | None:
    """The layers of a decoder made of layers with a known adjoint, or None."""
    if isinstance(decoder, nn.Sequential):
        layers: list[nn.Module] = []
        for child in decoder:
            inner = _flatten(child)
            if inner is None:
                return None
            layers.extend(inner)
        return layers
    if isinstance(decoder, (nn.ReLU, nn.Identity, nn.Linear, TokensToGrid, Permute)):
        return [decoder]
    if isinstance(decoder, (nn.ConvTranspose2d, nn.Conv2d)) and decoder.padding_mode == "zeros":
        if isinstance(decoder, nn.ConvTranspose2d) or isinstance(decoder.padding, tuple):
            return [decoder]
        return None
    if (
        isinstance(decoder, nn.Upsample)
        and decoder.mode in ("nearest", "bilinear")
        and not decoder.recompute_scale_factor
    ):
        return [decoder]
    return None


def _upsample_adjoint(layer: nn.Upsample, grad: Tensor, input_shape: torch.Size) -> Tensor:
    output_size = list(grad.shape[-2:])
    input_size = list(input_shape)
    scales: Sequence[float | None] = (None, None)
    if layer.scale_factor is not None:
        factor = layer.scale_factor
        scales = tuple(factor) if isinstance(factor, tuple) else (factor, factor)
    if torch.compiler.is_compiling():
        # Under torch.compile with a dynamic batch size, the aten backward ops below receive a
        # size list mixing ints and symbols, which their meta functions reject (torch 2.14).
        # The adjoint as two small matrices (one per spatial axis) compiles at any batch size.
        rows = _interpolation_matrix(
            int(output_size[0]), int(input_size[-2]), layer, scales[0], grad
        )
        columns = _interpolation_matrix(
            int(output_size[1]), int(input_size[-1]), layer, scales[1], grad
        )
        return torch.einsum("oh,bcow,wv->bchv", rows, grad, columns)
    if layer.mode == "bilinear":
        return torch.ops.aten.upsample_bilinear2d_backward(
            grad, output_size, input_size, bool(layer.align_corners), scales[0], scales[1]
        )
    return torch.ops.aten.upsample_nearest2d_backward(
        grad, output_size, input_size, scales[0], scales[1]
    )


def _interpolation_matrix(
    output_size: int, input_size: int, layer: nn.Upsample, scale: float | None, like: Tensor
) -> Tensor:
    """M [output_size, input_size] with upsample(x) = M x along one axis, for ``layer``'s mode;
    the source-index arithmetic is aten's (``area_pixel_compute_source_index``, ``nearest_idx``)."""
    # aten computes source positions in float, or double for double tensors.
    exact = torch.float64 if like.dtype == torch.float64 else torch.float32
    destination = torch.arange(output_size, device=like.device, dtype=exact)
    matrix = torch.zeros(output_size, input_size, device=like.device, dtype=exact)
    rows = torch.arange(output_size, device=like.device)
    if layer.mode == "nearest":
        ratio = 1.0 / scale if scale else input_size / output_size
        source = torch.floor(destination * ratio).long().clamp(max=input_size - 1)
        matrix[rows, source] = 1.0
        return matrix.to(like.dtype)
    if layer.align_corners:
        ratio = (input_size - 1) / (output_size - 1) if output_size > 1 else 0.0
        position = destination * ratio
    else:
        ratio = 1.0 / scale if scale else input_size / output_size
        position = ((destination + 0.5) * ratio - 0.5).clamp(min=0.0)
    lower = position.long().clamp(max=input_size - 1)
    upper = (lower + 1).clamp(max=input_size - 1)
    weight_upper = position - lower
    matrix.index_put_((rows, lower), 1.0 - weight_upper, accumulate=True)
    matrix.index_put_((rows, upper), weight_upper, accumulate=True)
    return matrix.to(like.dtype)


def _conv2d_adjoint(layer: nn.Conv2d, grad: Tensor, input_shape: torch.Size) -> Tensor:
    return conv2d_input(
        list(input_shape),
        layer.weight,
        grad,
        stride=layer.stride,
        padding=layer.padding,  # type: ignore[arg-type]
        dilation=layer.dilation,
        groups=layer.groups,
    )


def _analytic_decode_and_vjp(
    layers: list[nn.Module], rep: Tensor, target: Tensor, coefficient: Tensor | float
) -> tuple[Tensor, Tensor, Tensor]:
    """Decode ``rep`` and apply the decoder's transposed Jacobian by hand.

    Returns the prediction, prediction - target, and J^T (coefficient * (prediction - target)).
    Built from differentiable ops, so it also serves when gradients flow through the dynamics.
    """
    shapes: list[torch.Size] = []
    masks: list[Tensor | None] = []
    activation = rep
    for layer in layers:
        shapes.append(activation.shape)
        activation = layer(activation)
        masks.append(activation > 0 if isinstance(layer, nn.ReLU) else None)
    _check_prediction_shape(activation, target)
    difference = activation - target
    grad = difference * coefficient
    for layer, shape, mask in zip(reversed(layers), reversed(shapes), reversed(masks), strict=True):
        if mask is not None:
            grad = grad * mask
        elif isinstance(layer, nn.ConvTranspose2d):
            grad = F.conv2d(
                grad, layer.weight, None, layer.stride, layer.padding, layer.dilation, layer.groups
            )
        elif isinstance(layer, nn.Conv2d):
            grad = _conv2d_adjoint(layer, grad, shape)
        elif isinstance(layer, nn.Upsample):
            grad = _upsample_adjoint(layer, grad, shape)
        elif isinstance(layer, nn.Linear):
            grad = grad @ layer.weight
        elif isinstance(layer, TokensToGrid):
            # [B, D, H, W] -> the patch tokens [B, H*W, D]; the prefix tokens get zero.
            patches = grad.flatten(2).transpose(1, 2)
            grad = F.pad(patches, (0, 0, layer.prefix_tokens, 0))
        elif isinstance(layer, Permute):
            grad = grad.permute(*sorted(range(len(layer.dims)), key=layer.dims.__getitem__))
    return activation, difference, grad


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

    Decoders built of transposed and plain 2-D convolutions, upsampling, ReLUs, ``Linear``,
    [`TokensToGrid`][predify.layers.TokensToGrid] and [`Permute`][predify.layers.Permute] get their
    transposed Jacobian applied by hand; others through autograd.

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
    layers = _flatten(decoder)
    # Token maps [B, tokens, dim] are decoded by layers that start with a token-wise or layout
    # layer; convolutions alone assume [B, C, H, W].
    if layers is not None and (
        rep.dim() == 4
        or (bool(layers) and isinstance(layers[0], (nn.Linear, TokensToGrid, Permute)))
    ):
        return _analytic_decode_and_vjp(layers, rep, target, coefficient)
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


# Layers that act on each channel alone: an impulse in channel 0 stays in channel 0 through them.
_CHANNELWISE = (nn.Upsample, nn.ReLU, nn.Identity)
_CONVOLUTIONS = (nn.Conv2d, nn.ConvTranspose2d, nn.Conv3d, nn.ConvTranspose3d)


def _one_input_channel(layer: nn.Module) -> nn.Module | None:
    """A fresh copy of a plain convolution that reads input channel 0 only, or None."""
    if type(layer) not in _CONVOLUTIONS or layer.groups != 1:  # type: ignore[attr-defined]
        return None
    conv = cast(nn.modules.conv._ConvNd, layer)
    common: dict[str, Any] = {
        "stride": conv.stride,
        "padding": conv.padding,
        "dilation": conv.dilation,
        "bias": conv.bias is not None,
        "padding_mode": conv.padding_mode,
    }
    if conv.transposed:
        common["output_padding"] = conv.output_padding
    # Built on the meta device, then given (uninitialised) storage: the probe's weights are all
    # set to 1 anyway, and a real initialisation would draw from the global RNG.
    sliced = type(conv)(1, conv.out_channels, conv.kernel_size, device="meta", **common)
    return sliced.to_empty(device="cpu")


def _fan_out_probe(decoder: nn.Module, channels: int) -> tuple[nn.Module, int]:
    """A copy of ``decoder`` to measure the fan-out of channel 0 on, and its input channels.

    Only channel 0 of the impulse is non-zero, so the first convolution (after channel-wise
    layers) may read that channel alone: the count is the same, and the probe of a
    ConvTranspose2d(512, 512, 14) costs a 512th of a full one.
    """
    layers = list(decoder) if isinstance(decoder, nn.Sequential) else [decoder]
    for index, layer in enumerate(layers):
        sliced = _one_input_channel(layer)
        if sliced is not None:
            head = [copy.deepcopy(m) for m in layers[:index]]
            tail = [copy.deepcopy(m) for m in layers[index + 1 :]]
            return nn.Sequential(*head, sliced, *tail), 1
        if type(layer) not in _CHANNELWISE:
            break
    return copy.deepcopy(decoder), channels


def decoder_fan_out(decoder: nn.Module, rep_shape: Sequence[int]) -> int:
    """C: how many prediction elements of one sample depend on one element of the representation.

    Measured for the element at the centre of every dimension (for token maps: of the middle
    token, a patch token), on a copy of the decoder whose weights are all ones and biases
    zero, in float64 and eval mode. With non-negative weights nothing cancels and every ReLU
    passes its (non-negative) input, so the count is the structural fan-out with ReLUs counted as
    active: exact and deterministic, unlike the reference, which estimated it by random
    perturbation for decoders ending in a ReLU. A token-wise ``Linear(dim, dim_below)`` gives
    dim_below; a transposed patch embedding with p x q patches and C channels gives C * p * q.

    Args:
        decoder: the decoder module (left unchanged).
        rep_shape: shape of one representation sample, (C, H, W), (C, D, H, W), (H, W, C) or
            (tokens, dim).
    """
    probe, channels = _fan_out_probe(decoder, rep_shape[0])
    rep_shape = (channels, *rep_shape[1:])
    probe = probe.to(device="cpu", dtype=torch.float64).eval()
    with torch.no_grad():
        for name, parameter in probe.named_parameters():
            parameter.fill_(0.0 if name.endswith("bias") else 1.0)
        for name, buffer in probe.named_buffers():
            if name.endswith("running_mean"):
                buffer.zero_()
            elif name.endswith("running_var"):
                buffer.fill_(1.0)
        impulse = torch.zeros(1, *rep_shape, dtype=torch.float64)
        # The centre of every dimension: spatially away from the borders whatever the layout
        # (channels first or last), and for token maps a patch token, not a leading prefix token
        # that a decoder of the image ignores. With all-ones weights every channel counts alike.
        centre = (0, *(size // 2 for size in rep_shape))
        impulse[centre] = 1.0
        response = probe(impulse) - probe(torch.zeros_like(impulse))
    count = int((response != 0).sum())
    if count == 0:
        raise ConfigError(
            "cannot compute the gradient-scaling constant: the decoder's output does not depend "
            "on its input; set c_sqrt explicitly"
        )
    return count


class PCoder(nn.Module):
    """One pcoder: the decoder that predicts the layer below, and the update of its layer.

    Attributes:
        decoder: maps a representation [B, C_n, H_n, W_n] to a prediction of the layer below,
            [B, C_{n-1}, H_{n-1}, W_{n-1}] (the image for the first pcoder).
        hyperparameters: beta, lambda, alpha (possibly shared with other pcoders).
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
        self, feedforward: Tensor, feedback: Tensor | None, rep: Tensor, error_term: Tensor
    ) -> Tensor:
        """e(t) from ff(t), the prediction from above d(t-1), e(t-1) and alpha * s * g(t-1)."""
        floats = self._floats_for_eager()
        if floats is None:
            beta_t, lam_t, memory_t, _ = self.hyperparameters.weights()
            if not self.has_feedback or feedback is None:
                return beta_t * feedforward + (1 - beta_t) * rep - error_term
            return beta_t * feedforward + lam_t * feedback + memory_t * rep - error_term
        beta, lam, _ = floats
        top_down = feedback if self.has_feedback and lam != 0.0 else None
        memory = 1.0 - beta - lam if self.has_feedback else 1.0 - beta
        if torch.is_grad_enabled():
            new = feedforward * beta + rep * memory - error_term
            return new if top_down is None else new + top_down * lam
        # No graph to keep: accumulate in place, one buffer instead of four temporaries.
        new = torch.mul(feedforward, beta)
        if top_down is not None:
            new.add_(top_down, alpha=lam)
        new.add_(rep, alpha=memory)
        return new.sub_(error_term)

    def error_coefficient(self, prediction_numel: int) -> Tensor | float:
        """What multiplies (d - target) before the VJP: alpha * s * 2 / numel(d)."""
        if self.gradient_scaling and torch.compiler.is_compiling():
            return self.hyperparameters.weights()[3] * self.gradient_scale
        floats = self._floats_for_eager()
        scale = 2.0 / self._c_sqrt if self.gradient_scaling else 2.0 / prediction_numel
        if floats is not None and not torch.is_grad_enabled():
            return floats[2] * scale
        return self.hyperparameters.weights()[3] * scale

    def predict(self, rep: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(d(t), d(t) - target, alpha * s * g(t))`` for the representation e(t)."""
        return error_gradient(self.decoder, rep, target, self.error_coefficient(target.numel()))

    def extra_repr(self) -> str:
        parts = [f"module={self.module_path!r}", f"has_feedback={self.has_feedback}"]
        if self.gradient_scaling:
            parts.append(f"gradient_scaling=True, c_sqrt={self._c_sqrt:.6g}")
        return ", ".join(parts)
