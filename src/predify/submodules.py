"""Finding a backbone's submodules by path, temporary hooks, and the shape dry run.

Nothing here leaves a trace on the user's model: hooks live inside a ``with`` block and are
removed when it exits, by an exception too; the dry run restores every module's training flag.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .errors import ConfigError

__all__ = [
    "DryRun",
    "canonical_path",
    "dry_run",
    "eval_mode",
    "forward_hooks",
    "resolve_module",
]

_INDEX = re.compile(r"\[\s*(-?\d+)\s*\]")
_SEGMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$|^-?\d+$")

ForwardHook = Callable[[nn.Module, tuple[Any, ...], Any], Any]


def canonical_path(path: str) -> str:
    """The dotted form of a module path: ``features[3]`` -> ``features.3``."""
    return _INDEX.sub(r".\1", path.strip()).strip(".")


def resolve_module(model: nn.Module, path: str) -> nn.Module:
    """The submodule of ``model`` at ``path``.

    Accepts ``features[3]``, ``features.3``, ``layer2.1``, ``blocks[2][0]`` and ``layer4``;
    negative indices count from the end of a Sequential/ModuleList.

    Raises:
        ConfigError: no such submodule; the message names the path and the nearest existing names.
    """
    dotted = canonical_path(path)
    parts = dotted.split(".") if dotted else []
    if not parts or not all(_SEGMENT.match(part) for part in parts):
        raise ConfigError(f"module path {path!r} is not of the form 'features[3]' or 'layer2.1'")
    module = model
    for depth, part in enumerate(parts):
        child = _child(module, part)
        if child is None:
            known = [name for name, _ in model.named_modules() if name]
            near = difflib.get_close_matches(dotted, known, n=3, cutoff=0.5)
            if not near:
                prefix = ".".join(parts[:depth])
                near = [name for name in known if name.rsplit(".", 1)[0] == prefix][:5] or known[:5]
            raise ConfigError(
                f"module {path!r} not found in {type(model).__name__}; nearest: {', '.join(near)}"
            )
        module = child
    return module


def _child(module: nn.Module, part: str) -> nn.Module | None:
    children = module._modules
    if part in children:
        return children[part]
    if part.lstrip("-").isdigit() and isinstance(module, (nn.Sequential, nn.ModuleList)):
        index = int(part)
        if -len(module) <= index < len(module):
            return module[index]
    return None


@contextmanager
def forward_hooks(hooks: Sequence[tuple[nn.Module, ForwardHook]]) -> Iterator[None]:
    """Register forward hooks for the duration of a ``with`` block; always removed after it."""
    with ExitStack() as stack:
        for module, hook in hooks:
            stack.callback(module.register_forward_hook(hook).remove)
        yield


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Put every submodule in eval mode and restore each one's own flag afterwards."""
    flags = [(module, module.training) for module in model.modules()]
    try:
        model.eval()
        yield
    finally:
        for module, training in flags:
            module.training = training


@dataclass(frozen=True)
class DryRun:
    """What one forward pass of the backbone showed about the chosen modules."""

    output_shapes: tuple[torch.Size, ...]
    """Per module, the shape of its output for one sample (batch dimension included, = 1)."""
    modified_in_place: tuple[bool, ...]
    """Per module, whether a later layer wrote into its output in place (e.g. ReLU(inplace))."""


def dry_run(
    backbone: nn.Module,
    modules: Sequence[nn.Module],
    paths: Sequence[str],
    input_size: Sequence[int],
) -> DryRun:
    """Run ``backbone`` once on zeros of ``input_size`` and inspect the outputs of ``modules``.

    Checks that each module runs exactly once, returns a tensor, and that the modules run in the
    order given; the backbone's training flags and buffers (BatchNorm statistics) are unchanged.
    """
    calls: list[list[tuple[Tensor, int]]] = [[] for _ in modules]
    order: list[int] = []

    def recorder(index: int) -> ForwardHook:
        def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            if not isinstance(output, Tensor):
                raise ConfigError(
                    f"pcoders[{index}].module {paths[index]!r}: returns {type(output).__name__}, "
                    "expected a tensor"
                )
            calls[index].append((output, output._version))
            order.append(index)

        return hook

    parameter = next(backbone.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None and parameter.is_floating_point() else None
    sample = torch.zeros(1, *input_size, device=device, dtype=dtype or torch.float32)
    with torch.no_grad(), eval_mode(backbone):
        with forward_hooks([(m, recorder(i)) for i, m in enumerate(modules)]):
            try:
                backbone(sample)
            except (RuntimeError, ValueError, IndexError) as error:
                # A shape mismatch: the input_size does not fit the backbone. Others are bugs.
                if isinstance(error, ConfigError):
                    raise
                raise ConfigError(
                    f"the backbone fails on an input of size {list(input_size)} (input_size): "
                    f"{type(error).__name__}: {error}"
                ) from error
        for index, outputs in enumerate(calls):
            if len(outputs) != 1:
                raise ConfigError(
                    f"pcoders[{index}].module {paths[index]!r} runs {len(outputs)} times in one "
                    "forward pass; a pcoder module must run exactly once (choose a module that is "
                    "not reused, e.g. a block rather than a shared activation)"
                )
        if order != sorted(order):
            ran = [paths[i] for i in order]
            raise ConfigError(
                f"pcoders must be listed bottom first, in the order the backbone runs them: "
                f"it runs {ran}"
            )
    # A version counter that moved after the hook returned means a later in-place op (such as
    # ReLU(inplace=True)) wrote into the tensor the pcoder keeps as its representation.
    modified = tuple(output._version != version for ((output, version),) in calls)
    return DryRun(tuple(output.shape for ((output, _),) in calls), modified)
