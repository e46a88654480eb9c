"""Unreadable image files: found before any work starts, then refused or skipped.

Real image folders hold files that cannot be decoded (a download cut short, a text file named
``.jpg``). Left alone, the first one stops a long run midway with a traceback. Instead, the files a
run will read are checked first ([`find_bad_files()`][predify.data.files.find_bad_files]): each is
opened and decoded in full, at reduced scale where the format allows it (JPEG's DCT scaling reads
every byte of the file, so a truncated file is still caught, for about a third of the cost of a
full decode). Then either one line names the first bad file (and how many more there are), or,
with ``skip``, they are left out and reported
([`SkippedFiles`][predify.data.files.SkippedFiles]).

Only file-backed data sets (`torchvision.datasets.ImageFolder` and wrappers around one) have files
to check; tensors and torchvision's array files are read whole when they load.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch.utils.data import DataLoader, Dataset

from .._io import JsonObject
from ..errors import DataError

__all__ = [
    "BadFile",
    "SkippedFiles",
    "check_image_file",
    "drop_bad_files",
    "find_bad_files",
    "image_paths",
    "refuse_or_skip",
]

# Files named in run.json / results.json: enough to find them, bounded for a damaged folder.
_NAMED = 100


@dataclass(frozen=True)
class BadFile:
    """One file that could not be read as an image, and why (one line)."""

    path: str
    problem: str


@dataclass(frozen=True)
class SkippedFiles:
    """The unreadable files a run left out (``--skip-bad-images``).

    Attributes:
        count: how many were skipped.
        paths: the first 100 of them (all of them when fewer).
    """

    count: int = 0
    paths: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, bad: Sequence[BadFile]) -> SkippedFiles:
        return cls(len(bad), [item.path for item in bad[:_NAMED]])

    def to_json(self) -> JsonObject:
        return {"count": self.count, "paths": list(self.paths)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> SkippedFiles:
        if not data:
            return cls()
        return cls(int(data["count"]), [str(path) for path in data["paths"]])


def check_image_file(path: str) -> str | None:
    """What is wrong with the image file at ``path`` (one line), or None if it decodes."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL's warnings about odd but readable files
            with Image.open(path) as image:
                # JPEG: decode at 1/8 scale; the entropy-coded data is still read to its end.
                image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
                image.load()
    except Exception as error:  # PIL raises many types for damaged files
        text = " ".join(str(error).split()) or "no details"
        return f"{type(error).__name__}: {text}"
    return None


def image_paths(dataset: Dataset[Any]) -> list[str] | None:
    """The file of every item of ``dataset`` (an ImageFolder, possibly wrapped by
    ``TransformedDataset``), or None when it is not read from image files."""
    current: Any = dataset
    while current is not None:
        samples = getattr(current, "samples", None)
        if isinstance(samples, list) and all(isinstance(s, tuple) for s in samples[:1]):
            return [str(sample[0]) for sample in samples]
        current = getattr(current, "dataset", None)
    return None


class _Checks(Dataset[tuple[int, str]]):
    """Checks files in DataLoader workers: item i is (i, problem or "")."""

    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, str]:
        return index, check_image_file(self.paths[index]) or ""


def find_bad_files(paths: Sequence[str], workers: int = 0) -> list[BadFile]:
    """The files of ``paths`` that do not decode, in the order given.

    Args:
        paths: image files.
        workers: DataLoader worker processes that check files in parallel (0: this process).
    """
    if not paths:
        return []
    loader = DataLoader(_Checks(paths), batch_size=64, num_workers=workers, collate_fn=_keep_list)
    bad: list[BadFile] = []
    for batch in loader:
        bad.extend(BadFile(paths[index], problem) for index, problem in batch if problem)
    return bad


def _keep_list(batch: list[tuple[int, str]]) -> list[tuple[int, str]]:
    return batch


def refuse_or_skip(bad: Iterable[BadFile], skip: bool, what: str) -> SkippedFiles:
    """Raise for ``bad`` files unless ``skip``; what was skipped.

    Raises:
        DataError: ``bad`` is not empty and ``skip`` is False: the first file, what is wrong with
            it, and how many others there are (one line).
    """
    found = list(bad)
    if found and not skip:
        first = found[0]
        more = f" ({len(found) - 1} more unreadable files)" if len(found) > 1 else ""
        raise DataError(
            f"{first.path}: unreadable image ({first.problem}){more}; remove it or pass "
            f"--skip-bad-images to leave such files out of {what}"
        )
    return SkippedFiles.of(found)


def drop_bad_files(dataset: Dataset[Any], skip: bool, what: str, workers: int = 0) -> SkippedFiles:
    """Check every file of ``dataset`` (an ImageFolder, possibly wrapped) and take the bad ones
    out of it, in place (``skip``); without ``skip`` a bad file raises DataError (one line).
    Data sets without files are left alone."""
    paths = image_paths(dataset)
    if paths is None:
        return SkippedFiles()
    bad = find_bad_files(paths, workers)
    skipped = refuse_or_skip(bad, skip, what)
    if bad:
        unreadable = {item.path for item in bad}
        folder: Any = dataset
        while getattr(folder, "samples", None) is None:
            folder = folder.dataset
        kept = [sample for sample in folder.samples if str(sample[0]) not in unreadable]
        folder.samples = folder.imgs = kept
        folder.targets = [int(sample[1]) for sample in kept]
    return skipped
