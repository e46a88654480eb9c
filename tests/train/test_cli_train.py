"""``predify train``: run directories, exact resumption, Ctrl-C, and one-line errors."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
import torch

from predify.cli import main
from predify.runtime.runs import load_run, read_run_info
from predify.train import FeedbackTrainer
from predify.train.state import read_training_checkpoint

# mnist5k:val holds 1000 images: 4 steps per epoch at this batch size.
BASE = ["train", "--data", "mnist5k:val", "--batch-size", "250", "--no-progress", "--seed", "3"]


def train(*args: str) -> int:
    return main([*BASE, *args])


def resume(run_dir: Path, *args: str) -> int:
    return main(["train", "--resume", str(run_dir), "--no-progress", *args])


def feedback_tensors(run_dir: Path) -> dict[str, torch.Tensor]:
    return {
        k: v for k, v in load_run(run_dir).pnet.pcoders.state_dict().items() if torch.is_tensor(v)
    }


def assert_same_run(a: Path, b: Path) -> None:
    assert (a / "metrics.csv").read_text() == (b / "metrics.csv").read_text()
    first, second = feedback_tensors(a), feedback_tensors(b)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)


def test_train_writes_a_run_that_load_run_reads_and_resumes_exactly(tmp_path: Path) -> None:
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train("--out", str(straight), "--epochs", "2") == 0
    assert train("--out", str(split), "--epochs", "1") == 0
    assert resume(split, "--epochs", "2") == 0
    assert_same_run(straight, split)

    for name in ("run.json", "config.toml", "backbone.pt", "feedback.safetensors", "checkpoint.pt"):
        assert (straight / name).is_file(), name
    assert (straight / "tensorboard").is_dir()
    info = read_run_info(straight)
    assert info.backbone == {"name": "shallow_cnn", "kwargs": {"in_channels": 1, "num_classes": 10}}
    assert info.data["spec"] == "mnist5k:val" and info.data["split_seed"] == 0
    assert info.num_classes == 10
    assert info.extra["training"]["status"] == "finished"
    assert info.extra["training"]["steps"] == 8
    rows = (straight / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 8
    loaded = load_run(straight)
    assert loaded.pnet.num_pcoders == 3
    # The exported feedback is the checkpoint's.
    checkpoint = read_training_checkpoint(straight / "checkpoint.pt")
    assert checkpoint["progress"]["step"] == 8
    state = loaded.pnet.pcoders.state_dict()
    assert all(torch.equal(state[key], value) for key, value in checkpoint["pcoders"].items())
    # Losses went down over the run.
    totals = [float(row.split(",")[-1]) for row in rows[1:]]
    assert totals[-1] < totals[0]


def press_ctrl_c_after_step(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """Make the trainer receive a real SIGINT right after its global step ``step``."""
    original_step = FeedbackTrainer.step

    def step_then_ctrl_c(self: FeedbackTrainer, images: torch.Tensor) -> dict[str, float]:
        losses = original_step(self, images)
        if self.global_step == step:
            signal.raise_signal(signal.SIGINT)
        return losses

    monkeypatch.setattr(FeedbackTrainer, "step", step_then_ctrl_c)


def test_ctrl_c_writes_a_checkpoint_exits_130_and_resumes_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    assert train("--out", str(straight), "--epochs", "2") == 0
    press_ctrl_c_after_step(monkeypatch, 3)
    capsys.readouterr()
    assert train("--out", str(interrupted), "--epochs", "2") == 130
    assert "interrupted" in capsys.readouterr().err
    assert read_training_checkpoint(interrupted / "checkpoint.pt")["progress"]["step"] == 3
    monkeypatch.undo()
    assert resume(interrupted) == 0
    assert_same_run(straight, interrupted)


def write_config(path: Path, module: str, input_size: str = "[1, 28, 28]") -> Path:
    path.write_text(
        f"input_size = {input_size}\ngradient_scaling = false\nshared_hyperparameters = false\n"
        f'[[pcoders]]\nmodule = "{module}"\n'
        'predictor = "ConvTranspose2d(16, 1, kernel_size=3, padding=1)"\n'
    )
    return path


def bad_inputs(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (arguments after `predify`, a phrase the one-line error must hold)."""
    empty = tmp_path / "empty_folder"
    (empty / "cats").mkdir(parents=True)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    garbage = tmp_path / "weights.pt"
    garbage.write_bytes(b"not a torch file")
    out = str(tmp_path / "out")
    return {
        "missing data path": (
            [*BASE, "--data", str(tmp_path / "no" / "such"), "--out", out],
            "does not exist",
        ),
        "empty data set": ([*BASE, "--data", f"folder:{empty}", "--out", out], "no images found"),
        "config that does not fit": (
            [
                *BASE,
                "--config",
                str(write_config(tmp_path / "a.toml", "features[99]")),
                "--out",
                out,
            ],
            "pcoders[0].module",
        ),
        "config for other images": (
            [
                *BASE,
                "--config",
                str(write_config(tmp_path / "b.toml", "features[2]", "[3, 32, 32]")),
                "--out",
                out,
            ],
            "does not match the data",
        ),
        "unwritable output directory": (
            [*BASE, "--out", str(blocker / "run")],
            "cannot write the output directory",
        ),
        "unreadable backbone weights": (
            [*BASE, "--backbone-weights", str(garbage), "--out", out],
            "cannot read backbone weights",
        ),
        "unknown backbone": ([*BASE, "--backbone", "resnet_9000", "--out", out], "unknown"),
        "fp16 without cuda": (
            [*BASE, "--precision", "fp16", "--device", "cpu", "--out", out],
            "CUDA",
        ),
        "bad epochs": ([*BASE, "--epochs", "0", "--out", out], "--epochs"),
        "no data": (["train", "--out", out], "--data is required"),
        "resume of nothing": (["train", "--resume", str(tmp_path / "nothing")], "not found"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing data path",
        "empty data set",
        "config that does not fit",
        "config for other images",
        "unwritable output directory",
        "unreadable backbone weights",
        "unknown backbone",
        "fp16 without cuda",
        "bad epochs",
        "no data",
        "resume of nothing",
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments, phrase = bad_inputs(tmp_path)[case]
    assert main(arguments) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("predify train: error: ")
    assert phrase in lines[0]
    assert "Traceback" not in captured.err


def test_non_finite_loss_stops_with_one_line_and_keeps_the_last_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    code = train(
        "--out", str(run_dir), "--optimizer", "sgd", "--lr", "1e30", "--checkpoint-every", "1"
    )
    assert code == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line
    assert "non-finite loss" in line and "lower the learning rate" in line
    failed_at = int(line.split("at step ")[1].split()[0])
    checkpoint: dict[str, Any] = read_training_checkpoint(run_dir / "checkpoint.pt")
    assert checkpoint["progress"]["step"] == failed_at - 1
    assert all(torch.isfinite(v).all() for v in checkpoint["pcoders"].values())
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]


def test_existing_run_and_resume_options_are_protected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    assert train("--out", str(run_dir), "--epochs", "1") == 0
    before = (run_dir / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    assert train("--out", str(run_dir), "--epochs", "1") == 2
    assert "already holds a run" in capsys.readouterr().err
    assert resume(run_dir, "--lr", "0.1") == 2
    assert "drop --lr" in capsys.readouterr().err
    assert (run_dir / "checkpoint.pt").read_bytes() == before


def test_training_through_the_dynamics_from_the_command_line_resumes_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "run"
    options = ["--timesteps", "2", "--tbptt", "1", "--checkpoint-activations", "--epochs", "1"]
    assert train("--out", str(run_dir), *options) == 0
    training = read_run_info(run_dir).extra["training"]
    assert (training["timesteps"], training["tbptt"], training["checkpoint_activations"]) == (
        2,
        1,
        True,
    )
    settings = read_training_checkpoint(run_dir / "checkpoint.pt")["settings"]
    assert settings["timesteps"] == 2 and settings["tbptt"] == 1
    # One row per step: 1000 images in batches of 250.
    rows = (run_dir / "metrics.csv").read_text().splitlines()[1:]
    assert len(rows) == 4 and all(float(row.split(",")[-1]) > 0 for row in rows)
    assert resume(run_dir, "--epochs", "2") == 0
    assert read_run_info(run_dir).extra["training"]["steps"] == 8
    # Resumed at an epoch's end, or after a Ctrl-C mid-epoch, it ends as an uninterrupted run.
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    options = [*options[:-1], "2"]
    assert train("--out", str(straight), *options) == 0
    assert_same_run(straight, run_dir)
    press_ctrl_c_after_step(monkeypatch, 3)
    assert train("--out", str(interrupted), *options) == 130
    monkeypatch.undo()
    assert read_training_checkpoint(interrupted / "checkpoint.pt")["progress"]["step"] == 3
    assert resume(interrupted) == 0
    assert_same_run(straight, interrupted)


def test_config_warnings_print_as_one_line_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A value accepted as the original Predify accepted it is announced on one line."""
    config = tmp_path / "original.toml"
    config.write_text('input_size = [1, 28, 28]\n[[pcoders]]\nmodule = "features[99]"\n')
    assert main([*BASE, "--config", str(config), "--out", str(tmp_path / "run")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0] == (
        f"predify train: warning: {config}: gradient_scaling: not given; it is false "
        "(the original Predify's default)"
    )
    assert lines[1].startswith(f"predify train: warning: {config}: shared_hyperparameters")
    assert lines[2].startswith("predify train: error: pcoders[0].module")
    assert len(lines) == 3
