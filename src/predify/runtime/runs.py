"""Run directories: what ``predify demo`` and ``predify train`` write, and what ``evaluate`` and
``tune`` read.

A run directory holds::

    run.json               this file's RunInfo: backbone spec, data spec, normalisation, seed
    config.toml            the PNetConfig (with c_sqrt and hyperparameters written in)
    backbone.pt            the backbone's state_dict (read with weights_only=True)
    feedback.safetensors   decoders + hyperparameters (or feedback.pt without safetensors)

The backbone is rebuilt from a spec naming a registered architecture (never an import path):
``shallow_cnn``, ``small_cnn``, ``torchvision:<model name>`` or ``timm:<model name>``, with
literal keyword arguments.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._io import JsonObject, atomic_path, atomic_write_json, load_weights_only
from ..builder import predify
from ..checkpoint import load_feedback, save_feedback
from ..config import PNetConfig
from ..errors import CheckpointError, ConfigError, DataError
from ..network import PredictiveNet

__all__ = [
    "READABLE_RUN_FORMATS",
    "RUN_FORMAT",
    "LoadedRun",
    "RunInfo",
    "build_backbone",
    "feedback_path",
    "load_run",
    "save_run",
]

#: The schema version run.json is written with.
RUN_FORMAT = "predify-run-v2"
#: Versions still read: v1 differs only in its ``extra.training`` block (an ``amp`` flag where v2
#: has ``precision``), which `predify.train.settings.TrainingRecord` migrates.
READABLE_RUN_FORMATS = ("predify-run-v1", RUN_FORMAT)


@dataclass
class RunInfo:
    """What a run directory says about how to rebuild and feed its network.

    Attributes:
        backbone: ``{"name": NAME, "kwargs": {...}}`` with NAME ``shallow_cnn``,
            ``torchvision:resnet18`` or ``timm:...``.
        data: the data set spec the feedback was trained on (``"mnist5k"``), with ``split_seed``.
        normalization: ``{"mean": [...], "std": [...]}`` that images in [0, 1] get (after any
            corruption or noise, which work in pixel space) before the network; None when the
            backbone takes images in [0, 1] as they are.
        num_classes: the number of classes the backbone predicts.
        seed: the seed of the run.
        extra: anything else the writer wants to keep (metrics, timings).
    """

    backbone: dict[str, Any]
    data: dict[str, Any]
    num_classes: int
    normalization: dict[str, list[float]] | None = None
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> JsonObject:
        """run.json's content, written with the current ``RUN_FORMAT``."""
        return {**asdict(self), "format": RUN_FORMAT}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str) -> RunInfo:
        """Read run.json's content (any of ``READABLE_RUN_FORMATS``).

        Raises:
            DataError: not a run description, another version, or a malformed field, naming
                ``source``.
        """
        if not isinstance(data, Mapping):
            raise DataError(f"{source}: expected a JSON object, found {type(data).__name__}")
        version = data.get("format")
        if version not in READABLE_RUN_FORMATS:
            if isinstance(version, str) and version.startswith("predify-run-v"):
                raise DataError(
                    f"{source}: run format {version!r} is not one this predify reads "
                    f"({', '.join(READABLE_RUN_FORMATS)}); upgrade predify"
                )
            raise DataError(f"{source}: not a predify run (expected format {RUN_FORMAT!r})")
        try:
            info = cls(**{key: data[key] for key in data if key != "format"})
        except TypeError as error:
            raise DataError(f"{source}: malformed run description: {error}") from None
        expected: dict[str, tuple[type, ...]] = {
            "backbone": (dict,),
            "data": (dict,),
            "num_classes": (int,),
            "normalization": (dict, type(None)),
            "seed": (int,),
            "extra": (dict,),
        }
        for name, types in expected.items():
            value = getattr(info, name)
            if not isinstance(value, types) or isinstance(value, bool):
                raise DataError(
                    f"{source}: {name}: expected {' or '.join(t.__name__ for t in types)}, "
                    f"got {value!r}"[:300]
                )
        return info


def build_backbone(spec: Mapping[str, Any]) -> nn.Module:
    """An untrained backbone from a spec: ``{"name": "torchvision:resnet18", "kwargs": {}}``.

    ``torchvision:NAME`` and ``timm:NAME`` build any model of those libraries; other names are
    the backbones of the model registry ([`predify.models.ModelEntry`][predify.models.ModelEntry],
    e.g.
    ``shallow_cnn``).
    """
    from ..models import entry_for_backbone, timm_backbone, torchvision_backbone

    name = spec.get("name")
    kwargs = dict(spec.get("kwargs") or {})
    if not isinstance(name, str):
        raise ConfigError(f"backbone: expected a name, got {name!r}")
    family, _, model = name.partition(":")
    if family == "torchvision" and model:
        return torchvision_backbone(model, **kwargs)
    if family == "timm" and model:
        return timm_backbone(model, **kwargs)
    entry = entry_for_backbone(name)
    if entry is None or entry.backbone != name:
        raise ConfigError(
            f"backbone: unknown architecture {name!r}; "
            "expected shallow_cnn, small_cnn, torchvision:NAME or timm:NAME"
        )
    try:
        return entry.build_backbone(**kwargs)
    except TypeError as error:
        raise ConfigError(f"backbone {name!r}: bad arguments {kwargs}: {error}") from None


def feedback_path(run_dir: str | os.PathLike[str]) -> Path:
    """The feedback checkpoint of a run (safetensors preferred)."""
    run_dir = Path(run_dir)
    for name in ("feedback.safetensors", "feedback.pt"):
        if (run_dir / name).is_file():
            return run_dir / name
    raise CheckpointError(f"{run_dir}: no feedback weights (feedback.safetensors or feedback.pt)")


def _feedback_file_name() -> str:
    try:
        import safetensors  # noqa: F401
    except ImportError:
        return "feedback.pt"
    return "feedback.safetensors"


def save_run(
    run_dir: str | os.PathLike[str],
    pnet: PredictiveNet,
    info: RunInfo,
    *,
    backbone_state: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``pnet`` (backbone, feedback, config) and ``info`` into ``run_dir``, atomically."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(
            f"{run_dir}: cannot create the output directory: {error.strerror}"
        ) from None
    if not os.access(run_dir, os.W_OK):
        raise DataError(f"{run_dir}: output directory is not writable")
    state = backbone_state if backbone_state is not None else pnet.backbone.state_dict()
    with atomic_path(run_dir / "backbone.pt") as temporary:
        torch.save({key: value.detach().cpu() for key, value in state.items()}, temporary)
    save_feedback(pnet, run_dir / _feedback_file_name())
    pnet.resolved_config().save(run_dir / "config.toml")
    atomic_write_json(run_dir / "run.json", info.to_json())
    return run_dir


@dataclass
class LoadedRun:
    """A run directory read back: the network with its weights, and its description."""

    pnet: PredictiveNet
    info: RunInfo
    config: PNetConfig
    path: Path


def read_run_info(run_dir: str | os.PathLike[str]) -> RunInfo:
    """The ``run.json`` of ``run_dir``; a missing directory or file is a one-line DataError."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(
            f"{run_dir}: run directory not found "
            "(expected what `predify demo` or `predify train` writes)"
        )
    info_path = run_dir / "run.json"
    try:
        data = json.loads(info_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{info_path}: not found; is {run_dir} a predify run directory?") from None
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"{info_path}: unreadable: {error}") from None
    return RunInfo.from_json(data, str(info_path))


def load_run(
    run_dir: str | os.PathLike[str], device: str | torch.device = "cpu", with_feedback: bool = True
) -> LoadedRun:
    """Rebuild the network of a run directory with its trained weights, in eval mode."""
    run_dir = Path(run_dir)
    info = read_run_info(run_dir)
    config = PNetConfig.from_toml(run_dir / "config.toml")
    backbone = build_backbone(info.backbone)
    backbone_file = run_dir / "backbone.pt"
    state = load_weights_only(backbone_file, "backbone weights")
    try:
        backbone.load_state_dict(state)
    except (RuntimeError, ValueError, TypeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{backbone_file}: cannot load backbone weights: {first}") from None
    pnet = predify(backbone, config)
    pnet.normalization = info.normalization
    if with_feedback:
        load_feedback(pnet, feedback_path(run_dir))
    pnet.to(device).eval()
    return LoadedRun(pnet=pnet, info=info, config=config, path=run_dir)
