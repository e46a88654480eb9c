"""Deterministic, disjoint index splits of a data set.

Tuning hyper-parameters (e.g. the feedback/feedforward/memory weights of a predictive network) on
the images that are later used to report robustness inflates the result. These helpers make the
splits explicit and let callers prove that a tuning split and an evaluation split do not share an
image ([`check_disjoint()`][predify.data.splits.check_disjoint]).

All randomness comes from a local `numpy.random.Generator` seeded by the caller, so a split
depends only on ``(n or labels, fractions, seed)`` and never on global RNG state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from predify.errors import DataError

__all__ = ["check_disjoint", "split_indices", "stratified_split"]

# Fractions whose sum is within this of 1 are treated as "use every item".
_SUM_TOLERANCE = 1e-6

IndexLike = torch.Tensor | np.ndarray | Sequence[int]


def _validate_fractions(fractions: Sequence[float]) -> tuple[float, ...]:
    values = tuple(float(f) for f in fractions)
    if not values:
        raise DataError("fractions is empty; expected at least one fraction in (0, 1]")
    for position, value in enumerate(values):
        if not (math.isfinite(value) and 0.0 < value <= 1.0):
            raise DataError(f"fractions[{position}] = {value!r}; expected every fraction in (0, 1]")
    total = sum(values)
    if total > 1.0 + _SUM_TOLERANCE:
        raise DataError(f"fractions {values} sum to {total:.6g}; expected a sum of at most 1")
    return values


def _allocate_counts(n: int, fractions: tuple[float, ...]) -> list[int]:
    """Split ``n`` items into ``len(fractions)`` counts proportional to ``fractions``.

    When the fractions sum to 1 every item is assigned: the items left over by flooring go to the
    parts with the largest remainders (ties to the earlier part), so the counts always add up to
    ``n``. When they sum to less than 1 the counts are floored and the rest is left unused.
    """
    exact = [n * f for f in fractions]
    counts = [math.floor(x + 1e-9) for x in exact]
    if abs(sum(fractions) - 1.0) <= _SUM_TOLERANCE:
        leftover = n - sum(counts)
        by_remainder = sorted(range(len(exact)), key=lambda i: (-(exact[i] - counts[i]), i))
        for i in by_remainder[:leftover]:
            counts[i] += 1
    return counts


def _check_parts_not_empty(
    parts: Sequence[np.ndarray], n: int, fractions: tuple[float, ...]
) -> None:
    for position, part in enumerate(parts):
        if part.size == 0:
            raise DataError(
                f"fraction {fractions[position]:g} (part {position}) of {n} items gives an empty "
                "split; expected every part to get at least one item (use more data or a larger "
                "fraction)"
            )


def split_indices(n: int, fractions: Sequence[float], seed: int) -> tuple[torch.Tensor, ...]:
    """Randomly split ``range(n)`` into disjoint parts of the given sizes.

    Args:
        n: number of items (e.g. ``len(dataset)``); must be positive.
        fractions: one fraction in (0, 1] per part, summing to at most 1. If they sum to 1 every
            index is used; otherwise the remainder is left out.
        seed: seed of the local generator; the same ``(n, fractions, seed)`` gives the same split.

    Returns:
        One int64 tensor of indices per part, each sorted ascending (shuffling for training is the
        data loader's job), pairwise disjoint.

    Raises:
        DataError: ``n`` not positive, invalid fractions, or a part that would be empty.
    """
    if n <= 0:
        raise DataError(f"n = {n}; expected a positive number of items to split")
    values = _validate_fractions(fractions)
    counts = _allocate_counts(n, values)
    permutation = np.random.default_rng(seed).permutation(n)
    bounds = np.cumsum([0, *counts])
    parts = [np.sort(permutation[bounds[i] : bounds[i + 1]]) for i in range(len(counts))]
    _check_parts_not_empty(parts, n, values)
    return tuple(torch.from_numpy(part.astype(np.int64)) for part in parts)


def stratified_split(
    labels: torch.Tensor | np.ndarray | Sequence[int], fractions: Sequence[float], seed: int
) -> tuple[torch.Tensor, ...]:
    """Split item indices into disjoint parts that keep the class proportions of ``labels``.

    Each class is split on its own with [`split_indices()`][predify.data.splits.split_indices]'
    rule (largest-remainder rounding, so
    a class of 500 with fractions (0.6, 0.2, 0.2) gives exactly 300/100/100). One local generator is
    consumed class by class in ascending label order, so the result is fixed for a seed.

    Args:
        labels: class label per item, shape [N], integer.
        fractions: one fraction in (0, 1] per part, summing to at most 1.
        seed: seed of the local generator.

    Returns:
        One int64 tensor of indices into ``labels`` per part, each sorted ascending, pairwise
        disjoint.

    Raises:
        DataError: labels not 1-D integers or empty, invalid fractions, or an empty part.
    """
    label_array = (
        labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    )
    if label_array.ndim != 1:
        raise DataError(f"labels has shape {tuple(label_array.shape)}; expected a 1-D array [N]")
    if label_array.size == 0:
        raise DataError("labels is empty; expected at least one labelled item to split")
    if not np.issubdtype(label_array.dtype, np.integer):
        raise DataError(f"labels has dtype {label_array.dtype}; expected integer class labels")
    values = _validate_fractions(fractions)
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in values]
    for label in np.unique(label_array):
        members = np.flatnonzero(label_array == label)
        counts = _allocate_counts(members.size, values)
        shuffled = members[rng.permutation(members.size)]
        bounds = np.cumsum([0, *counts])
        for position in range(len(values)):
            parts[position].append(shuffled[bounds[position] : bounds[position + 1]])
    merged = [np.sort(np.concatenate(chunks)) for chunks in parts]
    _check_parts_not_empty(merged, label_array.size, values)
    return tuple(torch.from_numpy(part.astype(np.int64)) for part in merged)


def _as_index_array(indices: IndexLike, name: str) -> np.ndarray:
    array = (
        indices.detach().cpu().numpy() if isinstance(indices, torch.Tensor) else np.asarray(indices)
    )
    if array.ndim != 1:
        raise DataError(f"{name} indices have shape {tuple(array.shape)}; expected a 1-D array")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise DataError(f"{name} indices have dtype {array.dtype}; expected integer indices")
    return array.astype(np.int64, copy=False)


def check_disjoint(
    a: IndexLike, b: IndexLike, names: tuple[str, str] = ("tuning", "evaluation")
) -> None:
    """Raise if two index sets into the same data set share an item.

    Args:
        a: indices of the first split, shape [Na].
        b: indices of the second split, shape [Nb].
        names: what the two splits are, used in the error message.

    Raises:
        DataError: "tuning split and evaluation split overlap in N images ..." when they share
            indices, or when either is not a 1-D integer array.
    """
    first, second = _as_index_array(a, names[0]), _as_index_array(b, names[1])
    shared = np.intersect1d(first, second)
    if shared.size:
        example = ", ".join(str(int(i)) for i in shared[:5])
        more = ", ..." if shared.size > 5 else ""
        raise DataError(
            f"{names[0]} split and {names[1]} split overlap in {shared.size} images "
            f"(indices {example}{more}); expected disjoint splits so that {names[0]} never sees "
            f"{names[1]} images"
        )
