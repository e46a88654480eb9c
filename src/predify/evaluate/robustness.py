"""Top-1 error under common corruptions at every timestep of the feedback dynamics.

The sweep visits one *cell* per (corruption, severity), plus the clean images. For each cell the
images stream in batch by batch ([`predify.evaluate.streaming`][predify.evaluate.streaming]),
each corrupted once, and every batch goes through ONE unrolled pass of the network with
``timesteps=T``, which yields the predictions of all timesteps t = 0..T at once (t = 0 is the
feed-forward network). A cell keeps, per timestep and image, whether the prediction was wrong:
error rates, bootstrap confidence intervals and corruption errors all derive from that.

Summaries ([`summarize_sweep()`][predify.evaluate.robustness.summarize_sweep]), with E_s(t) the
error at severity s and timestep t:

* ``ce_relative_to_t0[c][t] = sum_s E_s(t) / sum_s E_s(0)``, the Predify paper's convention, for
  any data set; ``mce_relative_to_t0[t]`` is its mean over corruptions.
* ``relative_ce_vs_t0[c][t] = sum_s (E_s(t) - E_clean(t)) / sum_s (E_s(0) - E_clean(0))``: the
  degradation due to the corruption, relative to the feed-forward network's degradation.
* with ``alexnet=True`` (a 1000-class model on ImageNet-like data), CE, mCE and relative mCE
  normalised by AlexNet's published ImageNet-C errors (Hendrycks & Dietterich, 2019).

Random corruptions draw, image by image, from a generator seeded by (seed, corruption, severity,
image position), so a cell's images do not depend on which other cells were evaluated, in which
order, in which batches, by how many workers or processes: a restarted sweep reproduces the cells
it skips.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, TensorDataset
from tqdm.auto import tqdm

from .._io import JsonObject
from ..errors import DataError
from ..runtime.device import resolve_device
from ..runtime.distributed import DistributedInfo, broadcast_from_main, gather_to_main
from ..runtime.progress import resolve_progress
from ..runtime.store import ResultStore, pack_bits, unpack_bits
from .corruptions import check_corruption_name, corrupt
from .corruptions._common import check_severity
from .metrics import (
    ALEXNET_CLEAN_ERROR,
    ALEXNET_ERRORS_BY_SEVERITY,
    IMAGENET_C_CORRUPTIONS,
    bootstrap_ci,
    ce_relative_to_t0,
    corruption_error,
    misclassified,
    relative_corruption_error,
)
from .pixel_space import PixelSpaceNet, check_pixel_range
from .streaming import PositionedImages, Share, batch_plan, image_seed, reassemble, stream

__all__ = [
    "CLEAN",
    "AlexNetSummary",
    "BenchmarkCorruptions",
    "CellResult",
    "CorruptionSummary",
    "CorruptionSweep",
    "ImageSource",
    "OnTheFlyCorruptions",
    "cell_key",
    "corruption_sweep",
    "evaluate_cell",
    "summarize_sweep",
]

#: The corruption name of the clean cell (severity 0).
CLEAN = "clean"


def cell_key(corruption: str, severity: int) -> str:
    """The progress-file key of a cell: ``clean`` or ``corruption-<name>-<severity>``."""
    return CLEAN if corruption == CLEAN else f"corruption-{corruption}-{severity}"


@dataclass
class CellResult:
    """Which images were misclassified at each timestep, for one (corruption, severity).

    Attributes:
        corruption: corruption name, or `CLEAN`.
        severity: 1..5 (0 for clean images).
        wrong: bool [T+1, N]: image n was misclassified at timestep t.
    """

    corruption: str
    severity: int
    wrong: np.ndarray

    @property
    def errors(self) -> np.ndarray:
        """Top-1 error per timestep, float64 [T+1]."""
        return self.wrong.mean(axis=1)

    @property
    def timesteps(self) -> int:
        return self.wrong.shape[0] - 1

    @property
    def num_images(self) -> int:
        return self.wrong.shape[1]

    def to_json(self) -> JsonObject:
        """A JSON payload; per-image results are stored as base64 of the packed bits."""
        return {
            "corruption": self.corruption,
            "severity": self.severity,
            "timesteps": self.timesteps,
            "num_images": self.num_images,
            "errors": [float(value) for value in self.errors],
            "wrong_bits": pack_bits(self.wrong),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CellResult:
        """Inverse of `to_json()`; raises ValueError/KeyError on a malformed payload."""
        shape = (int(data["timesteps"]) + 1, int(data["num_images"]))
        wrong = unpack_bits(str(data["wrong_bits"]), shape)
        return cls(str(data["corruption"]), int(data["severity"]), wrong)


# ---------------------------------------------------------------------- image sources
class ImageSource(Protocol):
    """Where a cell's images come from: ``batches(corruption, severity)`` yields
    (images [b, C, H, W] in [0, 1], labels int [b]) of this process's batches
    (`shared()`: every ``world``-th batch of `plan`), the same N images for every cell."""

    num_images: int
    plan: list[list[int]]
    share: Share

    def batches(self, corruption: str, severity: int) -> Iterator[tuple[Tensor, Tensor]]: ...

    def shared(self, share: Share) -> ImageSource: ...


def _tensor_dataset(images: Tensor, labels: Tensor) -> Dataset[Any]:
    check_pixel_range(images)
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{images.shape[0]} images but {labels.shape[0]} labels")
    return TensorDataset(images, labels)


class _Corrupted:
    """The per-image transform of one cell: checks the pixel range, then corrupts with a
    generator seeded by (seed, corruption, severity, position)."""

    def __init__(self, corruption: str, severity: int, seed: int, where: str) -> None:
        self.corruption, self.severity, self.seed, self.where = corruption, severity, seed, where

    def __call__(self, position: int, image: Tensor) -> Tensor:
        check_pixel_range(image, f"{self.where} image {position}")
        if self.corruption == CLEAN:
            return image
        what = f"{self.corruption}/{self.severity}"
        generator = torch.Generator().manual_seed(image_seed(self.seed, what, position))
        return corrupt(image[None], self.corruption, self.severity, generator)[0]


class OnTheFlyCorruptions:
    """Corrupt images one by one as they stream in, with
    [`predify.evaluate.corruptions.corrupt()`][predify.evaluate.corruptions.corrupt].

    Args:
        images: float [N, C, H, W] in [0, 1], or a data set of (image [C, H, W] in [0, 1], label).
        labels: int [N] (with a tensor of images).
        batch_size: images per unrolled pass.
        seed: with the cell and the image's position, seeds its corruption's random numbers (a
            CPU generator per image, so the corrupted images are the same on any device, batch
            size, worker or process count).
        device: where images are evaluated.
        indices: with a data set, which of its items to evaluate, in order (default: all).
        workers: DataLoader worker processes that read and corrupt the images (0: this process).
        where: what to call the images in error messages.
    """

    def __init__(
        self,
        images: Tensor | Dataset[Any],
        labels: Tensor | None = None,
        batch_size: int = 100,
        seed: int = 0,
        device: torch.device | str = "cpu",
        *,
        indices: Sequence[int] | None = None,
        workers: int = 0,
        where: str = "images",
    ) -> None:
        if isinstance(images, Tensor):
            if labels is None:
                raise DataError("images given as a tensor need their labels")
            images = _tensor_dataset(images, labels)
        self.dataset = images
        self.indices = list(range(len(images))) if indices is None else list(indices)  # type: ignore[arg-type]
        self.device = resolve_device(device)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.workers = int(workers)
        self.where = where
        self.num_images = len(self.indices)
        self.plan = batch_plan(self.num_images, self.batch_size)
        self.share = Share()

    def shared(self, share: Share) -> OnTheFlyCorruptions:
        """The same images, this process's batches only."""
        view = copy.copy(self)
        view.share = share
        return view

    def batches(self, corruption: str, severity: int) -> Iterator[tuple[Tensor, Tensor]]:
        if corruption != CLEAN:
            check_corruption_name(corruption)
            check_severity(severity)
        transform = _Corrupted(corruption, severity, self.seed, self.where)
        dataset = PositionedImages(self.dataset, self.indices, transform)
        yield from stream(dataset, self.share.batches(self.plan), self.device, self.workers)


class BenchmarkCorruptions:
    """Pre-generated corrupted images (ImageNet-C folders, CIFAR-10/100-C arrays).

    Args:
        reader: ``reader(corruption, severity)`` -> a data set of (image [C, H, W] in [0, 1],
            label), e.g. ``lambda c, s: CifarCArrays(root, c, s)``.
        indices: which items of every corrupted data set to evaluate (the same for all cells).
        clean_images, clean_labels: the clean cell, [N, C, H, W] and [N]; or ``clean``.
        batch_size: images per unrolled pass.
        device: where images are evaluated.
        clean: the clean cell as a streamed source (instead of tensors).
        workers: DataLoader worker processes that read the images.
    """

    def __init__(
        self,
        reader: Callable[[str, int], Dataset[Any]],
        indices: Sequence[int],
        clean_images: Tensor | None = None,
        clean_labels: Tensor | None = None,
        batch_size: int = 100,
        device: torch.device | str = "cpu",
        *,
        clean: OnTheFlyCorruptions | None = None,
        workers: int = 0,
    ) -> None:
        self.reader = reader
        self.indices = [int(index) for index in indices]
        if clean is None:
            assert clean_images is not None and clean_labels is not None
            clean = OnTheFlyCorruptions(
                clean_images, clean_labels, batch_size, device=device, workers=workers
            )
        self.clean = clean
        self.batch_size = int(batch_size)
        self.workers = int(workers)
        self.num_images = len(self.indices)
        if self.clean.num_images != self.num_images:
            raise DataError(
                f"{self.clean.num_images} clean images but {self.num_images} corrupted ones; "
                "expected the same number"
            )
        self.plan = batch_plan(self.num_images, self.batch_size)
        self.share = Share()

    def shared(self, share: Share) -> BenchmarkCorruptions:
        """The same images, this process's batches only."""
        view = copy.copy(self)
        view.share, view.clean = share, self.clean.shared(share)
        return view

    def batches(self, corruption: str, severity: int) -> Iterator[tuple[Tensor, Tensor]]:
        if corruption == CLEAN:
            yield from self.clean.batches(CLEAN, 0)
            return
        # Opened here, before the workers start: they inherit it instead of listing the files.
        dataset = self.reader(corruption, severity)
        size = len(dataset)  # type: ignore[arg-type]
        if self.indices and max(self.indices) >= size:
            raise DataError(
                f"{corruption} severity {severity}: {size} images, fewer than the "
                f"{max(self.indices) + 1} the evaluation needs"
            )
        where = f"{corruption} severity {severity}"
        items = PositionedImages(dataset, self.indices, _Corrupted(CLEAN, 0, 0, where))
        yield from stream(items, self.share.batches(self.plan), self.clean.device, self.workers)


# ---------------------------------------------------------------------- the sweep
def evaluate_cell(
    model: PixelSpaceNet, source: ImageSource, corruption: str, severity: int, timesteps: int
) -> CellResult:
    """Misclassifications at every timestep for one cell: one unrolled pass per batch.

    Returns:
        [`CellResult`][predify.evaluate.robustness.CellResult] with ``wrong`` [T+1, n]: the
        images of ``source``'s batches (all N alone; this process's share of a shared source).
    """
    wrong: list[Tensor] = []
    with torch.inference_mode():
        for images, labels in source.batches(corruption, severity):
            logits = model(images, timesteps=timesteps).logits  # [T+1, b, K]
            # Per-image outcomes (not only the rate) so bootstrap intervals can be computed.
            wrong.append(misclassified(logits, labels).cpu())
    if not wrong:
        if source.num_images == 0 or source.share.world == 1:
            raise DataError(f"{corruption} severity {severity}: no images")
        return CellResult(corruption, severity, np.zeros((timesteps + 1, 0), dtype=bool))
    return CellResult(corruption, severity, torch.cat(wrong, dim=1).numpy())


@dataclass
class CorruptionSweep:
    """The cells of a sweep.

    Attributes:
        timesteps: T.
        corruptions, severities: what was swept, in order.
        clean: the clean cell.
        cells: (corruption, severity) -> its cell.
        evaluated: how many cells this call computed (the others came from the progress store).
    """

    timesteps: int
    corruptions: list[str]
    severities: list[int]
    clean: CellResult
    cells: dict[tuple[str, int], CellResult] = field(default_factory=dict)
    evaluated: int = 0

    def error_table(self, corruption: str) -> np.ndarray:
        """Errors of one corruption, float64 [T+1, S] (column s: the s-th swept severity)."""
        return np.stack([self.cells[corruption, s].errors for s in self.severities], axis=1)

    def wrong_by_corruption(self, corruption: str) -> np.ndarray:
        """bool [S, T+1, N]: misclassified images of every severity of one corruption."""
        return np.stack([self.cells[corruption, s].wrong for s in self.severities])

    def corruption_error(self) -> dict[str, dict[str, list[float]]]:
        """``{corruption: {"<severity>": [error at t = 0, ..., error at t = T]}}``."""
        return {
            name: {
                str(severity): [float(v) for v in self.cells[name, severity].errors]
                for severity in self.severities
            }
            for name in self.corruptions
        }


def _restore(store: ResultStore | None, key: str, timesteps: int, count: int) -> CellResult | None:
    payload = store.get(key) if store is not None else None
    if payload is None:
        return None
    try:
        cell = CellResult.from_json(payload)
    except (KeyError, TypeError, ValueError):
        return None  # a damaged file: evaluate the cell again
    return cell if cell.timesteps == timesteps and cell.num_images == count else None


def corruption_sweep(
    model: PixelSpaceNet,
    source: ImageSource,
    corruptions: Sequence[str],
    severities: Sequence[int],
    *,
    timesteps: int,
    store: ResultStore | None = None,
    progress: bool | None = None,
    distributed: DistributedInfo | None = None,
) -> CorruptionSweep | None:
    """Evaluate the clean cell and every (corruption, severity) cell at timesteps 0..T.

    Args:
        model: the network in pixel space.
        source: the images of each cell
            ([`OnTheFlyCorruptions`][predify.evaluate.robustness.OnTheFlyCorruptions],
            [`BenchmarkCorruptions`][predify.evaluate.robustness.BenchmarkCorruptions]).
        corruptions: names as
            [`resolve_corruptions()`][predify.evaluate.corruptions.resolve_corruptions] returns.
        severities: severities in 1..5.
        timesteps: T.
        store: finished cells are read from and written to it (restartable sweeps); only rank
            0's is used.
        progress: show a tqdm bar (on stderr, only when it is a terminal; rank 0 only).
        distributed: this process's place in a multi-process run (None: alone). Rank 0 decides
            which cells are not finished yet; every cell is then split by batch over the
            processes ([`predify.evaluate.streaming`][predify.evaluate.streaming]: rank r takes
            batches r, r + W, ...), and its per-image results travel to rank 0, which puts them
            back in image order and stores the cell. A stored cell is the same whatever the
            number of processes (every image's corruption is seeded by the image), so a killed
            sweep resumes from its finished cells with any number of processes.

    Returns:
        The sweep on rank 0 (or alone); None on the other ranks.
    """
    main = distributed is None or distributed.is_main
    world = 1 if distributed is None else distributed.world_size
    plan = [(CLEAN, 0)] + [(name, severity) for name in corruptions for severity in severities]
    results: dict[tuple[str, int], CellResult] = {}
    if main:
        for corruption, severity in plan:
            cell = _restore(store, cell_key(corruption, severity), timesteps, source.num_images)
            if cell is not None:
                results[corruption, severity] = cell
    todo = broadcast_from_main([item for item in plan if item not in results], distributed)
    bar = tqdm(
        total=len(plan),
        initial=len(plan) - len(todo),
        desc="corruptions",
        unit="cell",
        disable=not (main and resolve_progress(progress)),
    )
    shared = source.shared(Share.of(distributed))
    for corruption, severity in todo:
        bar.set_postfix_str(cell_key(corruption, severity), refresh=False)
        # Looked up on the module at call time, so a test can count evaluated cells.
        part = globals()["evaluate_cell"](model, shared, corruption, severity, timesteps)
        gathered = gather_to_main(part.wrong, distributed)
        if gathered is not None:
            whole = CellResult(corruption, severity, reassemble(gathered, source.plan, world))
            done = whole.to_json()
            if store is not None:
                store.put(cell_key(corruption, severity), done)
            # Through the JSON form alone too: one process and many give the same numbers.
            results[corruption, severity] = CellResult.from_json(done)
        bar.update(1)
    bar.close()
    if not main:
        return None
    clean = results.pop((CLEAN, 0))
    return CorruptionSweep(
        timesteps=timesteps,
        corruptions=list(corruptions),
        severities=list(severities),
        clean=clean,
        cells=results,
        evaluated=len(todo),
    )


# ---------------------------------------------------------------------- summaries
def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _ci(values: np.ndarray, n_resamples: int, confidence: float, seed: int) -> list[float | None]:
    low, high = bootstrap_ci(values, n_resamples=n_resamples, confidence=confidence, seed=seed)
    return [_finite(low), _finite(high)]


def _ratio_ci(
    numerators: np.ndarray,
    denominators: np.ndarray,
    n_resamples: int,
    confidence: float,
    seed: int,
) -> list[float | None]:
    """Interval of mean_c(sum_i num[c, i] / sum_i den[c, i]), resampling images i jointly.

    ``bootstrap_ci`` resamples a 1-D array; resampling the image indices themselves lets one
    statistic read both per-image arrays with the same draw.
    """
    count = numerators.shape[-1]

    def ratio(sampled: np.ndarray, axis: int = -1) -> np.ndarray:
        index = sampled.astype(np.int64)  # [R, N]
        total = np.zeros(index.shape[0])
        # One corruption at a time keeps memory at [R, N] instead of [C, R, N].
        with np.errstate(divide="ignore", invalid="ignore"):
            for numerator, denominator in zip(numerators, denominators, strict=True):
                total += numerator[index].sum(axis=-1) / denominator[index].sum(axis=-1)
        return total / len(numerators)  # [R]

    statistics_input = np.arange(count, dtype=np.float64)
    try:
        low, high = bootstrap_ci(
            statistics_input, stat=ratio, n_resamples=n_resamples, confidence=confidence, seed=seed
        )
    except (DataError, ValueError):
        return [None, None]
    return [_finite(low), _finite(high)]


def _safe(metric: Callable[..., float], *args: Any) -> float | None:
    """``metric(*args)``, or None where it is undefined (a zero denominator)."""
    try:
        return _finite(metric(*args))
    except DataError:
        return None


@dataclass(frozen=True)
class AlexNetSummary:
    """CE and relative CE normalised by AlexNet's published ImageNet-C errors, per timestep.

    Attributes:
        corruptions: the evaluated corruptions AlexNet has errors for.
        ce: per corruption, CE at t = 0..T (None where undefined).
        relative_ce: per corruption, relative CE at t = 0..T.
        mce_corruptions: the corruptions ``mce`` averages: the 15 of ImageNet-C when all were
            evaluated (the benchmark's mCE), else ``corruptions``.
        mce, relative_mce: their means at t = 0..T (None without such corruptions).
    """

    corruptions: list[str]
    ce: dict[str, list[float | None]]
    relative_ce: dict[str, list[float | None]]
    mce_corruptions: list[str]
    mce: list[float | None] | None
    relative_mce: list[float | None] | None

    def to_json(self) -> JsonObject:
        return {item.name: getattr(self, item.name) for item in fields(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AlexNetSummary:
        return cls(**{item.name: data[item.name] for item in fields(cls)})


@dataclass
class CorruptionSummary:
    """What [`summarize_sweep()`][predify.evaluate.robustness.summarize_sweep] computes;
    `to_json()` is ``results.json``'s
    ``corruption`` block. Lists indexed by timestep have T+1 entries; undefined values (a zero
    t = 0 error) are None; intervals are ``[low, high]`` pairs. The fields after
    ``corruption_error`` are None when there are no corruptions (or, for ``*_ci``, no resamples).
    """

    timesteps: int
    num_images: int
    corruptions: list[str]
    severities: list[int]
    clean_error: list[float]
    corruption_error: dict[str, dict[str, list[float]]]
    """Per corruption, per severity (``"1"``..): the error at t = 0..T."""
    confidence: float | None = None
    bootstrap_resamples: int | None = None
    clean_error_ci: list[list[float | None]] | None = None
    mean_error_by_corruption: dict[str, list[float]] | None = None
    mean_corruption_error: list[float] | None = None
    ce_relative_to_t0: dict[str, list[float | None]] | None = None
    mce_relative_to_t0: list[float | None] | None = None
    relative_ce_vs_t0: dict[str, list[float | None]] | None = None
    relative_mce_vs_t0: list[float | None] | None = None
    mean_error_by_corruption_ci: dict[str, list[list[float | None]]] | None = None
    corruption_error_ci: dict[str, dict[str, list[list[float | None]]]] | None = None
    mean_corruption_error_ci: list[list[float | None]] | None = None
    mce_relative_to_t0_ci: list[list[float | None]] | None = None
    alexnet: AlexNetSummary | None = None
    """AlexNet-normalised CE/mCE (ImageNet models on ImageNet-like data only)."""
    cells_evaluated_now: int | None = None
    """How many cells the sweep computed (the others came from the result store)."""

    def to_json(self) -> JsonObject:
        """The fields that apply, in order (``alexnet`` always once there are corruptions)."""
        result: JsonObject = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, AlexNetSummary):
                value = value.to_json()
            if value is not None or (item.name == "alexnet" and self.corruptions):
                result[item.name] = value
        return result

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CorruptionSummary:
        """Inverse of `to_json()`: the fields it wrote, the others None."""
        values: dict[str, Any] = {item.name: data.get(item.name) for item in fields(cls)}
        if values["alexnet"] is not None:
            values["alexnet"] = AlexNetSummary.from_json(values["alexnet"])
        return cls(**values)


def summarize_sweep(
    sweep: CorruptionSweep,
    *,
    alexnet: bool = False,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> CorruptionSummary:
    """Error rates, corruption errors and their bootstrap intervals.

    Args:
        sweep: the evaluated cells.
        alexnet: also normalise by AlexNet's ImageNet-C errors (only meaningful for ImageNet
            models on ImageNet-like data).
        n_resamples: bootstrap resamples (0: no intervals).
        confidence: coverage of the intervals.
        seed: seed of the bootstrap.

    Returns:
        A [`CorruptionSummary`][predify.evaluate.robustness.CorruptionSummary] (JSON-ready values).
    """
    steps = range(sweep.timesteps + 1)
    clean = sweep.clean.errors
    summary = CorruptionSummary(
        timesteps=sweep.timesteps,
        num_images=sweep.clean.num_images,
        corruptions=list(sweep.corruptions),
        severities=list(sweep.severities),
        clean_error=[float(v) for v in clean],
        corruption_error=sweep.corruption_error(),
    )
    with_ci = n_resamples > 0
    if with_ci:
        summary.confidence = confidence
        summary.bootstrap_resamples = n_resamples
        summary.clean_error_ci = [
            _ci(sweep.clean.wrong[t].astype(np.float64), n_resamples, confidence, seed)
            for t in steps
        ]
    if not sweep.corruptions:
        return summary
    _add_corruption_errors(summary, sweep)
    if with_ci:
        _add_intervals(summary, sweep, n_resamples, confidence, seed)
    summary.alexnet = _alexnet_summary(sweep) if alexnet else None
    return summary


def _add_corruption_errors(summary: CorruptionSummary, sweep: CorruptionSweep) -> None:
    """Fill in the mean errors and (relative) corruption errors relative to t = 0."""
    steps = range(sweep.timesteps + 1)
    clean = sweep.clean.errors
    mean_error: dict[str, list[float]] = {}
    ce_t0: dict[str, list[float | None]] = {}
    relative_t0: dict[str, list[float | None]] = {}
    for name in sweep.corruptions:
        table = sweep.error_table(name)  # [T+1, S]
        mean_error[name] = [float(v) for v in table.mean(axis=1)]
        try:
            ce_t0[name] = [_finite(v) for v in ce_relative_to_t0(table)]
        except DataError:
            ce_t0[name] = [None] * len(steps)
        relative_t0[name] = [
            _safe(relative_corruption_error, table[t], clean[t], table[0], clean[0]) for t in steps
        ]
    summary.mean_error_by_corruption = mean_error
    summary.mean_corruption_error = [
        float(np.mean([mean_error[name][t] for name in sweep.corruptions])) for t in steps
    ]
    summary.ce_relative_to_t0 = ce_t0
    summary.mce_relative_to_t0 = _mean_or_none([ce_t0[name] for name in sweep.corruptions])
    summary.relative_ce_vs_t0 = relative_t0
    summary.relative_mce_vs_t0 = _mean_or_none([relative_t0[n] for n in sweep.corruptions])


def _add_intervals(
    summary: CorruptionSummary,
    sweep: CorruptionSweep,
    n_resamples: int,
    confidence: float,
    seed: int,
) -> None:
    """Fill in the bootstrap intervals of the corruption errors."""
    steps = range(sweep.timesteps + 1)
    # Per image and corruption, the number of severities it was wrong at: [C, T+1, N].
    wrong_counts = np.stack(
        [sweep.wrong_by_corruption(name).sum(axis=0) for name in sweep.corruptions]
    ).astype(np.float64)
    per_severity = len(sweep.severities)

    def interval(values: np.ndarray) -> list[float | None]:
        return _ci(values, n_resamples, confidence, seed)

    summary.mean_error_by_corruption_ci = {
        name: [interval(wrong_counts[index, t] / per_severity) for t in steps]
        for index, name in enumerate(sweep.corruptions)
    }
    summary.corruption_error_ci = {
        name: {
            str(severity): [
                interval(sweep.cells[name, severity].wrong[t].astype(np.float64)) for t in steps
            ]
            for severity in sweep.severities
        }
        for name in sweep.corruptions
    }
    summary.mean_corruption_error_ci = [
        interval(wrong_counts[:, t].mean(axis=0) / per_severity) for t in steps
    ]
    summary.mce_relative_to_t0_ci = [
        _ratio_ci(wrong_counts[:, t], wrong_counts[:, 0], n_resamples, confidence, seed)
        for t in steps
    ]


def _mean_or_none(rows: Sequence[Sequence[float | None]]) -> list[float | None]:
    """Column means of ``rows``; None for a column with any undefined entry."""
    columns = zip(*rows, strict=True)
    return [
        None if any(v is None for v in column) else float(np.mean(column))  # type: ignore[arg-type]
        for column in columns
    ]


def _alexnet_summary(sweep: CorruptionSweep) -> AlexNetSummary:
    """CE, mCE and relative mCE normalised by AlexNet, per timestep, for the ImageNet-C names."""
    names = [name for name in sweep.corruptions if name in ALEXNET_ERRORS_BY_SEVERITY]
    steps = range(sweep.timesteps + 1)
    clean = sweep.clean.errors
    ce: dict[str, list[float | None]] = {}
    relative: dict[str, list[float | None]] = {}
    for name in names:
        table = sweep.error_table(name)
        baseline = [ALEXNET_ERRORS_BY_SEVERITY[name][s - 1] for s in sweep.severities]
        ce[name] = [_safe(corruption_error, table[t], baseline) for t in steps]
        relative[name] = [
            _safe(relative_corruption_error, table[t], clean[t], baseline, ALEXNET_CLEAN_ERROR)
            for t in steps
        ]
    # The benchmark's mCE averages the 15 ImageNet-C corruptions, leaving the extras out.
    averaged = list(IMAGENET_C_CORRUPTIONS) if set(IMAGENET_C_CORRUPTIONS) <= set(names) else names
    return AlexNetSummary(
        corruptions=names,
        ce=ce,
        relative_ce=relative,
        mce_corruptions=averaged,
        mce=[_mean_over(ce, averaged, t) for t in steps] if names else None,
        relative_mce=[_mean_over(relative, averaged, t) for t in steps] if names else None,
    )


def _mean_over(
    values: Mapping[str, Sequence[float | None]], names: Sequence[str], t: int
) -> float | None:
    picked = [values[name][t] for name in names]
    if any(value is None for value in picked):
        return None
    return float(np.mean([float(value) for value in picked if value is not None]))
