"""Multi-process training under ``torchrun``: the process group helpers of
[`predify.runtime.distributed`][predify.runtime.distributed], which evaluation and tuning share,
re-exported here."""

from __future__ import annotations

from ..runtime.distributed import (
    DistributedInfo,
    distributed_from_env,
    init_distributed,
    shutdown_distributed,
)

__all__ = ["DistributedInfo", "distributed_from_env", "init_distributed", "shutdown_distributed"]
