"""``predify tune --benchmark``: tuning on CIFAR-10-C-like ``.npy`` arrays and an ImageNet-C-like
folder tree that the tests write (no download), the position split, streaming, the records in
``results.json``, and one-line refusals of bad input."""

from __future__ import annotations

import json
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from predify.cli import main
from predify.errors import DataError
from predify.models import pshallow
from predify.models.shallow import ShallowCNN
from predify.runtime.runs import RunInfo, load_run, save_run
from predify.tune import BenchmarkLevel, TuneReport, tune_and_evaluate
from predify.tune.api import TuneSettings, tune_run
from predify.tune.benchmark import open_tune_benchmark, split_positions
from testkit import error_line

PER_SEVERITY = 40  # images of each level
SIDE = 8
WIDTHS = (4, 8, 8)
FAST = ["--timesteps", "2", "--epochs", "1", "--batch-size", "8", "--no-progress"]


def _pixel(severity: int, position: int, channel: int) -> int:
    """The value every pixel of one image holds: a function of severity and position only, so a
    test can tell which slice and which positions were read."""
    return (severity * 40 + position * 3 + channel * 7) % 256


def _severity_images(severity: int) -> np.ndarray:
    rng = np.random.default_rng(severity)
    images = np.empty((PER_SEVERITY, SIDE, SIDE, 3), dtype=np.uint8)
    for position in range(PER_SEVERITY):
        for channel in range(3):
            images[position, :, :, channel] = _pixel(severity, position, channel)
    # A little texture per image, so that no two images are identical.
    images[:, 0, 0, 0] = rng.integers(0, 256, PER_SEVERITY)
    return images


def _labels() -> np.ndarray:
    return (np.arange(PER_SEVERITY) * 7 % 10).astype(np.int64)


@pytest.fixture(scope="module")
def cifar_c(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cifar-c")
    for name in ("fog", "gaussian_noise"):
        np.save(root / f"{name}.npy", np.concatenate([_severity_images(s) for s in range(1, 6)]))
    np.save(root / "labels.npy", np.tile(_labels(), 5))
    return root


@pytest.fixture(scope="module")
def imagenet_c(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("imagenet-c")
    rng = np.random.default_rng(0)
    for severity in (1, 2):
        for label in range(3):
            folder = root / "fog" / str(severity) / f"n{label:08d}"
            folder.mkdir(parents=True)
            for index in range(6):
                pixels = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"image_{index}.png")
    return root


@pytest.fixture(scope="module")
def colour_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    backbone = ShallowCNN(in_channels=3, num_classes=10, widths=WIDTHS)
    pnet = pshallow(backbone, image_size=SIDE, timesteps=2).eval()
    info = RunInfo(
        backbone={"name": "shallow_cnn", "kwargs": {"in_channels": 3, "widths": list(WIDTHS)}},
        data={"spec": "cifar10"},
        num_classes=10,
    )
    return save_run(tmp_path_factory.mktemp("colour-run") / "run", pnet, info)


def _tune(run_dir: Path, out: Path, *extra: str) -> int:
    return main(["tune", str(run_dir), *FAST, "--out", str(out), *extra])


def test_cifar_c_levels_tuned_end_to_end_and_recorded(colour_run, cifar_c, tmp_path, capsys):
    out = tmp_path / "tune"
    benchmark = ["--benchmark", f"cifar-c:{cifar_c}", "--corruptions", "fog,gaussian_noise"]
    assert _tune(colour_run, out, *benchmark, "--severities", "2,5", "--tune-images", "10") == 0
    printed = capsys.readouterr().out
    assert "held out; tuned on cifar-c:random-10, 10 images" in printed
    report = TuneReport.from_json(json.loads((out / "results.json").read_text()))
    assert [str(level.noise) for level in report.levels] == [
        "cifar-c/fog:2", "cifar-c/fog:5", "cifar-c/gaussian_noise:2", "cifar-c/gaussian_noise:5",
    ]  # fmt: skip
    used = report.splits
    assert (used.tuning_images, used.evaluation_images) == (10, PER_SEVERITY - 10)
    assert used.benchmark is not None
    assert used.benchmark.corruptions == ("fog", "gaussian_noise")
    assert used.benchmark.severities == (2, 5)
    assert used.benchmark.images_per_level == PER_SEVERITY
    assert used.benchmark.root == str(cifar_c)
    for level in report.levels:
        assert (out / level.noise.label / "tuned.toml").is_file()
        assert len(level.after.accuracy) == 3  # t = 0..2
    level_file = json.loads((out / "cifar-c-fog-5" / "result.json").read_text())
    assert level_file["settings"]["data"]["benchmark"]["tune_images"] == "10"


def test_imagenet_c_folders_tuned_end_to_end(colour_run, imagenet_c, tmp_path, capsys):
    out = tmp_path / "tune"
    code = _tune(
        colour_run, out, "--benchmark", f"imagenet-c:{imagenet_c}", "--corruptions", "fog",
        "--severities", "1-2", "--tune-images", "0-5", "--eval-images", "6-17",
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    report = TuneReport.from_json(json.loads((out / "results.json").read_text()))
    labels = [level.noise.label for level in report.levels]
    assert labels == ["imagenet-c-fog-1", "imagenet-c-fog-2"]
    assert (report.splits.tuning_images, report.splits.evaluation_images) == (6, 12)


def test_each_level_reads_its_severity_slice_at_the_chosen_positions(cifar_c):
    opened = open_tune_benchmark(
        f"cifar-c:{cifar_c}", "fog,gaussian_noise", "1-5", (3, SIDE, SIDE), tune_images="12"
    )
    assert len(opened.levels) == 10
    level = next(lv for lv in opened.levels if str(lv) == "cifar-c/gaussian_noise:4")
    tuning, held_out = opened.sources(level, 5, torch.device("cpu"), 0, 10)
    for source, positions in ((tuning, opened.tuning), (held_out, opened.evaluation)):
        batches = list(source)
        assert len(batches) == len(source) and all(len(labels) <= 5 for _, labels in batches)
        images = torch.cat([images for images, _ in batches])
        labels = torch.cat([labels for _, labels in batches])
        # The values the fixture wrote at severity 4, row (severity - 1) * 40 + position.
        expected = torch.tensor(
            [[_pixel(4, p, c) for c in range(3)] for p in positions], dtype=torch.float32
        )
        assert torch.equal(images[:, :, 1, 1], expected / 255)
        assert labels.tolist() == [int(_labels()[p]) for p in positions]


def test_split_is_by_position_deterministic_and_disjoint():
    tuning, held_out = split_positions(100, None, None, None, seed=3)
    assert len(tuning) == 20 and len(held_out) == 80  # a fifth tuned on, the rest held out
    assert sorted(tuning + held_out) == list(range(100))
    assert (tuning, held_out) == split_positions(100, "20", "rest", None, seed=3)
    assert split_positions(100, None, None, None, seed=4)[0] != tuning
    ranged, rest = split_positions(100, "0-9", "50-99", 5, seed=0)
    assert (
        set(ranged) <= set(range(10)) and rest == sorted(rest) and set(rest) <= set(range(50, 100))
    )
    assert (len(ranged), len(rest)) == (5, 5)
    # A range is read in the seeded order too: in order, ImageNet-C's batches hold one class.
    in_range = split_positions(100, "0-49", None, None, seed=0)[0]
    assert sorted(in_range) == list(range(50)) and in_range != sorted(in_range)
    with pytest.raises(DataError, match="tuning split and held-out split overlap in 5 images"):
        split_positions(100, "0-9", "5-99", None, seed=0)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--benchmark", "cifar-100-c:{cifar}", "--corruptions", "fog"],
         "--benchmark: expected cifar-c:ROOT or imagenet-c:ROOT, got 'cifar-100-c:"),
        (["--benchmark", "cifar-c:{missing}", "--corruptions", "fog"],
         "is not a directory"),
        (["--benchmark", "cifar-c:{cifar}", "--corruptions", "snow"], "snow.npy not found"),
        (["--benchmark", "cifar-c:{cifar}", "--corruptions", "fgo"], "did you mean 'fog'"),
        (["--benchmark", "cifar-c:{cifar}", "--corruptions", "fog", "--noise", "fog:3"],
         "--noise fog:3 with --benchmark cifar-c:"),
        (["--benchmark", "cifar-c:{cifar}"], "expected --corruptions too"),
        (["--noise", "fog:3", "--corruptions", "fog"], "--corruptions: only with --benchmark"),
        ([], "--noise: expected at least one noise level"),
        (["--benchmark", "cifar-c:{cifar}", "--corruptions", "fog", "--tune-images", "0-9",
          "--eval-images", "5-39"], "tuning split and held-out split overlap in 5 images"),
        (["--benchmark", "cifar-c:{cifar}", "--corruptions", "fog", "--tune-images", "40"],
         "--tune-images 40: expected between 1 and 39 images"),
        (["--benchmark", "cifar-c:{cifar}", "--corruptions", "fog", "--severities", "6"],
         "severity"),
        (["--benchmark", "cifar-c:{flat}", "--corruptions", "fog"],
         "must hold uint8 images [N, H, W, 3], got uint8 (200, 8, 8)"),
        (["--benchmark", "cifar-c:{large}", "--corruptions", "fog"],
         "cifar-c/fog:1 images are [3, 16, 16] but the network takes [3, 8, 8]"),
        (["--benchmark", "imagenet-c:{imagenet}", "--corruptions", "fog", "--severities", "3"],
         "fog/3 not found"),
    ],
)  # fmt: skip
def test_bad_benchmark_input_is_one_line_and_exit_2(
    colour_run, cifar_c, imagenet_c, tmp_path, capsys, extra, expected
):
    flat, large = tmp_path / "flat", tmp_path / "large"
    for root, shape in ((flat, (5 * PER_SEVERITY, SIDE, SIDE)), (large, (10, 16, 16, 3))):
        root.mkdir()
        np.save(root / "fog.npy", np.zeros(shape, dtype=np.uint8))
        np.save(root / "labels.npy", np.zeros(shape[0], dtype=np.int64))
    paths = {"cifar": cifar_c, "missing": tmp_path / "missing", "flat": flat, "large": large,
             "imagenet": imagenet_c}  # fmt: skip
    arguments = [item.format(**paths) for item in extra]
    out = tmp_path / "out"
    assert _tune(colour_run, out, *arguments) == 2
    line = error_line(capsys, "tune")
    assert expected in line, line
    assert not any(out.glob("*/tuned.toml"))


def _tune_fog(run_dir: Path, root: Path, out: Path, **settings: object) -> TuneReport:
    return tune_run(run_dir, [], TuneSettings(
        out=out, benchmark=f"cifar-c:{root}", corruptions="fog", timesteps=2, epochs=1,
        **settings,  # type: ignore[arg-type]
    ))  # fmt: skip


def test_evaluation_does_not_depend_on_the_batch_size_or_workers(colour_run, cifar_c, tmp_path):
    # 30 held-out images: batches of 16 leave a short last batch.
    reports = []
    for batch, workers in ((4, 0), (16, 0), (16, 2)):
        out = tmp_path / f"{batch}-{workers}"
        options = {"batch_size": batch, "workers": workers}
        reports.append(
            _tune_fog(colour_run, cifar_c, out, severities="3", tune_images="10", **options)
        )
    # The same batches read by worker processes: the same tuned values too.
    assert reports[1].levels[0].result.effective == reports[2].levels[0].result.effective
    first, second = (report.levels[0] for report in reports[:2])
    assert torch.equal(first.before.accuracy, second.before.accuracy)
    assert first.before.scales is not None and second.before.scales is not None
    assert first.before.scales.logit_scale == pytest.approx(second.before.scales.logit_scale)
    assert reports[0].splits == reports[1].splits == reports[2].splits


def test_results_record_the_benchmark_and_older_formats_still_read(colour_run, cifar_c, tmp_path):
    report = _tune_fog(
        colour_run, cifar_c, tmp_path / "out", severities="1", tune_images="0-9",
        eval_images="rest", max_images=8, seed=2,
    )  # fmt: skip
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    assert written["format"] == "predify-tune-results-v2"
    read = TuneReport.from_json(written)
    assert read.splits == report.splits
    split = read.splits.benchmark
    assert split is not None
    assert (split.benchmark, split.tune_images, split.eval_images) == ("cifar-c", "0-9", "rest")
    assert (split.max_images, split.seed) == (8, 2)
    assert str(read.levels[0].noise) == "cifar-c/fog:1"
    # A v1 file (mnist5k: no benchmark key) still reads.
    old = {**written, "format": "predify-tune-results-v1"}
    old["settings"] = {**written["settings"], "data": {
        k: v for k, v in written["settings"]["data"].items() if k != "benchmark"
    }}  # fmt: skip
    assert TuneReport.from_json(old).splits.benchmark is None
    assert "benchmark" not in TuneReport.from_json(old).splits.to_json()


class _Watched:
    """A source of random batches that fails when one of its batches outlives the next two: a
    reader holding the whole set (a list of batches, a concatenation) fails it."""

    def __init__(self, seed: int, batches: int = 6, size: int = 4) -> None:
        self.seed, self.batches, self.size = seed, batches, size

    def __len__(self) -> int:
        return self.batches

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed)
        # Storages, not tensors: a detached view or a copy of a batch keeps its storage alive.
        alive: list[weakref.ref[torch.UntypedStorage]] = []
        for _ in range(self.batches):
            # The consumer's loop variable still holds the previous batch; nothing older.
            alive = [ref for ref in alive if ref() is not None]
            assert len(alive) <= 1, f"{len(alive)} earlier batches still held"
            images = torch.rand(self.size, 3, SIDE, SIDE, generator=generator)
            labels = torch.randint(0, 10, (self.size,), generator=generator)
            alive.append(weakref.ref(images.untyped_storage()))
            yield images, labels
            del images


def test_tuning_and_evaluation_hold_one_batch_at_a_time(colour_run):
    pnet = load_run(colour_run).pnet
    level = BenchmarkLevel("cifar-c", "fog", 3)
    report = tune_and_evaluate(
        pnet, _Watched(0), _Watched(1), None, level, timesteps=2, epochs=1, batch_size=4,
        measure_loss=False,
    )  # fmt: skip
    assert report.before.correct is not None and report.before.correct.shape == (3, 24)
