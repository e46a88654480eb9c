"""Training checkpoints: RNG states as tensors, atomic writes, weights-only reads.

A training checkpoint is one ``torch.save`` file holding only tensors, numbers, strings, lists,
tuples, dicts and None, so ``torch.load(path, weights_only=True)`` reads it without unpickling
arbitrary objects::

    format      "predify-train-v1"
    config      the network's config as TOML (c_sqrt and hyperparameters written in)
    pcoders     decoder and hyperparameter tensors, keyed as in ``pnet.pcoders``
    optimizer   optimizer.state_dict()
    scheduler   scheduler.state_dict() or None
    scaler      GradScaler.state_dict() or None (AMP)
    rng         torch, CUDA, numpy and Python RNG states (see
    [`capture_rng_state()`][predify.train.state.capture_rng_state])
    progress    {"step", "epoch", "batch_in_epoch", "seed"}
    settings    the trainer's objective settings, checked on resume
    sha256      content_digest of all the above, checked on reading (a garbled file is refused)
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._io import atomic_path, content_digest, load_weights_only
from ..errors import CheckpointError

__all__ = [
    "TRAIN_CHECKPOINT_FORMAT",
    "capture_rng_state",
    "read_training_checkpoint",
    "restore_rng_state",
    "seed_everything",
    "write_training_checkpoint",
]

TRAIN_CHECKPOINT_FORMAT = "predify-train-v1"
_CHECKSUM = "sha256"  # content_digest of everything else in the file


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy's global RNG and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng_state() -> dict[str, Any]:
    """Every global RNG state as tensors and plain numbers (loadable with ``weights_only=True``).

    numpy's Mersenne-Twister key (uint32 [624]) and Python's (625 ints < 2**32) are stored as
    int64 tensors: exact, and a dtype every torch version can read.
    """
    _, numpy_key, numpy_position, numpy_has_gauss, numpy_cached_gaussian = np.random.get_state(
        legacy=True
    )
    python_version, python_internal, python_gauss_next = random.getstate()
    state: dict[str, Any] = {
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


def restore_rng_state(state: dict[str, Any]) -> None:
    """Set every global RNG to a state from
    [`capture_rng_state()`][predify.train.state.capture_rng_state]."""
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


def write_training_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically: a reader sees the old file or the new one."""
    path = Path(path)
    content = {"format": TRAIN_CHECKPOINT_FORMAT, **payload}
    content[_CHECKSUM] = content_digest(content)
    try:
        with atomic_path(path) as temporary:
            torch.save(content, temporary)
    except OSError as error:
        raise CheckpointError(
            f"{path}: cannot write checkpoint: {error.strerror or error}"
        ) from None
    return path


def read_training_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a training checkpoint with ``weights_only=True``; errors name the file."""
    path = Path(path)
    payload = load_weights_only(path, "training checkpoint")
    if not isinstance(payload, dict) or payload.get("format") != TRAIN_CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: not a predify training checkpoint (no '{TRAIN_CHECKPOINT_FORMAT}' marker)"
        )
    # Checkpoints of earlier versions have no checksum; they are read as they are.
    stored = payload.pop(_CHECKSUM, None)
    if stored is not None and stored != content_digest(payload):
        raise CheckpointError(
            f"{path}: corrupt training checkpoint (its content does not match its checksum); "
            "resume from a copy or start the run again"
        )
    return payload
