"""Run directories: what demo and train write, what evaluate and tune read back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from predify import CheckpointError, ConfigError, DataError
from predify.models import ShallowCNN, pshallow
from predify.runtime.runs import RunInfo, build_backbone, feedback_path, load_run, save_run


def make_run(path: Path) -> torch.nn.Module:
    torch.manual_seed(0)
    pnet = pshallow(ShallowCNN(in_channels=1), in_channels=1, image_size=28, timesteps=3)
    info = RunInfo(
        backbone={"name": "shallow_cnn", "kwargs": {"in_channels": 1, "num_classes": 10}},
        data={"spec": "mnist5k", "split_seed": 0},
        num_classes=10,
    )
    save_run(path, pnet, info)
    return pnet


def test_a_saved_run_loads_back_with_the_same_outputs(tmp_path: Path) -> None:
    pnet = make_run(tmp_path / "run").eval()
    loaded = load_run(tmp_path / "run")
    assert loaded.info.data == {"spec": "mnist5k", "split_seed": 0}
    assert not loaded.pnet.training
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(loaded.pnet(x).logits, pnet(x).logits, rtol=0, atol=0)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "backbone.pt",
        "config.toml",
        "feedback.safetensors",
        "run.json",
    ]


def test_backbones_are_built_from_registered_names_only() -> None:
    assert isinstance(build_backbone({"name": "shallow_cnn"}), ShallowCNN)
    resnet = build_backbone({"name": "torchvision:resnet18", "kwargs": {"num_classes": 7}})
    assert resnet.fc.out_features == 7
    for spec in ({"name": "os:system"}, {"name": "torchvision:not_a_model"}, {"name": 3}):
        with pytest.raises(ConfigError):
            build_backbone(spec)
    with pytest.raises(ConfigError, match="bad arguments"):
        build_backbone({"name": "shallow_cnn", "kwargs": {"colour": True}})


def test_missing_or_broken_runs_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="run directory not found"):
        load_run(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"run\.json"):
        load_run(tmp_path / "empty")
    make_run(tmp_path / "run")
    (tmp_path / "run" / "feedback.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no feedback weights"):
        feedback_path(tmp_path / "run")
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    info["format"] = "something-else"
    (tmp_path / "run" / "run.json").write_text(json.dumps(info))
    with pytest.raises(DataError, match="not a predify run"):
        load_run(tmp_path / "run")


def test_run_json_versions_one_and_two_read_and_newer_ones_are_refused(tmp_path: Path) -> None:
    make_run(tmp_path / "run")
    path = tmp_path / "run" / "run.json"
    written = json.loads(path.read_text())
    assert written["format"] == "predify-run-v2"
    # A run.json as predify 0.1.0 before #17 wrote it (format v1; its training block had "amp").
    path.write_text(json.dumps({**written, "format": "predify-run-v1"}))
    assert load_run(tmp_path / "run").info.num_classes == 10
    path.write_text(json.dumps({**written, "format": "predify-run-v9"}))
    with pytest.raises(DataError, match=r"run format 'predify-run-v9' is not one this predify"):
        load_run(tmp_path / "run")
