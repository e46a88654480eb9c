"""Files: atomic writes (a reader never sees a half-written checkpoint, report or table), safe
loading, content digests, and the one message for tensors that do not fit a network."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = [
    "JsonObject",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "check_format",
    "check_tensor_names",
    "check_tensor_shapes",
    "check_tensors",
    "content_digest",
    "remove_temporaries",
]

#: A JSON object as a file holds it: the type of the file edge only (`to_json` returns one,
#: `from_json` reads one). Everything inside the package is a typed dataclass; this name marks
#: the places where data leaves or enters as JSON.
JsonObject = dict[str, Any]

#: What [`atomic_path()`][predify._io.atomic_path] names its temporary files: ``.<name>.<8 random
#: characters>.tmp``
#: (``tempfile.mkstemp``'s random part), so a cleaner cannot take a user's file for one.
_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    If the body raises, the temporary file is removed and ``path`` is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
    )
    os.close(handle)
    temporary_path = Path(temporary)
    # mkstemp creates the file private (0600); give it the mode a plain open() would.
    os.chmod(temporary_path, 0o666 & ~_UMASK)
    try:
        yield temporary_path
        # Again: a writer may have replaced the file (safetensors creates its own, 0600).
        os.chmod(temporary_path, 0o666 & ~_UMASK)
        with open(temporary_path, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary_path, target)
    finally:
        if temporary_path.exists():
            temporary_path.unlink()


def remove_temporaries(directory: str | os.PathLike[str], skip: str | None = None) -> list[Path]:
    """Remove the temporary files of [`atomic_path()`][predify._io.atomic_path] that a killed
    writer left in
    ``directory`` and its direct subfolders (a subfolder holding a file named ``skip``, another
    job's lock, is left alone); returns the removed paths.

    Only call this while no other process writes there (under the folder's lock).
    """
    directory = Path(directory)
    folders = [directory]
    try:
        folders += [
            entry
            for entry in directory.iterdir()
            if entry.is_dir() and not entry.is_symlink() and not (skip and (entry / skip).exists())
        ]
    except OSError:
        return []
    removed = []
    for folder in folders:
        try:
            entries = list(folder.iterdir())
        except OSError:
            continue
        for entry in entries:
            if _TEMPORARY.match(entry.name) and entry.is_file() and not entry.is_symlink():
                entry.unlink(missing_ok=True)
                removed.append(entry)
    return removed


def _atomic_write(
    path: str | os.PathLike[str], mode: str, write: Callable[[IO[Any]], object]
) -> None:
    with atomic_path(path) as temporary, open(temporary, mode) as handle:
        write(handle)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    _atomic_write(path, "wb", lambda handle: handle.write(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def check_writable_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` if needed and check that files can be written in it, before any work.

    Raises:
        DataError: the directory cannot be created or written, naming it and why.
    """
    from .errors import DataError

    directory = Path(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as error:
        raise DataError(
            f"{directory}: cannot write the output directory: {error.strerror or error}"
        ) from None
    return directory


def load_weights_only(path: str | os.PathLike[str], what: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; nothing in the file is executed.

    Raises:
        CheckpointError: one line naming the file and ``what`` it should hold when it is missing
            or cannot be read (a pickle that needs code to load included).
    """
    import torch

    from .errors import CheckpointError

    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"{file}: {what} not found")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as error:
        # What a truncated, corrupt or code-carrying file raises; anything else is a bug.
        lines = str(error).strip().splitlines()
        detail = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
        raise CheckpointError(f"{file}: cannot read {what}: {detail}") from error


def content_digest(value: Any) -> str:
    """SHA-256 (hex) of the content of ``value``: tensors (dtype, shape, bytes), strings, numbers,
    None, and lists, tuples and dicts of them (dict keys in sorted order).

    A file stores it beside what it covers and its reader compares: bytes a disk or a copy
    garbled are caught even where the format keeps no checksum (safetensors, torch's zip).
    """
    digest = hashlib.sha256()
    _feed(digest, value)
    return digest.hexdigest()


def _feed(digest: Any, value: Any) -> None:
    import torch

    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"T{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        digest.update(f"D{len(value)}".encode())
        for key in sorted(value, key=lambda item: (type(item).__name__, repr(item))):
            _feed(digest, key)
            _feed(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"L{len(value)}".encode())
        for item in value:
            _feed(digest, item)
    elif isinstance(value, str):
        encoded = value.encode("utf-8")
        digest.update(f"S{len(encoded)}:".encode() + encoded)
    elif value is None or isinstance(value, (bool, int, float)):
        digest.update(f"{type(value).__name__}:{value!r};".encode())
    else:
        raise TypeError(f"content_digest: cannot digest a {type(value).__name__}")


# ---------------------------------------------------------------------- tensors that do not fit
#: How many names a mismatch message lists before it says how many more there are.
_LISTED = 5


def check_tensor_shapes(
    source: object,
    expected: Mapping[str, Sequence[int]],
    found: Mapping[str, Sequence[int]],
    file_key: Callable[[str], str] = repr,
) -> None:
    """Raise a one-line CheckpointError naming the first tensor whose shape in the file
    (``found``, key -> shape) differs from the network's (``expected``).

    Args:
        source: the file, as the message names it.
        expected: the network's tensors that the file should hold, key -> shape.
        found: the file's tensors under the same keys, key -> shape.
        file_key: names a key as the file itself writes it (``pcoder5.pmodule.0.weight`` in an
            original Predify file); default: the key, quoted.
    """
    from .errors import CheckpointError

    for key, shape in found.items():
        wanted = expected.get(key)
        if wanted is not None and tuple(shape) != tuple(wanted):
            raise CheckpointError(
                f"{source}: {file_key(key)} has shape {list(shape)} in the file but "
                f"{list(wanted)} in the network"
            )


def check_tensor_names(
    source: object,
    expected: Mapping[str, object],
    found: Mapping[str, object],
    file_key: Callable[[str], str] = repr,
) -> None:
    """Raise a one-line CheckpointError listing the tensors the file lacks and those the
    network has no place for (named by ``file_key``, as in
    [`check_tensor_shapes()`][predify._io.check_tensor_shapes])."""
    from .errors import CheckpointError

    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    parts = []
    for what, keys in (("missing tensors", missing), ("unexpected tensors", unexpected)):
        if keys:
            named = ", ".join(file_key(key) for key in keys[:_LISTED])
            more = f" and {len(keys) - _LISTED} more" if len(keys) > _LISTED else ""
            parts.append(f"{what} {named}{more}")
    if parts:
        raise CheckpointError(f"{source}: does not fit the network: {'; '.join(parts)}")


def check_tensors(
    source: object,
    expected: Mapping[str, Sequence[int]],
    found: Mapping[str, Sequence[int]],
    file_key: Callable[[str], str] = repr,
) -> None:
    """Both checks, the shapes first: a tensor of the wrong shape is the most telling mismatch."""
    check_tensor_shapes(source, expected, found, file_key)
    check_tensor_names(source, expected, found, file_key)


def check_format(
    data: Mapping[str, object],
    readable: Sequence[str],
    where: str,
    hint: str,
    *,
    unversioned: bool = False,
) -> str | None:
    """The ``format`` tag of a file's JSON object if this predify reads it, else a one-line
    DataError naming the file, the tag found and those expected, and ``hint`` (what to do).

    ``unversioned``: a file without a tag (written before formats were versioned) is read too;
    its tag is then None.
    """
    from .errors import DataError

    version = data.get("format")
    if version in readable or (unversioned and version is None):
        return None if version is None else str(version)
    expected = ", ".join(readable) + (" or an unversioned file" if unversioned else "")
    raise DataError(
        f"{where}: format {version!r} is not one this predify reads (expected {expected}); {hint}"
    )
