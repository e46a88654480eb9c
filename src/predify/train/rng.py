"""The global random number generators: seeding them, and their state as plain tensors and
numbers (what a training checkpoint keeps, readable with ``weights_only=True``)."""

from __future__ import annotations

import random
from typing import TypedDict

import numpy as np
import torch

__all__ = ["RngState", "capture_rng_state", "restore_rng_state", "seed_everything"]


class _RequiredRngState(TypedDict):
    torch: torch.Tensor
    numpy_key: torch.Tensor
    numpy_position: int
    numpy_has_gauss: int
    numpy_cached_gaussian: float
    python_version: int
    python_internal: torch.Tensor
    python_gauss_next: float | None


class RngState(_RequiredRngState, total=False):
    """Every global RNG's state in types ``weights_only=True`` reads; ``cuda`` only when CUDA was
    in use."""

    cuda: list[torch.Tensor]


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy's global RNG and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng_state() -> RngState:
    """Every global RNG state as tensors and plain numbers (loadable with ``weights_only=True``).

    numpy's Mersenne-Twister key (uint32 [624]) and Python's (625 ints < 2**32) are stored as
    int64 tensors: exact, and a dtype every torch version can read.
    """
    _, numpy_key, numpy_position, numpy_has_gauss, numpy_cached_gaussian = np.random.get_state(
        legacy=True
    )
    python_version, python_internal, python_gauss_next = random.getstate()
    state: RngState = {
        "torch": torch.get_rng_state(),
        "numpy_key": torch.from_numpy(np.asarray(numpy_key, dtype=np.int64)),
        "numpy_position": int(numpy_position),
        "numpy_has_gauss": int(numpy_has_gauss),
        "numpy_cached_gaussian": float(numpy_cached_gaussian),
        "python_version": int(python_version),
        "python_internal": torch.tensor(python_internal, dtype=torch.int64),
        "python_gauss_next": python_gauss_next,
    }
    # Reading CUDA states would initialise CUDA in a CPU-only run; only keep them when in use.
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng_state(state: RngState) -> None:
    """Set every global RNG to a state from
    [`capture_rng_state()`][predify.train.rng.capture_rng_state]."""
    torch.set_rng_state(state["torch"].cpu())
    numpy_key = state["numpy_key"].numpy().astype(np.uint32)
    np.random.set_state(
        (
            "MT19937",
            numpy_key,
            int(state["numpy_position"]),
            int(state["numpy_has_gauss"]),
            float(state["numpy_cached_gaussian"]),
        )
    )
    python_internal = tuple(int(value) for value in state["python_internal"].tolist())
    random.setstate((int(state["python_version"]), python_internal, state["python_gauss_next"]))
    cuda_states = state.get("cuda")
    if cuda_states and torch.cuda.is_available():
        count = min(len(cuda_states), torch.cuda.device_count())
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states[:count]])
