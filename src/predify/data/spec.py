"""Build a data set from a short text spec (as given on the command line), and inspect one.

Specs:

* ``mnist5k`` (embedded, no download): the train split if ``train`` else the test split;
  ``mnist5k:train``, ``mnist5k:val``, ``mnist5k:test`` pick a split explicitly. The split is
  [`predify.data.mnist5k_splits()`][predify.data.mnist5k_splits] with its default seed and
  fractions.
* ``mnist``, ``fashionmnist``, ``cifar10``, ``cifar100``: torchvision data sets under a root given
  as a suffix (``cifar10:/data/cifar``) or as the ``root`` argument.
* ``folder:PATH`` or a plain directory path (one containing a path separator, e.g. ``./val`` or
  ``/data/imagenet/val``): an image folder in the ImageNet layout ``PATH/<class>/<image>``.

Names take precedence over paths: to read a directory called ``cifar10`` write ``./cifar10``.
"""

from __future__ import annotations

import os
from collections.abc import Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, TensorDataset
from torchvision import transforms

from predify.data.datasets import (
    TORCHVISION_DATASETS,
    TransformedDataset,
    image_folder,
    torchvision_dataset,
)
from predify.data.mnist5k import mnist5k_splits
from predify.errors import DataError

__all__ = ["DATASET_NAMES", "DatasetInfo", "dataset_info", "load_dataset"]

DATASET_NAMES: tuple[str, ...] = ("mnist5k", *TORCHVISION_DATASETS, "folder")
_MNIST5K_SPLITS = ("train", "val", "test")
_MNIST5K_SIDE = 28


def _valid_specs() -> str:
    return (
        "mnist5k[:train|val|test], "
        + ", ".join(f"{name}[:ROOT]" for name in TORCHVISION_DATASETS)
        + ", folder:PATH or a directory path"
    )


def _load_mnist5k(split_name: str, train: bool, image_size: int | None, augment: bool) -> Any:
    if augment:
        raise DataError(
            "augment=True is not supported for mnist5k; expected it only for cifar10, cifar100 "
            "and image folders"
        )
    split = split_name.lower() or ("train" if train else "test")
    if split not in _MNIST5K_SPLITS:
        raise DataError(
            f"unknown mnist5k split {split_name!r}; expected one of {', '.join(_MNIST5K_SPLITS)}"
        )
    dataset: Dataset[Any] = getattr(mnist5k_splits(), split)
    if image_size is not None and image_size != _MNIST5K_SIDE:
        if isinstance(image_size, bool) or image_size <= 0:
            raise DataError(f"image_size = {image_size!r}; expected a positive number of pixels")
        # Bilinear with antialiasing is a convex combination of pixels, so values stay in [0, 1].
        resize = transforms.Resize((image_size, image_size), antialias=True)
        dataset = TransformedDataset(dataset, resize)
    return dataset


def _looks_like_path(spec: str) -> bool:
    return "/" in spec or os.sep in spec or spec.startswith(("~", "."))


def load_dataset(
    spec: str,
    *,
    root: str | os.PathLike[str] | None = None,
    download: bool = False,
    train: bool = True,
    image_size: int | None = None,
    augment: bool = False,
    resize: int | None = None,
) -> Dataset[Any]:
    """Build the data set that ``spec`` names (see the module docstring for the spec syntax).

    Args:
        spec: data set spec, e.g. ``mnist5k``, ``mnist5k:val``, ``cifar10:/data/cifar``,
            ``folder:/data/imagenet/val``.
        root: root directory of a torchvision data set (instead of the ``:ROOT`` suffix). Ignored
            by ``mnist5k``.
        download: let torchvision download missing files (never done otherwise).
        train: training split (True) or test split (False) for mnist5k without a split suffix and
            for the torchvision data sets. An image folder is a single split; ``train`` does not
            apply to it.
        image_size: side of the square images; None keeps the native size (28 for the MNIST
            family, 32 for CIFAR) and uses 224 for image folders.
        augment: random training augmentation (image folders and CIFAR only).
        resize: image folders only: the short side before the center crop (default
            ``image_size / 0.875``; the Predify paper's scripts used 224 for 224).

    Returns:
        A map-style data set of (float image [C, H, W] in [0, 1], int label).

    Raises:
        DataError: unknown name, missing or conflicting root, missing path, folder without images,
            data set files missing without ``download``, or an empty data set.
    """
    text = spec.strip()
    if not text:
        raise DataError(f"empty data set spec; expected one of {_valid_specs()}")
    name, _, rest = text.partition(":")
    key = name.lower()

    if resize is not None and (key == "mnist5k" or key in TORCHVISION_DATASETS):
        raise DataError(f"resize applies to image folders only, not to {key!r}")
    dataset: Dataset[Any]
    if key == "mnist5k":
        dataset = _load_mnist5k(rest, train, image_size, augment)
    elif key in TORCHVISION_DATASETS:
        if rest and root is not None and Path(rest).expanduser() != Path(root).expanduser():
            raise DataError(
                f"data set root given twice, {rest!r} in spec {text!r} and root={str(root)!r}; "
                "expected only one"
            )
        chosen_root = rest or root
        if chosen_root is None or str(chosen_root) == "":
            raise DataError(
                f"{key} needs a root directory; expected '{key}:ROOT' (e.g. --data {key}:/data) "
                "or the root argument"
            )
        dataset = torchvision_dataset(
            key,
            chosen_root,
            train=train,
            download=download,
            image_size=image_size,
            augment=augment,
        )
    elif key == "folder":
        if not rest:
            raise DataError(
                f"data set spec {text!r} has no path; expected folder:PATH "
                "(e.g. folder:/data/imagenet/val)"
            )
        dataset = image_folder(rest, image_size=image_size, augment=augment, resize=resize)
    elif _looks_like_path(text) or Path(text).is_dir():
        dataset = image_folder(text, image_size=image_size, augment=augment, resize=resize)
    else:
        raise DataError(f"unknown data set {text!r}; expected one of {_valid_specs()}")

    if len(dataset) == 0:  # type: ignore[arg-type]
        raise DataError(f"data set {text!r} is empty (0 images)")
    return dataset


@dataclass(frozen=True)
class DatasetInfo:
    """What a model built for a data set needs to know.

    Attributes:
        num_classes: number of classes K (logits have shape [B, K]).
        image_shape: shape of one image, (C, H, W).
    """

    num_classes: int
    image_shape: tuple[int, ...]


def _num_classes(dataset: Any) -> int:
    classes = getattr(dataset, "classes", None)
    if classes is not None and len(classes) > 0:
        return len(classes)
    if isinstance(dataset, TensorDataset):
        labels = dataset.tensors[-1]
        if len(dataset.tensors) < 2 or labels.dim() != 1 or labels.is_floating_point():
            raise DataError(
                "TensorDataset has no integer label tensor; expected TensorDataset(images, labels)"
                " with labels of shape [N]"
            )
        return int(labels.max().item()) + 1
    # Subset, TransformedDataset and similar wrappers keep the data set they wrap here.
    inner = getattr(dataset, "dataset", None)
    if inner is not None:
        return _num_classes(inner)
    targets = getattr(dataset, "targets", None)
    if targets is not None and len(targets) > 0:
        return int(torch.as_tensor(targets).max().item()) + 1
    raise DataError(
        f"cannot tell the number of classes of {type(dataset).__name__}; expected a `classes` "
        "or `targets` attribute, or a TensorDataset(images, labels)"
    )


def dataset_info(dataset: Dataset[Any]) -> DatasetInfo:
    """Number of classes and image shape of a data set, cheaply.

    Reads at most one item (the first, for its shape) and uses the ``classes`` attribute, the
    label tensor of a ``TensorDataset`` or the ``targets`` attribute for the number of classes,
    looking through wrappers such as ``Subset``. For label tensors and targets the count is
    ``max label + 1``, since that is the number of logits needed.

    Raises:
        DataError: an empty data set, a first item that is not (tensor image, label), or no way to
            tell the number of classes.
    """
    if not isinstance(dataset, Sized) or len(dataset) == 0:
        raise DataError(f"data set {type(dataset).__name__} is empty (0 images)")
    item = dataset[0]
    image = item[0] if isinstance(item, (tuple, list)) else item
    if not isinstance(image, torch.Tensor) or image.dim() < 2:
        raise DataError(
            f"first item of {type(dataset).__name__} holds a {type(image).__name__}; expected a "
            "tensor image [C, H, W] (add transforms.ToTensor())"
        )
    return DatasetInfo(num_classes=_num_classes(dataset), image_shape=tuple(image.shape))
