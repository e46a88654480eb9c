"""The one "skip finished work" store: finished cells of a long job (an evaluation's corruption
cells and attacks, a tuning's noise levels), one JSON file each, so a killed run restarts where
it was.

An output directory holds ``progress/settings.json`` (everything that changes a cell's value:
the model's weights, the images, the timesteps, the seed...) and one ``progress/<key>.json`` per
finished cell, written atomically. A restart with the same settings reuses the finished cells;
with different settings it is refused (or, with ``restart=True``, the old cells are discarded).
Which cells are asked for (corruptions, severities, epsilons) is not part of the settings: adding
a corruption to a finished sweep evaluates only the new cells. Settings that concern only some
cells (an attack's steps, the analysis's image count) can go into those cells' keys instead.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .._io import atomic_write_json
from ..errors import ConfigError, DataError

__all__ = ["ResultStore", "file_digest", "pack_bits", "unpack_bits"]

_KEY = re.compile(r"^[A-Za-z0-9_.=+-]+$")
_SETTINGS_FILE = "settings.json"


def file_digest(paths: Iterable[str | os.PathLike[str]]) -> str:
    """SHA-256 over the bytes of ``paths`` (in the given order), as hex."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def pack_bits(flags: np.ndarray) -> str:
    """A bool array as base64 text (8 flags a byte): compact per-image outcomes for JSON."""
    packed = np.packbits(np.asarray(flags, dtype=bool).astype(np.uint8), axis=None)
    return base64.b64encode(packed.tobytes()).decode("ascii")


def unpack_bits(text: str, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of [`pack_bits()`][predify.runtime.store.pack_bits]; raises ValueError if ``text``
    holds too few flags."""
    count = int(np.prod(shape))
    packed = np.frombuffer(base64.b64decode(text, validate=True), dtype=np.uint8)
    flags = np.unpackbits(packed, count=count)
    if flags.size != count:
        raise ValueError(f"expected {count} flags, found {flags.size}")
    return flags.reshape(shape) > 0


def _canonical(settings: Mapping[str, Any]) -> dict[str, Any]:
    # A JSON round trip turns tuples into lists, as they are after reading the file back.
    return dict(json.loads(json.dumps(settings, sort_keys=True)))


class ResultStore:
    """One JSON file per finished cell under ``directory``, tied to a settings fingerprint.

    Args:
        directory: the ``progress`` folder (created if missing).
        settings: JSON-serialisable values that determine every cell's result.
        restart: discard every finished cell first.
        on_change: what to do with cells left by a run with other settings: ``"refuse"`` (a
            ConfigError naming the changed settings) or ``"discard"`` (compute them again).

    Raises:
        ConfigError: the folder holds cells of a run with different settings, and ``on_change``
            is ``"refuse"``.
        DataError: the folder cannot be created or written.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        settings: Mapping[str, Any],
        restart: bool = False,
        *,
        on_change: Literal["refuse", "discard"] = "refuse",
    ) -> None:
        self.directory = Path(directory)
        self.settings = _canonical(settings)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DataError(f"{self.directory}: cannot create: {error.strerror}") from None
        if not os.access(self.directory, os.W_OK):
            raise DataError(f"{self.directory}: not writable")
        self._remedy = (
            "pass --restart to discard the finished cells"
            if on_change == "refuse"
            else f"delete {self.directory} to compute the cells again"
        )
        stored = self._stored_settings()
        if restart or (on_change == "discard" and stored not in (None, self.settings)):
            self.clear()
        elif stored is not None and stored != self.settings:
            changed = sorted(
                key
                for key in set(stored) | set(self.settings)
                if stored.get(key) != self.settings.get(key)
            )
            raise ConfigError(
                f"{self.directory.parent} holds a previous evaluation with different settings "
                f"(changed: {', '.join(changed)}); pass --restart to discard its finished cells "
                "or choose another --out"
            )
        atomic_write_json(self.directory / _SETTINGS_FILE, self.settings)

    def _stored_settings(self) -> dict[str, Any] | None:
        path = self.directory / _SETTINGS_FILE
        if not path.is_file():
            # Cells without settings cannot be trusted: treat the folder as foreign.
            if any(self.directory.glob("*.json")):
                raise ConfigError(
                    f"{self.directory} holds cells but no {_SETTINGS_FILE}; {self._remedy}"
                )
            return None
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ConfigError(f"{path}: unreadable ({error}); {self._remedy}") from None
        if not isinstance(stored, dict):
            raise ConfigError(
                f"{path}: expected a JSON object, found {type(stored).__name__}; {self._remedy}"
            )
        return stored

    def clear(self) -> None:
        """Remove every finished cell (and the settings file)."""
        for path in self.directory.glob("*.json"):
            path.unlink()

    def _path(self, key: str) -> Path:
        if not _KEY.match(key) or key == _SETTINGS_FILE[: -len(".json")]:
            raise ValueError(f"progress key {key!r}: expected letters, digits and _.=+-")
        return self.directory / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The payload of a finished cell, or None when the cell is not finished.

        Raises:
            DataError: the cell's file is there but unreadable, truncated or not a JSON object.
                Cells are written atomically, so a kill never leaves one so: something else
                changed it, and its value cannot be trusted.
        """
        path = self._path(key)
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            detail = error.strerror if isinstance(error, OSError) else str(error)
            raise DataError(
                f"{path}: unreadable finished cell ({detail}); delete it to compute the cell again"
            ) from None
        if not isinstance(payload, dict):
            raise DataError(
                f"{path}: expected a JSON object, found {type(payload).__name__}; delete it to "
                "compute the cell again"
            )
        return payload

    def put(self, key: str, payload: Mapping[str, Any]) -> None:
        """Record a finished cell (atomically: a kill leaves the old file or the new one)."""
        atomic_write_json(self._path(key), dict(payload))

    def keys(self) -> list[str]:
        """Keys of the finished cells, sorted."""
        return sorted(
            path.stem for path in self.directory.glob("*.json") if path.name != _SETTINGS_FILE
        )
