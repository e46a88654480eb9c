"""Tune a trained run at several noise levels: ``tune_run(run, noises, TuneSettings(...))``.

>>> from predify.tune.api import TuneSettings, tune_run
>>> report = tune_run("predify-demo/seed-0", ["gaussian:0.25", "gaussian:0.5"])  # doctest: +SKIP
>>> report.levels[0].after.accuracy                                       # doctest: +SKIP

Tunes feedforward, feedback and pc (the papers' beta, lambda, alpha) at each noise level on the
run's validation split, reports accuracy per timestep before and after on the test split, and
plots the tuned weights against the noise level (the reliance on feedback). With
``TuneSettings(benchmark="cifar-c:ROOT", corruptions="fog", severities="1-5")`` the levels are a
pre-generated benchmark's corruptions x severities instead, split by image position
(`predify.tune.benchmark`); ``noises`` is then empty. Writes into ``out``
(default ``RUN_DIR/tune``)::

    <noise>/tuned.toml        the run's config with the tuned values (loadable by predify.predify)
    <noise>/trajectory.csv    step, loss, per-pcoder feedforward/feedback/memory/pc values
    <noise>/result.json       tuned values, losses, accuracies before/after, the settings
    results.json              every level together
    reliance.csv, reliance.png    tuned values per pcoder against the noise level
    accuracy.png              held-out accuracy per timestep, before and after, per level
    scales.png                logit scale and representation norms per timestep, before/after
    progress/                 the finished levels
    ([`predify.runtime.store.ResultStore`][predify.runtime.store.ResultStore])

A level finished with the same settings is skipped on a restart, so an interrupted call resumes
where it stopped; other settings tune it again. To use a tuned network, load it with
``predify.tune.load_tuned(RUN_DIR, OUT/<noise>/tuned.toml)``: the run's feedback file also holds
(untuned) hyperparameters, so building from ``tuned.toml`` and then loading it would undo them.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import Tensor
from tqdm.auto import tqdm

from .._io import JsonObject, atomic_write_json, check_format
from ..config import Hyperparameters
from ..errors import ConfigError, DataError
from ..network import PredictiveNet
from ..runtime.device import DEFAULT_DEVICE, resolve_device
from ..runtime.distributed import (
    DistributedInfo,
    broadcast_from_main,
    device_for_rank,
    gather_to_main,
    init_distributed,
    shutdown_distributed,
)
from ..runtime.fingerprint import run_fingerprint
from ..runtime.loading import default_workers
from ..runtime.outputs import prepare_output_dir
from ..runtime.precision import Execution, autocast, prepare_network
from ..runtime.progress import resolve_progress
from ..runtime.runs import LoadedRun, load_run
from ..runtime.store import ResultStore
from ..runtime.tables import write_csv
from ..runtime.validation import check_int
from .benchmark import BenchmarkSplit, TuneBenchmark, open_tune_benchmark
from .collapse import collapse_warning
from .data import TuneData, check_disjoint_images
from .gradient import DEFAULT_LR_MIXING, DEFAULT_LR_PC
from .hyperparameters import effective_values
from .noise import BenchmarkLevel, TuneNoise, parse_tune_noise
from .objective import DEFAULT_OBJECTIVE, OBJECTIVES, Normalize
from .plots import plot_accuracy, plot_reliance, plot_scales
from .reliance import LevelReport, tune_and_evaluate
from .result import (
    HYPERPARAMETER_NAMES,
    hyperparameters_from_json,
    hyperparameters_to_json,
    write_trajectory,
)

__all__ = ["RESULTS_FORMAT", "SPLITS", "SplitsUsed", "TuneReport", "TuneSettings", "tune_run"]

SPLITS = ("train", "val", "test")
_RESULT = "result.json"


@dataclass
class TuneSettings:
    """How to tune; every field has the default of ``predify tune``.

    Attributes:
        out: output folder (default ``RUN_DIR/tune``).
        method: ``gradient`` (Adam on the unrolled dynamics) or ``optuna`` (TPE with pruning).
        objective: what tuning minimises, a name of `predify.tune.OBJECTIVES`
            (default ``scale-free-last``; ``summed`` is the follow-up paper's protocol).
        shared: one feedforward/feedback/pc set for all pcoders (None: as the run's config says).
        timesteps: T (default: the run's config).
        epochs, lr_mixing, lr_pc: of the gradient method; trials: of Optuna.
        max_images: at most this many images of each split (a seeded random subset).
        time_budget: seconds per level (None: no limit).
        clip: clamp noisy images to [0, 1].
        tune_split, eval_split: the splits of an mnist5k run tuned on and reported on.
        benchmark: ``cifar-c:ROOT`` or ``imagenet-c:ROOT``: tune on a pre-generated benchmark's
            levels, read as ``predify evaluate --benchmark`` reads them (no ``noises`` then).
        corruptions, severities: the benchmark's levels, every corruption at every severity
            (the forms of ``predify evaluate``: ``fog,snow`` or ``imagenet-c``; ``1-5``, ``3``).
        tune_images: benchmark positions tuned on: a count (seeded random positions; default a
            fifth of the images) or a range ``A-B``.
        eval_images: benchmark positions held out: ``rest`` (default) or a range ``A-B``.
        workers: DataLoader processes reading benchmark images (None:
            `predify.runtime.loading.default_workers`).
        precision, channels_last, compile: how the network runs
            (`predify.runtime.precision.Execution`; fp16 is refused: tuning has no gradient
            scaling, use bf16).
        progress: progress bars; None: only on a terminal (rank 0 only under torchrun).
        verbose: print a line per level and the summary tables (the CLI's default).
    """

    out: str | os.PathLike[str] | None = None
    method: Literal["gradient", "optuna"] = "gradient"
    objective: str = DEFAULT_OBJECTIVE
    shared: bool | None = None
    timesteps: int | None = None
    epochs: int = 3
    trials: int = 20
    max_images: int | None = None
    batch_size: int = 64
    lr_mixing: float = DEFAULT_LR_MIXING
    lr_pc: float = DEFAULT_LR_PC
    time_budget: float | None = None
    clip: bool = False
    tune_split: str = "val"
    eval_split: str = "test"
    benchmark: str | None = None
    corruptions: str | Sequence[str] | None = None
    severities: str | Sequence[int] = "1-5"
    tune_images: str | None = None
    eval_images: str | None = None
    workers: int | None = None
    seed: int = 0
    device: str | torch.device = DEFAULT_DEVICE
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    progress: bool | None = None
    verbose: bool = False


#: The ``format`` of ``results.json``. v2 may name a benchmark (``settings.data.benchmark``) and
#: its levels (``cifar-c/fog:3``); v1 files, and files without a format (written before it was
#: versioned, the papers' beta/lambda/alpha as keys), are still read.
RESULTS_FORMAT = "predify-tune-results-v2"
_READABLE_RESULTS = (RESULTS_FORMAT, "predify-tune-results-v1")


@dataclass(frozen=True)
class SplitsUsed:
    """The images a tuning run tuned on and reported on (disjoint)."""

    spec: str
    split_seed: int
    tuning: str
    """``mnist5k:val``: the split tuned on (``cifar-c:random-2000``: benchmark positions)."""
    tuning_images: int
    evaluation: str
    """``mnist5k:test``: the split reported on (``cifar-c:rest``: benchmark positions)."""
    evaluation_images: int
    benchmark: BenchmarkSplit | None = None
    """The benchmark, levels and positions, when tuned on one."""

    def to_json(self) -> JsonObject:
        # No benchmark key for mnist5k: the settings, and so progress/'s fingerprint, stay as
        # before, and an interrupted run still resumes.
        data: JsonObject = {
            f.name: getattr(self, f.name) for f in fields(self) if f.name != "benchmark"
        }
        if self.benchmark is not None:
            data["benchmark"] = self.benchmark.to_json()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SplitsUsed:
        benchmark = data.get("benchmark")
        return cls(
            **{f.name: data[f.name] for f in fields(cls) if f.name != "benchmark"},
            benchmark=None if benchmark is None else BenchmarkSplit.from_json(benchmark),
        )


@dataclass
class TuneReport:
    """What [`tune_run()`][predify.tune.api.tune_run] found; `to_json()` is ``results.json``.

    ``levels`` holds one [`LevelReport`][predify.tune.reliance.LevelReport] per noise level, in
    the order asked for (read back from a file: without trajectories or per-image correctness).
    """

    run_dir: str
    pcoders: list[str]
    run_values: list[Hyperparameters]
    """The run's own values, per pcoder (what tuning started from)."""
    settings: JsonObject
    """The settings every level's result depends on, as ``progress/`` fingerprints them (JSON
    values: ``method``, ``timesteps``, ``data``, learning rates ...)."""
    levels: list[LevelReport] = field(default_factory=list)
    out: str = ""
    world_size: int = 1
    """Processes that shared the noise levels (``torchrun``); the numbers do not depend on it."""
    is_main: bool = True
    """False on the other ranks of a multi-process run, whose report is not filled in."""

    @property
    def splits(self) -> SplitsUsed:
        """The images tuned on and reported on."""
        return SplitsUsed.from_json(self.settings["data"])

    def to_json(self) -> JsonObject:
        """``results.json``: everything but ``out`` and ``is_main``."""
        return {
            "format": RESULTS_FORMAT,
            "run_dir": self.run_dir,
            "pcoders": list(self.pcoders),
            "run_values": [hyperparameters_to_json(v) for v in self.run_values],
            "settings": self.settings,
            "levels": [level.to_json() for level in self.levels],
            "world_size": self.world_size,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "results.json") -> TuneReport:
        """The report [`to_json()`][predify.tune.api.TuneReport.to_json] wrote, a v1 file, or an
        older, unversioned ``results.json`` (its beta/lambda/alpha keys renamed).

        Raises:
            DataError: another format (one line naming it) or a malformed file.
        """
        check_format(
            data, _READABLE_RESULTS, where, "tune again or update predify", unversioned=True
        )
        try:
            return cls(
                run_dir=str(data["run_dir"]),
                pcoders=[str(name) for name in data["pcoders"]],
                run_values=[
                    hyperparameters_from_json(v, f"{where}: run_values") for v in data["run_values"]
                ],
                settings=dict(data["settings"]),
                levels=[
                    LevelReport.from_json(level, f"{where}: levels[{index}]")
                    for index, level in enumerate(data["levels"])
                ],
                world_size=int(data.get("world_size", 1)),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(
                f"{where}: not a tuning report ({type(error).__name__}: {error})"
            ) from None


# ---------------------------------------------------------------------------------- settings
def _check_levels(settings: TuneSettings, noises: Sequence[TuneNoise]) -> None:
    """Noise levels or a benchmark, not both; each level once."""
    if settings.benchmark is not None:
        if noises:
            raise ConfigError(
                f"--noise {noises[0]} with --benchmark {settings.benchmark}: expected one of them "
                "(a benchmark's levels are its --corruptions x --severities)"
            )
        if settings.corruptions is None:
            raise ConfigError(
                f"--benchmark {settings.benchmark}: expected --corruptions too (e.g. fog,snow or "
                "imagenet-c): each corruption x severity is one tuning level"
            )
        return
    for name in ("corruptions", "tune_images", "eval_images"):
        if getattr(settings, name) is not None:
            raise ConfigError(f"--{name.replace('_', '-')}: only with --benchmark KIND:ROOT")
    labels = [noise.label for noise in noises]
    if not labels:
        raise ConfigError("--noise: expected at least one noise level (or --benchmark KIND:ROOT)")
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ConfigError(f"--noise: {', '.join(repeated)} given more than once")


def _check_settings(settings: TuneSettings, noises: Sequence[TuneNoise]) -> None:
    _check_levels(settings, noises)
    for name in ("timesteps", "epochs", "trials", "max_images", "batch_size", "time_budget"):
        value = getattr(settings, name)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ConfigError(f"--{name.replace('_', '-')}: expected a value > 0, got {value}")
    if settings.workers is not None:
        check_int(settings.workers, "--workers", minimum=0)
    for name in ("lr_mixing", "lr_pc"):
        value = getattr(settings, name)
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"--{name.replace('_', '-')}: expected a value >= 0, got {value}")
    if settings.objective not in OBJECTIVES:
        raise ConfigError(
            f"--objective: expected one of {', '.join(OBJECTIVES)}, got {settings.objective!r}"
        )
    if settings.method not in ("gradient", "optuna"):
        raise ConfigError(f"--method: expected gradient or optuna, got {settings.method!r}")
    for name in ("tune_split", "eval_split"):
        if getattr(settings, name) not in SPLITS:
            raise ConfigError(f"--{name.replace('_', '-')}: expected one of {', '.join(SPLITS)}")
    if settings.method == "optuna":
        from .optuna_search import import_optuna

        # Optuna logs every trial at INFO level; the progress bar and summary say enough.
        optuna = import_optuna()
        optuna.logging.set_verbosity(optuna.logging.WARNING)


# -------------------------------------------------------------------------------------- data
def _split_data(
    loaded: LoadedRun, tune_split: str, eval_split: str, max_images: int | None, seed: int
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor], SplitsUsed]:
    """(tuning images, labels), (evaluation images, labels) and what they are, disjoint."""
    from ..data import check_disjoint, mnist5k_splits

    spec = str(loaded.info.data.get("spec", ""))
    if spec.split(":")[0].lower() != "mnist5k":
        raise DataError(
            f"{loaded.path}: trained on {spec!r}; predify tune reads the tuning and evaluation "
            "splits of mnist5k runs (use predify.tune.tune_gradient on other data)"
        )
    split_seed = int(loaded.info.data.get("split_seed", 0))
    splits = mnist5k_splits(split_seed)
    chosen = {}
    for role, name in (("tuning", tune_split), ("evaluation", eval_split)):
        dataset = getattr(splits, name)
        indices = getattr(splits, f"{name}_indices")
        images, labels = dataset.tensors
        if max_images is not None and max_images < len(indices):
            generator = torch.Generator().manual_seed(seed + (0 if role == "tuning" else 1))
            keep = torch.randperm(len(indices), generator=generator)[:max_images].sort().values
            images, labels, indices = images[keep], labels[keep], indices[keep]
        chosen[role] = (images, labels, indices)
    # Refuse to report on images the tuning saw: by position in MNIST-5k, then by content.
    check_disjoint(chosen["tuning"][2], chosen["evaluation"][2])
    check_disjoint_images(chosen["tuning"][0], chosen["evaluation"][0])
    used = SplitsUsed(
        spec="mnist5k",
        split_seed=split_seed,
        tuning=f"mnist5k:{tune_split}",
        tuning_images=len(chosen["tuning"][2]),
        evaluation=f"mnist5k:{eval_split}",
        evaluation_images=len(chosen["evaluation"][2]),
    )
    tuning = (chosen["tuning"][0], chosen["tuning"][1])
    evaluation = (chosen["evaluation"][0], chosen["evaluation"][1])
    return tuning, evaluation, used


def _benchmark_data(loaded: LoadedRun, settings: TuneSettings) -> tuple[TuneBenchmark, SplitsUsed]:
    """The opened ``--benchmark`` and what its split is."""
    assert settings.benchmark is not None and settings.corruptions is not None
    benchmark = open_tune_benchmark(
        settings.benchmark, settings.corruptions, settings.severities, loaded.pnet.input_size,
        tune_images=settings.tune_images, eval_images=settings.eval_images,
        max_images=settings.max_images, seed=settings.seed,
    )  # fmt: skip
    split = benchmark.split
    tuned = split.tune_images if "-" in split.tune_images else f"random-{split.tune_images}"
    used = SplitsUsed(
        spec=split.benchmark,
        split_seed=settings.seed,
        tuning=f"{split.benchmark}:{tuned}",
        tuning_images=len(benchmark.tuning),
        evaluation=f"{split.benchmark}:{split.eval_images}",
        evaluation_images=len(benchmark.evaluation),
        benchmark=split,
    )
    return benchmark, used


def _normalizer(pnet: PredictiveNet, device: torch.device) -> Normalize | None:
    from ..data import InputNormalization

    normalization = pnet.normalization
    if not normalization:
        return None
    return InputNormalization(normalization["mean"], normalization["std"]).to(device)


# ---------------------------------------------------------------------------------- one level
def _tune_level(
    settings: TuneSettings,
    loaded: LoadedRun,
    noise: TuneNoise,
    tuning: TuneData,
    evaluation: tuple[Tensor | TuneData, Tensor | None],
    normalize: Normalize | None,
    run_settings: JsonObject,
) -> LevelReport:
    """Tune and evaluate one level (``evaluation``: images and labels, or batches and None)."""
    options: JsonObject = {
        "shared": run_settings["shared"],
        "batch_size": settings.batch_size,
        "time_budget_s": settings.time_budget,
        "progress": settings.progress,
        "objective": settings.objective,
    }
    if settings.method == "optuna":
        options["trials"] = settings.trials
    else:
        options.update(epochs=settings.epochs, lr_mixing=settings.lr_mixing, lr_pc=settings.lr_pc)
    return tune_and_evaluate(
        loaded.pnet,
        tuning,
        *evaluation,
        noise,
        method=settings.method,
        timesteps=run_settings["timesteps"],
        seed=settings.seed,
        normalize=normalize,
        **options,
    )


def _level_file(
    level: LevelReport, run_settings: JsonObject, run_values: Sequence[Hyperparameters]
) -> JsonObject:
    """A level's ``result.json`` (and ``progress/`` entry): the level, with the run's settings
    and values beside it, so the file stands on its own."""
    return {
        "noise": str(level.noise),
        "settings": {**run_settings, "noise": str(level.noise)},
        "run_values": [hyperparameters_to_json(v) for v in run_values],
        **level.to_json(),
    }


def _write_level(
    level_dir: Path, level: LevelReport, payload: JsonObject, pnet: PredictiveNet
) -> None:
    """A level's files, ``result.json`` last (rank 0 only)."""
    level.result.config_for(pnet).save(level_dir / "tuned.toml")
    write_trajectory(level_dir / "trajectory.csv", level.result.trajectory)
    atomic_write_json(level_dir / _RESULT, payload)


def _reliance_rows(levels: Sequence[LevelReport], modules: Sequence[str]) -> list[list[Any]]:
    rows = []
    for level in levels:
        for index, values in enumerate(level.result.effective):
            row: list[Any] = [str(level.noise), index + 1, modules[index]]
            rows.append(row + [repr(v) for v in hyperparameters_to_json(values).values()])
    return rows


# --------------------------------------------------------------------------------------- run
def tune_run(
    run: LoadedRun | str | os.PathLike[str],
    noises: Sequence[TuneNoise | str],
    settings: TuneSettings | None = None,
) -> TuneReport:
    """Tune a run (a [`LoadedRun`][predify.runtime.runs.LoadedRun] or its directory) at each of
    ``noises``
    (specs such as ``"gaussian:0.5"`` or `NoiseSpec` or `CorruptionNoise`), write the
    outputs and return them.

    Raises:
        ConfigError, DataError: bad settings, overlapping splits, a run not on mnist5k.
    """
    settings = settings if settings is not None else TuneSettings()
    parsed = [
        parse_tune_noise(noise, clip=settings.clip) if isinstance(noise, str) else noise
        for noise in noises
    ]
    _check_settings(settings, parsed)  # a benchmark's levels are known once it is opened
    execution = Execution(settings.precision, settings.channels_last, settings.compile)
    if execution.precision == "fp16":
        raise ConfigError(
            "--precision fp16: tuning has no gradient scaling (small gradients would underflow); "
            "use bf16"
        )
    device = resolve_device(settings.device)
    owns_group = not (dist.is_available() and dist.is_initialized())
    distributed = init_distributed(device)
    try:
        with autocast(device_for_rank(device, distributed), execution):
            return _tune(run, parsed, settings, execution, device, distributed)
    finally:
        if owns_group:
            shutdown_distributed()


@dataclass
class _Job:
    """What every level of one [`tune_run()`][predify.tune.api.tune_run] call shares."""

    settings: TuneSettings
    loaded: LoadedRun
    tuning: tuple[Tensor, Tensor] | None
    evaluation: tuple[Tensor, Tensor] | None
    normalize: Normalize | None
    run_settings: JsonObject
    out: Path
    distributed: DistributedInfo | None
    benchmark: TuneBenchmark | None
    device: torch.device

    def level_data(
        self, noise: TuneNoise
    ) -> tuple[TuneData, tuple[Tensor | TuneData, Tensor | None]]:
        """(tuning data, (held-out images, labels)) of one level; a benchmark level's are
        sources of batches, read batch by batch."""
        if self.benchmark is None:
            assert self.tuning is not None and self.evaluation is not None
            return self.tuning, self.evaluation
        assert isinstance(noise, BenchmarkLevel)
        workers = self.settings.workers
        if workers is None:
            workers = default_workers(self.device)
        tuning, evaluation = self.benchmark.sources(
            noise, self.settings.batch_size, self.device, workers, self.loaded.info.num_classes
        )
        return tuning, (evaluation, None)

    @property
    def main(self) -> bool:
        return self.distributed is None or self.distributed.is_main

    def say(self, text: str) -> None:
        """Print ``text`` when verbose, on rank 0 only."""
        if self.settings.verbose and self.main:
            print(text)


def _tune(
    run: LoadedRun | str | os.PathLike[str],
    parsed: list[TuneNoise],
    settings: TuneSettings,
    execution: Execution,
    device: torch.device,
    distributed: DistributedInfo | None,
) -> TuneReport:
    device = device_for_rank(device, distributed)
    main = distributed is None or distributed.is_main
    loaded = run if isinstance(run, LoadedRun) else load_run(run, device=device)
    loaded.pnet.to(device)
    prepare_network(loaded.pnet, device, execution)
    benchmark: TuneBenchmark | None = None
    tuning: tuple[Tensor, Tensor] | None = None
    evaluation: tuple[Tensor, Tensor] | None = None
    if settings.benchmark is not None:
        benchmark, used = _benchmark_data(loaded, settings)
        parsed = list(benchmark.levels)
    else:
        tuning, evaluation, used = _split_data(
            loaded, settings.tune_split, settings.eval_split, settings.max_images, settings.seed
        )
    pnet = loaded.pnet
    timesteps = settings.timesteps if settings.timesteps is not None else pnet.config.timesteps
    shared = settings.shared if settings.shared is not None else pnet.config.shared_hyperparameters
    out_dir = Path(settings.out if settings.out is not None else loaded.path / "tune")
    run_settings = _run_settings(settings, execution, timesteps, shared, used, loaded.path)
    # Rank 0 owns (creates, locks, cleans) the folder; the other ranks only send it results.
    with prepare_output_dir(out_dir, is_main=main) as out:
        job = _Job(
            settings, loaded, tuning, evaluation, _normalizer(pnet, device), run_settings, out,
            distributed, benchmark, device,
        )  # fmt: skip
        world = 1 if distributed is None else distributed.world_size
        job.say(
            f"predify tune: {settings.method} tuning of {'shared' if shared else 'per-pcoder'} "
            f"hyperparameters, T={timesteps}, on {used.tuning} ({used.tuning_images} images); "
            f"reporting on {used.evaluation} ({used.evaluation_images} images); device {device}"
            + (f"; {world} processes" if world > 1 else "")
        )
        return _tune_levels(job, parsed)


def _run_settings(
    settings: TuneSettings,
    execution: Execution,
    timesteps: int,
    shared: bool,
    used: SplitsUsed,
    run_dir: Path,
) -> JsonObject:
    """What every level's result depends on: ``progress/``'s fingerprint, ``settings`` in the
    results."""
    run_settings: JsonObject = {
        "method": settings.method,
        "objective": settings.objective,
        "shared": shared,
        "timesteps": timesteps,
        "batch_size": settings.batch_size,
        "max_images": settings.max_images,
        "seed": settings.seed,
        "clip": settings.clip,
        "time_budget_s": settings.time_budget,
        "data": used.to_json(),
        "run_fingerprint": run_fingerprint(run_dir),
    }
    if execution.precision != "fp32":  # other numbers; fp32 runs keep their old settings
        run_settings["precision"] = execution.precision
    if settings.method == "optuna":
        run_settings["trials"] = settings.trials
    else:
        run_settings.update(
            epochs=settings.epochs, lr_mixing=settings.lr_mixing, lr_pc=settings.lr_pc
        )
    return run_settings


def _finished_levels(
    job: _Job, store: ResultStore, parsed: Sequence[TuneNoise]
) -> dict[str, LevelReport]:
    """The levels a previous call finished with the same settings, all of whose files exist."""
    finished = {}
    for noise in parsed:
        saved = store.get(noise.label)
        level_dir = job.out / noise.label
        complete = all((level_dir / name).is_file() for name in ("tuned.toml", "trajectory.csv"))
        if saved is not None and complete:
            job.say(f"{noise}: already tuned with these settings in {level_dir}, skipped")
            where = str(job.out / "progress" / f"{noise.label}.json")
            finished[noise.label] = LevelReport.from_json(saved, where)
    return finished


def _tune_levels(job: _Job, parsed: Sequence[TuneNoise]) -> TuneReport:
    """The levels, figures, tables and results.json of [`tune_run()`][predify.tune.api.tune_run],
    in the locked ``job.out`` (under torchrun: this rank's share of the levels, and on rank 0
    everything else)."""
    pnet, distributed = job.loaded.pnet, job.distributed
    world = 1 if distributed is None else distributed.world_size
    modules = [pcoder.module_path for pcoder in pnet.pcoders]
    # Levels finished with other settings are tuned again. Rank 0 decides which levels are
    # left; under torchrun every rank tunes every world_size-th of them, one round at a time,
    # and sends the results to rank 0, which writes them.
    finished: dict[str, LevelReport] = {}
    store = None
    if job.main:
        store = ResultStore(job.out / "progress", job.run_settings, on_change="discard")
        finished = _finished_levels(job, store, parsed)
    todo = broadcast_from_main(
        [index for index, noise in enumerate(parsed) if noise.label not in finished], distributed
    )
    _tune_rounds(job, parsed, todo, store, finished)
    if not job.main:
        return TuneReport(
            run_dir=str(job.loaded.path), pcoders=modules, run_values=[],
            settings=job.run_settings, out=str(job.out), world_size=world, is_main=False,
        )  # fmt: skip
    levels = [finished[noise.label] for noise in parsed]
    _write_tables_and_plots(job.out, levels, pnet, modules)
    report = TuneReport(
        run_dir=str(job.loaded.path),
        pcoders=modules,
        run_values=pnet.hyperparameter_values(),
        settings=job.run_settings,
        levels=levels,
        out=str(job.out),
        world_size=world,
    )
    atomic_write_json(job.out / "results.json", report.to_json())
    return report


def _tune_rounds(
    job: _Job,
    parsed: Sequence[TuneNoise],
    todo: Sequence[int],
    store: ResultStore | None,
    finished: dict[str, LevelReport],
) -> None:
    """Tune the levels ``todo`` (indices into ``parsed``), ``world_size`` at a time; rank 0
    writes each one's files and adds it to ``finished``."""
    distributed = job.distributed
    world = 1 if distributed is None else distributed.world_size
    rank = 0 if distributed is None else distributed.rank
    pnet = job.loaded.pnet
    timesteps = job.run_settings["timesteps"]
    bar = tqdm(
        total=len(parsed), initial=len(parsed) - len(todo), desc="noise levels", unit="level",
        disable=not (job.main and resolve_progress(job.settings.progress)),
    )  # fmt: skip
    for start in range(0, len(todo), world):
        round_levels = todo[start : start + world]
        mine = None
        if rank < len(round_levels):
            began = time.perf_counter()
            noise = parsed[round_levels[rank]]
            level = _tune_level(
                job.settings, job.loaded, noise, *job.level_data(noise), job.normalize,
                job.run_settings,
            )  # fmt: skip
            mine = (level, time.perf_counter() - began)
        gathered = gather_to_main(mine, distributed)
        if gathered is not None and store is not None:
            for index, (level, seconds) in zip(round_levels, gathered, strict=False):
                noise = parsed[index]
                level_dir = job.out / noise.label
                payload = _level_file(level, job.run_settings, pnet.hyperparameter_values())
                _write_level(level_dir, level, payload, pnet)
                store.put(noise.label, payload)
                finished[noise.label] = level
                _warn_collapse(level, len(pnet.pcoders))
                job.say(
                    f"{noise}: tuned in {seconds:.1f} s; accuracy at t={timesteps} "
                    f"{float(level.before.accuracy[-1]):.3f} -> "
                    f"{float(level.after.accuracy[-1]):.3f}; saved in {level_dir}"
                )
        bar.update(len(round_levels))
    bar.close()


def _warn_collapse(level: LevelReport, pcoders: int) -> None:
    """A `UserWarning` when the tuned dynamics collapse a representation."""
    scales = level.after.scales
    names = [f"pcoder{i + 1}" for i in range(pcoders)]
    message = None if scales is None else collapse_warning(scales, names, f"noise {level.noise}")
    if message is not None:
        warnings.warn(message, UserWarning, stacklevel=2)


def _write_tables_and_plots(
    out: Path, levels: Sequence[LevelReport], pnet: PredictiveNet, modules: Sequence[str]
) -> None:
    """``reliance.png``, ``accuracy.png`` and ``reliance.csv`` of every level."""
    noises = [level.noise for level in levels]
    plot_reliance(
        noises,
        [level.result.effective for level in levels],
        out / "reliance.png",
        initial=effective_values(pnet, pnet.hyperparameter_values(), shared=False),
        pcoder_names=[f"pcoder{i + 1}: {m}" for i, m in enumerate(modules)],
    )
    plot_accuracy(
        noises,
        [level.before.accuracy.tolist() for level in levels],
        [level.after.accuracy.tolist() for level in levels],
        out / "accuracy.png",
    )
    header = ["noise", "pcoder", "module", *HYPERPARAMETER_NAMES]
    write_csv(out / "reliance.csv", header, _reliance_rows(levels, modules))
    traced = [level for level in levels if level.before.scales and level.after.scales]
    if traced:
        plot_scales(
            [str(level.noise) for level in traced],
            [level.before.scales for level in traced if level.before.scales],
            [level.after.scales for level in traced if level.after.scales],
            out / "scales.png",
            [f"pcoder{i + 1}" for i in range(len(modules))],
        )
