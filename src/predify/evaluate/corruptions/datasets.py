"""Readers for pre-generated corruption benchmarks: ImageNet-C folders and CIFAR-10/100-C arrays.

* [`ImageNetCFolder`][predify.evaluate.corruptions.datasets.ImageNetCFolder] reads the ImageNet-C
layout ``root/<corruption>/<severity>/<class>/
  *.JPEG`` through `torchvision.datasets.ImageFolder` (classes sorted by folder name,
  as ImageFolder does).
* [`CifarCArrays`][predify.evaluate.corruptions.datasets.CifarCArrays] reads the CIFAR-10-C /
CIFAR-100-C layout: ``root/<corruption>.npy``,
  uint8 [N, 32, 32, 3] holding N / 5 images per severity in order 1..5, and
  ``root/labels.npy`` with N labels (or N / 5, the same labels for every severity).

Both raise [`predify.errors.DataError`][predify.errors.DataError] naming the path when a file or
folder is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.datasets import ImageFolder
from torchvision.transforms.functional import pil_to_tensor

from ...errors import DataError
from ._common import check_severity

__all__ = ["CifarCArrays", "ImageNetCFolder"]


def _check_corruption(name: object) -> str:
    # Imported here: the package __init__ imports this module.
    from . import check_corruption_name

    return check_corruption_name(name)


def _to_float_tensor(image: Image.Image) -> Tensor:
    """PIL image -> float32 [C, H, W] in [0, 1]."""
    return pil_to_tensor(image).to(torch.float32) / 255


class ImageNetCFolder(Dataset[tuple[Any, int]]):
    """One corruption and severity of ImageNet-C: ``root/corruption/severity/class/*.JPEG``.

    Yields ``(image, label)``: by default ``image`` is a float32 tensor [3, H, W] in [0, 1];
    with ``transform`` it is ``transform(pil_image)``. Labels index ``classes``, the class
    folder names sorted as by `torchvision.datasets.ImageFolder`.
    """

    def __init__(
        self,
        root: str | Path,
        corruption: str,
        severity: int,
        transform: Callable[[Image.Image], Any] | None = None,
    ) -> None:
        self.corruption = _check_corruption(corruption)
        self.severity = check_severity(severity)
        self.root = Path(root)
        self.path = self.root / self.corruption / str(self.severity)
        if not self.root.is_dir():
            raise DataError(f"ImageNet-C root folder not found: {self.root}")
        if not self.path.is_dir():
            raise DataError(
                f"ImageNet-C folder not found: {self.path} "
                f"(expected root/<corruption>/<severity>/<class>/*.JPEG)"
            )
        try:
            self._folder = ImageFolder(str(self.path), transform=transform or _to_float_tensor)
        except (FileNotFoundError, RuntimeError) as error:
            raise DataError(f"no images in the class folders of {self.path}: {error}") from None
        self.classes: list[str] = self._folder.classes
        self.class_to_idx: dict[str, int] = self._folder.class_to_idx
        self.samples: list[tuple[str, int]] = self._folder.samples

    def __len__(self) -> int:
        return len(self._folder)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image, label = self._folder[index]
        return image, int(label)


class CifarCArrays(Dataset[tuple[Tensor, int]]):
    """One corruption and severity of CIFAR-10-C / CIFAR-100-C from its ``.npy`` arrays.

    ``root/<corruption>.npy`` is uint8 [N, H, W, 3] (N divisible by 5, N / 5 images per
    severity in order 1..5; 50000 x 32 x 32 x 3 in the published sets) and ``root/labels.npy``
    has N labels, or N / 5. The array is memory-mapped; items are ``(image, label)`` with
    ``image`` a float32 tensor [3, H, W] in [0, 1] and ``label`` an int.
    """

    def __init__(self, root: str | Path, corruption: str, severity: int) -> None:
        self.corruption = _check_corruption(corruption)
        self.severity = check_severity(severity)
        self.root = Path(root)
        images_path = self.root / f"{self.corruption}.npy"
        labels_path = self.root / "labels.npy"
        for path in (images_path, labels_path):
            if not path.is_file():
                raise DataError(f"CIFAR-C file not found: {path}")
        images = np.load(images_path, mmap_mode="r")
        labels = np.load(labels_path)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise DataError(
                f"{images_path} must hold uint8 images [N, H, W, 3], got "
                f"{images.dtype} {tuple(images.shape)}"
            )
        total = images.shape[0]
        if total == 0 or total % 5 != 0:
            raise DataError(
                f"{images_path} must hold N images with N a positive multiple of 5 "
                f"(N / 5 per severity), got N = {total}"
            )
        per_severity = total // 5
        if labels.ndim != 1 or labels.shape[0] not in (total, per_severity):
            raise DataError(
                f"{labels_path} must hold {total} or {per_severity} labels, got shape "
                f"{tuple(labels.shape)}"
            )
        start = (self.severity - 1) * per_severity
        self._images = images[start : start + per_severity]
        self._labels = labels[start : start + per_severity] if labels.shape[0] == total else labels
        self.per_severity = per_severity

    def __len__(self) -> int:
        return self.per_severity

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        if not -self.per_severity <= index < self.per_severity:
            raise IndexError(f"index {index} out of range for {self.per_severity} images")
        image = torch.from_numpy(np.array(self._images[index], dtype=np.uint8))
        return image.permute(2, 0, 1).to(torch.float32) / 255, int(self._labels[index])
