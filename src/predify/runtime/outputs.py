"""What every command shares about its outputs: the output folder, the fingerprint of the run it
read, CSV tables, and when to show progress bars.

- [`prepare_output_dir()`][predify.runtime.outputs.prepare_output_dir] is the one place an output
folder is made ready: created, checked
  writable and locked (``.predify.lock``, holding the owner's pid and host) before any work, so
  two processes never write into the same folder; temporary files a killed writer left are
  removed. Under ``torchrun`` only rank 0 prepares and locks the folder.
- [`run_fingerprint()`][predify.runtime.outputs.run_fingerprint] identifies a run directory's
weights and config: results computed from
  a run carry it, and [`predify.runtime.store.ResultStore`][predify.runtime.store.ResultStore]
  refuses to mix results of two runs.
- Progress: a ``progress`` argument is ``bool | None`` everywhere; None means "only on a
  terminal" ([`resolve_progress()`][predify.runtime.outputs.resolve_progress]).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .._io import atomic_write_text, check_writable_dir, remove_temporaries
from ..errors import OutputInUseError

__all__ = [
    "LOCK_NAME",
    "is_main_process",
    "lock_output_dir",
    "prepare_output_dir",
    "read_lock",
    "resolve_progress",
    "run_fingerprint",
    "write_csv",
]

#: The files of a run directory whose bytes determine every result computed from it.
_RUN_FILES = ("config.toml", "backbone.pt")
#: The lock file of an output folder (see
#: [`lock_output_dir()`][predify.runtime.outputs.lock_output_dir]).
LOCK_NAME = ".predify.lock"


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


def read_lock(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The owner a lock file names (``pid``, ``host``, ``command``, ``since``); ``{}`` when the
    file is missing, empty (an owner still writing it) or unreadable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _describe(owner: dict[str, Any]) -> str:
    if "pid" not in owner:
        return "a process whose lock file names no owner"
    where = f" on {owner['host']}" if owner.get("host") else ""
    command = f" ({owner['command']})" if owner.get("command") else ""
    since = f" since {owner['since']}" if owner.get("since") else ""
    return f"pid {owner['pid']}{where}{command}{since}"


def _pid_alive(pid: Any) -> bool | None:
    """Whether process ``pid`` exists on this machine; None when that cannot be told."""
    if not isinstance(pid, int) or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # it exists, owned by someone else
    return True


@contextmanager
def lock_output_dir(directory: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the lock of ``directory`` (an existing folder) for the body of a ``with``.

    The lock is an exclusive ``flock`` on ``directory/.predify.lock``, a file that names its
    owner (pid, host, command line, start time). The kernel drops the ``flock`` when its owner
    dies, even by SIGKILL: a lock file left by a dead process is taken over, with a note on
    stderr. Released (and the file removed) when the body ends, normally, on an error or on
    Ctrl-C. Where ``flock`` does not exist (Windows) the file alone is the lock and a stale one is
    recognised by its pid no longer running on this host.

    Raises:
        OutputInUseError: another live process holds the lock (its pid and host in the message).
    """
    directory = Path(directory)
    path = directory / LOCK_NAME
    handle = _acquire(directory, path)
    try:
        yield directory
    finally:
        _release(path, handle)


def _acquire(directory: Path, path: Path) -> int:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return _acquire_exclusive_create(directory, path)
    while True:
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            raise OutputInUseError(
                f"{directory}: in use by another predify process ({_describe(read_lock(path))}); "
                "wait for it to finish or choose another --out"
            ) from None
        # The previous owner may have removed the file between our open and our flock: then
        # this lock is on a name nobody else sees, so start again on the file now there.
        try:
            same = os.path.samestat(os.fstat(handle), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(handle)
    previous = read_lock(path)
    if previous:
        print(
            f"predify: note: {directory}: taking over the lock left by {_describe(previous)}, "
            "which is no longer running",
            file=sys.stderr,
        )
    _write_owner(handle)
    return handle


def _acquire_exclusive_create(directory: Path, path: Path) -> int:  # pragma: no cover - Windows
    for _ in range(2):
        try:
            handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            owner = read_lock(path)
            mine = owner.get("host") == socket.gethostname()
            if not (mine and _pid_alive(owner.get("pid")) is False):
                raise OutputInUseError(
                    f"{directory}: in use by another predify process ({_describe(owner)}); wait "
                    f"for it to finish, or remove {path} if it is not running"
                ) from None
            print(
                f"predify: note: {directory}: taking over the lock left by {_describe(owner)}, "
                "which is no longer running",
                file=sys.stderr,
            )
            path.unlink(missing_ok=True)
            continue
        _write_owner(handle)
        return handle
    raise OutputInUseError(f"{directory}: another process took the lock at the same time")


def _write_owner(handle: int) -> None:
    owner = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": " ".join(["predify", *sys.argv[1:]]) if sys.argv else "",
        "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    os.ftruncate(handle, 0)
    os.write(handle, (json.dumps(owner) + "\n").encode("utf-8"))


def _release(path: Path, handle: int) -> None:
    # Removed while still held, so no other process can lock the old file after we let go.
    path.unlink(missing_ok=True)
    os.close(handle)


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


def run_fingerprint(run_dir: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) over the names and bytes of a run's config, backbone and feedback files."""
    from .runs import feedback_path

    run_dir = Path(run_dir)
    digest = hashlib.sha256()
    for path in (*(run_dir / name for name in _RUN_FILES), feedback_path(run_dir)):
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def resolve_progress(progress: bool | None, stream: IO[str] | None = None) -> bool:
    """Whether to show progress bars: ``progress`` itself, or for None whether ``stream``
    (stderr by default) is a terminal."""
    if progress is not None:
        return bool(progress)
    stream = sys.stderr if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)())


def write_csv(path: str | os.PathLike[str], header: Sequence[str], rows: Sequence[Any]) -> Path:
    """Write a CSV table (``header`` then ``rows``) to ``path`` atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())
    return Path(path)
