"""Command-line options shared by every subcommand, defined once.

Each subcommand's ``add_arguments`` calls these, so ``--device`` has one default everywhere,
``--no-progress`` means the same everywhere, and counts are checked by one argparse type.
"""

from __future__ import annotations

import argparse

from .device import DEFAULT_DEVICE
from .precision import PRECISIONS

__all__ = [
    "DEFAULT_DEVICE",
    "add_common_options",
    "add_device_option",
    "add_execution_options",
    "add_progress_option",
    "execution_from_args",
    "nonnegative_int",
    "positive_int",
    "progress_from_args",
]


def _integer(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _integer(text, 1)


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _integer(text, 0)


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """``--device``: auto (default), cpu, cuda, cuda:N."""
    parser.add_argument(
        "--device",
        default=DEFAULT_DEVICE,
        help=f"auto, cpu, cuda, cuda:1 ... (default {DEFAULT_DEVICE}: CUDA if available)",
    )


def add_progress_option(parser: argparse.ArgumentParser) -> None:
    """``--no-progress``: no progress bars (default: bars when stderr is a terminal)."""
    parser.add_argument(
        "--no-progress",
        dest="progress",
        action="store_const",
        const=False,
        default=None,
        help="no progress bars (default: on a terminal)",
    )


def add_execution_options(parser: argparse.ArgumentParser) -> None:
    """``--precision``, ``--channels-last``, ``--compile``: how the network runs
    (`predify.runtime.precision.Execution`)."""
    parser.add_argument(
        "--precision",
        choices=tuple(PRECISIONS),
        default="fp32",
        help="autocast precision: fp32 (none), bf16, or fp16 (with gradient scaling when "
        "training); default fp32",
    )
    parser.add_argument(
        "--channels-last",
        action="store_true",
        help="NHWC memory layout for the network's weights and the batches (faster with "
        "tensor cores)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the network (the first batch compiles: minutes on a CPU)",
    )


def execution_from_args(args: argparse.Namespace) -> dict[str, object]:
    """``precision``, ``channels_last`` and ``compile`` of parsed options, as settings fields."""
    return {
        "precision": getattr(args, "precision", "fp32"),
        "channels_last": bool(getattr(args, "channels_last", False)),
        "compile": bool(getattr(args, "compile", False)),
    }


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """The options every command has: ``--device`` and ``--no-progress``."""
    add_device_option(parser)
    add_progress_option(parser)


def progress_from_args(args: argparse.Namespace) -> bool | None:
    """The ``progress`` argument of the Python API for parsed options."""
    value = getattr(args, "progress", None)
    return None if value is None else bool(value)
