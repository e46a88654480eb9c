"""Building a :class:`~predify.network.PredictiveNet` from a backbone and a config."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .config import ConfigSource, Hyperparameters, PCoderConfig, PNetConfig, load_config
from .errors import ConfigError, warn_outside_predify
from .modules import dry_run, eval_mode, resolve_module
from .network import PredictiveNet
from .parsing import parse_predictor
from .pcoder import HyperparameterModule, PCoder, decoder_fan_out

__all__ = ["auto_config", "auto_predictor", "predify"]


def _format_scale(value: float) -> str:
    return repr(float(value))


def auto_predictor(rep_shape: Sequence[int], target_shape: Sequence[int], where: str = "") -> str:
    """The reference's automatic decoder as a predictor string.

    ``Sequential(Upsample(scale_factor=(r, r), mode="bilinear"), ConvTranspose2d(c_in, c_out, 3,
    1, 1))`` when the target is r times larger, else ``Sequential(ConvTranspose2d(...))``;
    trilinear and ConvTranspose3d for volumes.

    Args:
        rep_shape: one sample of the representation, (C, H, W) or (C, D, H, W).
        target_shape: one sample of what it predicts, same rank.
    """
    label = f"{where}: " if where else ""
    if len(rep_shape) not in (3, 4) or len(target_shape) != len(rep_shape):
        raise ConfigError(
            f"{label}automatic decoders need convolutional feature maps of the same rank, got "
            f"{list(rep_shape)} predicting {list(target_shape)}; give a predictor string"
        )
    c_in, c_out = rep_shape[0], target_shape[0]
    ratios = [t / r for t, r in zip(target_shape[1:], rep_shape[1:], strict=True)]
    volumetric = len(rep_shape) == 4
    conv = "ConvTranspose3d" if volumetric else "ConvTranspose2d"
    layers = []
    if any(ratio != 1 for ratio in ratios):
        exact = all(
            math.floor(r * ratio) == t
            for r, t, ratio in zip(rep_shape[1:], target_shape[1:], ratios, strict=True)
        )
        mode = "trilinear" if volumetric else "bilinear"
        if exact:
            scale = ", ".join(_format_scale(ratio) for ratio in ratios)
            layers.append(f"Upsample(scale_factor=({scale}), mode='{mode}')")
        else:
            size = ", ".join(str(int(t)) for t in target_shape[1:])
            layers.append(f"Upsample(size=({size}), mode='{mode}')")
    layers.append(f"{conv}({c_in}, {c_out}, kernel_size=3, stride=1, padding=1)")
    return f"Sequential({', '.join(layers)})"


#: timm's EfficientNets had ``bn1`` then ``act1`` (and ``bn2``/``act2``) when the paper was
#: written; timm now folds each activation into a ``BatchNormAct2d`` at ``bn1``/``bn2``, whose
#: output is the old ``act1``/``act2`` output. Configs written then (predify2021's
#: ``config_PEfficientNetB0.toml`` names ``act1``) keep building.
_FOLDED_TIMM_ACTIVATIONS = {"act1": "bn1", "act2": "bn2"}


def _resolve_legacy_path(backbone: nn.Module, path: str, where: str) -> nn.Module | None:
    norm = _FOLDED_TIMM_ACTIVATIONS.get(path.strip())
    if norm is None or hasattr(backbone, path.strip()):
        return None
    module = getattr(backbone, norm, None)
    if not isinstance(module, nn.Module) or type(module).__name__ != "BatchNormAct2d":
        return None
    warn_outside_predify(
        f"{where}: {path.strip()!r} is not a module of this timm {type(backbone).__name__}; "
        f"newer timm folds that activation into {norm!r} (BatchNormAct2d), whose output is the "
        f"same tensor, so the pcoder updates the output of {norm!r}"
    )
    return module


def _resolve_modules(backbone: nn.Module, paths: Sequence[str]) -> list[nn.Module]:
    modules: list[nn.Module] = []
    for index, path in enumerate(paths):
        try:
            module = resolve_module(backbone, path)
        except ConfigError as error:
            legacy = _resolve_legacy_path(backbone, path, f"pcoders[{index}].module")
            if legacy is None:
                raise ConfigError(f"pcoders[{index}].module: {error}") from None
            module = legacy
        for earlier, (other, other_path) in enumerate(zip(modules, paths, strict=False)):
            if other is module:
                raise ConfigError(
                    f"pcoders[{index}].module: {path!r} is the same module as pcoders[{earlier}] "
                    f"({other_path!r})"
                )
        modules.append(module)
    return modules


def _make_out_of_place(decoder: nn.Module) -> None:
    # The decoder reads the representation the dynamics keep: an in-place activation at its
    # input would overwrite e_n(t).
    for module in decoder.modules():
        if getattr(module, "inplace", False) is True:
            setattr(module, "inplace", False)  # noqa: B010


def _hyperparameter_modules(config: PNetConfig) -> list[HyperparameterModule]:
    count = len(config.pcoders)
    if config.shared_hyperparameters:
        shared = HyperparameterModule(
            config.shared(), has_feedback=True, learnable=config.learnable_hyperparameters
        )
        return [shared] * count
    return [
        HyperparameterModule(
            config.hyperparameters_of(index),
            has_feedback=index < count - 1,
            learnable=config.learnable_hyperparameters,
        )
        for index in range(count)
    ]


def predify(backbone: nn.Module, config: ConfigSource) -> PredictiveNet:
    """Add predictive-coding feedback to ``backbone`` as ``config`` describes.

    Args:
        backbone: any feed-forward ``nn.Module`` (a torchvision or timm model, say). It becomes a
            submodule of the returned network; no hook or attribute is left on it.
        config: a TOML path, a dict in the TOML layout or a :class:`PNetConfig`.

    Returns:
        A :class:`PredictiveNet` whose decoders are on the backbone's device and dtype.

    Raises:
        ConfigError: the config does not fit the backbone; the message names the pcoder, the field
            and the offending value (an unknown module, a decoder whose output shape is not its
            target's, an invalid predictor string or hyperparameter).
    """
    config = load_config(config)
    if not isinstance(backbone, nn.Module):
        raise ConfigError(f"backbone: expected a torch.nn.Module, got {type(backbone).__name__}")
    paths = [pcoder.module for pcoder in config.pcoders]
    modules = _resolve_modules(backbone, paths)
    shapes = dry_run(backbone, modules, paths, config.input_size)
    sample_shapes = [tuple(config.input_size)] + [tuple(s[1:]) for s in shapes.output_shapes]

    parameter = next(backbone.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None and parameter.is_floating_point() else None

    hyperparameters = _hyperparameter_modules(config)
    pcoders = []
    for index, pcoder_config in enumerate(config.pcoders):
        where = f"pcoders[{index}]"
        rep_shape, target_shape = sample_shapes[index + 1], sample_shapes[index]
        predictor = pcoder_config.predictor or auto_predictor(rep_shape, target_shape, where)
        decoder = parse_predictor(predictor, f"{where}.predictor")
        _make_out_of_place(decoder)
        decoder.to(device=device, dtype=dtype)
        with torch.no_grad(), eval_mode(decoder):
            sample = torch.zeros(1, *rep_shape, device=device, dtype=dtype or torch.float32)
            try:
                predicted = tuple(decoder(sample).shape[1:])
            except (RuntimeError, ValueError, IndexError) as error:
                # A decoder that does not fit the representation's shape; others are bugs.
                raise ConfigError(
                    f"{where}.predictor: fails on the representation of {pcoder_config.module!r} "
                    f"of shape {list(rep_shape)}: {type(error).__name__}: {error}"
                ) from error
        if predicted != target_shape:
            below = (
                "the input"
                if index == 0
                else f"pcoders[{index - 1}] ({config.pcoders[index - 1].module})"
            )
            raise ConfigError(
                f"{where}.predictor: predicts shape {list(predicted)} from "
                f"{pcoder_config.module!r} "
                f"{list(rep_shape)}, but {below} has shape {list(target_shape)}"
            )
        c_sqrt = pcoder_config.c_sqrt
        if config.gradient_scaling and c_sqrt is None:
            c_sqrt = math.sqrt(decoder_fan_out(decoder, rep_shape))
        pcoders.append(
            PCoder(
                decoder,
                hyperparameters[index],
                has_feedback=index < len(config.pcoders) - 1,
                gradient_scaling=config.gradient_scaling,
                c_sqrt=c_sqrt or 1.0,
                module_path=pcoder_config.module,
            )
        )
    for module in hyperparameters:
        module.to(device=device)
    return PredictiveNet(backbone, pcoders, modules, config, shapes.modified_in_place)


def auto_config(
    backbone: nn.Module,
    input_size: Sequence[int],
    modules: Sequence[str],
    *,
    gradient_scaling: bool = True,
    hyperparameters: Hyperparameters | Sequence[Hyperparameters] | None = None,
    shared_hyperparameters: bool = False,
    name: str | None = None,
    timesteps: int = 10,
) -> PNetConfig:
    """A config with automatic decoders for the named modules of ``backbone``.

    The decoder of each pcoder is written out as an explicit predictor string (the reference's
    automatic decoder, :func:`auto_predictor`), so the saved TOML says exactly what is built.

    Args:
        backbone: the network to add feedback to.
        input_size: one input sample, (C, H, W).
        modules: module paths, bottom first (``["layer1", "layer2", ...]``).
        gradient_scaling: scale error gradients by numel / sqrt(C).
        hyperparameters: one set for all pcoders or one per pcoder; default: the paper's beta 0.8,
            lambda 0.1, alpha 0.01 (lambda 0 on the top pcoder).
        shared_hyperparameters: one shared (optionally learnable) set for all pcoders.
    """
    if not modules:
        raise ConfigError("modules: expected at least one module path")
    paths = list(modules)
    resolved = _resolve_modules(backbone, paths)
    shapes = dry_run(backbone, resolved, paths, tuple(input_size))
    sample_shapes = [tuple(input_size)] + [tuple(s[1:]) for s in shapes.output_shapes]
    defaults = hyperparameters if hyperparameters is not None else PAPER_HYPERPARAMETERS
    per_pcoder: list[Hyperparameters]
    if isinstance(defaults, Hyperparameters):
        per_pcoder = [defaults] * len(paths)
    else:
        per_pcoder = list(defaults)
        if len(per_pcoder) != len(paths):
            raise ConfigError(
                f"hyperparameters: expected one set per module ({len(paths)}), "
                f"got {len(per_pcoder)}"
            )
    pcoders = []
    for index, path in enumerate(paths):
        values = per_pcoder[index]
        if index == len(paths) - 1:
            values = Hyperparameters(values.feedforward, 0.0, values.pc)
        pcoders.append(
            PCoderConfig(
                module=path,
                predictor=auto_predictor(sample_shapes[index + 1], sample_shapes[index], path),
                hyperparameters=None if shared_hyperparameters else values,
            )
        )
    return PNetConfig(
        pcoders=tuple(pcoders),
        input_size=tuple(input_size),
        name=name or f"P{type(backbone).__name__}",
        gradient_scaling=gradient_scaling,
        shared_hyperparameters=shared_hyperparameters,
        hyperparameters=per_pcoder[0] if shared_hyperparameters else None,
        timesteps=timesteps,
    )


#: The Predify paper's hyperparameters: beta 0.8, lambda 0.1, alpha 0.01.
PAPER_HYPERPARAMETERS = Hyperparameters(feedforward=0.8, feedback=0.1, pc=0.01)
