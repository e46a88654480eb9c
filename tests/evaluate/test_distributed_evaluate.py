"""``torchrun --nproc-per-node 2 predify evaluate``: two Gloo CPU processes split every corruption
cell and the analysis by batch (30 images in batches of 7: five batches, dealt 3 + 2; the 15
analysed images: three batches, dealt 2 + 1) and write the same results.json as one process (plus
``world_size``), and a sweep resumes from its finished cells with another number of processes.

torchrun's ``--standalone`` rendezvous binds a free port itself, so parallel test runs cannot
race for one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from evaluate_helpers import make_run_dir

from predify.cli import main
from testkit import torchrun

pytestmark = pytest.mark.slow

# Three corruptions x two severities + the clean cell: seven cells, an uneven split over two.
ARGS = [
    "--max-images", "30", "--batch-size", "7", "--severities", "1,3",
    "--corruptions", "gaussian_noise,contrast,pixelate", "--attacks", "pgd",
    "--attack-images", "6", "--epsilons", "0.1", "--attack-steps", "3",
    "--analysis-images", "15", "--bootstrap", "50", "--no-plots", "--device", "cpu",
]  # fmt: skip
T = 2


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run_dir(tmp_path_factory.mktemp("run"), timesteps=T)


def numbers(out: Path) -> dict[str, Any]:
    """results.json without what legitimately differs between runs (time, process count)."""
    results = json.loads((out / "results.json").read_text())
    for key in ("elapsed_seconds", "world_size"):
        results.pop(key)
    return results


def test_two_processes_write_what_one_process_writes(run_dir: Path, tmp_path: Path) -> None:
    alone, shared = tmp_path / "alone", tmp_path / "shared"
    assert main(["evaluate", str(run_dir), "--out", str(alone), *ARGS]) == 0
    output = torchrun(2, "evaluate", str(run_dir), "--out", str(shared), *ARGS)
    assert output.count("wrote ") == 1, "only rank 0 reports and writes"
    assert json.loads((alone / "results.json").read_text())["world_size"] == 1
    assert json.loads((shared / "results.json").read_text())["world_size"] == 2
    one, two = numbers(alone), numbers(shared)
    assert one["corruption"]["cells_evaluated_now"] == 7
    # Byte for byte, every number (the corruption errors, intervals, attacks, analysis).
    assert json.dumps(two, sort_keys=True) == json.dumps(one, sort_keys=True)

    # A sweep killed after some cells resumes from them, here with the other process count.
    cells = sorted((alone / "progress").glob("corruption-pixelate-*.json")) + sorted(
        (alone / "progress").glob("corruption-contrast-3.json")
    )
    assert len(cells) == 3
    for cell in cells:
        cell.unlink()
    torchrun(2, "evaluate", str(run_dir), "--out", str(alone), *ARGS)
    resumed = numbers(alone)
    assert resumed["corruption"]["cells_evaluated_now"] == 3
    resumed["corruption"]["cells_evaluated_now"] = 7
    assert json.dumps(resumed, sort_keys=True) == json.dumps(one, sort_keys=True)
