"""A safe parser for predictor strings and ``imports`` lines.

The original Predify passed predictor strings to ``eval``, so a config file could run any code.
Here a predictor string is parsed with [`ast`][predify.parsing.ast] and only a whitelist of
``torch.nn`` layer
constructors with literal arguments is accepted::

    Sequential(ConvTranspose2d(16, 8, kernel_size=4, stride=2, padding=1), ReLU())
    nn.Upsample(scale_factor=2, mode="bilinear")
    torch.nn.ConvTranspose2d(8, 3, 3, padding=1)

Besides ``torch.nn`` layers, predify's own [`TokensToGrid`][predify.layers.TokensToGrid] and
[`Permute`][predify.layers.Permute] (written without a prefix) take a vision transformer's patch
tokens back to a grid and NHWC maps [B, H, W, C] to NCHW. Nothing is imported or
evaluated: the constructors are looked up in the registry of decoder layer types
([`predify.decoder_layers`][predify.decoder_layers]) and called with the parsed literals.
"""

from __future__ import annotations

import ast
from collections.abc import Callable

from torch import nn

from .decoder_layers import DECODER_LAYERS
from .errors import ConfigError

__all__ = ["ALLOWED_LAYERS", "PREDIFY_LAYERS", "check_import_line", "parse_predictor"]

#: The layer constructors a predictor string may call as ``X``, ``nn.X`` or ``torch.nn.X``.
ALLOWED_LAYERS: dict[str, Callable[..., nn.Module]] = {
    name: entry.constructor for name, entry in DECODER_LAYERS.items() if entry.torch_nn
}

#: predify's own layers, called by their bare name only (they are not in torch.nn).
PREDIFY_LAYERS: dict[str, Callable[..., nn.Module]] = {
    name: entry.constructor for name, entry in DECODER_LAYERS.items() if not entry.torch_nn
}

# Spellings a config may use for torch.nn: `X`, `nn.X`, `torch.nn.X`.
_MODULE_PREFIXES = ((), ("nn",), ("torch", "nn"))


def _dotted_name(node: ast.expr) -> tuple[str, ...] | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return tuple(reversed(parts))
    return None


class _PredictorBuilder:
    def __init__(self, text: str, where: str) -> None:
        self.text = text
        self.where = where

    def fail(self, node: ast.AST | None, why: str) -> ConfigError:
        snippet = ""
        if node is not None:
            segment = ast.get_source_segment(self.text, node)
            if segment:
                snippet = f" at {segment!r}"
        return ConfigError(f"{self.where}: {why}{snippet} in predictor {self.text!r}")

    def layer(self, node: ast.expr) -> nn.Module:
        if not isinstance(node, ast.Call):
            raise self.fail(node, "expected a torch.nn layer constructor call")
        name = _dotted_name(node.func)
        if name is None or name[:-1] not in _MODULE_PREFIXES:
            raise self.fail(node.func, "only torch.nn layers (X, nn.X or torch.nn.X) may be called")
        constructor = ALLOWED_LAYERS.get(name[-1])
        if constructor is None and len(name) == 1:
            constructor = PREDIFY_LAYERS.get(name[0])
        if constructor is None:
            raise self.fail(
                node.func,
                f"{name[-1]!r} is not an allowed layer (allowed: {', '.join(DECODER_LAYERS)})",
            )
        if name[-1] == "Sequential":
            if node.keywords:
                raise self.fail(node, "Sequential takes layers only, no keyword arguments")
            return nn.Sequential(*(self.layer(arg) for arg in node.args))
        args = [self.literal(arg) for arg in node.args]
        kwargs: dict[str, object] = {}
        for keyword in node.keywords:
            if keyword.arg is None:
                raise self.fail(keyword.value, "**kwargs are not allowed")
            kwargs[keyword.arg] = self.literal(keyword.value)
        try:
            return constructor(*args, **kwargs)
        except (TypeError, ValueError, RuntimeError) as error:
            raise self.fail(node, f"cannot build {name[-1]}: {error}") from None

    def literal(self, node: ast.expr) -> object:
        if isinstance(node, ast.Constant) and isinstance(
            node.value, (int, float, bool, str, type(None))
        ):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = self.literal(node.operand)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, (ast.Tuple, ast.List)):
            values = [self.literal(element) for element in node.elts]
            return tuple(values) if isinstance(node, ast.Tuple) else values
        raise self.fail(node, "arguments must be literals (numbers, strings, booleans, tuples)")


def parse_predictor(text: str, where: str = "predictor") -> nn.Module:
    """Build the decoder module that a predictor string describes, without evaluating it.

    Args:
        text: for example ``"Sequential(ConvTranspose2d(16, 8, 4, stride=2, padding=1), ReLU())"``.
        where: names the place of the string in error messages (``"pcoders[1].predictor"``).

    Raises:
        ConfigError: the string is not a whitelisted ``torch.nn`` constructor with literal
            arguments; the message names ``where`` and the offending text.
    """
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{where}: expected a non-empty predictor string, got {text!r}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise ConfigError(f"{where}: invalid predictor {text!r}: {error.msg}") from None
    builder = _PredictorBuilder(text.strip(), where)
    return builder.layer(tree.body)


def check_import_line(line: str, where: str = "imports") -> None:
    """Check one ``imports`` line of an original-format config against the whitelist.

    Accepted: ``import torch``, ``import torch.nn as nn``, ``from torch import nn`` and
    ``from torch.nn import A, B`` with allowed layer names. The lines are only checked, never
    executed: every allowed name is always available to predictor strings.
    """
    try:
        tree = ast.parse(line.strip())
    except SyntaxError:
        raise ConfigError(f"{where}: not an import statement: {line!r}") from None
    if len(tree.body) != 1 or not isinstance(tree.body[0], (ast.Import, ast.ImportFrom)):
        raise ConfigError(f"{where}: expected a single import statement, got {line!r}")
    statement = tree.body[0]
    if isinstance(statement, ast.Import):
        for alias in statement.names:
            if alias.name not in ("torch", "torch.nn") or (
                alias.asname not in (None, "nn")
                or (alias.asname == "nn") != (alias.name == "torch.nn")
            ):
                raise ConfigError(
                    f"{where}: import of {alias.name!r} is not allowed in {line!r} "
                    "(allowed: import torch, import torch.nn as nn, from torch.nn import ...)"
                )
        return
    if statement.module == "torch" and all(
        alias.name == "nn" and alias.asname in (None, "nn") for alias in statement.names
    ):
        return
    if statement.module != "torch.nn":
        raise ConfigError(
            f"{where}: imports may only come from torch.nn, got {statement.module!r} in {line!r}"
        )
    for alias in statement.names:
        if alias.name not in ALLOWED_LAYERS or alias.asname not in (None, alias.name):
            raise ConfigError(
                f"{where}: {alias.name!r} is not an allowed torch.nn layer in {line!r}"
            )
