"""``train_run`` / ``resume_run``: the Python function under ``predify train``."""

from __future__ import annotations

from pathlib import Path

import pytest

from predify.cli import main
from predify.errors import DataError
from predify.runtime.runs import read_run_info
from predify.train import TrainingReport, TrainSettings, resume_run, train_run

# mnist5k:val holds 1000 images: 4 steps per epoch at this batch size.
SETTINGS = TrainSettings(data="mnist5k:val", batch_size=250, seed=3, epochs=1)


def test_train_run_is_what_the_command_runs(tmp_path: Path, capsys) -> None:
    report = train_run(tmp_path / "api", SETTINGS)
    assert isinstance(report, TrainingReport)
    assert (report.epochs, report.steps, report.resumed) == (1, 4, False)
    assert sorted(report.epoch_losses[0]) == ["pcoder1", "pcoder2", "pcoder3", "total"]
    assert capsys.readouterr().out == ""  # the library prints nothing
    cli = ["train", "--data", "mnist5k:val", "--batch-size", "250", "--seed", "3", "--epochs", "1"]
    assert main([*cli, "--no-progress", "--out", str(tmp_path / "cli")]) == 0
    same = (tmp_path / "api" / "metrics.csv").read_text()
    assert (tmp_path / "cli" / "metrics.csv").read_text() == same

    resumed = resume_run(tmp_path / "api", epochs=2)
    assert (resumed.epochs, resumed.steps, resumed.resumed) == (2, 8, True)
    training = read_run_info(tmp_path / "api").extra["training"]
    assert training["epochs"] == 2 and training["steps"] == 8
    # The one place of the defaults: what the run recorded is TrainSettings' values.
    assert training["lr"] == TrainSettings.lr and training["optimizer"] == TrainSettings.optimizer
    assert resumed.to_json()["epoch_losses"] == resumed.epoch_losses


def test_a_training_report_reads_back_and_other_versions_are_refused() -> None:
    report = TrainingReport(
        run_dir="runs/x", epochs=2, steps=8, epoch_losses=[{"total": 0.5}], resumed=True
    )
    data = report.to_json()
    assert data["format"] == "predify-training-report-v1"
    assert TrainingReport.from_json(data) == report
    with pytest.raises(DataError, match="'predify-training-report-v2' is not a training report"):
        TrainingReport.from_json({**data, "format": "predify-training-report-v2"}, "report.json")
