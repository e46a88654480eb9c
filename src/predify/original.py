"""Loading the feedback weights published for the original Predify, in every format they exist in.

The original package (miladmozafari/predify) and the paper's code (bhavinc/predify2021) wrote
three kinds of file, all read here with ``torch.load(weights_only=True)``:

- **per-pcoder training checkpoints**, ``pnet_pretrained_pc{n}_{epoch:03d}.pth``, written by
  both training scripts: ``{"pcoderweights": pcoder.state_dict(), "optimizer": ..., "epoch":
  ...}``, keys ``pmodule.0.weight`` ... (and ``C_sqrt`` for a gradient-scaled ``PCoderN``). The
  paper's PEfficientNetB0 weights are in this format;
- **per-pcoder decoder files**, ``pvgg16_imagenet_pretrained_pc{n}_pmodule.pth``: a plain
  ``pmodule`` state dict (keys ``0.weight`` or, for a bare layer, ``weight``), as
  predify2021's ``get_model`` reads the paper's PVGG16 weights;
- **whole-network state dicts** of a generated network (``pcoder1.pmodule.0.weight``,
  ``backbone.*``, the hyperparameter buffers ``ffm1``/``fbm1``/``erm1`` or ``ffm``/``fbm``/``erm``
  and, for ``PCoderN``, ``pcoder1.C_sqrt``), plain, ``module.``-prefixed (``DataParallel``) or
  wrapped in ``state_dict``, ``model`` or ``model_state_dict``.

A file, a directory of per-pcoder files, or a list of files in pcoder order is accepted. Every
tensor is checked before any is loaded, and errors name the file's own keys.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from ._io import check_tensor_names, check_tensor_shapes, load_weights_only
from .config import Hyperparameters
from .errors import CheckpointError, ConfigError, warn_outside_predify
from .fan_out import decoder_fan_out
from .network import PredictiveNet

__all__ = [
    "ORIGINAL_NAMES",
    "OriginalFeedback",
    "convert_original_state_dict",
    "hyperparameters_from_original",
    "load_original_feedback",
]

#: The original package's names of the hyperparameters (its buffers ``ffm{n}``, ``fbm{n}``,
#: ``erm{n}`` and the dicts its ``set_hyperparameters`` takes) -> this package's names. They are
#: read here, and nowhere else.
ORIGINAL_NAMES = {"ffm": "feedforward", "fbm": "feedback", "erm": "pc"}

_NETWORK_KEY = re.compile(r"^(?:module\.)?pcoder(\d+)\.(.+)$")
_HYPERPARAMETER_KEY = re.compile(r"^(?:module\.)?(ffm|fbm|erm)(\d*)$")
#: ``pnet_pretrained_pc3_012.pth``, ``pvgg16_imagenet_pretrained_pc3_pmodule.pth``, ``pc3.pt``.
_PER_PCODER_NAME = re.compile(r"(?:^|_)pc(\d+)(?:_(\d+))?(?:_pmodule)?\.pth?$")
_WRAPPERS = ("state_dict", "model_state_dict", "model")
_C_SQRT_UNSET = -1.0  # the value PCoderN registers before its first forward pass


@dataclass(frozen=True)
class OriginalFeedback:
    """What [`load_original_feedback()`][predify.original.load_original_feedback] read and did.

    Attributes:
        files: the files read, in pcoder order (one file for a whole-network state dict).
        layout: ``"network"``, ``"training-checkpoints"`` or ``"decoder-files"``.
        epoch: the epoch of the training checkpoints read, when they say.
        c_sqrt_adopted: pcoder index (0-based) -> the sqrt(C) taken from the file.
        c_sqrt_exact: pcoder index -> the exact sqrt(C) of that decoder, for comparison.
        c_sqrt_ignored: pcoder indices whose file held a sqrt(C) the network does not use (it
            was built without gradient scaling).
        hyperparameters: the hyperparameters read from the file and set, when asked for.
    """

    files: tuple[Path, ...]
    layout: str
    epoch: int | None = None
    c_sqrt_adopted: dict[int, float] = field(default_factory=dict)
    c_sqrt_exact: dict[int, float] = field(default_factory=dict)
    c_sqrt_ignored: tuple[int, ...] = ()
    hyperparameters: list[Hyperparameters] | None = None


@dataclass
class _Pcoder:
    """The tensors one pcoder's entry in a file holds, keyed as in its decoder's state dict."""

    source: Path
    tensors: dict[str, Tensor] = field(default_factory=dict)
    # How the file writes a decoder key: "pcoder5.pmodule.{}", "pcoderweights['pmodule.{}']".
    template: str = "{}"
    c_sqrt: float | None = None

    def file_key(self, key: str) -> str:
        """The file's own name of the decoder's tensor ``key``."""
        return self.template.format(key)


@dataclass
class _Parsed:
    layout: str
    pcoders: dict[int, _Pcoder]  # 0-based index
    files: tuple[Path, ...]
    epoch: int | None = None
    hyperparameters: dict[str, dict[int | None, float]] = field(default_factory=dict)


# ---------------------------------------------------------------------- reading files
def _unwrap(payload: Any) -> Any:
    for _ in range(3):
        if not isinstance(payload, Mapping) or any(_NETWORK_KEY.match(str(k)) for k in payload):
            return payload
        inner = next((payload[k] for k in _WRAPPERS if isinstance(payload.get(k), Mapping)), None)
        if inner is None:
            return payload
        payload = inner
    return payload


def _shortest_float(value: Tensor) -> float:
    """The value as written: the float32 buffer of 0.2 is 0.2, not 0.20000000298023224."""
    return float(str(value.detach().cpu().reshape(()).numpy()))


def _scalar(value: Any, label: str, path: Path) -> float:
    if isinstance(value, Tensor) and value.numel() == 1:
        return float(value.item())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise CheckpointError(f"{path}: {label}: expected a number, got {type(value).__name__}")


def _parse_network(state: Mapping[str, Any], path: Path) -> _Parsed:
    pcoders: dict[int, _Pcoder] = {}
    hyperparameters: dict[str, dict[int | None, float]] = {}
    for key, value in state.items():
        key = str(key)
        match = _NETWORK_KEY.match(key)
        if match:
            index = int(match.group(1)) - 1
            rest = match.group(2)
            entry = pcoders.setdefault(index, _Pcoder(path))
            if rest == "C_sqrt":
                entry.c_sqrt = _scalar(value, key, path)
            elif rest.startswith("pmodule.") and isinstance(value, Tensor):
                decoder_key = rest[len("pmodule.") :]
                entry.tensors[decoder_key] = value
                entry.template = key[: len(key) - len(decoder_key)] + "{}"
            continue
        match = _HYPERPARAMETER_KEY.match(key)
        if match and isinstance(value, Tensor) and value.numel() == 1:
            number = int(match.group(2)) - 1 if match.group(2) else None
            hyperparameters.setdefault(match.group(1), {})[number] = _shortest_float(value)
    return _Parsed("network", pcoders, (path,), hyperparameters=hyperparameters)


def _parse_single_pcoder(payload: Any, path: Path) -> tuple[_Pcoder, str, int | None]:
    """One pcoder's file: a training checkpoint or a plain pmodule state dict."""
    if isinstance(payload, Mapping) and isinstance(payload.get("pcoderweights"), Mapping):
        entry = _Pcoder(path, template="pcoderweights['pmodule.{}']")
        for key, value in payload["pcoderweights"].items():
            key = str(key)
            label = f"pcoderweights[{key!r}]"
            if key == "C_sqrt":
                entry.c_sqrt = _scalar(value, label, path)
            elif key.startswith("pmodule.") and isinstance(value, Tensor):
                entry.tensors[key[len("pmodule.") :]] = value
            else:
                raise CheckpointError(
                    f"{path}: {label}: not a decoder tensor (expected keys 'pmodule.*' and "
                    "optionally 'C_sqrt')"
                )
        epoch = payload.get("epoch")
        return entry, "training-checkpoints", epoch if isinstance(epoch, int) else None
    if (
        isinstance(payload, Mapping)
        and payload
        and all(isinstance(value, Tensor) for value in payload.values())
    ):
        entry = _Pcoder(path, template="'{}'")
        for key, value in payload.items():
            entry.tensors[str(key)] = value
        return entry, "decoder-files", None
    kind = type(payload).__name__
    keys = sorted(map(str, payload))[:5] if isinstance(payload, Mapping) else []
    raise CheckpointError(
        f"{path}: not an original Predify feedback file (a {kind}"
        + (f" with keys {keys}" if keys else "")
        + "; expected a training checkpoint with 'pcoderweights', a pmodule state dict, or a "
        "network state dict with keys like 'pcoder1.pmodule.0.weight')"
    )


def _read(path: Path) -> Any:
    return _unwrap(load_weights_only(path, "original Predify feedback file"))


def _is_network(payload: Any) -> bool:
    return isinstance(payload, Mapping) and any(_NETWORK_KEY.match(str(k)) for k in payload)


def _per_pcoder_files(directory: Path, epoch: int | None) -> tuple[list[Path], int | None]:
    """The per-pcoder files of ``directory``, in pcoder order (of one epoch)."""
    found: dict[int, dict[int | None, Path]] = {}
    for path in sorted(directory.iterdir()):
        match = _PER_PCODER_NAME.search(path.name)
        if match and path.is_file():
            number = int(match.group(1))
            file_epoch = int(match.group(2)) if match.group(2) else None
            found.setdefault(number, {})[file_epoch] = path
    if not found:
        raise CheckpointError(
            f"{directory}: no per-pcoder files (such as pnet_pretrained_pc1_049.pth or "
            "pvgg16_imagenet_pretrained_pc1_pmodule.pth) in this directory"
        )
    numbers = sorted(found)
    if numbers != list(range(1, len(numbers) + 1)):
        raise CheckpointError(
            f"{directory}: per-pcoder files for pcoders {numbers}; expected pcoders 1..N"
        )
    common = set.intersection(*(set(epochs) for epochs in found.values()))
    if epoch is not None:
        if epoch not in common:
            available = sorted(e for e in common if e is not None)
            raise CheckpointError(
                f"{directory}: no files of epoch {epoch} for every pcoder (epochs with a file for "
                f"every pcoder: {available or 'none'})"
            )
        chosen: int | None = epoch
    else:
        numbered = sorted(e for e in common if e is not None)
        if numbered:
            chosen = numbered[-1]
        elif None in common:
            chosen = None
        else:
            raise CheckpointError(
                f"{directory}: the per-pcoder files are of different epochs "
                f"({ {n: sorted(e for e in found[n] if e is not None) for n in numbers} }); "
                "no epoch has a file for every pcoder"
            )
    return [found[number][chosen] for number in numbers], chosen


def _parse_source(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], epoch: int | None
) -> _Parsed:
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            files, chosen = _per_pcoder_files(path, epoch)
            parsed = _parse_files(files)
            parsed.epoch = chosen if chosen is not None else parsed.epoch
            return parsed
        payload = _read(path)
        if _is_network(payload):
            return _parse_network(payload, path)
        entry, layout, file_epoch = _parse_single_pcoder(payload, path)
        return _Parsed(layout, {0: entry}, (path,), epoch=file_epoch)
    files = [Path(item) for item in source]
    if not files:
        raise CheckpointError("original feedback: the list of files is empty")
    return _parse_files(files)


def _parse_files(files: Sequence[Path]) -> _Parsed:
    pcoders: dict[int, _Pcoder] = {}
    layouts, epochs = set(), set()
    for index, path in enumerate(files):
        payload = _read(path)
        if _is_network(payload):
            raise CheckpointError(
                f"{path}: holds a whole network (keys like 'pcoder1.pmodule.0.weight'); pass it "
                "alone, not in a list of per-pcoder files"
            )
        entry, layout, file_epoch = _parse_single_pcoder(payload, path)
        pcoders[index] = entry
        layouts.add(layout)
        epochs.add(file_epoch)
    layout = layouts.pop() if len(layouts) == 1 else "mixed"
    epoch = epochs.pop() if len(epochs) == 1 else None
    return _Parsed(layout, pcoders, tuple(files), epoch=epoch)


# ---------------------------------------------------------------------- checking and loading
def _check(pnet: PredictiveNet, parsed: _Parsed) -> None:
    """Refuse a file that does not fit, naming the file's own keys; nothing is loaded before."""
    count = pnet.num_pcoders
    extra = sorted(index for index in parsed.pcoders if index >= count)
    if extra:
        entry = parsed.pcoders[extra[0]]
        first = next(iter(entry.tensors), None)
        label = entry.file_key(first) if first is not None else f"pcoder{extra[0] + 1}"
        raise CheckpointError(
            f"{entry.source}: {label}: the file holds {max(parsed.pcoders) + 1} pcoders, the "
            f"network has {count}"
        )
    expected = {
        index: {
            key: value.shape
            for key, value in pnet.pcoders[index].decoder.state_dict().items()
            if isinstance(value, Tensor)
        }
        for index in parsed.pcoders
    }
    found = {
        index: {key: value.shape for key, value in entry.tensors.items()}
        for index, entry in parsed.pcoders.items()
    }
    # A tensor of the wrong shape is the most telling mismatch: report it first.
    for index, entry in sorted(parsed.pcoders.items()):
        check_tensor_shapes(entry.source, expected[index], found[index], entry.file_key)
    _check_all_pcoders_given(parsed, count)
    for index, entry in sorted(parsed.pcoders.items()):
        check_tensor_names(entry.source, expected[index], found[index], entry.file_key)


def _check_all_pcoders_given(parsed: _Parsed, count: int) -> None:
    missing = [index for index in range(count) if index not in parsed.pcoders]
    if not missing:
        return
    if parsed.layout == "network":
        names = ", ".join(f"pcoder{index + 1}.pmodule.*" for index in missing)
        raise CheckpointError(
            f"{parsed.files[0]}: no {names}: the file holds {len(parsed.pcoders)} pcoders, "
            f"the network has {count}"
        )
    given = (
        f"{parsed.files[0]}: holds the weights of one pcoder"
        if len(parsed.files) == 1
        else f"{len(parsed.files)} per-pcoder files ({parsed.files[0].parent}) hold the "
        f"weights of {len(parsed.pcoders)} pcoders"
    )
    raise CheckpointError(
        f"{given}, the network has {count}: pass the files of all {count} pcoders as a list "
        "(pcoder order) or the directory that holds them"
    )


def _read_hyperparameters(pnet: PredictiveNet, parsed: _Parsed) -> list[Hyperparameters]:
    found = parsed.hyperparameters
    source = parsed.files[0]
    if parsed.layout != "network" or not all(name in found for name in ORIGINAL_NAMES):
        raise CheckpointError(
            f"{source}: holds no hyperparameter buffers (ffm1, fbm1, erm1, ... or ffm, fbm, erm); "
            "call without hyperparameters=True to keep the network's own"
        )
    shared = all(None in found[name] for name in ORIGINAL_NAMES)
    values = []
    for index in range(pnet.num_pcoders):
        number = None if shared else index
        suffix = "" if shared else str(index + 1)
        label = "/".join(f"{name}{suffix}" for name in ORIGINAL_NAMES)
        try:
            read = {ours: found[theirs][number] for theirs, ours in ORIGINAL_NAMES.items()}
        except KeyError:
            raise CheckpointError(
                f"{source}: no {label} (the network has {pnet.num_pcoders} pcoders)"
            ) from None
        if index == pnet.num_pcoders - 1:
            read["feedback"] = 0.0  # the original's top PCoder never reads its feedback weight
        value = Hyperparameters(**read)
        try:
            value.validate(label, has_feedback=True)
        except ConfigError as error:
            raise CheckpointError(f"{source}: {error}") from None
        values.append(value)
    return values


def _from_original_dict(
    value: Mapping[str, float | Tensor], where: str, top: bool = False
) -> Hyperparameters:
    if set(value) != set(ORIGINAL_NAMES):
        raise ConfigError(
            f"{where}: expected the original's keys 'ffm', 'fbm', 'erm', got "
            f"{sorted(map(str, value))}"
        )
    read: dict[str, float] = {}
    for theirs, ours in ORIGINAL_NAMES.items():
        number = value[theirs]
        # The original stored its values as one-element tensors.
        read[ours] = float(number.item()) if isinstance(number, Tensor) else number
    if top:
        read["feedback"] = 0.0  # the original's top PCoder never reads fbm
    result = Hyperparameters(**read)
    result.validate(where, has_feedback=not top)
    return result


def hyperparameters_from_original(
    values: Mapping[str, float | Tensor] | Sequence[Mapping[str, float | Tensor]],
) -> Hyperparameters | list[Hyperparameters]:
    """The original package's hyperparameter dicts as this package's values, for
    [`PredictiveNet.set_hyperparameters()`][predify.network.PredictiveNet.set_hyperparameters].

    Args:
        values: ``{"ffm": feedforward, "fbm": feedback, "erm": pc}`` for every pcoder
            (``PNetSameHP.set_hyperparameters``), or a list of such dicts, one per pcoder, bottom
            first (``PNetSeparateHP.set_hyperparameters``); as there, the top pcoder's ``fbm`` is
            not used (taken as 0). Values may be numbers or one-element tensors.

    Raises:
        ConfigError: a dict without exactly these keys, or values that do not form a valid
            update; the message names the entry (``hyperparameters[1]``).
    """
    if isinstance(values, Mapping):
        return _from_original_dict(values, "hyperparameters")
    return [
        _from_original_dict(value, f"hyperparameters[{index}]", top=index == len(values) - 1)
        for index, value in enumerate(values)
    ]


def _stored_c_sqrt(entry: _Pcoder) -> float | None:
    """The file's sqrt(C), unless it is PCoderN's placeholder (-1: never computed)."""
    value = entry.c_sqrt
    if value is None or value == _C_SQRT_UNSET or not math.isfinite(value) or value <= 0:
        return None
    return value


def _exact_c_sqrt(pnet: PredictiveNet) -> list[float]:
    parameter = next(pnet.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    with torch.no_grad():
        reps = pnet.feedforward_activations(torch.zeros(1, *pnet.input_size, device=device))
    return [
        math.sqrt(decoder_fan_out(pcoder.decoder, tuple(rep.shape[1:])))
        for pcoder, rep in zip(pnet.pcoders, reps, strict=True)
    ]


def load_original_feedback(
    pnet: PredictiveNet,
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    c_sqrt: Literal["file", "exact"] = "file",
    hyperparameters: bool = False,
    epoch: int | None = None,
) -> OriginalFeedback:
    """Load feedback weights saved by the original Predify package or the paper's code.

    Args:
        pnet: the network to load into (its decoders must have the file's structure).
        source: a file (a whole-network state dict, or the one pcoder of a one-pcoder network),
            a directory of per-pcoder files (``pnet_pretrained_pc{n}_{epoch}.pth`` or
            ``*_pc{n}_pmodule.pth``), or a list of per-pcoder files in pcoder order.
        c_sqrt: ``"file"`` (default) adopts the gradient-scaling constants a file holds
            (``pcoderN.C_sqrt``, ``C_sqrt``): the published results were computed with them, and
            the original drew them at random for decoders ending in a ReLU. ``"exact"``
            recomputes them from the decoders' structure.
        hyperparameters: also set feedforward, feedback, pc from the file's ``ffm{n}``/
            ``fbm{n}``/``erm{n}`` (or shared ``ffm``/``fbm``/``erm``) buffers; the top pcoder's
            feedback weight is taken as 0, as the original never read it.
        epoch: with a directory of training checkpoints, the epoch to load (default: the
            latest one with a file for every pcoder).

    Returns:
        [`OriginalFeedback`][predify.original.OriginalFeedback], saying what was read and which
        constants were adopted.

    Raises:
        CheckpointError: a file is missing, unreadable or does not fit; the message names the
            file and the file's own key (``pcoder5.pmodule.0.weight``). Nothing is loaded then.
    """
    if c_sqrt not in ("file", "exact"):
        raise ValueError(f"c_sqrt: expected 'file' or 'exact', got {c_sqrt!r}")
    parsed = _parse_source(source, epoch)
    _check(pnet, parsed)
    values = _read_hyperparameters(pnet, parsed) if hyperparameters else None
    if values is not None and pnet.config.shared_hyperparameters:
        top = replace(values[0], feedback=0.0)
        if any(v != values[0] for v in values[:-1]) or values[-1] != top:
            raise CheckpointError(
                f"{parsed.files[0]}: holds separate hyperparameters per pcoder, but this network "
                "shares one set; build it with shared_hyperparameters = false"
            )

    scaled_with_file_value = any(
        pcoder.gradient_scaling and _stored_c_sqrt(parsed.pcoders[index]) is not None
        for index, pcoder in enumerate(pnet.pcoders)
    )
    wants_exact = c_sqrt == "exact" and any(p.gradient_scaling for p in pnet.pcoders)
    exact = _exact_c_sqrt(pnet) if scaled_with_file_value or wants_exact else []
    with torch.no_grad():
        for index, pcoder in enumerate(pnet.pcoders):
            tensors = pcoder.decoder.state_dict()
            for key, value in parsed.pcoders[index].tensors.items():
                tensors[key].copy_(value)
    if values is not None:
        pnet.set_hyperparameters(values[0] if pnet.config.shared_hyperparameters else values)

    adopted: dict[int, float] = {}
    ignored: list[int] = []
    for index, pcoder in enumerate(pnet.pcoders):
        stored = _stored_c_sqrt(parsed.pcoders[index])
        if pcoder.gradient_scaling:
            if c_sqrt == "file" and stored is not None:
                pcoder.c_sqrt = stored
                adopted[index] = stored
            elif c_sqrt == "exact":
                pcoder.c_sqrt = exact[index]
        elif stored is not None:
            ignored.append(index)
    report = OriginalFeedback(
        files=parsed.files,
        layout=parsed.layout,
        epoch=parsed.epoch,
        c_sqrt_adopted=adopted,
        c_sqrt_exact=dict(enumerate(exact)) if exact else {},
        c_sqrt_ignored=tuple(ignored),
        hyperparameters=values,
    )
    _announce(report)
    return report


def _announce(report: OriginalFeedback) -> None:
    source = report.files[0] if len(report.files) == 1 else report.files[0].parent
    differing = {
        index: value
        for index, value in report.c_sqrt_adopted.items()
        if not math.isclose(value, report.c_sqrt_exact[index], rel_tol=1e-6)
    }
    if differing:
        detail = ", ".join(
            f"pcoders[{i}] {v:.6g} (exact {report.c_sqrt_exact[i]:.6g})"
            for i, v in differing.items()
        )
        warn_outside_predify(
            f"{source}: adopted the gradient-scaling constants sqrt(C) stored in the file: "
            f"{detail}. The published results were computed with them (the original estimated C "
            "at random for decoders ending in a ReLU); pass c_sqrt='exact' to recompute them",
            UserWarning,
        )
    if report.c_sqrt_ignored:
        names = ", ".join(f"pcoder{i + 1}.C_sqrt" for i in report.c_sqrt_ignored)
        warn_outside_predify(
            f"{source}: holds {names}, so its network scaled the error gradients "
            "(gradient_scaling = true); this network does not, and ignores them",
            UserWarning,
        )


def convert_original_state_dict(state: Mapping[str, Any]) -> dict[str, Tensor]:
    """Map an original Predify state dict (``pcoder1.pmodule.0.weight``) to this package's keys
    (``0.decoder.0.weight``, relative to ``pnet.pcoders``); backbone keys are dropped."""
    converted: dict[str, Tensor] = {}
    for key, value in state.items():
        match = _NETWORK_KEY.match(str(key))
        if match and match.group(2).startswith("pmodule.") and isinstance(value, Tensor):
            rest = match.group(2)[len("pmodule.") :]
            converted[f"{int(match.group(1)) - 1}.decoder.{rest}"] = value
    if not converted:
        raise CheckpointError(
            "no original Predify decoder weights found "
            "(expected keys like 'pcoder1.pmodule.0.weight')"
        )
    return converted
