"""``predify tune`` end to end on a small trained run directory, resuming, and bad inputs."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

import pytest
import torch

import predify
from predify.cli import main
from predify.models import ShallowCNN
from predify.runtime.runs import load_run
from predify.tune import load_tuned
from testkit import SMALL_WIDTHS as WIDTHS
from testkit import error_line

FAST = ["--timesteps", "2", "--epochs", "1", "--max-images", "64", "--batch-size", "32"]


def _tune(run_dir, out, *extra: str) -> int:
    return main(["tune", str(run_dir), *extra, *FAST, "--out", str(out), "--no-progress"])


def test_tune_writes_configs_trajectories_plots_and_resumes(run_dir, tmp_path, capsys):
    out = tmp_path / "tune"
    noises = ["--noise", "gaussian:0.3", "--noise", "gaussian:0.6"]
    assert _tune(run_dir, out, *noises) == 0
    printed = capsys.readouterr().out
    assert "Accuracy per timestep on mnist5k:test (64 images, held out" in printed
    for name in ("results.json", "reliance.csv", "reliance.png", "accuracy.png"):
        assert (out / name).stat().st_size > 0, name
    results = json.loads((out / "results.json").read_text())
    assert [level["noise"] for level in results["levels"]] == ["gaussian:0.3", "gaussian:0.6"]
    assert results["settings"]["data"]["tuning"] == "mnist5k:val"
    for level in results["levels"]:
        folder = out / level["noise"].replace(":", "-")
        assert len(level["accuracy_before"]) == len(level["accuracy_after"]) == 3
        # t = 0 is the feed-forward pass, which no hyperparameter touches.
        assert level["accuracy_before"][0] == level["accuracy_after"][0]
        for values in level["effective"]:
            total = values["feedforward"] + values["feedback"] + values["memory"]
            assert total == pytest.approx(1.0) and values["pc"] >= 0
        with open(folder / "trajectory.csv") as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == level["steps"] + 1 and rows[-1]["note"] == "final"
        assert set(rows[0]) >= {"step", "loss", "pcoder2_memory", "pcoder2_pc"}
        # The tuned config is a complete predify config holding the tuned values.
        rebuilt = predify.predify(ShallowCNN(in_channels=1, widths=WIDTHS), folder / "tuned.toml")
        for got, want in zip(rebuilt.hyperparameter_values(), level["effective"], strict=True):
            assert got.feedforward == pytest.approx(want["feedforward"], abs=1e-6)
            assert got.feedback == pytest.approx(want["feedback"], abs=1e-6)
            assert got.pc == pytest.approx(want["pc"], rel=1e-5)
    with open(out / "reliance.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 2 * 3
    # load_tuned: the run's trained decoders with the tuned values (the feedback file's own,
    # untuned values must not come back).
    tuned = load_tuned(run_dir, out / "gaussian-0.6" / "tuned.toml")
    level = results["levels"][1]
    for got, want in zip(tuned.hyperparameter_values(), level["effective"], strict=True):
        assert got.feedforward == pytest.approx(want["feedforward"], abs=1e-6)
        assert got.pc == pytest.approx(want["pc"], rel=1e-5)
    original = load_run(run_dir).pnet
    for a, b in zip(tuned.decoder_parameters(), original.decoder_parameters(), strict=True):
        assert torch.equal(a, b)

    # A restart with the same settings skips both levels and leaves their files alone.
    stamp = (out / "gaussian-0.3" / "result.json").stat().st_mtime_ns
    assert _tune(run_dir, out, *noises, "--noise", "uniform:0.5") == 0
    printed = capsys.readouterr().out
    assert printed.count("skipped") == 2 and "uniform:0.5: tuned in" in printed
    assert (out / "gaussian-0.3" / "result.json").stat().st_mtime_ns == stamp
    assert len(json.loads((out / "results.json").read_text())["levels"]) == 3

    # Other settings are not the same result: the level is tuned again.
    assert _tune(run_dir, out, "--noise", "gaussian:0.3", "--seed", "1") == 0
    assert "skipped" not in capsys.readouterr().out
    assert (out / "gaussian-0.3" / "result.json").stat().st_mtime_ns != stamp


def test_optuna_method_and_shared_values(run_dir, tmp_path, capsys):
    pytest.importorskip("optuna")
    out = tmp_path / "optuna"
    code = _tune(
        run_dir, out, "--noise", "gaussian:0.5", "--method", "optuna", "--trials", "3", "--shared"
    )
    assert code == 0
    level = json.loads((out / "gaussian-0.5" / "result.json").read_text())
    assert level["method"] == "optuna" and level["shared"] and len(level["tuned"]) == 1
    assert level["details"]["trials"] == 3
    config = predify.load_config(out / "gaussian-0.5" / "tuned.toml")
    assert config.shared_hyperparameters
    capsys.readouterr()


@pytest.mark.parametrize(
    ("noise", "expected"),
    [
        ("gauss:0.5", "gaussian:SIGMA"),
        ("gaussian:-1", "gaussian:SIGMA"),
        ("gaussian:abc", "not a number"),
        ("gaussian:1e38", "non-finite"),
    ],
)
def test_bad_noise_is_one_line_and_a_non_zero_exit(run_dir, tmp_path, capsys, noise, expected):
    assert _tune(run_dir, tmp_path / "out", "--noise", noise) == 2
    line = error_line(capsys, "tune")
    assert line.startswith("predify tune: error:") and expected in line


def test_missing_feedback_weights_are_refused(run_dir, tmp_path, capsys):
    copy = tmp_path / "no-feedback"
    shutil.copytree(run_dir, copy)
    for name in ("feedback.safetensors", "feedback.pt"):
        (copy / name).unlink(missing_ok=True)
    assert _tune(copy, tmp_path / "out", "--noise", "gaussian:0.5") == 2
    assert "no feedback weights" in error_line(capsys, "tune")


def test_overlapping_splits_are_refused(run_dir, tmp_path, capsys):
    code = _tune(run_dir, tmp_path / "out", "--noise", "gaussian:0.5", "--tune-split", "test")
    assert code == 2
    line = error_line(capsys, "tune")
    assert "tuning split and evaluation split overlap" in line
    assert not (tmp_path / "out" / "gaussian-0.5").exists()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--timesteps", "0"], "--timesteps"),
        (["--noise", "gaussian:0.5"], "more than once"),
        (["--device", "nonsense"], "--device"),
    ],
)
def test_bad_settings_are_one_line(run_dir, tmp_path, capsys, extra, expected):
    args = ["tune", str(run_dir), "--noise", "gaussian:0.5", "--out", str(tmp_path), *extra]
    assert main(args) == 2
    assert expected in error_line(capsys, "tune")


def test_missing_run_directory_from_the_real_entry_point(tmp_path):
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "predify.cli",
            "tune",
            str(tmp_path / "nowhere"),
            "--noise",
            "gaussian:0.5",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert process.returncode == 2
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1 and "run directory not found" in lines[0], process.stderr


def test_plots_handle_mixed_noise_kinds_and_leave_pyplot_alone(tmp_path):
    from predify.config import Hyperparameters
    from predify.tune import parse_noise, plot_accuracy, plot_reliance

    noises = [parse_noise("gaussian:0.5"), parse_noise("saltpepper:0.1")]
    tuned = [
        [Hyperparameters(0.7, 0.2, 0.01), Hyperparameters(0.9, 0.0, 0.5)],
        [Hyperparameters(0.5, 0.4, 0.02), Hyperparameters(0.8, 0.0, 0.001)],
    ]
    path = plot_reliance(noises, tuned, tmp_path / "r.png", initial=tuned[0])
    assert path.read_bytes()[:4] == b"\x89PNG"
    plot_accuracy(noises, [[0.5, 0.6], [0.4, 0.4]], [[0.5, 0.7], [0.4, 0.5]], tmp_path / "a.png")
    assert (tmp_path / "a.png").stat().st_size > 0
    # Drawn without pyplot: no figure is left open in a caller's pyplot session.
    if "matplotlib.pyplot" in sys.modules:
        assert not sys.modules["matplotlib.pyplot"].get_fignums()
