"""``predify demo --quick`` through the CLI: report contents, files, controls, run directory."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from predify.cli import main
from predify.data import mnist5k_splits
from predify.demo import QUICK, SPLIT_SEED
from predify.demo.experiment import _subset
from predify.runs import load_run

NOISE_KEYS = ["0.0", "0.25", "0.5", "1.0"]
SETTINGS = [
    "accuracy",
    "accuracy_clipped",
    "accuracy_shuffled_feedback",
    "accuracy_tuned",
]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    # Small batches: a second OpenMP thread buys nothing and is slow on a busy machine.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One quick demo run shared by the tests of this module."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("demo") / "out"
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            code = main(["demo", "--quick", "--out", str(out), "--no-progress", "--seed", "0"])
    finally:
        torch.set_num_threads(previous)
    report = json.loads((out / "report.json").read_text())
    return {"out": out, "code": code, "stdout": printed.getvalue(), "report": report}


def test_exit_code_files_and_printed_table(demo: dict[str, Any]) -> None:
    assert demo["code"] == 0
    out: Path = demo["out"]
    for name in ("accuracy_vs_timestep.png", "reconstructions.png", "prediction_error.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, name
    for name in ("report.md", "run.json", "config.toml", "backbone.pt", "checkpoint.pt"):
        assert (out / name).is_file(), name
    assert (out / "feedback.safetensors").is_file() or (out / "feedback.pt").is_file()
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    table = demo["stdout"]
    assert "change t=0->T [95% CI]" in table and "shuffled fb" in table and "1 seed" in table
    rows = [line for line in table.splitlines() if line.strip().split(" ")[0] in NOISE_KEYS]
    assert len(rows) == 4
    markdown = (out / "report.md").read_text()
    assert "**1 seed**" in markdown and "shuffled feedback" in markdown


def test_report_shapes_and_ranges(demo: dict[str, Any]) -> None:
    report = demo["report"]
    steps = QUICK.timesteps
    assert report["timesteps"] == list(range(steps + 1))
    assert report["noise_levels"] == [0.0, 0.25, 0.5, 1.0]
    assert report["seeds"] == 1
    images = report["run"]["test_images"]
    assert images == QUICK.test_images
    for setting in SETTINGS:
        assert sorted(report[setting], key=float) == NOISE_KEYS, setting
        for key in NOISE_KEYS:
            values = report[setting][key]
            assert len(values) == steps + 1
            # Accuracies over `images` images: fractions k / images in [0, 1].
            assert all(
                0.0 <= v <= 1.0 and abs(v * images - round(v * images)) < 1e-6 for v in values
            )
        suffix = setting.removeprefix("accuracy")
        for key in NOISE_KEYS:
            change = report[f"change_t0_to_T{suffix}"][key]
            accuracy = report[setting][key]
            assert change["mean"] == pytest.approx(accuracy[-1] - accuracy[0], abs=1e-9)
            assert change["low"] <= change["mean"] <= change["high"]
    for key in NOISE_KEYS:
        errors = report["prediction_error"][key]
        assert list(errors) == ["pcoder1", "pcoder2", "pcoder3"]
        assert all(len(v) == steps + 1 and all(e >= 0 for e in v) for v in errors.values())
        control = report["feedback_minus_shuffled_at_T"][key]
        expected = report["accuracy"][key][-1] - report["accuracy_shuffled_feedback"][key][-1]
        assert control["mean"] == pytest.approx(expected, abs=1e-9)
    assert report["hyperparameters"][0] == {"feedforward": 0.8, "feedback": 0.1, "pc": 0.01}


def test_tuned_hyperparameters_are_valid_and_from_the_validation_split(
    demo: dict[str, Any],
) -> None:
    report = demo["report"]
    for key in NOISE_KEYS:
        assert report["tuning"][key]["split"] == "validation"
        assert report["tuning"][key]["steps"] >= 1
        values = report["tuned_hyperparameters"][key]
        assert len(values) == 3 and values[-1]["feedback"] == 0.0
        for value in values:
            weights = (value["feedforward"], value["feedback"], value["memory"])
            assert all(0.0 <= w <= 1.0 for w in weights)
            assert sum(weights) == pytest.approx(1.0, abs=1e-6)
            assert value["pc"] >= 0.0
        # Tuning started from the paper's values and moved them.
        assert values[0] != {"feedforward": 0.8, "feedback": 0.1, "pc": 0.01, "memory": 0.1}
        gain = report["tuned_minus_paper_at_T"][key]
        expected = report["accuracy_tuned"][key][-1] - report["accuracy"][key][-1]
        assert gain["mean"] == pytest.approx(expected, abs=1e-9)


def test_the_numbers_behave(demo: dict[str, Any]) -> None:
    report = demo["report"]
    accuracy = report["accuracy"]
    # The backbone learned (chance is 0.1) and noise hurts it.
    assert accuracy["0.0"][0] > 0.5
    assert accuracy["1.0"][0] < accuracy["0.0"][0]
    # Paired: at t = 0 no feedback has acted yet, so every setting sees the same first pass.
    for key in NOISE_KEYS:
        assert report["accuracy_shuffled_feedback"][key][0] == accuracy[key][0]
        assert report["accuracy_tuned"][key][0] == accuracy[key][0]
    assert report["accuracy_clipped"]["0.0"] == accuracy["0.0"]
    # The first decoder learned something: its error is below that of predicting zeros.
    images = _subset(mnist5k_splits(SPLIT_SEED).test, QUICK.test_images, 0 + 1).tensors[0]
    assert report["prediction_error"]["0.0"]["pcoder1"][0] < float(images.pow(2).mean())


def test_output_is_a_run_directory(demo: dict[str, Any]) -> None:
    """load_run rebuilds the network; on the same clean test images it reproduces the report."""
    loaded = load_run(demo["out"])
    assert loaded.info.data == {"spec": "mnist5k", "split_seed": SPLIT_SEED}
    assert loaded.info.backbone["name"] == "shallow_cnn"
    images, labels = _subset(mnist5k_splits(SPLIT_SEED).test, QUICK.test_images, 0 + 1).tensors
    with torch.no_grad():
        logits = loaded.pnet(images, timesteps=QUICK.timesteps).logits
    accuracy = (logits.argmax(-1) == labels).float().mean(dim=1).tolist()
    assert accuracy == pytest.approx(demo["report"]["accuracy"]["0.0"], abs=1e-6)


@pytest.mark.parametrize(
    ("arguments", "phrase"),
    [
        (["--timesteps", "0"], "--timesteps"),
        (["--device", "tpu9"], "--device"),
    ],
)
def test_bad_options_are_one_line(
    arguments: list[str], phrase: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--quick", "--out", str(tmp_path / "out"), *arguments]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("predify demo: error: ") and phrase in lines[0]


def test_unwritable_output_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main(["demo", "--quick", "--out", str(blocker / "out")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "cannot write the output directory" in lines[0]


def test_same_seed_same_report(demo: dict[str, Any], tmp_path: Path) -> None:
    """Tuning runs a fixed number of steps, so the whole report repeats with the seed."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            main(["demo", "--quick", "--out", str(tmp_path / "again"), "--no-progress"])
    finally:
        torch.set_num_threads(previous)
    again = json.loads((tmp_path / "again" / "report.json").read_text())
    first = demo["report"]
    for key in (
        "accuracy",
        "accuracy_shuffled_feedback",
        "accuracy_tuned",
        "tuned_hyperparameters",
    ):
        assert again[key] == first[key], key
