"""Evaluate a trained run from Python: ``evaluate_run(run, EvaluateSettings(...))``.

>>> from predify.evaluate.api import EvaluateSettings, evaluate_run
>>> settings = EvaluateSettings(attacks=(), out="eval")       # doctest: +SKIP
>>> report = evaluate_run("predify-demo/seed-0", settings)    # doctest: +SKIP
>>> report.corruption.mce_relative_to_t0                       # doctest: +SKIP

Reads the run directory that ``predify demo`` or ``predify train`` wrote and evaluates it on its
test split (``mnist5k:test`` with the run's split seed for the demo) or on ``settings.data``:

1. corruptions: top-1 error for each corruption x severity x timestep, CE relative to t = 0,
   relative mCE, bootstrap 95% intervals (and AlexNet-normalised CE/mCE for a 1000-class model
   on ImageNet-like data); pre-generated CIFAR-C / ImageNet-C with ``benchmark``;
2. adversarial attacks through the dynamics: PGD (and BIM, AutoAttack) against each
   timestep's readout, a gradient-free Square attack and a transfer attack from t = 0, success
   per timestep and epsilon, with gradient-masking checks; the median minimal perturbation
   (``minimal``);
3. representation analysis: correlation distance between clean and noisy representations per
   pcoder and timestep, prediction errors over time, reconstructions.

Pixel-space operations (corruptions, noise, attack budgets) act on [0, 1] images; the run's
normalisation, if any, is applied after them. With ``out``, the results go to ``results.json``,
CSV tables, PNG plots, and ``progress/`` (one file per finished cell,
[`predify.runtime.store.ResultStore`][predify.runtime.store.ResultStore]): a killed run started
again with the same settings skips the
cells it finished.

Defaults, chosen so that a run on the demo's shallow MNIST model takes about two minutes on two
CPU cores: 250 images; the nine cheap corruptions of
[`DEFAULT_CORRUPTIONS`][predify.evaluate.api.DEFAULT_CORRUPTIONS] (noise, blur,
digital; the weather ones and zoom/elastic/glass are slower to generate) at severities 1-5; the
run's number of timesteps; PGD (50 steps, 5 restarts) against about six readouts (every timestep
up to T = 5), Square (5000 queries, at t = 0 and T) and transfer attacks on 32 images at three
L-inf budgets (0.05, 0.1, 0.3 for 1-channel images; 1/255, 4/255, 16/255 otherwise); the analysis
on 100 images; 1000 bootstrap resamples. The attack budgets are those of the literature, not
cut for speed; for publishable numbers raise ``max_images`` and ``attack_images``.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist

from .._io import atomic_write_json
from ..errors import ConfigError
from ..runtime.device import DEFAULT_DEVICE, resolve_device
from ..runtime.distributed import (
    DistributedInfo,
    broadcast_from_main,
    device_for_rank,
    init_distributed,
    shutdown_distributed,
)
from ..runtime.fingerprint import run_fingerprint
from ..runtime.loading import default_workers
from ..runtime.outputs import prepare_output_dir
from ..runtime.precision import Execution, autocast, prepare_network
from ..runtime.runs import LoadedRun, load_run
from ..runtime.store import ResultStore
from ..runtime.validation import check_int
from .analysis import Reconstructions, RepresentationAnalysis
from .attacks import AttackReport, CostEstimate
from .corruptions import frost_source
from .data import EvaluationData, benchmark_source, check_classes, load_evaluation_data
from .pixel_space import PixelSpaceNet
from .results import EvaluatedData, EvaluationReport
from .robustness import CorruptionSummary

__all__ = [
    "DEFAULT_ATTACKS",
    "DEFAULT_CORRUPTIONS",
    "EvaluateSettings",
    "EvaluationReport",
    "evaluate_run",
    "parse_readouts",
]

#: Corruptions evaluated by default: cheap ones from each family (noise, blur, digital). The
#: weather corruptions and zoom/elastic/glass are slower to generate.
DEFAULT_CORRUPTIONS = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "motion_blur",
    "brightness",
    "contrast",
    "pixelate",
    "jpeg_compression",
)
DEFAULT_ATTACKS = ("pgd", "square", "transfer")
#: Images evaluated unless ``max_images`` (or a subset) says otherwise: enough for a first look
#: at the demo's model in about two minutes on two CPU cores; publishable numbers use ``all``.
DEFAULT_MAX_IMAGES = 250
# The format of the finished cells under ``progress/``. v2: each image's corruption and noise are
# seeded by the image (v1: by the cell and batch), so v1 cells hold other draws and are refused.
_STORE_FORMAT = "predify-evaluate-v2"


@dataclass
class EvaluateSettings:
    """What to evaluate and how; every field has the default of ``predify evaluate``.

    Attributes:
        out: output folder for results.json, tables, plots and finished cells; None: nothing is
            written (the finished-cell store then lives in a temporary folder).
        data: data set spec to evaluate on (default: the run's test split).
        benchmark: ``cifar-c:ROOT`` or ``imagenet-c:ROOT``: pre-generated corrupted images.
        corruptions: names, or one spec string (``all``, ``imagenet-c``, ``extra``, ``none``,
            comma-separated names).
        severities: ints 1..5, or a spec string (``1-5``, ``1,3,5``).
        timesteps: T (default: the run's).
        attacks: a subset of ``pgd, bim, square, transfer, autoattack, minimal``.
        epsilons: attack budgets in pixel units, numbers or fractions such as ``"8/255"``
            (default: by norm and channel count).
        attack_timesteps: readouts PGD/BIM attack: ``auto``, ``all``, ``sum`` or timesteps.
        square_timesteps: readouts the Square attack aims at: ``ends``, ``all`` or timesteps.
        max_images: how many images, or ``"all"``; None: 250 (the whole ``subset`` with one).
        subset: ``"robustbench"``: RobustBench's 5,000 ImageNet validation images (an image
            folder of the ImageNet validation set), in its order.
        skip_bad_images: leave unreadable image files out (counted and named in results.json)
            instead of stopping with a one-line error before anything is evaluated.
        workers: DataLoader worker processes that read and corrupt images; None: 4 with a GPU,
            1 on the CPU where each process has two cores or more (else 0).
        precision, channels_last, compile: how the network runs
            (`predify.runtime.precision.Execution`: autocast to bf16/fp16, NHWC, torch.compile).
        progress: progress bars; None: only on a terminal.
        announce: called (on rank 0) with the one-line cost estimate before any work starts
            (``predify evaluate`` prints it).
    """

    out: str | os.PathLike[str] | None = None
    data: str | None = None
    benchmark: str | None = None
    corruptions: Sequence[str] | str = DEFAULT_CORRUPTIONS
    severities: Sequence[int] | str = (1, 2, 3, 4, 5)
    timesteps: int | None = None
    attacks: Sequence[str] = DEFAULT_ATTACKS
    epsilons: Sequence[float | str] | None = None
    norm: Literal["linf", "l2"] = "linf"
    targeted: bool = False
    target_shift: int = 1
    attack_timesteps: str | Sequence[int] = "auto"
    square_timesteps: str | Sequence[int] = "ends"
    attack_images: int = 32
    attack_steps: int = 50
    attack_restarts: int = 5
    square_queries: int = 5000
    minimal_steps: int = 20
    analysis: bool = True
    analysis_images: int = 100
    max_images: int | Literal["all"] | None = None
    subset: str | None = None
    skip_bad_images: bool = False
    workers: int | None = None
    batch_size: int = 100
    bootstrap: int = 1000
    seed: int = 0
    device: str | torch.device = DEFAULT_DEVICE
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    restart: bool = False
    plots: bool = True
    progress: bool | None = None
    announce: Callable[[str], None] | None = None


# ---------------------------------------------------------------------- settings checks
def _option(name: str) -> str:
    """The command-line option of the setting ``name``, as errors name it."""
    return f"--{name.replace('_', '-')}"


def _parse_number(text: str | float, name: str) -> float:
    """A float, or a fraction such as ``8/255``."""
    numerator, slash, denominator = str(text).strip().partition("/")
    try:
        value = float(numerator) / (float(denominator) if slash else 1.0)
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"{name}: cannot read {text!r} as a number (e.g. 0.1 or 8/255)") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name}: expected numbers >= 0, got {text!r}")
    return value


def _parse_list(spec: str | Sequence[str], allowed: Sequence[str], name: str) -> list[str]:
    raw = spec.split(",") if isinstance(spec, str) else list(spec)
    items = [item.strip().lower() for item in raw if item.strip()]
    if items == ["none"]:
        return []
    for item in items:
        if item not in allowed:
            raise ConfigError(f"{name}: unknown {item!r}; expected some of {', '.join(allowed)}")
    return list(dict.fromkeys(items))


def parse_readouts(
    spec: str | Sequence[int],
    timesteps: int,
    option: str = "--attack-timesteps",
    allow_sum: bool = True,
) -> list[int] | Literal["sum"]:
    """Readout timesteps from a keyword (``all``, ``auto``, ``ends``, ``sum``) or a list."""
    if not isinstance(spec, str):
        spec = ",".join(str(value) for value in spec)
    text = spec.strip().lower()
    if text == "all":
        return list(range(timesteps + 1))
    if text == "auto":
        # Attacking readout t costs t + 1 unrolled steps per iteration: thin out long runs.
        stride = max(1, math.ceil(timesteps / 5))
        return sorted({*range(0, timesteps + 1, stride), timesteps})
    if text == "ends":
        return sorted({0, timesteps})
    if text == "sum" and allow_sum:
        return "sum"
    readouts = []
    for item in text.split(","):
        try:
            value = int(item)
        except ValueError:
            raise ConfigError(
                f"{option}: expected a keyword or timesteps such as 0,5,{timesteps}, got {spec!r}"
            ) from None
        if not 0 <= value <= timesteps:
            raise ConfigError(f"{option}: {value} is not in 0..{timesteps}")
        readouts.append(value)
    return sorted(set(readouts))


@dataclass
class _Checked:
    """The settings, checked, before anything is loaded."""

    corruptions: list[str]
    severities: list[int]
    attacks: list[str]
    epsilons: list[float] | None
    device: torch.device
    execution: Execution
    max_images: int | None = DEFAULT_MAX_IMAGES
    """None: every image (of the subset, if any)."""
    workers: int = 0


def _check_settings(settings: EvaluateSettings) -> _Checked:
    from .attacks import ATTACKS
    from .corruptions import parse_severities, resolve_corruptions

    spec = settings.corruptions
    if isinstance(spec, str):
        spec = spec.strip()
        corruptions = [] if spec.lower() == "none" else resolve_corruptions(spec)
    else:
        corruptions = resolve_corruptions(",".join(spec)) if spec else []
    severities_spec = settings.severities
    if not isinstance(severities_spec, str):
        severities_spec = ",".join(str(value) for value in severities_spec)
    severities = parse_severities(severities_spec)
    attacks = _parse_list(settings.attacks, ATTACKS, "--attacks")
    for name in (
        "batch_size",
        "attack_images",
        "attack_steps",
        "attack_restarts",
        "square_queries",
        "minimal_steps",
        "analysis_images",
    ):
        check_int(getattr(settings, name), _option(name))
    check_int(settings.bootstrap, "--bootstrap", minimum=0)
    if settings.timesteps is not None:
        check_int(settings.timesteps, "--timesteps", minimum=0)
    epsilons = None
    if settings.epsilons is not None:
        epsilons = [_parse_number(item, "--epsilons") for item in settings.epsilons]
        if not epsilons:
            raise ConfigError("--epsilons: expected at least one number")
    execution = Execution(settings.precision, settings.channels_last, settings.compile)
    device = resolve_device(settings.device)
    return _Checked(
        corruptions, severities, attacks, epsilons, device, execution,
        *_data_settings(settings, device),
    )  # fmt: skip


def _data_settings(settings: EvaluateSettings, device: torch.device) -> tuple[int | None, int]:
    """(max_images, workers): None for every image; the workers the device calls for."""
    from .data import SUBSETS

    if settings.subset is not None and settings.subset not in SUBSETS:
        raise ConfigError(f"--subset: unknown {settings.subset!r}; expected {', '.join(SUBSETS)}")
    limit = settings.max_images
    if isinstance(limit, str):
        if limit.strip().lower() != "all":
            raise ConfigError(f"--max-images: expected a positive number or all, got {limit!r}")
        maximum = None
    elif limit is None:
        maximum = None if settings.subset is not None else DEFAULT_MAX_IMAGES
    else:
        maximum = check_int(limit, "--max-images")
    workers = settings.workers
    if workers is None:
        return maximum, default_workers(device)
    return maximum, check_int(workers, "--workers", minimum=0)


# ---------------------------------------------------------------------- sections
def _corruption_section(
    settings: EvaluateSettings,
    checked: _Checked,
    model: PixelSpaceNet,
    data: EvaluationData,
    timesteps: int,
    store: ResultStore | None,
    distributed: DistributedInfo | None,
) -> CorruptionSummary | None:
    from .robustness import OnTheFlyCorruptions, corruption_sweep, summarize_sweep

    imagenet_like = data.imagenet_like
    source: Any
    if settings.benchmark:
        source, is_imagenet_c = benchmark_source(
            settings.benchmark, checked.corruptions, checked.severities, data, model.input_size,
            settings.batch_size, settings.seed, checked.max_images, checked.device,
            checked.workers,
        )  # fmt: skip
        imagenet_like = imagenet_like or is_imagenet_c
    else:
        source = OnTheFlyCorruptions(
            data.dataset, batch_size=settings.batch_size, seed=settings.seed,
            device=checked.device, indices=data.indices, workers=checked.workers, where=data.spec,
        )  # fmt: skip
    sweep = corruption_sweep(
        model, source, checked.corruptions, checked.severities, timesteps=timesteps, store=store,
        progress=settings.progress, distributed=distributed,
    )  # fmt: skip
    if sweep is None:  # another rank than 0: its cells went to rank 0
        return None
    # AlexNet's ImageNet-C errors only mean something for ImageNet models on ImageNet images.
    alexnet = model.num_classes() == 1000 and imagenet_like
    summary = summarize_sweep(
        sweep, alexnet=alexnet, n_resamples=settings.bootstrap, seed=settings.seed
    )
    summary.cells_evaluated_now = sweep.evaluated
    return summary


def _analysis_section(
    settings: EvaluateSettings,
    checked: _Checked,
    model: PixelSpaceNet,
    data: EvaluationData,
    timesteps: int,
    store: ResultStore | None,
    distributed: DistributedInfo | None,
) -> tuple[RepresentationAnalysis, Reconstructions] | None:
    """The analysis, split by batch over the processes; on rank 0 (None elsewhere)."""
    from torch.utils.data import Subset

    from .analysis import reconstructions, representation_analysis

    count = min(settings.analysis_images, data.num_images)
    # Not in the store's settings, so part of the key: other values, another cell.
    key = f"analysis-n{count}-b{settings.bootstrap}"
    stored = _stored_analysis(store, key) if store is not None else None
    if broadcast_from_main(stored is None, distributed):
        stored = representation_analysis(
            model, Subset(data.dataset, data.indices[:count]), timesteps=timesteps,
            batch_size=settings.batch_size, seed=settings.seed, n_resamples=settings.bootstrap,
            workers=checked.workers, distributed=distributed,
        )  # fmt: skip
        if store is not None and stored is not None:
            store.put(key, stored.to_json())
    if stored is None:  # another rank than 0
        return None
    images, _ = data.head(4)
    recon = reconstructions(model, images, timesteps=timesteps, seed=settings.seed)
    return stored, recon


def _stored_analysis(store: ResultStore, key: str) -> RepresentationAnalysis | None:
    payload = store.get(key)
    if payload is None:
        return None
    try:
        return RepresentationAnalysis.from_json(payload)
    except (KeyError, ValueError, TypeError):
        return None  # a damaged file: compute the analysis again


def _attack_section(
    settings: EvaluateSettings,
    checked: _Checked,
    model: PixelSpaceNet,
    data: EvaluationData,
    timesteps: int,
    store: ResultStore | None,
    distributed: DistributedInfo | None,
) -> AttackReport | None:
    from .attacks import default_epsilons, run_attacks

    classes = model.num_classes()
    readouts = parse_readouts(settings.attack_timesteps, timesteps)
    square_readouts = parse_readouts(
        settings.square_timesteps, timesteps, "--square-timesteps", allow_sum=False
    )
    assert not isinstance(square_readouts, str)  # "sum" is refused above
    count = min(settings.attack_images, data.num_images)
    images, labels = data.head(count)
    epsilons = checked.epsilons or default_epsilons(settings.norm, int(images.shape[1]))
    return run_attacks(
        model, images, labels, attacks=checked.attacks,
        epsilons=epsilons, timesteps=timesteps, norm=settings.norm,
        targeted=settings.targeted, target_shift=settings.target_shift,
        num_classes=classes, readouts=readouts, square_readouts=square_readouts,
        steps=settings.attack_steps, restarts=settings.attack_restarts,
        square_queries=settings.square_queries, minimal_steps=settings.minimal_steps,
        batch_size=settings.batch_size, seed=settings.seed,
        n_resamples=settings.bootstrap, store=store, progress=settings.progress,
        distributed=distributed,
    )  # fmt: skip


# ---------------------------------------------------------------------- the evaluation
def evaluate_run(
    run: LoadedRun | str | os.PathLike[str], settings: EvaluateSettings | None = None
) -> EvaluationReport:
    """Evaluate a run (a [`LoadedRun`][predify.runtime.runs.LoadedRun] or its directory) as
    ``settings`` say.

    With ``settings.out`` the results, tables and plots are written there (``results.json``
    last); finished cells are kept under ``out/progress`` and reused by the next call with the
    same settings.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) the corruption cells are shared among the processes
    ([`corruption_sweep()`][predify.evaluate.robustness.corruption_sweep]) and so are the attacked
    images (by chunks of ``batch_size``); rank 0 gathers them, computes the analysis, and alone
    writes files and shows progress: ``results.json`` holds the numbers one process would write,
    plus ``world_size``. The other ranks return a report
    with ``is_main`` False once their cells are done.

    Raises:
        ConfigError, DataError, CheckpointError: bad settings, data or run directory (one line).
    """
    settings = settings if settings is not None else EvaluateSettings()
    started = time.perf_counter()
    checked = _check_settings(settings)  # bad settings fail before anything heavy is loaded
    owns_group = not (dist.is_available() and dist.is_initialized())
    distributed = init_distributed(checked.device)
    try:
        return _evaluate(run, settings, checked, distributed, started)
    finally:
        if owns_group:
            shutdown_distributed()


def _evaluate(
    run: LoadedRun | str | os.PathLike[str],
    settings: EvaluateSettings,
    checked: _Checked,
    distributed: DistributedInfo | None,
    started: float,
) -> EvaluationReport:
    from .report import write_plots, write_tables

    checked = replace(checked, device=device_for_rank(checked.device, distributed))
    main = distributed is None or distributed.is_main
    if isinstance(run, LoadedRun):
        loaded = run
        loaded.pnet.to(checked.device)
    else:
        loaded = load_run(run, device=checked.device)
    prepare_network(loaded.pnet, checked.device, checked.execution)
    model = PixelSpaceNet(loaded.pnet).eval()  # with the normalisation the network carries
    timesteps = loaded.pnet.config.timesteps if settings.timesteps is None else settings.timesteps
    data = load_evaluation_data(
        loaded, settings.data, checked.max_images, settings.seed, subset=settings.subset,
        skip_bad_images=settings.skip_bad_images, workers=checked.workers,
        distributed=distributed,
    )  # fmt: skip
    check_classes(model.num_classes(), loaded, data)
    _check_attack_settings(settings, timesteps, model.num_classes())
    frost = frost_source() if "frost" in checked.corruptions else None
    if main and settings.announce is not None:
        settings.announce(_cost_estimate(settings, checked, data, timesteps, model).line())
    report = EvaluationReport(
        run_dir=str(loaded.path),
        model=loaded.config.name,
        num_classes=model.num_classes(),
        timesteps=timesteps,
        device=checked.device.type if distributed is not None else str(checked.device),
        seed=settings.seed,
        data=EvaluatedData(
            data.spec,
            data.num_images,
            data.dataset_size,
            settings.benchmark,
            data.selection,
            data.skipped,
        ),
        frost_source=frost,
        world_size=1 if distributed is None else distributed.world_size,
        precision=checked.execution.precision,
        is_main=main,
    )
    if not main:
        # The corruption cells, the analysis and the attacked images are shared, in the order
        # rank 0 runs them.
        with autocast(checked.device, checked.execution):
            if checked.corruptions:
                _corruption_section(settings, checked, model, data, timesteps, None, distributed)
            if settings.analysis:
                _analysis_section(settings, checked, model, data, timesteps, None, distributed)
            if checked.attacks:
                _attack_section(settings, checked, model, data, timesteps, None, distributed)
        return report
    store_settings = _store_settings(settings, checked, loaded, data, timesteps, frost)
    with _store_folder(settings.out) as folder, autocast(checked.device, checked.execution):
        store = _open_store(folder, store_settings, settings.restart)
        if checked.corruptions:
            report.corruption = _corruption_section(
                settings, checked, model, data, timesteps, store, distributed
            )
        if settings.analysis:
            # Before the attacks, in the order every rank runs the shared sections.
            analysed = _analysis_section(
                settings, checked, model, data, timesteps, store, distributed
            )
            assert analysed is not None
            report.analysis, report.reconstructions = analysed
        if checked.attacks:
            report.attacks = _attack_section(
                settings, checked, model, data, timesteps, store, distributed
            )
        report.elapsed_seconds = round(time.perf_counter() - started, 2)
        # Still inside the folder's lock: results.json last, so that it means "all written".
        if settings.out is not None:
            report.tables = write_tables(folder, report)
            if settings.plots:
                report.plots = write_plots(folder, report)
            atomic_write_json(folder / "results.json", report.to_json())
    return report


def _cost_estimate(
    settings: EvaluateSettings,
    checked: _Checked,
    data: EvaluationData,
    timesteps: int,
    model: PixelSpaceNet,
) -> CostEstimate:
    """The run's cost, counted from the settings before anything is computed."""
    from .attacks import AttackCost, attack_cost, default_epsilons

    cost = AttackCost()
    if checked.attacks:
        epsilons = checked.epsilons or default_epsilons(settings.norm, int(model.input_size[0]))
        square_readouts = parse_readouts(settings.square_timesteps, timesteps, allow_sum=False)
        assert not isinstance(square_readouts, str)
        cost = attack_cost(
            checked.attacks, epsilons, timesteps, norm=settings.norm, targeted=settings.targeted,
            readouts=parse_readouts(settings.attack_timesteps, timesteps),
            square_readouts=square_readouts, steps=settings.attack_steps,
            restarts=settings.attack_restarts, square_queries=settings.square_queries,
            minimal_steps=settings.minimal_steps, num_classes=model.num_classes(),
        )  # fmt: skip
    cells = len(checked.corruptions) * len(checked.severities) + 1 if checked.corruptions else 0
    attacked = min(settings.attack_images, data.num_images) if checked.attacks else 0
    return CostEstimate(cells, data.num_images, timesteps, cost, attacked)


def _check_attack_settings(settings: EvaluateSettings, timesteps: int, classes: int) -> None:
    """The attack settings that need the run: readouts within T, a target shift within the
    classes (before anything is computed)."""
    parse_readouts(settings.attack_timesteps, timesteps)
    parse_readouts(settings.square_timesteps, timesteps, "--square-timesteps", allow_sum=False)
    if settings.targeted and not 1 <= settings.target_shift < classes:
        raise ConfigError(
            f"--target-shift: expected 1..{classes - 1} for {classes} classes, "
            f"got {settings.target_shift}"
        )


def _store_settings(
    settings: EvaluateSettings,
    checked: _Checked,
    loaded: LoadedRun,
    data: EvaluationData,
    timesteps: int,
    frost: str | None,
) -> dict[str, object]:
    """Everything that changes the value of a corruption cell; attack and analysis cells carry
    their own settings in their keys."""
    store_settings: dict[str, object] = {
        "format": _STORE_FORMAT,
        "run_fingerprint": run_fingerprint(loaded.path),
        "normalization": loaded.pnet.normalization,
        "data": data.spec,
        "benchmark": settings.benchmark,
        "image_indices_sha256": hashlib.sha256(
            ",".join(map(str, data.indices)).encode()
        ).hexdigest(),
        "timesteps": timesteps,
        "batch_size": settings.batch_size,
        "seed": settings.seed,
    }
    if checked.execution.precision != "fp32":  # other numbers; fp32 stores stay valid
        store_settings["precision"] = checked.execution.precision
    if frost is not None:
        # The photographs and the generated textures give other frost images: cells made with
        # one are not reused with the other.
        store_settings["frost_source"] = frost
    return store_settings


@contextmanager
def _store_folder(out: str | os.PathLike[str] | None) -> Iterator[Path]:
    """``out`` prepared for writing; without ``out``, a temporary folder removed afterwards."""
    if out is not None:
        with prepare_output_dir(out) as folder:
            yield folder
        return
    with tempfile.TemporaryDirectory(prefix="predify-evaluate-") as temporary:
        yield Path(temporary)


def _open_store(folder: Path, store_settings: dict[str, object], restart: bool) -> ResultStore:
    return ResultStore(folder / "progress", store_settings, restart=restart)
