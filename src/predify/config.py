"""Typed configs for predictive networks, read from and written to TOML.

The original Predify TOML format is accepted unchanged::

    name = "PVGG16"
    input_size = [3, 224, 224]
    gradient_scaling = false
    shared_hyperparameters = false
    imports = ["from torch.nn import Sequential, ReLU, ConvTranspose2d"]

    [[pcoders]]
    module = "features[3]"
    predictor = "ConvTranspose2d(64, 3, kernel_size=5, stride=1, padding=2)"
    [pcoders.hyperparameters]
    feedforward = 0.8   # beta: weight of the feed-forward drive
    feedback = 0.1      # lambda: weight of the top-down prediction
    pc = 0.01           # alpha: step size on the prediction-error gradient

With ``shared_hyperparameters = true`` one top-level ``[hyperparameters]`` table serves every
pcoder. Extensions of this project: an optional per-pcoder ``c_sqrt`` (the gradient-scaling
constant), ``learnable_hyperparameters`` and ``timesteps`` (the default number of timesteps).

A file (or dict) is read with the original package's semantics (``predify/base.py``'s
``parse_toml`` and its ``PCoder`` classes, miladmozafari/predify at eca7a74), each departure
from what is written announced by a [`ConfigWarning`][predify.errors.ConfigWarning] naming the
field:

- ``shared_hyperparameters = true`` with per-pcoder values: every pcoder takes the first
  pcoder's values (the defaults 0.3/0.3/0.01 when it has none), the others are ignored; a
  top-level ``[hyperparameters]`` table, when given, wins over them all;
- a feedback weight on the top pcoder is ignored (taken as 0: nothing lies above it);
- a missing ``gradient_scaling`` or ``shared_hyperparameters`` is false.

A pcoder without ``hyperparameters`` (and no top-level table) takes 0.3/0.3/0.01, the original's
default, without a warning: nothing departs from the original there.

What would make the dynamics ill-defined (a negative or non-finite weight, beta + lambda > 1) is
refused with a [`ConfigError`][predify.errors.ConfigError], ignored or not. A
[`PNetConfig`][predify.config.PNetConfig] built
in Python is not normalised: there, a feedback weight on the top pcoder is an error.
"""

from __future__ import annotations

import difflib
import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from ._io import JsonObject, atomic_write_text
from .errors import ConfigError, warn_outside_predify
from .parsing import check_import_line

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "ConfigSource",
    "Hyperparameters",
    "PCoderConfig",
    "PNetConfig",
    "dumps_toml",
    "load_config",
]


@dataclass(frozen=True)
class Hyperparameters:
    """The weights of one pcoder's update.

    ``e(t) = feedforward * ff(t) + feedback * d_above(t-1)
    + (1 - feedforward - feedback) * e(t-1) - pc * grad(t-1)``
    """

    feedforward: float = 0.3
    """beta: weight of the feed-forward drive."""
    feedback: float = 0.3
    """lambda: weight of the top-down prediction from the pcoder above."""
    pc: float = 0.01
    """alpha: step size on the gradient of the pcoder's own prediction error."""

    @property
    def memory(self) -> float:
        """1 - beta - lambda: weight of the previous representation."""
        return 1.0 - self.feedforward - self.feedback

    def validate(self, where: str, has_feedback: bool = True) -> None:
        """Raise [`ConfigError`][predify.config.ConfigError] naming ``where`` unless the values
        form a valid update."""
        for name in ("feedforward", "feedback", "pc"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ConfigError(f"{where}.{name}: expected a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"{where}.{name}: expected a finite value >= 0, got {value!r}")
        if self.feedforward + self.feedback > 1.0 + 1e-9:
            raise ConfigError(
                f"{where}: feedforward + feedback must be <= 1 (the memory weight "
                "1 - feedforward - feedback must be >= 0), "
                f"got {self.feedforward} + {self.feedback}"
            )
        if not has_feedback and self.feedback != 0:
            raise ConfigError(
                f"{where}.feedback: the top pcoder has no pcoder above it, so its feedback weight "
                f"must be 0, got {self.feedback}"
            )

    @classmethod
    def from_json(cls, data: Any, where: str) -> Hyperparameters:
        """From plain data (a TOML or JSON table); errors name ``where``."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: expected a table with feedforward, feedback, pc")
        _check_keys(data, {"feedforward", "feedback", "pc"}, where)
        return cls(**{key: data[key] for key in data})

    def to_json(self) -> dict[str, float]:
        """As plain data: the table a config file writes."""
        return {"feedforward": self.feedforward, "feedback": self.feedback, "pc": self.pc}


@dataclass(frozen=True)
class PCoderConfig:
    """One pcoder: the backbone module whose output it updates, and its decoder."""

    module: str
    """Path of the backbone submodule (``"features[3]"``, ``"layer2.1"``)."""
    predictor: str | None = None
    """Decoder as a torch.nn constructor string; None builds the automatic decoder."""
    hyperparameters: Hyperparameters | None = None
    """Per-pcoder hyperparameters; None uses the shared or default ones."""
    c_sqrt: float | None = None
    """Gradient-scaling constant sqrt(C); None computes it from the decoder."""

    @classmethod
    def from_json(cls, data: Any, where: str) -> PCoderConfig:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: expected a table with at least 'module'")
        _check_keys(data, {"module", "predictor", "hyperparameters", "c_sqrt"}, where)
        module = data.get("module")
        if not isinstance(module, str) or not module.strip():
            raise ConfigError(f"{where}.module: expected a module path such as 'features[3]'")
        predictor = data.get("predictor")
        if predictor is not None and (not isinstance(predictor, str) or not predictor.strip()):
            raise ConfigError(f"{where}.predictor: expected a predictor string, got {predictor!r}")
        hyperparameters = None
        if data.get("hyperparameters") is not None:
            hyperparameters = Hyperparameters.from_json(
                data["hyperparameters"], f"{where}.hyperparameters"
            )
        c_sqrt = data.get("c_sqrt")
        if c_sqrt is not None:
            if (
                not isinstance(c_sqrt, (int, float))
                or isinstance(c_sqrt, bool)
                or not math.isfinite(c_sqrt)
                or c_sqrt <= 0
            ):
                raise ConfigError(f"{where}.c_sqrt: expected a number > 0, got {c_sqrt!r}")
            c_sqrt = float(c_sqrt)
        return cls(module.strip(), predictor, hyperparameters, c_sqrt)

    def to_json(self) -> JsonObject:
        data: JsonObject = {"module": self.module}
        if self.predictor is not None:
            data["predictor"] = self.predictor
        if self.c_sqrt is not None:
            data["c_sqrt"] = self.c_sqrt
        if self.hyperparameters is not None:
            data["hyperparameters"] = self.hyperparameters.to_json()
        return data


@dataclass(frozen=True)
class PNetConfig:
    """Everything needed to add predictive-coding feedback to a backbone.

    ``pcoders`` are listed bottom first, in the order the backbone runs their modules.
    """

    pcoders: tuple[PCoderConfig, ...]
    input_size: tuple[int, ...] = (3, 224, 224)
    """Shape of one input sample, (C, H, W) or (C, D, H, W)."""
    name: str = "PNet"
    gradient_scaling: bool = False
    """Scale each error gradient by numel(prediction) / sqrt(C) (the reference's PCoderN)."""
    shared_hyperparameters: bool = False
    hyperparameters: Hyperparameters | None = None
    """The shared hyperparameters (with ``shared_hyperparameters``) or the default ones."""
    learnable_hyperparameters: bool = False
    timesteps: int = 10
    """The default number of timesteps of a forward call."""
    imports: tuple[str, ...] = ()
    """Original-format import lines; checked against the layer whitelist, never executed."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "pcoders", tuple(self.pcoders))
        object.__setattr__(self, "input_size", tuple(self.input_size))
        object.__setattr__(self, "imports", tuple(self.imports))
        self.validate()

    def validate(self) -> None:
        """Raise [`ConfigError`][predify.config.ConfigError] naming the field unless the config is
        consistent."""
        if not self.pcoders:
            raise ConfigError("pcoders: expected at least one [[pcoders]] entry")
        for index, pcoder in enumerate(self.pcoders):
            if not isinstance(pcoder, PCoderConfig):
                raise ConfigError(f"pcoders[{index}]: expected a PCoderConfig, got {pcoder!r}")
        if len(self.input_size) not in (3, 4) or not all(
            isinstance(size, int) and not isinstance(size, bool) and size > 0
            for size in self.input_size
        ):
            raise ConfigError(
                f"input_size: expected [C, H, W] or [C, D, H, W] of positive integers, "
                f"got {list(self.input_size)}"
            )
        if not isinstance(self.timesteps, int) or self.timesteps < 0:
            raise ConfigError(f"timesteps: expected an integer >= 0, got {self.timesteps!r}")
        modules = [pcoder.module for pcoder in self.pcoders]
        for index, module in enumerate(modules):
            if module in modules[:index]:
                raise ConfigError(f"pcoders[{index}].module: {module!r} is listed twice")
        for index, line in enumerate(self.imports):
            check_import_line(line, f"imports[{index}]")
        if self.shared_hyperparameters:
            for index, pcoder in enumerate(self.pcoders):
                if pcoder.hyperparameters is not None:
                    raise ConfigError(
                        f"pcoders[{index}].hyperparameters: shared_hyperparameters is true, so "
                        "set them once in the top-level [hyperparameters] table"
                    )
            # The top pcoder ignores the shared feedback weight: nothing lies above it.
            self.shared().validate("hyperparameters", has_feedback=True)
        else:
            for index in range(len(self.pcoders)):
                self.hyperparameters_of(index).validate(
                    f"pcoders[{index}].hyperparameters", has_feedback=index < len(self.pcoders) - 1
                )

    def shared(self) -> Hyperparameters:
        return self.hyperparameters or Hyperparameters()

    def hyperparameters_of(self, index: int) -> Hyperparameters:
        """The hyperparameters pcoder ``index`` uses (its own, shared, or the defaults)."""
        own = None if self.shared_hyperparameters else self.pcoders[index].hyperparameters
        if own is not None:
            return own
        default = self.shared()
        if index == len(self.pcoders) - 1 and not self.shared_hyperparameters:
            return replace(default, feedback=0.0)
        return default

    # ------------------------------------------------------------------ conversion
    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, source: str | None = None) -> PNetConfig:
        """Build a config from a dict in the TOML layout, with the original package's semantics
        (see the module docstring); ``source`` names the file in warnings."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"config: expected a table, got {type(data).__name__}")
        _check_keys(data, {f.name for f in fields(cls)}, "config")
        raw_pcoders = data.get("pcoders")
        if not isinstance(raw_pcoders, Sequence) or isinstance(raw_pcoders, (str, bytes)):
            raise ConfigError("pcoders: expected a list of [[pcoders]] tables")
        pcoders = tuple(
            PCoderConfig.from_json(item, f"pcoders[{index}]")
            for index, item in enumerate(raw_pcoders)
        )
        kwargs: dict[str, Any] = {"pcoders": pcoders}
        if "input_size" in data:
            size = data["input_size"]
            if not isinstance(size, Sequence) or isinstance(size, (str, bytes)):
                raise ConfigError(
                    f"input_size: expected a list such as [3, 224, 224], got {size!r}"
                )
            kwargs["input_size"] = tuple(size)
        for key, kind in (
            ("name", str),
            ("gradient_scaling", bool),
            ("shared_hyperparameters", bool),
            ("learnable_hyperparameters", bool),
            ("timesteps", int),
        ):
            if key in data:
                value = data[key]
                if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                    raise ConfigError(f"{key}: expected {kind.__name__}, got {value!r}")
                kwargs[key] = value
        if data.get("hyperparameters") is not None:
            kwargs["hyperparameters"] = Hyperparameters.from_json(
                data["hyperparameters"], "hyperparameters"
            )
        if "imports" in data:
            imports = data["imports"]
            if isinstance(imports, str):
                imports = [imports]
            if not isinstance(imports, Sequence) or not all(isinstance(i, str) for i in imports):
                raise ConfigError(f"imports: expected a list of import lines, got {imports!r}")
            kwargs["imports"] = tuple(imports)
        _adopt_original_semantics(data, kwargs, source)
        return cls(**kwargs)

    def to_json(self) -> JsonObject:
        """The config as a dict in the TOML layout."""
        data: JsonObject = {
            "name": self.name,
            "input_size": list(self.input_size),
            "gradient_scaling": self.gradient_scaling,
            "shared_hyperparameters": self.shared_hyperparameters,
            "learnable_hyperparameters": self.learnable_hyperparameters,
            "timesteps": self.timesteps,
        }
        if self.imports:
            data["imports"] = list(self.imports)
        if self.hyperparameters is not None:
            data["hyperparameters"] = self.hyperparameters.to_json()
        data["pcoders"] = [pcoder.to_json() for pcoder in self.pcoders]
        return data

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> PNetConfig:
        """Read a config from a TOML file; errors name the file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"{path}: cannot read config file: {error}") from None
        return cls.from_toml_string(text, source=str(path))

    @classmethod
    def from_toml_string(cls, text: str, source: str = "<string>") -> PNetConfig:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{source}: invalid TOML: {error}") from None
        try:
            return cls.from_json(data, source=source)
        except ConfigError as error:
            raise ConfigError(f"{source}: {error}") from None

    def to_toml(self) -> str:
        """The config as TOML text (the original format plus this project's extensions)."""
        return dumps_toml(self.to_json())

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the config to ``path`` as TOML, atomically."""
        atomic_write_text(path, self.to_toml())

    def with_pcoder(self, index: int, **changes: Any) -> PNetConfig:
        """A copy with fields of pcoder ``index`` replaced."""
        pcoders = list(self.pcoders)
        pcoders[index] = replace(pcoders[index], **changes)
        return replace(self, pcoders=tuple(pcoders))


ConfigSource = str | os.PathLike | Mapping[str, Any] | PNetConfig


def load_config(source: ConfigSource) -> PNetConfig:
    """A [`PNetConfig`][predify.config.PNetConfig] from a TOML path, a dict in the TOML layout, or
    a config object."""
    if isinstance(source, PNetConfig):
        return source
    if isinstance(source, Mapping):
        return PNetConfig.from_json(source)
    if isinstance(source, (str, os.PathLike)):
        return PNetConfig.from_toml(source)
    raise ConfigError(
        f"config: expected a TOML path, a dict or a PNetConfig, got {type(source).__name__}"
    )


def _warn(source: str | None, message: str) -> None:
    prefix = f"{source}: " if source and source != "<string>" else ""
    warn_outside_predify(prefix + message)


def _is_plain_weight(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def _adopt_original_semantics(
    data: Mapping[str, Any], kwargs: dict[str, Any], source: str | None
) -> None:
    """Rewrite ``kwargs`` (parsed from ``data``) as the original package would have read them,
    with a warning for each value that is not used as written."""
    for key in ("gradient_scaling", "shared_hyperparameters"):
        if key not in data:
            _warn(source, f"{key}: not given; it is false (the original Predify's default)")
    pcoders: tuple[PCoderConfig, ...] = kwargs["pcoders"]
    if not pcoders:
        return  # refused by validation
    given = [index for index, pcoder in enumerate(pcoders) if pcoder.hyperparameters is not None]
    if kwargs.get("shared_hyperparameters", False):
        if not given:
            return
        if "hyperparameters" in kwargs:
            ignored = ", ".join(f"pcoders[{index}].hyperparameters" for index in given)
            _warn(
                source,
                f"{ignored}: ignored, because shared_hyperparameters is true and the top-level "
                "[hyperparameters] table is given: every pcoder uses that table",
            )
        else:
            first = pcoders[0].hyperparameters
            shared = first if first is not None else Hyperparameters()
            origin = "pcoders[0].hyperparameters" if first is not None else "the defaults"
            others = [f"pcoders[{index}].hyperparameters" for index in given if index > 0]
            detail = f"; {', '.join(others)} ignored" if others else ""
            _warn(
                source,
                f"shared_hyperparameters is true: every pcoder uses {origin} "
                f"(feedforward={shared.feedforward}, feedback={shared.feedback}, pc={shared.pc})"
                f"{detail}, as the original Predify did; to say so explicitly, write them once "
                "in a top-level [hyperparameters] table",
            )
            if first is not None:
                first.validate("pcoders[0].hyperparameters", has_feedback=True)
            kwargs["hyperparameters"] = shared
        kwargs["pcoders"] = tuple(replace(pcoder, hyperparameters=None) for pcoder in pcoders)
        return
    top = pcoders[-1].hyperparameters
    if top is not None and top.feedback != 0 and _is_plain_weight(top.feedback):
        index = len(pcoders) - 1
        _warn(
            source,
            f"pcoders[{index}].hyperparameters.feedback: the top pcoder has no pcoder above it, "
            f"so its feedback weight {top.feedback!r} is ignored (taken as 0; memory weight "
            "1 - feedforward), as in the original Predify",
        )
        kwargs["pcoders"] = (
            *pcoders[:-1],
            replace(pcoders[-1], hyperparameters=replace(top, feedback=0.0)),
        )


def _check_keys(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    for key in data:
        if key not in allowed:
            near = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            hint = (
                f"; did you mean {near[0]!r}?" if near else f"; expected one of {sorted(allowed)}"
            )
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")


# ---------------------------------------------------------------------- TOML output
def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"cannot write the non-finite number {value} to TOML")
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        escaped = escaped.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
        return f'"{escaped}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise ConfigError(f"cannot write a value of type {type(value).__name__} to TOML")


def _is_table_list(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple))
        and bool(value)
        and all(isinstance(item, Mapping) for item in value)
    )


def _dump_table(data: Mapping[str, Any], prefix: str, lines: list[str]) -> None:
    tables = []
    for key, value in data.items():
        if isinstance(value, Mapping) or _is_table_list(value):
            tables.append((key, value))
        elif value is not None:
            lines.append(f"{key} = {_toml_value(value)}")
    for key, value in tables:
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping):
            lines.extend(["", f"[{name}]"])
            _dump_table(value, name, lines)
        else:
            for item in value:
                lines.extend(["", f"[[{name}]]"])
                _dump_table(item, name, lines)


def dumps_toml(data: Mapping[str, Any]) -> str:
    """Write nested dicts of numbers, strings, booleans and lists as TOML text."""
    lines: list[str] = []
    _dump_table(data, "", lines)
    return "\n".join(lines).lstrip("\n") + "\n"
