"""The lock of an output folder: one process at a time writes into it.

The lock is ``.predify.lock`` in the folder, holding its owner (pid, host, command line, start
time) as JSON; [`lock_output_dir()`][predify.runtime.lock.lock_output_dir] takes and releases it.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import OutputInUseError

__all__ = ["LOCK_NAME", "LockOwner", "lock_output_dir", "read_lock"]

#: The lock file of an output folder (see
#: [`lock_output_dir()`][predify.runtime.lock.lock_output_dir]).
LOCK_NAME = ".predify.lock"


@dataclass(frozen=True)
class LockOwner:
    """The process a lock file names; fields a writer left out are None."""

    pid: int | None = None
    host: str | None = None
    command: str | None = None
    since: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"pid": self.pid, "host": self.host, "command": self.command, "since": self.since}

    @classmethod
    def from_json(cls, data: object) -> LockOwner | None:
        """The owner in a lock file's JSON; None when it is not an object or an empty one."""
        if not isinstance(data, dict) or not data:
            return None
        pid = data.get("pid")
        texts = {key: data.get(key) for key in ("host", "command", "since")}
        return cls(
            pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
            **{key: value if isinstance(value, str) else None for key, value in texts.items()},
        )

    def describe(self) -> str:
        if self.pid is None:
            return "a process whose lock file names no owner"
        where = f" on {self.host}" if self.host else ""
        command = f" ({self.command})" if self.command else ""
        since = f" since {self.since}" if self.since else ""
        return f"pid {self.pid}{where}{command}{since}"


def read_lock(path: str | os.PathLike[str]) -> LockOwner | None:
    """The owner a lock file names; None when the file is missing, empty (an owner still writing
    it) or unreadable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return LockOwner.from_json(data)


def _describe(owner: LockOwner | None) -> str:
    return (owner or LockOwner()).describe()


def _pid_alive(pid: int | None) -> bool | None:
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
            owner = read_lock(path) or LockOwner()
            mine = owner.host == socket.gethostname()
            if not (mine and _pid_alive(owner.pid) is False):
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
    owner = LockOwner(
        pid=os.getpid(),
        host=socket.gethostname(),
        command=" ".join(["predify", *sys.argv[1:]]) if sys.argv else "",
        since=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    os.ftruncate(handle, 0)
    os.write(handle, (json.dumps(owner.to_json()) + "\n").encode("utf-8"))


def _release(path: Path, handle: int) -> None:
    # Removed while still held, so no other process can lock the old file after we let go.
    path.unlink(missing_ok=True)
    os.close(handle)
