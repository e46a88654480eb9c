"""Building a [`PredictiveNet`][predify.network.PredictiveNet] from a backbone and a config."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .config import ConfigSource, Hyperparameters, PCoderConfig, PNetConfig, load_config
from .errors import ConfigError, warn_outside_predify
from .fan_out import decoder_fan_out
from .hyperparameter_module import HyperparameterModule
from .network import PredictiveNet
from .parsing import parse_predictor
from .pcoder import PCoder
from .stages import FeatureLayout, feature_layout, feature_stages
from .submodules import dry_run, eval_mode, resolve_module

__all__ = ["auto_config", "auto_predictor", "predify"]


def _format_scale(value: float) -> str:
    return repr(float(value))


def auto_predictor(
    rep_shape: Sequence[int],
    target_shape: Sequence[int],
    where: str = "",
    *,
    patch_size: Sequence[int] | None = None,
    prefix_tokens: int | None = None,
    layout: FeatureLayout = "nchw",
    target_layout: FeatureLayout | None = None,
) -> str:
    """The automatic decoder from a representation to what it predicts, as a predictor string.

    - Feature maps (the reference's decoder): ``Sequential(Upsample(scale_factor=(r, r),
      mode="bilinear"), ConvTranspose2d(c_in, c_out, 3, 1, 1))`` when the target is r times
      larger, else ``Sequential(ConvTranspose2d(...))``; trilinear and ConvTranspose3d for volumes.
      NHWC maps (H, W, C) get the same decoder between ``Permute(0, 3, 1, 2)`` and
      ``Permute(0, 2, 3, 1)`` (the latter left out when the target is NCHW: the image).
    - Token maps [tokens, dim] predicting token maps with as many tokens (transformer blocks):
      ``Linear(dim, dim_below)``, applied token-wise, prefix tokens included.
    - Token maps predicting the image (the first pcoder of a vision transformer): the transposed
      patch embedding ``Sequential(TokensToGrid(prefix_tokens=P, grid_size=(h, w)),
      ConvTranspose2d(dim, C, kernel_size=(p, q), stride=(p, q)))``.

    Args:
        rep_shape: one sample of the representation, (C, H, W), (C, D, H, W) or (tokens, dim).
        target_shape: one sample of what it predicts.
        where: names the pcoder in error messages.
        patch_size: (p, q) of a vision transformer's patch embedding; inferred from the shapes
            when None (the smallest patch whose grid fits in the tokens).
        prefix_tokens: class and register tokens before the patch tokens; inferred when None.
        layout: ``"nhwc"`` when ``rep_shape`` is (H, W, C) (timm's Swin, MambaOut), else
            ``"nchw"`` (`FeatureLayout`).
        target_layout: the same for ``target_shape``; default ``layout``.
    """
    label = f"{where}: " if where else ""
    if len(rep_shape) == 2:
        return _token_predictor(rep_shape, target_shape, label, patch_size, prefix_tokens)
    if len(rep_shape) not in (3, 4) or len(target_shape) != len(rep_shape):
        raise ConfigError(
            f"{label}automatic decoders need feature maps of the same rank (or token maps), got "
            f"{list(rep_shape)} predicting {list(target_shape)}; give a predictor string"
        )
    if target_layout is None:
        target_layout = layout
    for name, value in (("layout", layout), ("target_layout", target_layout)):
        if value not in ("nchw", "nhwc"):
            raise ConfigError(f"{label}{name}: expected 'nchw' or 'nhwc', got {value!r}")
    if "nhwc" in (layout, target_layout):
        if len(rep_shape) != 3:
            raise ConfigError(f"{label}NHWC decoders are 2-D only, got {list(rep_shape)}")
        first = _channels_first(rep_shape) if layout == "nhwc" else tuple(rep_shape)
        below = _channels_first(target_shape) if target_layout == "nhwc" else tuple(target_shape)
        inner = _conv_layers(first, below)
        if layout == "nhwc":
            inner.insert(0, "Permute(0, 3, 1, 2)")
        if target_layout == "nhwc":
            inner.append("Permute(0, 2, 3, 1)")
        return f"Sequential({', '.join(inner)})"
    return f"Sequential({', '.join(_conv_layers(rep_shape, target_shape))})"


def _channels_first(shape: Sequence[int]) -> tuple[int, ...]:
    return (shape[-1], *shape[:-1])


def _conv_layers(rep_shape: Sequence[int], target_shape: Sequence[int]) -> list[str]:
    """Upsampling (if the target is larger) and a 3x3 transposed convolution, channels first."""
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
    return layers


def _token_predictor(
    rep_shape: Sequence[int],
    target_shape: Sequence[int],
    label: str,
    patch_size: Sequence[int] | None,
    prefix_tokens: int | None,
) -> str:
    tokens, dim = rep_shape
    if len(target_shape) == 2:
        if target_shape[0] != tokens:
            raise ConfigError(
                f"{label}automatic token decoders map each token to the token below, but "
                f"{list(rep_shape)} has {tokens} tokens and the layer below {list(target_shape)} "
                f"has {target_shape[0]}; give a predictor string"
            )
        return f"Linear({dim}, {target_shape[1]})"
    if len(target_shape) != 3:
        raise ConfigError(
            f"{label}automatic decoders map tokens {list(rep_shape)} to tokens or to an image "
            f"(C, H, W), not to {list(target_shape)}; give a predictor string"
        )
    channels, height, width = target_shape
    if patch_size is not None and not _fits(tokens, height, width, patch_size, prefix_tokens):
        # The model's own layout does not describe this module's tokens (CaiT's class token
        # joins after its patch blocks): infer it from the shapes instead.
        patch_size, prefix_tokens = None, None
    if patch_size is None:
        patch = _infer_patch(tokens, height, width, prefix_tokens)
        if patch is None:
            raise ConfigError(
                f"{label}cannot lay {tokens} tokens out as patches of a {height}x{width} image; "
                "give a predictor string"
            )
    else:
        patch = (int(patch_size[0]), int(patch_size[1]))
    grid = (height // patch[0], width // patch[1])
    prefix = tokens - grid[0] * grid[1]
    if (
        height % patch[0]
        or width % patch[1]
        or prefix < 0
        or (prefix_tokens is not None and prefix != prefix_tokens)
    ):
        raise ConfigError(
            f"{label}{tokens} tokens are not {prefix_tokens if prefix_tokens is not None else 'P'}"
            f" prefix tokens and {patch[0]}x{patch[1]} patches of a {height}x{width} image; "
            "give a predictor string"
        )
    kernel = f"({patch[0]}, {patch[1]})"
    return (
        f"Sequential(TokensToGrid(prefix_tokens={prefix}, grid_size=({grid[0]}, {grid[1]})), "
        f"ConvTranspose2d({dim}, {channels}, kernel_size={kernel}, stride={kernel}))"
    )


def _fits(
    tokens: int, height: int, width: int, patch: Sequence[int], prefix_tokens: int | None
) -> bool:
    if height % patch[0] or width % patch[1]:
        return False
    prefix = tokens - (height // patch[0]) * (width // patch[1])
    return prefix >= 0 and (prefix_tokens is None or prefix == prefix_tokens)


def _infer_patch(
    tokens: int, height: int, width: int, prefix_tokens: int | None
) -> tuple[int, int] | None:
    # Square patches, smallest first: the first whose grid fits in the tokens leaves the fewest
    # prefix tokens (1 for a class token, 1 + registers), which is what ViTs have.
    for size in range(1, min(height, width) + 1):
        if height % size or width % size:
            continue
        prefix = tokens - (height // size) * (width // size)
        if prefix >= 0 and (prefix_tokens is None or prefix == prefix_tokens):
            return (size, size)
    return None


def _token_layout(backbone: nn.Module) -> tuple[tuple[int, int] | None, int | None]:
    """(patch size, prefix tokens) of a timm-style vision transformer, or (None, None)."""
    patch_embed = getattr(backbone, "patch_embed", None)
    patch = getattr(patch_embed, "patch_size", None)
    prefix = getattr(backbone, "num_prefix_tokens", None)
    if patch is None and isinstance(getattr(backbone, "class_token", None), nn.Parameter):
        # torchvision's VisionTransformer: one class token before the patches.
        patch, prefix = getattr(backbone, "patch_size", None), 1
    if isinstance(patch, int):
        patch = (patch, patch)
    valid_patch = (
        isinstance(patch, (tuple, list))
        and len(patch) == 2
        and all(isinstance(p, int) and p > 0 for p in patch)
    )
    return (
        (int(patch[0]), int(patch[1])) if valid_patch else None,  # type: ignore[index]
        prefix if isinstance(prefix, int) and not isinstance(prefix, bool) else None,
    )


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
        config: a TOML path, a dict in the TOML layout or a
            [`PNetConfig`][predify.builder.PNetConfig].

    Returns:
        A [`PredictiveNet`][predify.builder.PredictiveNet] whose decoders are on the backbone's
        device and dtype.

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
    layout = feature_layout(backbone)
    pcoders = []
    for index, pcoder_config in enumerate(config.pcoders):
        where = f"pcoders[{index}]"
        rep_shape, target_shape = sample_shapes[index + 1], sample_shapes[index]
        predictor = pcoder_config.predictor or auto_predictor(
            rep_shape,
            target_shape,
            where,
            layout=layout,
            target_layout=layout if index > 0 else "nchw",
        )
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
    modules: Sequence[str] | None = None,
    *,
    gradient_scaling: bool = True,
    hyperparameters: Hyperparameters | Sequence[Hyperparameters] | None = None,
    shared_hyperparameters: bool = False,
    name: str | None = None,
    timesteps: int = 10,
) -> PNetConfig:
    """A config with automatic decoders for the named modules of ``backbone``.

    The modules and the decoder of each pcoder are written out explicitly (module paths and
    predictor strings, [`auto_predictor()`][predify.builder.auto_predictor]), so the saved TOML
    says exactly what is built.

    Args:
        backbone: the network to add feedback to: a CNN (feature maps, channels first, or
            NHWC as timm's Swin), or a vision transformer (token maps [tokens, dim],
            prefix tokens included).
        input_size: one input sample, (C, H, W).
        modules: module paths, bottom first (``["layer1", "layer2", ...]``); None picks the
            backbone's feature stages
            ([`predify.stages.feature_stages()`][predify.stages.feature_stages]: timm's
            ``feature_info``, known torchvision layouts, every few blocks of a transformer).

    Raises:
        ConfigError: a module is not found or does not fit; no decoder can be made automatically
            (token maps whose token count changes); the message names the pcoder and says what
            to write instead.
        gradient_scaling: scale error gradients by numel / sqrt(C).
        hyperparameters: one set for all pcoders or one per pcoder; default: the paper's
            feedforward 0.8, feedback 0.1, pc 0.01 (feedback 0 on the top pcoder).
        shared_hyperparameters: one shared (optionally learnable) set for all pcoders.
    """
    if modules is None:
        modules = feature_stages(backbone, input_size)
    if not modules:
        raise ConfigError("modules: expected at least one module path")
    paths = list(modules)
    patch_size, prefix_tokens = _token_layout(backbone)
    layout = feature_layout(backbone)
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
                predictor=auto_predictor(
                    sample_shapes[index + 1],
                    sample_shapes[index],
                    path,
                    patch_size=patch_size,
                    prefix_tokens=prefix_tokens,
                    layout=layout,
                    target_layout=layout if index > 0 else "nchw",
                ),
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


#: The Predify paper's hyperparameters: feedforward (beta) 0.8, feedback (lambda) 0.1, pc (alpha)
#: 0.01.
PAPER_HYPERPARAMETERS = Hyperparameters(feedforward=0.8, feedback=0.1, pc=0.01)
