"""torchvision data sets and ImageNet-layout image folders, all in pixel space.

Every data set built here yields ``(image, label)`` with ``image`` a float tensor [C, H, W] in
[0, 1] and ``label`` an int class index. No mean/std normalisation is applied: corruptions and noise
are defined on pixels, so normalisation belongs to the model
([`predify.data.normalization.InputNormalization`][predify.data.normalization.InputNormalization]).

Nothing is downloaded unless ``download=True`` is passed explicitly.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.error import URLError

import torch
from torch.utils.data import Dataset
from torchvision import datasets as tv_datasets
from torchvision import transforms

from predify.errors import DataError

__all__ = [
    "IMAGENET_CROP_RATIO",
    "TORCHVISION_DATASETS",
    "TransformedDataset",
    "image_folder",
    "imagenet_eval_transform",
    "imagenet_train_transform",
    "torchvision_dataset",
]

# Standard ImageNet evaluation: resize the short side to 256, center-crop 224 (ratio 224/256).
IMAGENET_CROP_RATIO = 224 / 256
_DEFAULT_IMAGENET_SIZE = 224
_FOLDER_LAYOUT_HINT = "expected ImageNet layout root/class/*.jpg"

TORCHVISION_DATASETS: Mapping[str, type[tv_datasets.VisionDataset]] = MappingProxyType(
    {
        "mnist": tv_datasets.MNIST,
        "fashionmnist": tv_datasets.FashionMNIST,
        "cifar10": tv_datasets.CIFAR10,
        "cifar100": tv_datasets.CIFAR100,
    }
)

# Side length of the images each torchvision data set stores on disk.
_NATIVE_SIZE = {"mnist": 28, "fashionmnist": 28, "cifar10": 32, "cifar100": 32}

# What torchvision looks for under ROOT, for the "not found" message.
_ON_DISK_LAYOUT = {
    "mnist": "MNIST/raw (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-...)",
    "fashionmnist": "FashionMNIST/raw (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-...)",
    "cifar10": "cifar-10-batches-py (data_batch_1..5, test_batch, batches.meta; md5-checked)",
    "cifar100": "cifar-100-python (train, test, meta; md5-checked)",
}


class TransformedDataset(Dataset[tuple[torch.Tensor, Any]]):
    """Apply ``transform`` to the image of every ``(image, label)`` item of ``dataset``, lazily.

    Used e.g. to resize the in-memory MNIST-5k tensors without materialising a resized copy.
    ``dataset`` is kept as an attribute so
    [`predify.data.dataset_info()`][predify.data.dataset_info] can look through it.
    """

    def __init__(
        self, dataset: Dataset[Any], transform: Callable[[torch.Tensor], torch.Tensor]
    ) -> None:
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        image, label = self.dataset[index]
        return self.transform(image), label


def _check_image_size(image_size: int | None) -> None:
    if image_size is not None and (isinstance(image_size, bool) or image_size <= 0):
        raise DataError(f"image_size = {image_size!r}; expected a positive number of pixels")


def imagenet_eval_transform(
    image_size: int = _DEFAULT_IMAGENET_SIZE, resize: int | None = None
) -> transforms.Compose:
    """Resize the short side to ``resize`` (default ``image_size / 0.875``, 256 for 224),
    center-crop to ``image_size``, to [0, 1]. The Predify paper's scripts used ``resize = 224``.

    Output: float tensor [3, image_size, image_size] for RGB input.
    """
    _check_image_size(image_size)
    if resize is not None:
        _check_image_size(resize)
        if resize < image_size:
            raise DataError(
                f"resize = {resize}: the short side must be at least the crop, {image_size}"
            )
    resize_to = round(image_size / IMAGENET_CROP_RATIO) if resize is None else resize
    return transforms.Compose(
        [transforms.Resize(resize_to), transforms.CenterCrop(image_size), transforms.ToTensor()]
    )


def imagenet_train_transform(image_size: int = _DEFAULT_IMAGENET_SIZE) -> transforms.Compose:
    """Random resized crop to ``image_size`` and random horizontal flip, to [0, 1].

    Output: float tensor [3, image_size, image_size] for RGB input.
    """
    _check_image_size(image_size)
    return transforms.Compose(
        [
            transforms.RandomResizedCrop(image_size),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
        ]
    )


def image_folder(
    path: str | os.PathLike[str],
    *,
    image_size: int | None = None,
    augment: bool = False,
    resize: int | None = None,
) -> tv_datasets.ImageFolder:
    """Images in the ImageNet layout ``path/<class name>/<image>`` as a data set.

    Classes are the sub-directory names in sorted order (torchvision's rule), so two folders with
    the same class directories get the same label indices.

    Args:
        path: root directory.
        image_size: side of the square output (default 224).
        augment: training augmentation (random resized crop + flip) instead of the deterministic
            evaluation transform (resize + center crop).
        resize: the short side before the center crop (default ``image_size / 0.875``).

    Returns:
        ``ImageFolder`` yielding (float [3, image_size, image_size] in [0, 1], int label).

    Raises:
        DataError: the path is missing or not a directory, or holds no images in that layout.
    """
    _check_image_size(image_size)
    size = _DEFAULT_IMAGENET_SIZE if image_size is None else image_size
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"data folder {root} does not exist ({_FOLDER_LAYOUT_HINT})")
    if not root.is_dir():
        raise DataError(f"data folder {root} is not a directory ({_FOLDER_LAYOUT_HINT})")
    if augment and resize is not None:
        raise DataError("resize applies to the evaluation transform; expected it without augment")
    transform = imagenet_train_transform(size) if augment else imagenet_eval_transform(size, resize)
    try:
        dataset = tv_datasets.ImageFolder(str(root), transform=transform)
    except FileNotFoundError as error:
        # torchvision raises this both for "no class sub-directories" and "no image files".
        raise DataError(f"no images found under {root} ({_FOLDER_LAYOUT_HINT})") from error
    if len(dataset) == 0:
        raise DataError(f"no images found under {root} ({_FOLDER_LAYOUT_HINT})")
    return dataset


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def torchvision_dataset(
    name: str,
    root: str | os.PathLike[str],
    *,
    train: bool = True,
    download: bool = False,
    image_size: int | None = None,
    augment: bool = False,
) -> tv_datasets.VisionDataset:
    """MNIST, FashionMNIST, CIFAR10 or CIFAR100 from ``root`` in torchvision's on-disk format.

    Args:
        name: ``mnist``, ``fashionmnist``, ``cifar10`` or ``cifar100`` (case-insensitive).
        root: directory that holds (or will hold, with ``download``) the data set files.
        train: the training split if True, else the test split.
        download: fetch the files if they are missing (off by default: nothing is downloaded
            unless asked for).
        image_size: resize the (square) images to this side; None keeps 28 (MNIST) or 32 (CIFAR).
        augment: CIFAR training augmentation (4-pixel padded random crop + horizontal flip).
            Not offered for the MNIST family, where flips change what a digit or garment is.

    Returns:
        The torchvision data set, yielding (float [C, S, S] in [0, 1], int label) with C = 1 for
        the MNIST family and 3 for CIFAR.

    Raises:
        DataError: unknown name, files missing (and ``download`` off), a failed download, an
            unsupported ``augment``, or an empty data set.
    """
    key = name.lower()
    if key not in TORCHVISION_DATASETS:
        raise DataError(
            f"unknown torchvision data set {name!r}; expected one of "
            f"{', '.join(TORCHVISION_DATASETS)}"
        )
    _check_image_size(image_size)
    dataset_class = TORCHVISION_DATASETS[key]
    display_name = dataset_class.__name__
    root_path = Path(root).expanduser()
    not_found = (
        f"{display_name} not found under {root_path}; pass --download or point --data at the "
        f"directory that contains {_ON_DISK_LAYOUT[key]}"
    )
    if not download and not root_path.is_dir():
        raise DataError(not_found)

    steps: list[Callable[[Any], Any]] = []
    if augment:
        if key not in ("cifar10", "cifar100"):
            raise DataError(
                f"augment=True is not supported for {display_name}; expected it only for "
                "cifar10, cifar100 and image folders"
            )
        steps += [
            transforms.RandomCrop(_NATIVE_SIZE[key], padding=4),
            transforms.RandomHorizontalFlip(),
        ]
    if image_size is not None and image_size != _NATIVE_SIZE[key]:
        steps.append(transforms.Resize((image_size, image_size)))
    steps.append(transforms.ToTensor())

    try:
        dataset = dataset_class(
            root=str(root_path),
            train=train,
            download=download,
            transform=transforms.Compose(steps),
        )
    except (RuntimeError, URLError, OSError) as error:
        if download:
            raise DataError(
                f"could not download {display_name} into {root_path}: {_one_line(error)}"
            ) from error
        raise DataError(not_found) from error
    except (
        ValueError,
        TypeError,
        KeyError,
        EOFError,
        AssertionError,
        pickle.UnpicklingError,
    ) as error:
        # torchvision's readers fail like this (some via bare asserts) on truncated files.
        raise DataError(
            f"{display_name} files under {root_path} could not be read "
            f"({type(error).__name__}: {_one_line(error)}); expected the format of "
            f"{_ON_DISK_LAYOUT[key]} (delete them and pass --download for fresh copies)"
        ) from error
    if len(dataset) == 0:
        split = "train" if train else "test"
        raise DataError(f"{display_name} {split} split under {root_path} is empty (0 images)")
    return dataset
