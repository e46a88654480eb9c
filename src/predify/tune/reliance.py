"""Accuracy per timestep on noisy held-out images, and how the tuned weights read as reliance on
feedback.

In the follow-up paper's reading, feedback (its lambda, the weight of the top-down prediction)
measures how much a layer relies on feedback, feedforward (beta) how much on the feed-forward
drive and memory on its own previous state; tuning at growing noise levels shows how that balance
shifts.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._io import JsonObject, check_format
from ..errors import ConfigError, DataError
from ..evaluate.metrics import PairedDifference, misclassified, paired_bootstrap_diff
from ..network import PredictiveNet
from ..submodules import eval_mode
from .collapse import ScaleAccumulator, ScaleTrace
from .data import TuneData, check_disjoint_images, iterate_batches, paired
from .gradient import tune_gradient
from .hyperparameters import temporary_hyperparameters
from .noise import TuneNoise
from .objective import Normalize, check_timesteps, network_device, noisy_batch
from .optuna_search import tune_optuna
from .result import TuneResult

__all__ = [
    "LEVEL_FORMAT",
    "LevelReport",
    "TimestepAccuracy",
    "accuracy_per_timestep",
    "evaluate_per_timestep",
    "evaluation_seed",
    "tune_and_evaluate",
]


@dataclass(frozen=True)
class TimestepAccuracy:
    """Accuracy of the unrolled network at every timestep on one set of noisy images.

    Attributes:
        accuracy: float64 [T+1], the fraction of images classified correctly at t = 0..T.
        correct: bool [T+1, N], per image and timestep (for paired bootstrap intervals); None when
            read back from a results file, which keeps only the accuracies.
        scales: the logit scale and each pcoder's representation norm per timestep (None in a
            file written before they were recorded).
    """

    accuracy: Tensor
    correct: Tensor | None = None
    scales: ScaleTrace | None = None


@torch.no_grad()
def evaluate_per_timestep(
    pnet: PredictiveNet,
    images: Tensor | TuneData,
    labels: Tensor | None,
    noise: TuneNoise,
    timesteps: int,
    generator: torch.Generator,
    *,
    batch_size: int = 250,
    normalize: Normalize | None = None,
) -> TimestepAccuracy:
    """Run ``pnet`` for ``timesteps`` steps on ``images`` with ``noise`` and score every step.

    Args:
        pnet: the network, with the hyperparameters to evaluate installed; run in eval mode.
        images: float [N, C, H, W] in [0, 1] (pixel space), labels: int [N]; or, with
            ``labels`` None, a source of ``(images, labels)`` batches, read batch by batch.
        noise: added to the images (in batches, in order, from ``generator``: the same seed gives
            the same noisy images, so two hyperparameter sets can be compared image by image).
        timesteps: T.
        generator: the source of the noise (on the CPU).
        normalize: applied after the noise, before the network.
    """
    data = paired(images, labels)
    device = network_device(pnet)
    wrong = []
    scales = ScaleAccumulator(timesteps, pnet.num_pcoders)
    with eval_mode(pnet):
        for batch_images, batch_labels in iterate_batches(data, batch_size, None):
            x, y = noisy_batch(batch_images, batch_labels, noise, generator, device, normalize)
            state = pnet.start(x, with_errors=False)
            per_step = []
            for t in range(timesteps + 1):
                if t > 0:
                    last = t == timesteps
                    state = pnet.step(state, with_predictions=not last, with_errors=False)
                per_step.append(misclassified(state.logits.float(), y).cpu())
                scales.add(t, state.logits, state.reps)
            wrong.append(torch.stack(per_step))
    stacked = torch.cat(wrong, dim=1)  # [T+1, N]
    accuracy = 1.0 - stacked.to(torch.float32).mean(dim=-1).double()
    return TimestepAccuracy(accuracy=accuracy, correct=~stacked, scales=scales.result())


def accuracy_per_timestep(
    pnet: PredictiveNet,
    images: Tensor,
    labels: Tensor,
    noise: TuneNoise,
    timesteps: int,
    generator: torch.Generator,
    *,
    batch_size: int = 250,
    normalize: Normalize | None = None,
) -> Tensor:
    """float64 [T+1]: the fraction of ``images`` [N, C, H, W] classified correctly at each
    timestep, with ``noise`` from ``generator``; see
    [`evaluate_per_timestep()`][predify.tune.reliance.evaluate_per_timestep]."""
    return evaluate_per_timestep(
        pnet,
        images,
        labels,
        noise,
        timesteps,
        generator,
        batch_size=batch_size,
        normalize=normalize,
    ).accuracy


def evaluation_seed(seed: int, noise: TuneNoise) -> int:
    """The seed of the held-out noise at one level.

    It depends on the noise itself, not on its position in a list of levels, so a resumed or
    reordered run sees the same noisy images.
    """
    return seed * 1_000_003 + zlib.crc32(str(noise).encode())


#: The ``format`` of a level's ``result.json`` (and of each level in ``results.json``). Files
#: without one were written before the format was versioned (the papers' key names) and still read.
LEVEL_FORMAT = "predify-tune-level-v1"


@dataclass
class LevelReport:
    """Tuning at one noise level and its effect on held-out images.

    Attributes:
        result: the tuning outcome (read back from a file: without its trajectory).
        before: accuracy per timestep with the network's own hyperparameters.
        after: accuracy per timestep with the tuned ones, on the same noisy images.
        gain: accuracy after minus before at the last timestep, with a paired bootstrap 95% CI.

    ``before.scales`` and ``after.scales`` hold the logit scale and representation norms per
    timestep; [`collapse`][predify.tune.collapse.collapse_warning] reads a collapse from them.
    """

    result: TuneResult
    before: TimestepAccuracy
    after: TimestepAccuracy
    gain: PairedDifference

    @property
    def noise(self) -> TuneNoise:
        return self.result.noise

    def to_json(self) -> JsonObject:
        """JSON-ready: the tuning summary, accuracies (rounded to 1e-6) and the gain."""
        return {
            "format": LEVEL_FORMAT,
            **self.result.to_json(),
            "accuracy_before": [round(float(a), 6) for a in self.before.accuracy],
            "accuracy_after": [round(float(a), 6) for a in self.after.accuracy],
            "final_timestep_gain": {
                "timestep": self.result.timesteps,
                "after_minus_before": round(self.gain.diff, 6),
                "ci95": [round(self.gain.low, 6), round(self.gain.high, 6)],
            },
            **{
                f"scales_{when}": series.scales.to_json()
                for when, series in (("before", self.before), ("after", self.after))
                if series.scales is not None
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "result.json") -> LevelReport:
        """The level [`to_json()`][predify.tune.reliance.LevelReport.to_json] wrote, or one
        written before the format was versioned (its beta/lambda/alpha keys are renamed).

        Raises:
            DataError: another format (one line naming it) or a malformed level.
        """
        check_format(data, [LEVEL_FORMAT], where, "tune again or update predify", unversioned=True)
        try:
            gain = data["final_timestep_gain"]
            low, high = gain["ci95"]
            return cls(
                result=TuneResult.from_json(data, where),
                before=TimestepAccuracy(
                    _accuracies(data["accuracy_before"]), scales=_scales(data, "before")
                ),
                after=TimestepAccuracy(
                    _accuracies(data["accuracy_after"]), scales=_scales(data, "after")
                ),
                gain=PairedDifference(float(gain["after_minus_before"]), float(low), float(high)),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(
                f"{where}: not a tuned level ({type(error).__name__}: {error})"
            ) from None


def _scales(data: Mapping[str, Any], when: str) -> ScaleTrace | None:
    entry = data.get(f"scales_{when}")
    return None if entry is None else ScaleTrace.from_json(entry)


def _accuracies(values: Sequence[float]) -> Tensor:
    return torch.tensor([float(value) for value in values], dtype=torch.float64)


def tune_and_evaluate(
    pnet: PredictiveNet,
    tune_data: TuneData,
    eval_images: Tensor | TuneData,
    eval_labels: Tensor | None,
    noise: TuneNoise,
    *,
    method: str = "gradient",
    timesteps: int | None = None,
    seed: int = 0,
    normalize: Normalize | None = None,
    **tune_options: Any,
) -> LevelReport:
    """Tune at ``noise`` on ``tune_data``, then score before and after on held-out images.

    The held-out images must not appear among the tuning images: they are compared by content
    ([`check_disjoint_images()`][predify.tune.reliance.check_disjoint_images]), so this holds
    however the two sets were built.

    Args:
        pnet: the network; left as it was (install the result with ``report.result.apply_to``).
        tune_data: tuning images (see [`tune_gradient()`][predify.tune.reliance.tune_gradient]).
        eval_images: held-out float [N, C, H, W] in [0, 1]; eval_labels: int [N] (or None, with
            ``eval_images`` a source of batches, read batch by batch).
        noise: the noise tuned for and evaluated with.
        method: ``"gradient"`` ([`tune_gradient()`][predify.tune.reliance.tune_gradient]) or
            ``"optuna"`` ([`tune_optuna()`][predify.tune.reliance.tune_optuna]).
        timesteps: T; default the network's config.
        seed: seeds the tuning and (through
            [`evaluation_seed()`][predify.tune.reliance.evaluation_seed]) the held-out noise.
        normalize: applied after the noise, before the network.
        tune_options: passed on to the tuning function (epochs, lr_mixing, trials, shared, ...).

    Raises:
        DataError: the held-out images overlap the tuning images.
    """
    steps = check_timesteps(pnet.config.timesteps if timesteps is None else timesteps)
    if method not in ("gradient", "optuna"):
        raise ConfigError(f"method {method!r}: expected 'gradient' or 'optuna'")
    check_disjoint_images(tune_data, paired(eval_images, eval_labels))
    noise_seed = evaluation_seed(seed, noise)

    def evaluate() -> TimestepAccuracy:
        generator = torch.Generator().manual_seed(noise_seed)
        return evaluate_per_timestep(
            pnet, eval_images, eval_labels, noise, steps, generator, normalize=normalize
        )

    before = evaluate()
    tune = tune_optuna if method == "optuna" else tune_gradient
    result = tune(
        pnet, tune_data, noise, timesteps=steps, seed=seed, normalize=normalize, **tune_options
    )
    with temporary_hyperparameters(pnet, result.hyperparameters, shared=result.shared):
        after = evaluate()
    assert after.correct is not None and before.correct is not None  # evaluated here, not read
    gain = paired_bootstrap_diff(after.correct[steps], before.correct[steps], seed=seed)
    return LevelReport(result=result, before=before, after=after, gain=gain)
