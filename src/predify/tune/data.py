"""Tuning and evaluation data: batches from tensors or loaders, and the disjointness check.

Tuning functions take either ``(images, labels)`` tensors (images [N, C, H, W] in [0, 1], int
labels [N]), a ``TensorDataset`` of them, or a re-iterable source of ``(images, labels)`` batches
such as a `torch.utils.data.DataLoader`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence

import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from ..errors import DataError

__all__ = [
    "TuneData",
    "as_tensors",
    "check_disjoint_images",
    "image_hashes",
    "iterate_batches",
    "paired",
]

TuneData = tuple[Tensor, Tensor] | TensorDataset | Iterable[Sequence[Tensor]]
"""``(images [N, C, H, W], labels [N])``, a TensorDataset of them, or a DataLoader of batches."""


def as_tensors(data: TuneData) -> tuple[Tensor, Tensor] | None:
    """``(images, labels)`` when ``data`` holds whole tensors, None for a source of batches.

    Raises:
        DataError: tensors of mismatched length, not [N, C, H, W] floats, or empty.
    """
    if isinstance(data, TensorDataset):
        if len(data.tensors) < 2:
            raise DataError("TensorDataset: expected TensorDataset(images, labels)")
        data = (data.tensors[0], data.tensors[1])
    if not isinstance(data, tuple) or len(data) != 2:
        return None
    images, labels = data
    if not isinstance(images, Tensor) or not isinstance(labels, Tensor):
        return None
    if images.dim() != 4 or not images.is_floating_point():
        raise DataError(
            f"images: expected a float tensor [N, C, H, W], got {images.dtype} {list(images.shape)}"
        )
    if labels.shape != (images.shape[0],) or labels.is_floating_point():
        raise DataError(
            f"labels: expected integer labels [{images.shape[0]}], got {labels.dtype} "
            f"{list(labels.shape)}"
        )
    if images.shape[0] == 0:
        raise DataError("no images to tune or evaluate on (0 images)")
    return images, labels


def iterate_batches(
    data: TuneData, batch_size: int, generator: torch.Generator | None
) -> Iterator[tuple[Tensor, Tensor]]:
    """One pass over ``data`` in batches ``(images [B, C, H, W], labels [B])``.

    Whole tensors are cut into batches of ``batch_size``, in an order shuffled by ``generator``
    (None: in order). A source of batches is iterated as it is.
    """
    tensors = as_tensors(data)
    if tensors is not None:
        images, labels = tensors
        count = images.shape[0]
        order = torch.randperm(count, generator=generator) if generator is not None else None
        for start in range(0, count, batch_size):
            if order is None:
                yield images[start : start + batch_size], labels[start : start + batch_size]
            else:
                chosen = order[start : start + batch_size]
                yield images[chosen], labels[chosen]
        return
    if iter(data) is data:  # type: ignore[arg-type]
        raise DataError(
            "data: a one-shot iterator cannot be read once per epoch; pass (images, labels) "
            "tensors or a DataLoader"
        )
    for batch in data:  # type: ignore[union-attr]
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise DataError("data: expected batches of (images, labels)")
        yield batch[0], batch[1]


def paired(images: Tensor | TuneData, labels: Tensor | None) -> TuneData:
    """``(images, labels)`` tensors, or ``images`` itself when it is a source and ``labels`` None.

    Raises:
        DataError: a tensor of images without labels, or labels with a source of batches.
    """
    if labels is None:
        if isinstance(images, Tensor):
            raise DataError("images given as a tensor need their labels")
        return images
    if not isinstance(images, Tensor):
        raise DataError("labels go with a tensor of images, not with a source of batches")
    return images, labels


def count_batches(data: TuneData, batch_size: int) -> int | None:
    """How many batches one pass yields, when known."""
    tensors = as_tensors(data)
    if tensors is not None:
        return -(-tensors[0].shape[0] // batch_size)
    try:
        return len(data)  # type: ignore[arg-type]
    except TypeError:
        return None


def image_hashes(images: Tensor) -> list[bytes]:
    """A 128-bit BLAKE2b digest of each image's bytes: images [N, ...] -> N digests.

    Two images get the same digest when they hold the same values in the same dtype and shape.
    """
    flat = images.detach().to("cpu").contiguous()
    prefix = f"{flat.dtype}{list(flat.shape[1:])}".encode()
    # Raw bytes through a uint8 view: works for every dtype, bfloat16 included.
    as_bytes = flat.reshape(flat.shape[0], -1).view(torch.uint8)
    return [
        hashlib.blake2b(prefix + row.numpy().tobytes(), digest_size=16).digest() for row in as_bytes
    ]


def _digests(data: Tensor | TuneData) -> list[bytes]:
    """[`image_hashes()`][predify.tune.data.image_hashes] of every image, batch by batch."""
    if isinstance(data, Tensor):
        return image_hashes(data)
    tensors = as_tensors(data)
    if tensors is not None:
        return image_hashes(tensors[0])
    batches = iterate_batches(data, 1, None)
    return [digest for images, _ in batches for digest in image_hashes(images)]


def check_disjoint_images(
    first: Tensor | TuneData,
    second: Tensor | TuneData,
    names: tuple[str, str] = ("tuning", "evaluation"),
) -> None:
    """Raise unless no image of ``first`` is identical to an image of ``second``.

    Each is images [N, ...] or [`TuneData`][predify.tune.data.TuneData]; a source of batches is
    read batch by batch, keeping only a 16-byte digest per image. For data sets passed as
    tensors, where no index sets exist to compare with
    [`predify.data.check_disjoint()`][predify.data.check_disjoint].

    Raises:
        DataError: "tuning split and evaluation split share N identical images ...".
    """
    seen = {digest: index for index, digest in enumerate(_digests(first))}
    shared = [
        (seen[digest], index) for index, digest in enumerate(_digests(second)) if digest in seen
    ]
    if shared:
        example = ", ".join(f"{a}~{b}" for a, b in shared[:3])
        more = ", ..." if len(shared) > 3 else ""
        raise DataError(
            f"{names[0]} split and {names[1]} split share {len(shared)} identical images "
            f"({names[0]}~{names[1]} positions {example}{more}); expected disjoint splits so "
            f"that {names[0]} never sees {names[1]} images"
        )
