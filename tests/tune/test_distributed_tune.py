"""``torchrun --nproc-per-node 2 predify tune``: the noise levels are shared between two Gloo CPU
processes, and results.json, tuned.toml and trajectory.csv are what one process writes (timings
aside), with ``world_size`` recorded; for the gradient method and for Optuna."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from predify.cli import main
from testkit import torchrun

pytestmark = pytest.mark.slow

FAST = ["--timesteps", "2", "--max-images", "64", "--batch-size", "32", "--no-progress"]
FAST += ["--device", "cpu"]
NOISES = ["--noise", "gaussian:0.25", "--noise", "gaussian:0.5", "--noise", "gaussian:1.0"]


def without_timings(value: Any) -> Any:
    """``value`` with every ``*seconds`` entry removed (wall-clock times differ between runs)."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if not k.endswith("seconds")}
    if isinstance(value, list):
        return [without_timings(item) for item in value]
    return value


@pytest.mark.parametrize(
    ("method", "noises"),
    [(["--epochs", "1"], NOISES), (["--method", "optuna", "--trials", "3"], NOISES[:4])],
    ids=["gradient", "optuna"],
)
def test_two_processes_tune_what_one_process_tunes(
    run_dir: Path, tmp_path: Path, method: list[str], noises: list[str]
) -> None:
    if "optuna" in method:
        pytest.importorskip("optuna")
    alone, shared = tmp_path / "alone", tmp_path / "shared"
    arguments = [str(run_dir), *noises, *method, *FAST]
    assert main(["tune", *arguments, "--out", str(alone)]) == 0
    output = torchrun(2, "tune", *arguments, "--out", str(shared))
    assert output.count("\nwrote ") == 1, "only rank 0 reports"
    one = json.loads((alone / "results.json").read_text())
    two = json.loads((shared / "results.json").read_text())
    assert (one.pop("world_size"), two.pop("world_size")) == (1, 2)
    assert len(one["levels"]) == len(noises) // 2
    assert json.dumps(without_timings(two), sort_keys=True) == json.dumps(
        without_timings(one), sort_keys=True
    )
    for level in one["levels"]:
        folder = level["noise"].replace(":", "-")
        for name in ("tuned.toml", "trajectory.csv"):
            assert (shared / folder / name).read_bytes() == (alone / folder / name).read_bytes()
