"""What the feedback does to representations: noise robustness, prediction errors, reconstructions.

* Correlation distance (1 - Pearson r between the flattened representations of a clean image and
  of the same image with Gaussian noise, per image, then averaged) for every pcoder and timestep:
  if the feedback pulls noisy representations back towards the clean ones, it falls with t.
* Prediction errors over time: each pcoder's MSE between its decoder's prediction and the layer
  below (the input for the first pcoder), clean and noisy.
* Reconstructions: the first decoder's prediction of the image at each timestep, in pixel space.

Noise is added in pixel space to images in [0, 1], with sigma in pixel units; like the tuning
noise ([`predify.data.noise`][predify.data.noise], whose kernel this uses) it is not clipped by
default, so
large sigmas keep the image as a signal under the noise instead of turning it into random
black-and-white pixels.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, TensorDataset

from .._io import JsonObject
from ..data.noise import add_gaussian_noise
from ..errors import ConfigError
from ..runtime.distributed import DistributedInfo, gather_to_main
from .metrics import bootstrap_ci
from .pixel_space import PixelSpaceNet, check_pixel_range
from .streaming import Share, batch_plan, image_seed, stream

__all__ = [
    "NOISE_SIGMAS",
    "Reconstructions",
    "RepresentationAnalysis",
    "add_gaussian_noise",
    "correlation_distance",
    "reconstructions",
    "representation_analysis",
]

#: Noise levels of the analysis (pixel units, images in [0, 1]).
NOISE_SIGMAS: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 2.0)
# Guards the Pearson denominator for constant (e.g. all-zero ReLU) representations.
_TINY = 1e-12


def correlation_distance(first: Tensor, second: Tensor) -> Tensor:
    """1 - Pearson r of each pair of samples over their flattened features.

    Args:
        first, second: [B, ...] of the same shape.

    Returns:
        float [B] in [0, 2]. A constant sample has no defined correlation; it counts as
        uncorrelated (distance 1) unless both samples are identical (distance 0).
    """
    if first.shape != second.shape:
        raise ValueError(f"shapes differ: {list(first.shape)} and {list(second.shape)}")
    a = first.flatten(1).double()
    b = second.flatten(1).double()
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    norms = a.norm(dim=1) * b.norm(dim=1)
    correlation = (a * b).sum(dim=1) / norms.clamp_min(_TINY)
    distance = 1.0 - correlation
    identical = (first.flatten(1) == second.flatten(1)).all(dim=1)
    return torch.where(identical, torch.zeros_like(distance), distance).float()


def _noise_seed(seed: int, sigma: float) -> int:
    return zlib.crc32(f"{seed}/noise/{sigma:.6g}".encode())


@dataclass
class RepresentationAnalysis:
    """Results of [`representation_analysis()`][predify.evaluate.analysis.representation_analysis].

    Attributes:
        sigmas: noise levels, S of them.
        pcoders: module path of each pcoder, P of them (bottom first).
        timesteps: T.
        correlation_distance: float [S, P, T+1], mean over images.
        correlation_distance_ci: float [S, P, T+1, 2] bootstrap interval (NaN without one).
        prediction_error_clean: float [T+1, P], mean squared prediction error on clean images.
        prediction_error_noisy: float [S, T+1, P], the same on noisy images.
        num_images: images analysed.
        clip: whether noisy images were clipped to [0, 1].
    """

    sigmas: list[float]
    pcoders: list[str]
    timesteps: int
    correlation_distance: np.ndarray
    correlation_distance_ci: np.ndarray
    prediction_error_clean: np.ndarray
    prediction_error_noisy: np.ndarray
    num_images: int
    clip: bool

    def to_json(self) -> JsonObject:
        """JSON-ready values keyed by sigma (``"0.25"``) and pcoder module path."""

        def key(sigma: float) -> str:
            return f"{sigma:g}"

        def maybe(value: float) -> float | None:
            return None if np.isnan(value) else float(value)

        return {
            "sigmas": self.sigmas,
            "pcoders": self.pcoders,
            "timesteps": self.timesteps,
            "num_images": self.num_images,
            "noise_clipped": self.clip,
            "correlation_distance": {
                key(sigma): {
                    name: [float(v) for v in self.correlation_distance[s, p]]
                    for p, name in enumerate(self.pcoders)
                }
                for s, sigma in enumerate(self.sigmas)
            },
            "correlation_distance_ci": {
                key(sigma): {
                    name: [
                        [maybe(low), maybe(high)]
                        for low, high in self.correlation_distance_ci[s, p]
                    ]
                    for p, name in enumerate(self.pcoders)
                }
                for s, sigma in enumerate(self.sigmas)
            },
            "prediction_error": {
                "clean": {
                    name: [float(v) for v in self.prediction_error_clean[:, p]]
                    for p, name in enumerate(self.pcoders)
                },
                **{
                    key(sigma): {
                        name: [float(v) for v in self.prediction_error_noisy[s, :, p]]
                        for p, name in enumerate(self.pcoders)
                    }
                    for s, sigma in enumerate(self.sigmas)
                },
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RepresentationAnalysis:
        """Inverse of `to_json()` (intervals written as null come back as NaN)."""
        sigmas = [float(sigma) for sigma in data["sigmas"]]
        pcoders = [str(name) for name in data["pcoders"]]
        keys = [f"{sigma:g}" for sigma in sigmas]

        def array(values: Any) -> np.ndarray:
            return np.array(values, dtype=np.float64)

        distance = data["correlation_distance"]
        intervals = data["correlation_distance_ci"]
        errors = data["prediction_error"]
        return cls(
            sigmas=sigmas,
            pcoders=pcoders,
            timesteps=int(data["timesteps"]),
            correlation_distance=array([[distance[k][p] for p in pcoders] for k in keys]),
            correlation_distance_ci=array(
                [[[_pair(pair) for pair in intervals[k][p]] for p in pcoders] for k in keys]
            ),
            prediction_error_clean=array([errors["clean"][p] for p in pcoders]).T,
            prediction_error_noisy=array([[errors[k][p] for p in pcoders] for k in keys]).transpose(
                0, 2, 1
            ),
            num_images=int(data["num_images"]),
            clip=bool(data["noise_clipped"]),
        )


def _pair(values: Sequence[float | None]) -> list[float]:
    """An interval as written (null for undefined) back to floats (NaN)."""
    return [np.nan if value is None else float(value) for value in values]


def _check_sigmas(sigmas: Sequence[float]) -> list[float]:
    values = [float(sigma) for sigma in sigmas]
    if not values or any(not np.isfinite(v) or v < 0 for v in values):
        raise ConfigError(f"noise sigmas: expected numbers >= 0, got {list(sigmas)}")
    return values


@dataclass
class _BatchAnalysis:
    """One batch's share: per-image distances [S, P, T+1, b] and the batch's mean prediction
    errors, weighted by its share of the images ([T+1, P] clean, [S, T+1, P] noisy)."""

    distances: np.ndarray
    error_clean: Tensor
    error_noisy: Tensor


def _noisy(batch: Tensor, positions: Sequence[int], sigma: float, seed: int, clip: bool) -> Tensor:
    """``batch`` with noise drawn image by image, seeded by (seed, sigma, position)."""
    what = f"noise/{sigma:.6g}"
    return torch.cat(
        [
            add_gaussian_noise(
                image[None], sigma, torch.Generator().manual_seed(image_seed(seed, what, p)), clip
            )
            for image, p in zip(batch, positions, strict=True)
        ]
    )


def _analyse_batch(
    model: PixelSpaceNet,
    batch: Tensor,
    positions: Sequence[int],
    total: int,
    timesteps: int,
    sigmas: Sequence[float],
    seed: int,
    clip: bool,
) -> _BatchAnalysis:
    weight = batch.shape[0] / total
    clean = model(batch, timesteps=timesteps, record=True)
    assert clean.reps is not None and clean.errors is not None
    steps, pcoders = timesteps + 1, model.num_pcoders
    # out.errors is a batch mean: weight it by the batch's share of the images.
    error_clean = clean.errors.double().cpu() * weight
    error_noisy = torch.zeros(len(sigmas), steps, pcoders, dtype=torch.float64)
    distances = np.zeros((len(sigmas), pcoders, steps, batch.shape[0]), dtype=np.float32)
    for s, sigma in enumerate(sigmas):
        noisy = model(_noisy(batch, positions, sigma, seed, clip), timesteps=timesteps, record=True)
        assert noisy.reps is not None and noisy.errors is not None
        error_noisy[s] = noisy.errors.double().cpu() * weight
        for p in range(pcoders):
            for t in range(steps):
                distance = correlation_distance(clean.reps[p][t], noisy.reps[p][t])
                distances[s, p, t] = distance.cpu().numpy()
    return _BatchAnalysis(distances, error_clean, error_noisy)


def _as_dataset(images: Tensor | Dataset[Any]) -> Dataset[Any]:
    if isinstance(images, Tensor):
        check_pixel_range(images)
        return TensorDataset(images, torch.zeros(len(images), dtype=torch.long))
    return images


def representation_analysis(
    model: PixelSpaceNet,
    images: Tensor | Dataset[Any],
    *,
    timesteps: int,
    sigmas: Sequence[float] = NOISE_SIGMAS,
    batch_size: int = 100,
    seed: int = 0,
    clip: bool = False,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    workers: int = 0,
    distributed: DistributedInfo | None = None,
) -> RepresentationAnalysis | None:
    """Correlation distance between clean and noisy representations, and prediction errors.

    For each batch, the clean images and each noisy version go through one recorded unrolled
    pass each; every pcoder's representation e_n(t) of the noisy image is compared with e_n(t)
    of the clean image at the same timestep. Images stream in batch by batch; each image's noise
    is seeded by (seed, sigma, its position), so no number depends on the batch size, the
    worker count or the process count.

    Args:
        model: network in pixel space.
        images: [N, C, H, W] in [0, 1], or a data set of (image [C, H, W] in [0, 1], label).
        timesteps: T.
        sigmas: noise standard deviations (pixel units).
        batch_size: images per pass.
        seed: seeds the noise.
        clip: clip noisy images to [0, 1].
        n_resamples, confidence: bootstrap interval of the mean distance (0: none).
        workers: DataLoader worker processes that read the images.
        distributed: this process's place in a multi-process run: the batches are split over
            the processes ([`predify.evaluate.streaming`][predify.evaluate.streaming]) and
            gathered on rank 0, which combines them in batch order as one process would.

    Returns:
        The analysis on rank 0 (or alone); None on the other ranks.
    """
    sigma_list = _check_sigmas(sigmas)
    dataset = _as_dataset(images)
    total = len(dataset)  # type: ignore[arg-type]
    plan = batch_plan(total, batch_size)
    share = Share.of(distributed)
    mine = share.batches(plan)
    parts: list[_BatchAnalysis] = []
    with torch.inference_mode():
        loaded = stream(dataset, mine, model.device, workers)
        for positions, (batch, _) in zip(mine, loaded, strict=True):
            check_pixel_range(batch)
            parts.append(
                _analyse_batch(model, batch, positions, total, timesteps, sigma_list, seed, clip)
            )
    gathered = gather_to_main(parts, distributed)
    if gathered is None:
        return None
    # Batch order: the same sums, in the same order, as one process.
    in_order = [
        gathered[number % share.world][number // share.world] for number in range(len(plan))
    ]
    return _combine(
        model, in_order, sigma_list, timesteps, total, clip, n_resamples, confidence, seed
    )


def _combine(
    model: PixelSpaceNet,
    batches: Sequence[_BatchAnalysis],
    sigmas: list[float],
    timesteps: int,
    total: int,
    clip: bool,
    n_resamples: int,
    confidence: float,
    seed: int,
) -> RepresentationAnalysis:
    steps, pcoders = timesteps + 1, model.num_pcoders
    error_clean = torch.zeros(steps, pcoders, dtype=torch.float64)
    error_noisy = torch.zeros(len(sigmas), steps, pcoders, dtype=torch.float64)
    for part in batches:
        error_clean += part.error_clean
        error_noisy += part.error_noisy
    per_image = np.concatenate([part.distances for part in batches], axis=-1)  # [S, P, T+1, N]
    intervals = np.full((*per_image.shape[:3], 2), np.nan)
    if n_resamples > 0:
        for index in np.ndindex(*per_image.shape[:3]):
            intervals[index] = bootstrap_ci(
                per_image[index].astype(np.float64), n_resamples=n_resamples,
                confidence=confidence, seed=seed,
            )  # fmt: skip
    return RepresentationAnalysis(
        sigmas=sigmas,
        pcoders=model.pcoder_names,
        timesteps=timesteps,
        correlation_distance=per_image.mean(axis=-1),
        correlation_distance_ci=intervals,
        prediction_error_clean=error_clean.numpy(),
        prediction_error_noisy=error_noisy.numpy(),
        num_images=total,
        clip=clip,
    )


@dataclass
class Reconstructions:
    """The first decoder's predictions of the input, in pixel space.

    Attributes:
        images: [n, C, H, W] clean inputs.
        noisy: [n, C, H, W] the inputs the network saw (clean when sigma is 0).
        predictions: [T+1, n, C, H, W] the first pcoder's prediction of its input at each t,
            mapped back to pixel space (not clipped).
        sigma: the noise level.
    """

    images: Tensor
    noisy: Tensor
    predictions: Tensor
    sigma: float


def reconstructions(
    model: PixelSpaceNet,
    images: Tensor,
    *,
    timesteps: int,
    sigma: float = 0.5,
    seed: int = 0,
    clip: bool = False,
) -> Reconstructions:
    """Run ``images`` [n, C, H, W] (a few) with noise ``sigma`` and keep the first decoder's
    prediction of the input at every timestep (see
    [`Reconstructions`][predify.evaluate.analysis.Reconstructions])."""
    check_pixel_range(images)
    (sigma,) = _check_sigmas([sigma])
    generator = torch.Generator().manual_seed(_noise_seed(seed, sigma))
    batch = images.to(model.device)
    noisy = add_gaussian_noise(batch, sigma, generator, clip=clip) if sigma > 0 else batch
    with torch.inference_mode():
        out = model(noisy, timesteps=timesteps, record=True)
    assert out.preds is not None
    predictions = model.to_pixels(out.preds[0])
    return Reconstructions(
        images=images.detach().cpu(),
        noisy=noisy.detach().cpu(),
        predictions=predictions.detach().cpu(),
        sigma=sigma,
    )
