"""Turning a ``--device`` option into a ``torch.device``, with one-line errors."""

from __future__ import annotations

import torch

from ..errors import ConfigError

__all__ = ["DEFAULT_DEVICE", "resolve_device"]

#: The device of every command and API function when none is given: CUDA when available, else
#: the CPU.
DEFAULT_DEVICE = "auto"


def resolve_device(spec: str | torch.device) -> torch.device:
    """``auto`` (CUDA when available, else the CPU), ``cpu``, ``cuda``, ``cuda:N``.

    Raises:
        ConfigError: an unknown device, or CUDA asked for on a machine without it.
    """
    if str(spec) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise ConfigError(
            f"--device: unknown device {str(spec)!r} (expected cpu, cuda, cuda:N or auto)"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {spec}: CUDA is not available on this machine")
    return device
