"""Saving and loading feedback weights (decoders and hyperparameters) together with their config.

Two file formats, chosen by the file name:

- ``*.safetensors`` (needs the ``safetensors`` extra): tensors, with the config as TOML in the
  metadata;
- anything else: ``torch.save`` of a dict of tensors and strings, read back with
  ``torch.load(weights_only=True)``, so loading never unpickles arbitrary objects.

Writes are atomic. Files saved by the original Predify package and the paper's code (whole
networks with keys such as ``pcoder1.pmodule.0.weight``, per-pcoder training checkpoints and
decoder files) load through [`load_original_feedback()`][predify.checkpoint.load_original_feedback]
(`predify.original`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ._io import atomic_path, check_tensors, content_digest, load_weights_only
from .config import PNetConfig
from .errors import CheckpointError, ConfigError
from .hyperparameter_module import rename_old_parameters
from .network import PredictiveNet
from .original import OriginalFeedback, convert_original_state_dict, load_original_feedback

__all__ = [
    "FORMAT",
    "OriginalFeedback",
    "convert_original_state_dict",
    "feedback_state_dict",
    "load_feedback",
    "load_feedback_state",
    "load_original_feedback",
    "load_predictive_net",
    "read_feedback_file",
    "save_feedback",
]

FORMAT = "predify-feedback-v1"
_CHECKSUM = "sha256"  # metadata: content_digest of the config text and the tensors


def feedback_state_dict(pnet: PredictiveNet) -> dict[str, Tensor]:
    """The tensors of every pcoder (decoders and hyperparameters), keyed as in ``pnet.pcoders``."""
    return {
        key: value.detach().clone().contiguous()
        for key, value in pnet.pcoders.state_dict().items()
        if isinstance(value, Tensor)
    }


def save_feedback(
    pnet: PredictiveNet, path: str | os.PathLike[str], metadata: Mapping[str, str] | None = None
) -> Path:
    """Write the feedback weights of ``pnet`` and its config (with c_sqrt and the current
    hyperparameters written in) to ``path``, atomically.

    Args:
        pnet: the network whose pcoders are saved (the backbone is not).
        path: ``*.safetensors`` or any other name for a ``torch.save`` file.
        metadata: extra strings stored beside the config.
    """
    path = Path(path)
    tensors = {key: value.cpu() for key, value in feedback_state_dict(pnet).items()}
    config_text = pnet.resolved_config().to_toml()
    extra = {str(k): str(v) for k, v in (metadata or {}).items()}
    extra[_CHECKSUM] = content_digest({"config": config_text, "tensors": tensors})
    with atomic_path(path) as temporary:
        if path.suffix == ".safetensors":
            save_file = _safetensors().save_file
            save_file(
                tensors, str(temporary), metadata={"format": FORMAT, "config": config_text, **extra}
            )
        else:
            torch.save(
                {"format": FORMAT, "config": config_text, "metadata": extra, "state": tensors},
                temporary,
            )
    return path


def read_feedback_file(
    path: str | os.PathLike[str],
) -> tuple[PNetConfig, dict[str, Tensor], dict[str, str]]:
    """Read a feedback file: its config, tensors and metadata (nothing is executed)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: feedback checkpoint not found")
    try:
        if path.suffix == ".safetensors":
            safe_open = _safetensors().safe_open
            with safe_open(str(path), framework="pt") as handle:
                metadata = dict(handle.metadata() or {})
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        else:
            payload = load_weights_only(path, "feedback checkpoint")
            if not isinstance(payload, dict) or payload.get("format") != FORMAT:
                raise CheckpointError(
                    f"{path}: not a predify feedback checkpoint (no '{FORMAT}' marker); for a "
                    "file saved by the original Predify package use load_original_feedback"
                )
            metadata = {
                "format": FORMAT,
                "config": payload["config"],
                **payload.get("metadata", {}),
            }
            tensors = payload["state"]
    except CheckpointError:
        raise
    except (OSError, KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{path}: cannot read checkpoint: {_first_line(error)}") from error
    except Exception as error:
        # safetensors' own SafetensorError (a malformed file); anything else is a bug.
        if type(error).__name__ != "SafetensorError":
            raise
        raise CheckpointError(f"{path}: cannot read checkpoint: {_first_line(error)}") from error
    if metadata.get("format") != FORMAT or "config" not in metadata:
        raise CheckpointError(f"{path}: not a predify feedback checkpoint")
    # Files of earlier versions have no checksum; they are read as they are.
    stored = metadata.pop(_CHECKSUM, None)
    if stored is not None and stored != content_digest(
        {"config": metadata["config"], "tensors": tensors}
    ):
        raise CheckpointError(
            f"{path}: corrupt feedback checkpoint (its content does not match its checksum)"
        )
    try:
        config = PNetConfig.from_toml_string(metadata.pop("config"), source=f"{path} (config)")
    except ConfigError as error:
        raise CheckpointError(str(error)) from None
    metadata.pop("format", None)
    return config, tensors, metadata


def _check_and_load(
    module: nn.Module, tensors: Mapping[str, Tensor], source: str, only: str = ""
) -> None:
    expected = {k: v for k, v in module.state_dict().items() if isinstance(v, Tensor) and only in k}
    check_tensors(
        source,
        {key: value.shape for key, value in expected.items()},
        {key: value.shape for key, value in tensors.items()},
    )
    module.load_state_dict(dict(tensors), strict=False)


def load_feedback(
    pnet: PredictiveNet, path: str | os.PathLike[str], *, hyperparameters: bool = True
) -> dict[str, str]:
    """Load decoders, c_sqrt and (unless ``hyperparameters=False``) hyperparameters into ``pnet``.

    With ``hyperparameters=False`` the network keeps the beta, lambda and alpha it has, for
    example those of a tuned config it was built from.

    Returns the file's metadata. Raises [`CheckpointError`][predify.checkpoint.CheckpointError]
    naming the tensor and both
    shapes when the file does not fit.
    """
    config, tensors, metadata = read_feedback_file(path)
    load_feedback_state(pnet, config, tensors, str(path), hyperparameters=hyperparameters)
    return metadata


def load_feedback_state(
    pnet: PredictiveNet,
    config: PNetConfig,
    tensors: Mapping[str, Tensor],
    source: str,
    hyperparameters: bool = True,
) -> None:
    """Load decoder (and, with ``hyperparameters``, hyperparameter) tensors saved with
    ``config`` into ``pnet``, refusing tensors that do not fit and naming ``source`` in errors.

    What [`load_feedback()`][predify.checkpoint.load_feedback] and the trainer's checkpoints use
    once the file is read.
    """
    if len(config.pcoders) != pnet.num_pcoders:
        raise CheckpointError(
            f"{source}: holds {len(config.pcoders)} pcoders, the network has {pnet.num_pcoders}"
        )
    tensors = dict(tensors)
    rename_old_parameters(tensors)
    if hyperparameters:
        # Learnable or fixed follows the file: the hyperparameter modules switch before loading.
        pnet.set_hyperparameters_learnable(any(key.endswith("mixing_logits") for key in tensors))
        _check_and_load(pnet.pcoders, tensors, source)
    else:
        decoders = {key: value for key, value in tensors.items() if ".decoder." in key}
        _check_and_load(pnet.pcoders, decoders, source, only=".decoder.")
    for pcoder, pcoder_config in zip(pnet.pcoders, config.pcoders, strict=True):
        if pcoder_config.c_sqrt is not None:
            pcoder.c_sqrt = pcoder_config.c_sqrt


def load_predictive_net(backbone: nn.Module, path: str | os.PathLike[str]) -> PredictiveNet:
    """Build the predictive network a feedback file describes on ``backbone`` and load it."""
    from .builder import predify

    config, tensors, _ = read_feedback_file(path)
    try:
        pnet = predify(backbone, config)
    except ConfigError as error:
        raise CheckpointError(f"{path}: its config does not fit the backbone: {error}") from None
    load_feedback_state(pnet, config, tensors, str(path))
    return pnet


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def _safetensors() -> Any:
    try:
        import safetensors.torch
    except ImportError:
        raise CheckpointError(
            "*.safetensors files need the safetensors package: pip install 'predify[safetensors]'"
        ) from None
    return safetensors.torch
