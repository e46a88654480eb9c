"""``predify demo``: the whole method on embedded data, end to end, in about two minutes on a CPU.

1. Train a small CNN (:class:`~predify.models.ShallowCNN`) on clean MNIST-5k training images.
2. Freeze it and train its feedback (the decoders of :func:`~predify.models.pshallow`) on the same
   clean images, with the Predify paper's reconstruction objective.
3. On the held-out test split, add Gaussian noise (sigma 0, 0.25, 0.5, 1.0 in pixel units, images
   in [0, 1]) and measure accuracy at every timestep t = 0..T, and each pcoder's prediction error.

Reported honestly, whatever the numbers say:

- noise unclipped (the main result) and clipped to [0, 1];
- a control where every image receives the top-down predictions of another image of its batch
  (shuffled feedback), so a gain that does not depend on the image's own feedback shows up as such;
- hyperparameters tuned for each noise level on the validation split (``predify.tune``, gradient
  descent within a time budget), evaluated on the test split beside the paper's;
- the change from t = 0 to t = T with a paired bootstrap 95% interval over test images. Every
  setting sees the same noise draw, so all comparisons are paired. One seed is run: the intervals
  cover the sampling of test images, not the variation between training runs.

The output directory is also a run directory (:func:`predify.runs.save_run`), so
``predify evaluate DIR`` and ``predify tune DIR`` work on it.
"""

from __future__ import annotations

import argparse
import copy
import math
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from ._device import resolve_device
from ._io import atomic_path, atomic_write_json, atomic_write_text, check_writable_dir
from .config import Hyperparameters
from .errors import ConfigError, DataError
from .network import PNetState, PredictiveNet
from .runs import RunInfo, save_run

if TYPE_CHECKING:
    from .models import ShallowCNN

__all__ = [
    "NOISE_LEVELS",
    "DemoSettings",
    "add_arguments",
    "run",
    "run_demo",
]

#: Standard deviations of the additive Gaussian noise, for images in [0, 1].
NOISE_LEVELS = (0.0, 0.25, 0.5, 1.0)
#: The MNIST-5k split of the run directory (``predify evaluate`` reads the same split back).
SPLIT_SEED = 0
REPORT_FORMAT = "predify-demo-report-v1"


@dataclass(frozen=True)
class DemoSettings:
    """The demo's sizes; :data:`FULL` by default, :data:`QUICK` with ``--quick``."""

    timesteps: int = 10
    backbone_epochs: int = 12
    backbone_lr: float = 1e-2
    backbone_batch_size: int = 64
    feedback_epochs: int = 10
    feedback_lr: float = 3e-3
    """Chosen by the validation split's reconstruction loss (1e-3: 0.46, 3e-3: 0.35, 1e-2: 0.36)."""
    batch_size: int = 64
    """Of the feedback training."""
    eval_batch_size: int = 500
    train_images: int | None = None
    """None: the whole training split (3000 images)."""
    test_images: int | None = None
    """None: the whole test split (1000 images)."""
    bootstrap_resamples: int = 2000
    tune_steps: int = 12
    """Adam steps of the hyperparameter tuning at each noise level (a fixed count, so that the
    tuned values do not depend on the machine's speed)."""
    tune_seconds_per_level: float = 60.0
    """A cap on the tuning time of one level, for slow machines (the report says if it hit)."""
    tune_images: int | None = None
    """Validation images the tuning uses; None: the whole split (1000 images)."""
    tune_batch_size: int = 64


FULL = DemoSettings()
QUICK = DemoSettings(
    timesteps=3,
    backbone_epochs=5,
    backbone_lr=2e-2,
    backbone_batch_size=32,
    feedback_epochs=2,
    eval_batch_size=200,
    train_images=1000,
    test_images=200,
    bootstrap_resamples=200,
    tune_steps=3,
    tune_seconds_per_level=20.0,
    tune_images=200,
)


@dataclass(frozen=True)
class _Setting:
    """One evaluated condition: a noise level, clipping, and what the feedback is."""

    key: str
    """The report entry: ``accuracy`` + ``_<key>`` (empty for the main result)."""
    sigma: float
    clip: bool = False
    shuffled: bool = False
    hyperparameters: Hyperparameters | tuple[Hyperparameters, ...] | None = None
    """None: the network's configured (paper) hyperparameters; else one set or one per pcoder."""


@dataclass
class _Outcome:
    correct: Tensor
    """bool [T+1, N]: image n classified correctly at timestep t."""
    errors: Tensor | None = None
    """[T+1, n_pcoders] mean prediction error over the images (main setting only)."""
    reconstructions: Tensor | None = None
    """[T+1, C, H, W] the first decoder's prediction of the shown image over time."""
    shown_input: Tensor | None = None
    """[C, H, W] the shown image as the network received it."""


# ---------------------------------------------------------------------- data and training
def _subset(dataset: TensorDataset, count: int | None, seed: int) -> TensorDataset:
    """``count`` items of ``dataset`` in a seeded random order (all of them when None)."""
    images, labels = dataset.tensors
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    if count is not None:
        order = order[:count]
    return TensorDataset(images[order], labels[order])


def _train_backbone(
    train: TensorDataset,
    settings: DemoSettings,
    seed: int,
    device: torch.device,
    progress: bool,
) -> tuple[ShallowCNN, list[float]]:
    """Supervised training of the ShallowCNN on clean images; returns it (eval mode) and losses."""
    from .models import ShallowCNN

    torch.manual_seed(seed)
    backbone = ShallowCNN(in_channels=1, num_classes=10).to(device)
    images, labels = (tensor.to(device) for tensor in train.tensors)
    steps_per_epoch = math.ceil(len(labels) / settings.backbone_batch_size)
    optimizer = torch.optim.Adam(backbone.parameters(), lr=settings.backbone_lr)
    # One cycle: a short warm-up, then annealing, reaches ~95% in a dozen epochs where a constant
    # rate is still near 93%.
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, settings.backbone_lr, total_steps=settings.backbone_epochs * steps_per_epoch
    )
    generator = torch.Generator().manual_seed(seed)
    epoch_losses = []
    bar = tqdm(range(settings.backbone_epochs), desc="1/4 backbone", disable=not progress)
    for _ in bar:
        order = torch.randperm(len(labels), generator=generator).to(device)
        total = 0.0
        for start in range(0, len(labels), settings.backbone_batch_size):
            batch = order[start : start + settings.backbone_batch_size]
            loss = F.cross_entropy(backbone(images[batch]), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch)
        epoch_losses.append(total / len(labels))
        bar.set_postfix(loss=f"{epoch_losses[-1]:.4f}")
    return backbone.eval(), epoch_losses


def _accuracy(model: torch.nn.Module, dataset: TensorDataset, device: torch.device) -> float:
    images, labels = dataset.tensors
    with torch.no_grad():
        predicted = torch.cat(
            [model(chunk.to(device)).argmax(-1).cpu() for chunk in images.split(1000)]
        )
    return float((predicted == labels).float().mean())


# ---------------------------------------------------------------------- evaluation
def _derangement(size: int, generator: torch.Generator) -> Tensor:
    """A random permutation without fixed points: image i gets the feedback of image p[i] != i."""
    if size < 2:
        raise DataError("the shuffled-feedback control needs batches of at least 2 images")
    order = torch.randperm(size, generator=generator)
    source = torch.empty(size, dtype=torch.long)
    source[order] = order.roll(-1)  # one cycle through a random order: nobody keeps their own
    return source


def _with_shuffled_feedback(state: PNetState, source: Tensor) -> PNetState:
    """The state with the top-down predictions (those of pcoders 2..N, which feed the layer
    below) taken from other images; pcoder 1's prediction of the input feeds nothing."""
    preds = [state.preds[0], *(p[source] if p is not None else None for p in state.preds[1:])]
    return replace(state, preds=preds)


def _batches(total: int, size: int) -> Iterator[slice]:
    for start in range(0, total, size):
        yield slice(start, min(start + size, total))


def _evaluate(
    pnet: PredictiveNet,
    images: Tensor,
    labels: Tensor,
    noise: Tensor,
    setting: _Setting,
    timesteps: int,
    batch_size: int,
    seed: int,
    device: torch.device,
    record: bool,
    bar: Any,
) -> _Outcome:
    """Accuracy at every timestep of one setting (and, with ``record``, the prediction errors and
    the first image's reconstructions)."""
    configured = pnet.hyperparameters()
    if setting.hyperparameters is not None:
        pnet.set_hyperparameters(setting.hyperparameters)
    shuffle_generator = torch.Generator().manual_seed(seed)
    correct: list[Tensor] = []
    error_sums = torch.zeros(timesteps + 1, pnet.num_pcoders, dtype=torch.float64)
    outcome = _Outcome(correct=torch.empty(0))
    try:
        with torch.no_grad():
            for part in _batches(len(labels), batch_size):
                x = images[part] + setting.sigma * noise[part]
                if setting.clip:
                    x = x.clamp(0.0, 1.0)
                x = x.to(device)
                target = labels[part].to(device)
                source = _derangement(len(target), shuffle_generator).to(device)
                state = pnet.start(x, with_errors=record)
                per_step = [state.logits.argmax(-1) == target]
                errors = [state.errors]
                shown = [state.preds[0][0].cpu()] if record and part.start == 0 else []  # type: ignore[index]
                for _ in range(timesteps):
                    if setting.shuffled:
                        state = _with_shuffled_feedback(state, source)
                    state = pnet.step(state, with_errors=record)
                    per_step.append(state.logits.argmax(-1) == target)
                    errors.append(state.errors)
                    if shown:
                        shown.append(state.preds[0][0].cpu())  # type: ignore[index]
                correct.append(torch.stack(per_step).cpu())
                if record:
                    error_sums += torch.stack(errors).double().cpu() * len(target)  # type: ignore[arg-type]
                if shown:
                    outcome.reconstructions = torch.stack(shown)
                    outcome.shown_input = x[0].cpu()
                bar.update(1)
    finally:
        pnet.set_hyperparameters(configured)
    outcome.correct = torch.cat(correct, dim=1)
    if record:
        outcome.errors = (error_sums / len(labels)).float()
    return outcome


def _evaluate_all(
    pnet: PredictiveNet,
    images: Tensor,
    labels: Tensor,
    noise: Tensor,
    to_run: Sequence[_Setting],
    timesteps: int,
    batch_size: int,
    seed: int,
    device: torch.device,
    bar: Any,
    workers: int,
) -> dict[tuple[str, float], _Outcome]:
    """Every setting; on the CPU ``workers`` at once, each in its own thread on its own copy of
    the network (the demo runs ops single-threaded, see :func:`run_demo`).

    PyTorch ops release the GIL, so the settings run truly in parallel. The results do not depend
    on how many run at once: each setting has its own seeds.
    """

    def evaluate(model: PredictiveNet, setting: _Setting) -> _Outcome:
        bar.set_postfix_str(f"sigma {setting.sigma}, {setting.key or 'feedback'}")
        return _evaluate(
            model,
            images,
            labels,
            noise,
            setting,
            timesteps,
            batch_size,
            seed,
            device,
            record=setting.key == "",
            bar=bar,
        )

    if workers <= 1 or device.type != "cpu":
        return {(s.key, s.sigma): evaluate(pnet, s) for s in to_run}
    local = threading.local()

    def task(setting: _Setting) -> _Outcome:
        if not hasattr(local, "model"):
            local.model = copy.deepcopy(pnet)  # hooks and hyperparameters stay per thread
        return evaluate(local.model, setting)

    with ThreadPoolExecutor(max_workers=min(workers, len(to_run))) as pool:
        outcomes = list(pool.map(task, to_run))
    return {(s.key, s.sigma): outcome for s, outcome in zip(to_run, outcomes, strict=True)}


def _settings_to_run(
    noise_levels: Sequence[float], tuned: dict[float, tuple[Hyperparameters, ...]]
) -> list[_Setting]:
    settings = []
    for sigma in noise_levels:
        settings.append(_Setting("", sigma))  # the paper's hyperparameters, noise unclipped
        if sigma > 0:  # clipping clean images, already in [0, 1], changes nothing
            settings.append(_Setting("clipped", sigma, clip=True))
        settings.append(_Setting("shuffled_feedback", sigma, shuffled=True))
        settings.append(_Setting("tuned", sigma, hyperparameters=tuned[sigma]))
    return settings


def _tune_levels(
    pnet: PredictiveNet,
    tuning: TensorDataset,
    levels: Sequence[float],
    timesteps: int,
    settings: DemoSettings,
    seed: int,
    bar: Any,
    workers: int,
) -> dict[float, Any]:
    """Tune beta, lambda and alpha per pcoder at each noise level on ``tuning`` (the validation
    split), each level within its time budget; ``workers`` levels at once, each on its own copy."""
    from .tune import parse_noise, tune_gradient

    images, labels = tuning.tensors

    def tune(sigma: float) -> Any:
        result = tune_gradient(
            copy.deepcopy(pnet),
            (images, labels),
            parse_noise(f"gaussian:{sigma}"),
            timesteps=timesteps,
            epochs=100,  # max_steps ends it first
            max_steps=settings.tune_steps,
            batch_size=settings.tune_batch_size,
            time_budget_s=settings.tune_seconds_per_level,
            measure_loss=False,
            seed=seed,
            progress=False,
        )
        bar.update(1)
        return result

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(levels)))) as pool:
        results = list(pool.map(tune, levels))
    return dict(zip(levels, results, strict=True))


# ---------------------------------------------------------------------- statistics
def _interval(a: Tensor, b: Tensor, resamples: int, seed: int) -> dict[str, float]:
    """Mean of a - b (per-image correctness, same images) with its paired bootstrap 95% CI."""
    from .evaluate.metrics import paired_bootstrap_diff

    result = paired_bootstrap_diff(a.numpy(), b.numpy(), n_resamples=resamples, seed=seed)
    return {"mean": result.diff, "low": result.low, "high": result.high}


def _verdict(
    change: dict[str, float],
    words: tuple[str, str, str] = ("improves", "hurts", "no detectable change"),
) -> str:
    """Whether the 95% interval lies above 0, below 0, or includes it."""
    if change["low"] > 0:
        return words[0]
    if change["high"] < 0:
        return words[1]
    return words[2]


#: Verdict words for "own feedback minus shuffled feedback".
_CONTROL_WORDS = ("own feedback better", "own feedback worse", "no detectable difference")


def _sigma_key(sigma: float) -> str:
    return str(float(sigma))


def _build_report(
    outcomes: dict[tuple[str, float], _Outcome],
    noise_levels: Sequence[float],
    timesteps: int,
    settings: DemoSettings,
    seed: int,
    num_pcoders: int,
) -> dict[str, Any]:
    resamples = settings.bootstrap_resamples
    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "seeds": 1,
        "seed": seed,
        "timesteps": list(range(timesteps + 1)),
        "noise_levels": [float(s) for s in noise_levels],
    }
    for key in ("", "clipped", "shuffled_feedback", "tuned"):
        suffix = f"_{key}" if key else ""
        accuracy, change = {}, {}
        for sigma in noise_levels:
            # Clean images are in [0, 1]: the clipped setting at sigma 0 is the main one.
            source_key = "" if key == "clipped" and sigma == 0 else key
            correct = outcomes[(source_key, sigma)].correct.double()
            accuracy[_sigma_key(sigma)] = correct.mean(dim=1).tolist()
            change[_sigma_key(sigma)] = _interval(correct[-1], correct[0], resamples, seed)
        report[f"accuracy{suffix}"] = accuracy
        report[f"change_t0_to_T{suffix}"] = change
    report["feedback_minus_shuffled_at_T"] = {
        _sigma_key(sigma): _interval(
            outcomes[("", sigma)].correct[-1].double(),
            outcomes[("shuffled_feedback", sigma)].correct[-1].double(),
            resamples,
            seed,
        )
        for sigma in noise_levels
    }
    report["tuned_minus_paper_at_T"] = {
        _sigma_key(sigma): _interval(
            outcomes[("tuned", sigma)].correct[-1].double(),
            outcomes[("", sigma)].correct[-1].double(),
            resamples,
            seed,
        )
        for sigma in noise_levels
    }
    prediction_error = {}
    for sigma in noise_levels:
        errors = outcomes[("", sigma)].errors
        assert errors is not None
        prediction_error[_sigma_key(sigma)] = {
            f"pcoder{index + 1}": errors[:, index].tolist() for index in range(num_pcoders)
        }
    report["prediction_error"] = prediction_error
    report["bootstrap"] = {
        "resamples": resamples,
        "confidence": 0.95,
        "paired_over": "test images (the same images and the same noise draw in every setting)",
    }
    return report


# ---------------------------------------------------------------------- plots
def _figure(figsize: tuple[float, float]) -> Any:
    """A figure outside pyplot: rendered with Agg, leaving the caller's backend alone."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def _save_figure(figure: Any, path: Path) -> None:
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=110, bbox_inches="tight")


def _plot_accuracy(report: dict[str, Any], path: Path) -> None:
    from matplotlib.ticker import MaxNLocator

    levels = report["noise_levels"]
    figure = _figure(figsize=(3.6 * len(levels), 3.4))
    axes = figure.subplots(1, len(levels), sharey=True)
    lines = (
        ("accuracy", "feedback (paper)", "C0", "-"),
        ("accuracy_clipped", "noise clipped to [0, 1]", "C1", "--"),
        ("accuracy_shuffled_feedback", "shuffled feedback (control)", "C3", ":"),
        ("accuracy_tuned", "tuned on validation split", "C2", "-."),
    )
    for axis, sigma in zip(np.atleast_1d(axes), levels, strict=True):
        for key, label, color, style in lines:
            axis.plot(report["timesteps"], report[key][str(sigma)], style, color=color, label=label)
        axis.axhline(0.1, color="grey", linewidth=0.8, alpha=0.6)
        axis.set_title(f"noise sigma = {sigma}")
        axis.set_xlabel("timestep t")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("test accuracy (chance = 0.1)")
    np.atleast_1d(axes)[0].legend(fontsize=7, loc="lower left")
    figure.suptitle("MNIST-5k test accuracy over timesteps (t = 0: feed-forward)", fontsize=10)
    figure.tight_layout()
    _save_figure(figure, path)


def _plot_reconstructions(
    outcomes: dict[tuple[str, float], _Outcome],
    clean: Tensor,
    noise_levels: Sequence[float],
    path: Path,
) -> None:
    first = outcomes[("", noise_levels[0])].reconstructions
    assert first is not None
    steps = first.shape[0] - 1
    shown_steps = sorted({0, 1, 2, steps // 2, steps} & set(range(steps + 1)))
    columns = 2 + len(shown_steps)
    figure = _figure(figsize=(1.5 * columns, 1.6 * len(noise_levels)))
    axes = figure.subplots(len(noise_levels), columns, squeeze=False)
    for row, sigma in enumerate(noise_levels):
        outcome = outcomes[("", sigma)]
        assert outcome.reconstructions is not None and outcome.shown_input is not None
        panels = [(clean, "input"), (outcome.shown_input, f"noisy, sigma {sigma}")]
        panels += [(outcome.reconstructions[t], f"decoder 1, t={t}") for t in shown_steps]
        for column, (image, title) in enumerate(panels):
            axis = axes[row][column]
            axis.imshow(image[0].numpy(), cmap="gray", vmin=0.0, vmax=1.0)
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0 or column == 1:
                axis.set_title(title, fontsize=7)
    figure.suptitle(
        "An input, its noisy version and the first decoder's reconstruction", fontsize=9
    )
    _save_figure(figure, path)


def _plot_prediction_error(report: dict[str, Any], path: Path) -> None:
    from matplotlib.ticker import MaxNLocator

    levels = report["noise_levels"]
    names = list(report["prediction_error"][str(levels[0])])
    figure = _figure(figsize=(3.4 * len(names), 3.0))
    axes = figure.subplots(1, len(names), squeeze=False)
    for axis, name in zip(axes[0], names, strict=True):
        for sigma in levels:
            values = report["prediction_error"][str(sigma)][name]
            axis.plot(report["timesteps"], values, label=f"sigma {sigma}")
        axis.set_yscale("log")
        axis.set_title(f"{name} prediction error (MSE)", fontsize=9)
        axis.set_xlabel("timestep t")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    _save_figure(figure, path)


# ---------------------------------------------------------------------- text reports
def _percent(value: float) -> str:
    return f"{100 * value:5.1f}"


def _change(change: dict[str, float], aligned: bool = True) -> str:
    """``+2.5 [+1.5, +3.6]`` in percentage points (padded to a fixed width when ``aligned``)."""
    width = 5 if aligned else 0
    mean, low, high = (100 * change[key] for key in ("mean", "low", "high"))
    return f"{mean:+{width}.1f} [{low:+{width}.1f}, {high:+{width}.1f}]"


def summary_table(report: dict[str, Any]) -> str:
    """The printed table: accuracy (%) at t = 0 and t = T, and the change with its 95% CI."""
    last = report["timesteps"][-1]
    header = (
        f"{'sigma':>5}  {'t=0':>5}  {f't={last}':>5}  {'change t=0->T [95% CI]':<24}"
        f"{'shuffled fb':<24}{'clipped noise':<24}{'tuned (val split)':<24}"
    )
    lines = [header, "-" * len(header)]
    for sigma in report["noise_levels"]:
        key = str(sigma)
        accuracy = report["accuracy"][key]
        lines.append(
            f"{sigma:>5}  {_percent(accuracy[0])}  {_percent(accuracy[-1])}  "
            f"{_change(report['change_t0_to_T'][key]):<24}"
            f"{_change(report['change_t0_to_T_shuffled_feedback'][key]):<24}"
            f"{_change(report['change_t0_to_T_clipped'][key]):<24}"
            f"{_change(report['change_t0_to_T_tuned'][key]):<24}"
        )
    lines.append(
        "accuracy in %; changes in percentage points, paired bootstrap over test images; "
        f"{report['seeds']} seed"
    )
    return "\n".join(lines)


def _markdown(report: dict[str, Any]) -> str:
    last = report["timesteps"][-1]
    info = report["run"]
    rows = []
    for sigma in report["noise_levels"]:
        key = str(sigma)
        for label, suffix in (
            ("feedback (paper hyperparameters)", ""),
            ("noise clipped to [0, 1]", "_clipped"),
            ("shuffled feedback (control)", "_shuffled_feedback"),
            ("tuned hyperparameters (validation split)", "_tuned"),
        ):
            accuracy = report[f"accuracy{suffix}"][key]
            change = report[f"change_t0_to_T{suffix}"][key]
            rows.append(
                f"| {sigma} | {label} | {_percent(accuracy[0])} | {_percent(accuracy[-1])} | "
                f"{_change(change)} | {_verdict(change)} |"
            )
    control_rows = []
    for sigma in report["noise_levels"]:
        difference = report["feedback_minus_shuffled_at_T"][str(sigma)]
        control_rows.append(
            f"| {sigma} | {_change(difference)} | {_verdict(difference, _CONTROL_WORDS)} |"
        )
    error_rows = []
    for sigma in report["noise_levels"]:
        errors = report["prediction_error"][str(sigma)]
        cells = " | ".join(f"{v[0]:.4g} -> {v[-1]:.4g}" for v in errors.values())
        error_rows.append(f"| {sigma} | {cells} |")
    pcoder_names = list(report["prediction_error"][str(report["noise_levels"][0])])
    tuned_rows = []
    for sigma in report["noise_levels"]:
        key = str(sigma)
        cells = " | ".join(
            f"{v['feedforward']:.2f} / {v['feedback']:.2f} / {v['memory']:.2f} / {v['pc']:.3g}"
            for v in report["tuned_hyperparameters"][key]
        )
        tuning = report["tuning"][key]
        tuned_rows.append(
            f"| {sigma} | {cells} | {tuning['steps']} | "
            f"{_change(report['tuned_minus_paper_at_T'][key])} |"
        )
    findings = report["findings"]
    quick_note = (
        ["> Quick mode: reduced sizes for tests; the numbers are not meant to be read.", ""]
        if info["quick"]
        else []
    )
    return "\n".join(
        [
            "# predify demo: predictive-coding feedback on MNIST-5k",
            "",
            *quick_note,
            f"Backbone: ShallowCNN trained on {info['train_images']} clean MNIST-5k training "
            f"images ({info['backbone_epochs']} epochs); validation accuracy "
            f"{_percent(info['backbone_val_accuracy']).strip()}%. Feedback: the decoders of "
            f"`pshallow`, trained on the same clean images for {info['feedback_epochs']} epochs "
            "(reconstruction of the layer below, backbone frozen). Evaluation: "
            f"{info['test_images']} held-out test images (split seed {info['split_seed']}), "
            f"additive Gaussian noise in pixel units (images in [0, 1]), T = {last} timesteps, "
            f"hyperparameters beta 0.8, lambda 0.1, alpha 0.01 (the paper's). "
            f"**{report['seeds']} seed** (seed {report['seed']}): the intervals below cover the "
            "sampling of test images, not the variation between training runs.",
            "",
            "## Accuracy (%) at t = 0 (feed-forward) and t = T",
            "",
            "Change in percentage points with a paired bootstrap 95% interval over test images "
            f"({report['bootstrap']['resamples']} resamples); every setting sees the same noise.",
            "",
            "| sigma | setting | t = 0 | t = T | change [95% CI] | verdict |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            "## Is the gain image-specific? Feedback minus shuffled feedback at t = T",
            "",
            "In the control each image receives the top-down predictions of another image of its "
            "batch (a random derangement, fixed for all timesteps); its own error-correction term "
            "is unchanged. Positive: the image's own feedback does better than another's.",
            "",
            "| sigma | difference [95% CI] | verdict |",
            "|---|---|---|",
            *control_rows,
            "",
            "## Tuned hyperparameters (beta / lambda / memory / alpha per pcoder)",
            "",
            "Tuned at each noise level on the validation split (Adam on the cross-entropy summed "
            f"over timesteps, {report['run']['tune_steps']} steps of "
            f"{report['run']['tune_batch_size']} of its {report['run']['tune_images']} images), "
            "then evaluated on the test split; the last column is tuned minus paper accuracy at "
            "t = T.",
            "",
            f"| sigma | {' | '.join(pcoder_names)} | Adam steps | tuned - paper at T [95% CI] |",
            f"|---|{'---|' * len(pcoder_names)}---|---|",
            *tuned_rows,
            "",
            "## Prediction error (MSE) of each pcoder, t = 0 -> t = T",
            "",
            "pcoder1 predicts the (noisy) input, so its error includes noise it cannot predict.",
            "",
            f"| sigma | {' | '.join(pcoder_names)} |",
            f"|---|{'---|' * len(pcoder_names)}",
            *error_rows,
            "",
            "## What the numbers say",
            "",
            *[f"- {finding}" for finding in findings],
            "",
            "## Files",
            "",
            "- `accuracy_vs_timestep.png`, `reconstructions.png`, `prediction_error.png`",
            "- `report.json`: every number above; `metrics.csv`: the feedback training losses",
            "- a run directory (`run.json`, `config.toml`, `backbone.pt`, feedback weights, "
            "`checkpoint.pt`): `predify evaluate DIR`, `predify tune DIR`",
            "",
        ]
    )


def _findings(report: dict[str, Any]) -> list[str]:
    """Plain statements computed from the numbers, for every noise level (nothing left out)."""
    findings = []
    last = report["timesteps"][-1]
    for sigma in report["noise_levels"]:
        key = str(sigma)
        accuracy = report["accuracy"][key]
        change = report["change_t0_to_T"][key]
        control = report["feedback_minus_shuffled_at_T"][key]
        clipped = report["change_t0_to_T_clipped"][key]
        tuned = report["change_t0_to_T_tuned"][key]
        tuned_gain = report["tuned_minus_paper_at_T"][key]
        text = (
            f"sigma {sigma}: feed-forward accuracy {100 * accuracy[0]:.1f}%. With the paper's "
            f"feedback the change from t = 0 to t = {last} is {_change(change, False)} points "
            f"({_verdict(change)}); with clipped noise {_change(clipped, False)} "
            f"({_verdict(clipped)}). At t = {last} the image's own feedback minus another "
            f"image's: {_change(control, False)} ({_verdict(control, _CONTROL_WORDS)}). "
            f"With hyperparameters tuned on the validation split: {_change(tuned, False)} "
            f"({_verdict(tuned)}); tuned minus paper at t = {last}: "
            f"{_change(tuned_gain, False)} ({_verdict(tuned_gain)})."
        )
        if accuracy[0] <= 0.15:
            text += " The backbone is at or near chance (10%) here: there is little to recover."
        findings.append(text)
    findings.append(
        "The tuned hyperparameters were fitted on the validation split only (disjoint from the "
        "test split) in a few Adam steps; `predify tune DIR --noise gaussian:SIGMA` runs the "
        "same tuning longer, with Optuna as an alternative."
    )
    findings.append(
        f"{report['seeds']} seed: the intervals describe the sampling of the "
        f"{report['run']['test_images']} test images only; another training run (another seed) "
        "can move these numbers by more than their width."
    )
    return findings


# ---------------------------------------------------------------------- the demo


def run_demo(
    out_dir: str | Path = "predify-demo",
    *,
    seed: int = 0,
    timesteps: int | None = None,
    quick: bool = False,
    device: str | torch.device = "cpu",
    progress: bool = True,
    noise_levels: Sequence[float] = NOISE_LEVELS,
) -> dict[str, Any]:
    """Run the demo and write its outputs into ``out_dir``; returns the report (``report.json``).

    Args:
        out_dir: output directory (created; files in it are replaced).
        seed: seeds the backbone, the feedback training, the noise draw and the control.
        timesteps: T (default 10, or 3 with ``quick``).
        quick: much smaller sizes (a few seconds), for tests.
        device: ``cpu``, ``cuda``, ``auto``...
        progress: show progress bars.
        noise_levels: sigma of the additive Gaussian noise, images in [0, 1].

    Returns:
        The report: ``timesteps`` [0..T], ``noise_levels``, ``accuracy`` {sigma: [T+1]}, and the
        same for ``accuracy_clipped``, ``accuracy_shuffled_feedback``,
        ``accuracy_tuned``; ``change_t0_to_T*`` {sigma: {mean, low, high}},
        ``tuned_minus_paper_at_T``, ``tuned_hyperparameters`` {sigma: [per pcoder]},
        ``feedback_minus_shuffled_at_T``, ``prediction_error`` {sigma: {pcoderK: [T+1]}}, ``seeds``.
    """
    settings = QUICK if quick else FULL
    steps = settings.timesteps if timesteps is None else timesteps
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"--timesteps: expected an integer >= 1, got {steps!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"--seed: expected an integer, got {seed!r}")
    levels = [float(sigma) for sigma in noise_levels]
    if not levels or any(not math.isfinite(s) or s < 0 for s in levels):
        raise ConfigError(f"noise_levels: expected finite values >= 0, got {list(noise_levels)}")
    out = Path(out_dir)
    check_writable_dir(out)
    target_device = resolve_device(device)
    if target_device.type != "cpu":
        return _run_demo(out, settings, steps, seed, levels, target_device, progress, workers=1)
    # Ops run single-threaded on the CPU: the numbers are then the same on any number of cores
    # (reductions split over threads round differently), and a busy machine does not stall the
    # small steps of this demo on threads waiting for each other. The cores are used instead by
    # evaluating several settings at once.
    workers = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run_demo(out, settings, steps, seed, levels, target_device, progress, workers)
    finally:
        torch.set_num_threads(workers)


def _run_demo(
    out: Path,
    settings: DemoSettings,
    steps: int,
    seed: int,
    levels: list[float],
    target_device: torch.device,
    progress: bool,
    workers: int,
) -> dict[str, Any]:
    from .data import mnist5k_splits
    from .models import pshallow
    from .train import FeedbackTrainer, seed_everything

    started = time.perf_counter()
    timings: dict[str, float] = {}

    seed_everything(seed)
    splits = mnist5k_splits(SPLIT_SEED)
    # The whole split as `load_dataset("mnist5k:train")` gives it, so that `predify train
    # --resume DIR` continues this run exactly; the trainer shuffles it per epoch.
    train = (
        splits.train
        if settings.train_images is None
        else _subset(splits.train, settings.train_images, seed)
    )
    test = _subset(splits.test, settings.test_images, seed + 1)  # mixed classes in every batch
    timings["data"] = time.perf_counter() - started

    phase = time.perf_counter()
    backbone, backbone_losses = _train_backbone(train, settings, seed, target_device, progress)
    val_accuracy = _accuracy(backbone, splits.val, target_device)
    timings["backbone"] = time.perf_counter() - phase

    phase = time.perf_counter()
    backbone.requires_grad_(False)
    pnet = pshallow(backbone, in_channels=1, image_size=28, timesteps=steps)
    trainer = FeedbackTrainer(pnet, lr=settings.feedback_lr, seed=seed, device=target_device)
    feedback_losses = trainer.fit(
        train,
        epochs=settings.feedback_epochs,
        batch_size=settings.batch_size,
        checkpoint_path=out / "checkpoint.pt",
        log_dir=out,
        tensorboard=False,
        progress=progress,
    )
    pnet.eval()
    training = None
    if settings.train_images is None:
        # The same data, order and settings as `predify train`: `--resume DIR` continues it.
        training = {
            "data": "mnist5k:train",
            "data_root": None,
            "image_size": None,
            "epochs": settings.feedback_epochs,
            "batch_size": settings.batch_size,
            "lr": settings.feedback_lr,
            "weight_decay": 5e-4,
            "optimizer": "adam",
            "momentum": 0.9,
            "timesteps": 0,
            "tbptt": None,
            "checkpoint_activations": False,
            "amp": False,
            "seed": seed,
            "status": "finished",
            "steps": trainer.global_step,
        }
    extra: dict[str, Any] = {"demo": {"quick": settings is QUICK, "timesteps": steps}}
    if training is not None:
        extra["training"] = training
    info = RunInfo(
        backbone={"name": "shallow_cnn", "kwargs": {"in_channels": 1, "num_classes": 10}},
        data={"spec": "mnist5k", "split_seed": SPLIT_SEED},
        num_classes=10,
        normalization=None,
        seed=seed,
        extra=extra,
    )
    save_run(out, pnet, info)
    timings["feedback"] = time.perf_counter() - phase

    phase = time.perf_counter()
    tuning_data = (
        splits.val
        if settings.tune_images is None
        else _subset(splits.val, settings.tune_images, seed + 4)
    )
    with tqdm(total=len(levels), desc="3/4 tuning", disable=not progress) as bar:
        tuning = _tune_levels(pnet, tuning_data, levels, steps, settings, seed + 5, bar, workers)
    timings["tuning"] = time.perf_counter() - phase

    phase = time.perf_counter()
    images, labels = test.tensors
    # One noise draw for everything: every comparison below is paired.
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed + 2))
    to_run = _settings_to_run(
        levels, {sigma: tuple(result.effective) for sigma, result in tuning.items()}
    )
    batches = math.ceil(len(labels) / settings.eval_batch_size)
    with tqdm(total=len(to_run) * batches, desc="4/4 evaluation", disable=not progress) as bar:
        outcomes = _evaluate_all(
            pnet,
            images,
            labels,
            noise,
            to_run,
            steps,
            settings.eval_batch_size,
            seed + 3,
            target_device,
            bar,
            workers,
        )
    timings["evaluation"] = time.perf_counter() - phase

    report = _build_report(outcomes, levels, steps, settings, seed, pnet.num_pcoders)
    report["hyperparameters"] = [
        asdict(pnet.config.hyperparameters_of(index)) for index in range(pnet.num_pcoders)
    ]
    report["tuned_hyperparameters"] = {
        _sigma_key(sigma): [{**asdict(value), "memory": value.memory} for value in result.effective]
        for sigma, result in tuning.items()
    }
    report["tuning"] = {
        _sigma_key(sigma): {
            "method": "gradient",
            "split": "validation",
            "steps": result.steps,
            "seconds": round(result.seconds, 2),
            "stopped_by_budget": result.stopped_by_budget,
            "final_loss": result.final_loss,
        }
        for sigma, result in tuning.items()
    }
    report["run"] = {
        "quick": settings is QUICK,
        "device": str(target_device),
        "intra_op_threads": torch.get_num_threads(),
        "parallel_evaluations": workers,
        "split_seed": SPLIT_SEED,
        "train_images": len(train),
        "test_images": len(test),
        "backbone_epochs": settings.backbone_epochs,
        "backbone_train_loss": backbone_losses,
        "backbone_val_accuracy": val_accuracy,
        "feedback_epochs": settings.feedback_epochs,
        "feedback_train_loss": feedback_losses,
        "noise_seed": seed + 2,
        "tune_steps": settings.tune_steps,
        "tune_batch_size": settings.tune_batch_size,
        "tune_seconds_per_level": settings.tune_seconds_per_level,
        "tune_images": len(tuning_data),
    }
    report["findings"] = _findings(report)

    phase = time.perf_counter()
    _plot_accuracy(report, out / "accuracy_vs_timestep.png")
    _plot_reconstructions(outcomes, images[0], levels, out / "reconstructions.png")
    _plot_prediction_error(report, out / "prediction_error.png")
    timings["plots"] = time.perf_counter() - phase
    timings["total"] = time.perf_counter() - started
    report["timing_seconds"] = {name: round(value, 2) for name, value in timings.items()}
    atomic_write_json(out / "report.json", report)
    atomic_write_text(out / "report.md", _markdown(report))
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``predify demo``."""
    option = parser.add_argument
    option("--out", default="predify-demo", metavar="DIR", help="output directory")
    option("--seed", type=int, default=0, help="seed of the whole run (default 0)")
    option("--timesteps", type=int, default=None, help="T (default 10; 3 with --quick)")
    option("--quick", action="store_true", help="a much smaller run (seconds), for tests")
    option("--device", default="cpu", help="cpu (default), cuda, cuda:1, auto")
    option("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    """``predify demo``: run it and print the summary table."""
    report = run_demo(
        args.out,
        seed=args.seed,
        timesteps=args.timesteps,
        quick=args.quick,
        device=args.device,
        progress=not args.no_progress,
    )
    print()
    print(summary_table(report))
    print(
        f"\nreport: {Path(args.out) / 'report.md'} (plots and report.json beside it); "
        f"{report['timing_seconds']['total']:.0f} s"
    )
    return 0
