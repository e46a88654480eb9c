"""Tuning the dynamics' hyperparameters on noisy images, and reading feedback reliance from them.

Following Alamia et al. ("On the role of feedback in visual processing: a predictive coding
perspective"), feedforward (their beta), feedback (lambda), memory (1 - feedforward - feedback)
and pc (alpha, the error-correction step) are chosen by an optimiser at each noise level; how
feedback and memory grow with the noise measures how much the network relies on feedback.

>>> from predify.tune import parse_noise, tune_gradient, accuracy_per_timestep
>>> result = tune_gradient(pnet, (val_images, val_labels), parse_noise("gaussian:0.5"),
...                        timesteps=10, epochs=3)  # doctest: +SKIP
>>> result.effective  # per pcoder: feedforward, feedback, pc  # doctest: +SKIP

Tune on one split and report on another:
[`check_disjoint_images()`][predify.tune.check_disjoint_images] (and
[`predify.data.check_disjoint()`][predify.data.check_disjoint] for index sets) refuse overlapping
ones.
"""

from ..data.noise import NOISE_FORMS, NoiseSpec, add_noise, parse_noise
from ..errors import TuningError
from .api import RESULTS_FORMAT, SplitsUsed, TuneReport, TuneSettings, tune_run
from .benchmark import (
    BenchmarkBatches,
    BenchmarkSplit,
    TuneBenchmark,
    open_tune_benchmark,
    split_positions,
)
from .collapse import COLLAPSE_RATIO, ScaleTrace, collapse_warning
from .data import TuneData, check_disjoint_images, image_hashes
from .gradient import DEFAULT_LR_MIXING, DEFAULT_LR_PC, tune_gradient
from .hyperparameters import (
    apply_hyperparameters,
    config_values,
    effective_values,
    load_tuned,
    temporary_hyperparameters,
    tuned_config,
)
from .noise import (
    BENCHMARKS,
    TUNE_NOISE_FORMS,
    BenchmarkLevel,
    CorruptionNoise,
    TuneNoise,
    parse_tune_noise,
)
from .objective import (
    DEFAULT_OBJECTIVE,
    OBJECTIVES,
    noisy_loss,
    objective_loss,
    optimal_inverse_temperature,
    timestep_loss,
)
from .optuna_search import DEFAULT_PC_RANGE, tune_optuna
from .plots import plot_accuracy, plot_reliance, plot_scales
from .reliance import (
    LEVEL_FORMAT,
    LevelReport,
    TimestepAccuracy,
    accuracy_per_timestep,
    evaluate_per_timestep,
    evaluation_seed,
    tune_and_evaluate,
)
from .result import TrajectoryPoint, TuneResult, trajectory_csv, write_trajectory

__all__ = [
    "BENCHMARKS",
    "COLLAPSE_RATIO",
    "DEFAULT_LR_MIXING",
    "DEFAULT_LR_PC",
    "DEFAULT_OBJECTIVE",
    "DEFAULT_PC_RANGE",
    "LEVEL_FORMAT",
    "NOISE_FORMS",
    "OBJECTIVES",
    "RESULTS_FORMAT",
    "TUNE_NOISE_FORMS",
    "BenchmarkBatches",
    "BenchmarkLevel",
    "BenchmarkSplit",
    "CorruptionNoise",
    "LevelReport",
    "NoiseSpec",
    "ScaleTrace",
    "SplitsUsed",
    "TimestepAccuracy",
    "TrajectoryPoint",
    "TuneBenchmark",
    "TuneData",
    "TuneNoise",
    "TuneReport",
    "TuneResult",
    "TuneSettings",
    "TuningError",
    "accuracy_per_timestep",
    "add_noise",
    "apply_hyperparameters",
    "check_disjoint_images",
    "collapse_warning",
    "config_values",
    "effective_values",
    "evaluate_per_timestep",
    "evaluation_seed",
    "image_hashes",
    "load_tuned",
    "noisy_loss",
    "objective_loss",
    "open_tune_benchmark",
    "optimal_inverse_temperature",
    "parse_noise",
    "parse_tune_noise",
    "plot_accuracy",
    "plot_reliance",
    "plot_scales",
    "split_positions",
    "temporary_hyperparameters",
    "timestep_loss",
    "trajectory_csv",
    "tune_and_evaluate",
    "tune_gradient",
    "tune_optuna",
    "tune_run",
    "tuned_config",
    "write_trajectory",
]
