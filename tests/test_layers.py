"""The import direction of docs/architecture.md, read from the source: nothing lower imports higher.

The layer order is written once, here. Each module of ``src/predify`` belongs to the layer of its
first package below ``predify`` (``predify.evaluate.attacks`` to ``evaluate``); the modules at the
top (``predify.config``, ``predify.network``, ...) form the network library, ``core``. A module may
import from its own layer and from the layers below it, never from one above.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import predify

# Lowest first. ``predify/__init__.py`` is the package's public face and may import any layer.
LAYERS: tuple[str, ...] = (
    "core",  # the network library, flat at the top of the package
    "data",  # pixel-space data and noise
    "models",  # the zoo
    "runtime",  # what every job shares: run dirs, outputs, stores, processes, devices, figures
    "train",
    "evaluate",
    "tune",  # reads evaluate's scoring kernel
    "demo",
    "cli",  # the `predify` entry point
)

SOURCE = Path(predify.__file__).parent


def layer_of(module: tuple[str, ...]) -> str:
    """The layer of a module named by its parts below ``predify`` (``("evaluate", "api")``)."""
    if not module:
        return "facade"
    head = module[0]
    if head in LAYERS:
        return head
    if (SOURCE / head).is_dir():
        raise AssertionError(f"predify/{head}/ is in no layer: add it to LAYERS")
    return "core"


def _module_parts(path: Path, source: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the module's parts, the parts of the package its relative imports start from)."""
    parts = path.relative_to(source).with_suffix("").parts
    if parts[-1] == "__init__":
        return parts[:-1], parts[:-1]
    return parts, parts[:-1]


def imports_of(path: Path, source: Path) -> list[tuple[tuple[str, ...], int]]:
    """Every ``predify`` module ``path`` imports, as parts below ``predify``, with its line."""
    _, package = _module_parts(path, source)
    found: list[tuple[tuple[str, ...], int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = base + tuple(node.module.split(".") if node.module else ())
                if node.module is None:  # from . import x: x is a module of the package
                    found += [((*target, alias.name), node.lineno) for alias in node.names]
                    continue
            elif node.module and node.module.split(".")[0] == "predify":
                target = tuple(node.module.split(".")[1:])
            else:
                continue
            found.append((target, node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "predify":
                    found.append((tuple(alias.name.split(".")[1:]), node.lineno))
    return found


def upward_imports(source: Path = SOURCE) -> list[str]:
    """``file:line: layer -> higher layer`` for every import against the layer order."""
    rank = {name: index for index, name in enumerate(LAYERS)}
    wrong = []
    for path in sorted(source.rglob("*.py")):
        module, _ = _module_parts(path, source)
        mine = "cli" if module == ("cli",) else layer_of(module)
        if mine == "facade":
            continue
        for target, line in imports_of(path, source):
            theirs = "cli" if target == ("cli",) else layer_of(target)
            if theirs != "facade" and rank[theirs] > rank[mine]:
                wrong.append(f"{path.relative_to(source)}:{line}: {mine} -> {theirs}")
    return wrong


def test_no_module_imports_a_higher_layer() -> None:
    assert upward_imports() == []


def test_the_check_sees_a_planted_upward_import(tmp_path: Path) -> None:
    # A copy of the package with one upward import planted: core's network imports the trainer.
    import shutil

    copy = tmp_path / "predify"
    shutil.copytree(SOURCE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    network = copy / "network.py"
    network.write_text(network.read_text() + "\nfrom .train import trainer  # planted\n")
    assert upward_imports(copy) == [
        f"network.py:{len(network.read_text().splitlines())}: core -> train"
    ]


@pytest.mark.parametrize("layer", LAYERS[1:-1])
def test_every_layer_is_a_package(layer: str) -> None:
    assert (SOURCE / layer / "__init__.py").is_file()
