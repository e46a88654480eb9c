"""What the demo runs: [`DemoSettings`][predify.demo.settings.DemoSettings], with
[`FULL`][predify.demo.settings.FULL] and [`QUICK`][predify.demo.settings.QUICK]."""

from __future__ import annotations

from dataclasses import dataclass

from ..runtime.device import DEFAULT_DEVICE

__all__ = ["FULL", "NOISE_LEVELS", "QUICK", "SPLIT_SEED", "TEST_SEED", "DemoSettings"]

#: Standard deviations of the additive Gaussian noise, for images in [0, 1].
NOISE_LEVELS = (0.0, 0.25, 0.5, 1.0)
#: The MNIST-5k split (``predify evaluate`` reads the same split back).
SPLIT_SEED = 0
#: Seeds the choice of test images and their noise draw: the same for every training seed.
TEST_SEED = 1_000


@dataclass(frozen=True)
class DemoSettings:
    """What the demo runs: [`FULL`][predify.demo.settings.FULL] by default,
    [`QUICK`][predify.demo.settings.QUICK] with ``--quick``.

    New fields get a default, so that settings written by older code still build.
    """

    seed: int = 0
    """The first seed; the run uses ``seed, seed + 1, ..., seed + seeds - 1``."""
    seeds: int = 5
    """How many seeds: each retrains the backbone, the feedback and the tuning (its own
    initialisation and data order) on the same split, test images and noise draw. The backbones
    differ a lot under noise (feed-forward accuracy at sigma 0.5: 70-85%), so fewer seeds give
    wide intervals: with five, the tuned gain at sigma 0.5 (+2.9 [+0.1, +5.6]) excludes 0 and
    that at 1.0 (+2.6 [-1.5, +6.7]; one seed of five loses 1.4) does not."""
    workers: int | None = None
    """Seeds run at once, each in its own process with single-threaded ops; None: as many as
    make the run shortest on this machine's cores
    ([`best_worker_count()`][predify.demo.seeds.best_worker_count]);
    0: in this process, one after the other. The numbers do not depend on it."""
    noise_levels: tuple[float, ...] = NOISE_LEVELS
    """Standard deviations of the additive Gaussian noise, images in [0, 1]; must include 0
    (the clean representations the noisy ones are compared with)."""
    device: str = DEFAULT_DEVICE
    progress: bool | None = None
    """A progress bar per stage; None: only on a terminal."""
    quick: bool = False
    """Reduced sizes, for tests: the report says its numbers are not meant to be read."""
    timesteps: int = 10
    backbone_epochs: int = 12
    backbone_lr: float = 1e-2
    backbone_batch_size: int = 64
    feedback_epochs: int = 10
    feedback_lr: float = 3e-3
    """Chosen by the validation split's reconstruction loss (1e-3: 0.46, 3e-3: 0.35, 1e-2: 0.36,
    measured on the ShallowCNN this demo used before)."""
    batch_size: int = 64
    """Of the feedback training."""
    eval_batch_size: int = 250
    train_images: int | None = None
    """None: the whole training split (3000 images)."""
    test_images: int | None = 500
    """Test images (of the 1000 of the split; the same ones for every seed); None: all."""
    bootstrap_resamples: int = 1000
    """Of each seed's own paired intervals (``per_seed`` in the report)."""
    tune_steps: int = 24
    """Adam steps of the hyperparameter tuning at each noise level: a fixed count, so that the
    tuned values do not depend on the machine's speed. Half of ``predify tune``'s default 48 (3
    epochs of the 1000 validation images in batches of 64), to fit five seeds into three
    minutes. On the same five networks, 48 steps against 24 changed the tuned accuracy change
    t = 0 -> T by +0.2 points on average at sigma 0.5 (+3.1 against +2.9) and at 1.0 (+2.8
    against +2.6), at most 1.2 points for one seed; lambda of pcoder1 grows with noise either
    way. Feedforward moves less far from the paper's 0.8 in 24 steps."""
    tune_batch_size: int = 32
    """Half of ``predify tune``'s 64: as many Adam steps in about half the time, which reach
    similar values (the tuned lambda of pcoder1 at sigma 0.5: 0.57 against 0.53, one seed)."""
    tune_objective: str = "scale-free-last"
    """What the tuning minimises (a name of `predify.tune.OBJECTIVES`): the
    cross-entropy at t = T at its best temperature. ``summed``, the follow-up paper's summed
    cross-entropy, rewards shrinking logits: with it the tuned dynamics collapse the
    representations and help little at t = T."""
    tune_images: int | None = None
    """Validation images the tuning uses; None: the whole split (1000 images)."""
    tune_seconds_per_level: float = 300.0
    """A cap on the tuning time of one level, for very slow machines (the report says if it hit;
    the tuned values then depend on the machine's speed)."""


FULL = DemoSettings()
QUICK = DemoSettings(
    quick=True,
    seeds=2,
    timesteps=3,
    backbone_epochs=4,
    backbone_lr=2e-2,
    backbone_batch_size=32,
    feedback_epochs=2,
    eval_batch_size=100,
    train_images=600,
    test_images=100,
    bootstrap_resamples=200,
    tune_steps=3,
    tune_images=100,
)
