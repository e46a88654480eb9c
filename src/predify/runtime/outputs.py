"""The output folder of a job: made ready, checked writable and locked before any work.

[`prepare_output_dir()`][predify.runtime.outputs.prepare_output_dir] is the one place an output
folder is made ready: created, checked writable and locked (``.predify.lock``, see
[`predify.runtime.lock`][predify.runtime.lock]) before any work, so two processes never write into
the same folder; temporary files a killed writer left are removed. Under ``torchrun`` only rank 0
prepares and locks the folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .._io import check_writable_dir, remove_temporaries
from .lock import LOCK_NAME, lock_output_dir

__all__ = ["is_main_process", "prepare_output_dir"]


def is_main_process() -> bool:
    """Whether this process writes the outputs: rank 0 of an initialised ``torch.distributed``
    group, else rank 0 as ``torchrun`` announces it (``RANK`` with ``WORLD_SIZE`` > 1), else
    True (a process on its own)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    try:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
    except ValueError:
        return True  # malformed variables are reported where the process group is joined
    return world_size <= 1 or rank == 0


@contextmanager
def prepare_output_dir(
    path: str | os.PathLike[str], *, is_main: bool | None = None, lock: bool = True
) -> Iterator[Path]:
    """Make ``path`` ready for a job's outputs and hold it for the body of a ``with``::

        with prepare_output_dir(out) as out:
            ...  # every write into out

    On the main process: creates the folder, checks that it is writable, takes its lock
    ([`lock_output_dir()`][predify.runtime.outputs.lock_output_dir]; ``lock=False`` skips it) and
    removes the temporary files an earlier,
    killed writer left (``.NAME.*.tmp`` from
    [`predify._io.atomic_path()`][predify._io.atomic_path], in the folder and
    its subfolders that are not output folders of their own). The lock is released when the
    ``with`` ends, however it ends.

    On the other ranks of a distributed job (``is_main=False``; None:
    [`is_main_process()`][predify.runtime.outputs.is_main_process])
    nothing is created, locked or removed, the path is only handed back: rank 0 owns the
    folder, and the others must not write into it before rank 0 has prepared it.

    Raises:
        DataError: the folder cannot be created or written, naming it and why.
        OutputInUseError: another live process holds the folder.
    """
    main = is_main_process() if is_main is None else is_main
    if not main:
        yield Path(path)
        return
    directory = check_writable_dir(path)
    if not lock:
        yield directory
        return
    with lock_output_dir(directory):
        remove_temporaries(directory, skip=LOCK_NAME)
        yield directory
