"""The ``predify`` command line: ``predify demo|train|evaluate|tune|models``.

Each subcommand lives in its own subpackage as a module with ``add_arguments(parser)`` and
``run(args) -> int`` that builds the settings of the command's Python function and calls it
(``predify.train.api.train_run``, ``predify.evaluate.api.evaluate_run``,
``predify.tune.api.tune_run``, ``predify.demo.run_demo``); this file only wires them. User errors
([`predify.PredifyError`][predify.PredifyError], malformed options included) print one line on
stderr and exit
with status 2; Ctrl-C exits with 130. Warnings (a config value accepted as the original Predify
accepted it, say) print as one line each.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from . import __version__
from .errors import PredifyError, UsageError

__all__ = ["main"]

# name -> (module, one-line help)
_COMMANDS = {
    "demo": (
        "predify.demo.cli",
        "train a small CNN and its feedback on embedded MNIST-5k and report",
    ),
    "train": ("predify.train.cli", "train the feedback (decoders) of a network, backbone frozen"),
    "evaluate": (
        "predify.evaluate.cli",
        "robustness over timesteps: corruptions, attacks, analysis",
    ),
    "tune": ("predify.tune.cli", "tune beta, lambda, alpha on noisy images; feedback reliance"),
    "models": ("predify.cli", "list the model zoo"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``predify models`` (none)."""


def run(args: argparse.Namespace) -> int:
    """``predify models``: print the zoo's model names."""
    from .models import list_models

    for name in list_models():
        print(name)
    return 0


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one-line [`UsageError`][predify.cli.UsageError]s, like
    every other
    user error, instead of a usage text and ``SystemExit``."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, self.prog)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="predify",
        description="Predictive-coding feedback for feed-forward CNNs, and its robustness.",
    )
    parser.add_argument("--version", action="version", version=f"predify {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in _COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def _one_line_warning(command: str) -> Callable[..., None]:
    """Show a warning as one line, ``predify CMD: warning: ...``, like the CLI's errors."""

    def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        text = " ".join(str(message).split("\n")).strip()
        print(f"predify {command}: warning: {text}", file=sys.stderr)

    return show


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``predify`` command; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as error:
        message, prog = error.args
        words = list(sys.argv[1:] if argv is None else argv)
        if prog == parser.prog and words and words[0] in _COMMANDS:
            prog = f"{prog} {words[0]}"  # unknown options are found by the top-level parser
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 2
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning(args.command)
            return int(args._run(args) or 0)
    except PredifyError as error:
        message = " ".join(str(error).split("\n")).strip()
        print(f"predify {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"predify {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
