"""How the old-format test files were written: run at commit 09b5fd6 (before #17's redesign),
from the repository root: ``PYTHONPATH=src:tests python tests/tune/data/generate_old_files.py``.

Kept as the provenance of ``results-v0.json`` and ``tests/demo/data/report-v2.json``; it needs the
old API (``build_report`` of that commit), so it does not run on the current code.
"""

import json
import shutil
import sys
from pathlib import Path

sys.path[:0] = ["tests", "tests/tune", "tests/demo"]

from test_report import IMAGES, SETTINGS, _seed  # noqa: E402

from conftest import write_run  # noqa: E402
from predify.demo.report import build_report  # noqa: E402
from predify.tune.api import TuneSettings, tune_run  # noqa: E402
from testkit import small_cnn  # noqa: E402

tmp = Path("/tmp/oldgen")
shutil.rmtree(tmp, ignore_errors=True)
run = write_run(tmp / "run", small_cnn())
settings = TuneSettings(
    out=tmp / "out", epochs=1, max_images=40, batch_size=20, timesteps=2, device="cpu"
)
tune_run(run, ["gaussian:0.4"], settings)
shutil.copy(tmp / "out" / "results.json", "tests/tune/data/results-v0.json")

facts = {
    "quick": True,
    "train_images": 600,
    "test_images": IMAGES,
    "split_seed": 0,
    "backbone_epochs": 4,
    "feedback_epochs": 2,
    "tune_steps": 3,
    "tune_batch_size": 32,
}
report = build_report([_seed(0, 40), _seed(1, -40)], SETTINGS, facts)
paper = {"feedforward": 0.8, "feedback": 0.1, "memory": 0.1, "pc": 0.01}
report.hyperparameters = [paper, paper, {**paper, "feedback": 0.0, "memory": 0.2}]
Path("tests/demo/data/report-v2.json").write_text(json.dumps(report.to_json(), indent=1))
