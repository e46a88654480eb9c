"""Numeric precision, memory layout and compilation: how a command runs the network.

One `Execution` value says it for every command (train, evaluate, tune, demo): autocast to
bf16 or fp16 (gradient scaling for fp16 training), channels-last memory layout, and
``torch.compile`` of the network. The network's weights stay fp32 (autocast runs the matmuls and
convolutions in the low precision and keeps reductions and the update arithmetic's inputs as the
ops decide), so checkpoints are unaffected by the choice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import ConfigError

__all__ = ["PRECISIONS", "Execution", "autocast", "grad_scaler", "prepare_input", "prepare_network"]

#: Accepted ``--precision`` values and the autocast dtype of each (None: no autocast).
PRECISIONS: dict[str, torch.dtype | None] = {
    "fp32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


@dataclass(frozen=True)
class Execution:
    """How the network runs.

    Attributes:
        precision: ``fp32``, ``bf16`` or ``fp16`` (autocast for the low precisions).
        channels_last: store the network's 4-d weights and the input batches channels-last
            (NHWC), the layout tensor cores and oneDNN prefer.
        compile: ``torch.compile`` the network (inductor); the first call compiles, later calls
            with the same shapes reuse the result.
    """

    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"--precision: expected one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The autocast dtype, None for fp32."""
        return PRECISIONS[self.precision]

    def check_device(self, device: torch.device) -> None:
        """Raise [`ConfigError`][predify.runtime.precision.ConfigError] for a precision the device
        cannot run."""
        if (
            self.precision == "bf16"
            and device.type == "cuda"
            and not torch.cuda.is_bf16_supported()
        ):
            raise ConfigError(f"--precision bf16: the GPU {device} does not support bfloat16")


@contextlib.contextmanager
def autocast(device: torch.device | str, execution: Execution) -> Iterator[None]:
    """Autocast to ``execution``'s precision on ``device``'s type; nothing for fp32."""
    dtype = execution.autocast_dtype
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=torch.device(device).type, dtype=dtype):
        yield


def grad_scaler(device: torch.device | str, execution: Execution) -> torch.amp.GradScaler:
    """A gradient scaler, enabled for fp16 only (bf16 has fp32's exponent range: no underflow
    of small gradients to rescue)."""
    return torch.amp.GradScaler(torch.device(device).type, enabled=execution.precision == "fp16")


def prepare_network(network: nn.Module, device: torch.device, execution: Execution) -> nn.Module:
    """Move ``network`` to ``device``, channels-last if asked, and compile it if asked.

    Compiling uses
    `torch.nn.Module.compile()`, which
    compiles in place: the returned module
    is ``network`` itself (a [`PredictiveNet`][predify.network.PredictiveNet] stays one, with its
    methods
    and attributes), only its calls go through the compiled code.
    """
    execution.check_device(device)
    network.to(device)
    if execution.channels_last:
        network.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if execution.compile:
        network.compile()
    return network


def prepare_input(batch: Tensor, execution: Execution) -> Tensor:
    """``batch`` channels-last when asked (4-d batches only); unchanged otherwise."""
    if execution.channels_last and batch.dim() == 4:
        return batch.contiguous(memory_format=torch.channels_last)
    return batch
