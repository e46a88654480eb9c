"""Generate old-format files (before #17's redesign) with the code at commit 09b5fd6."""
import json, shutil, sys
from pathlib import Path
sys.path.insert(0, "tests"); sys.path.insert(0, "tests/tune"); sys.path.insert(0, "tests/demo")
from conftest import write_run
from testkit import small_cnn
from predify.tune.api import TuneSettings, tune_run
tmp = Path("/tmp/oldgen"); shutil.rmtree(tmp, ignore_errors=True)
run = write_run(tmp / "run", small_cnn())
report = tune_run(run, ["gaussian:0.4"], TuneSettings(out=tmp/"out", epochs=1, max_images=40, batch_size=20, timesteps=2, device="cpu"))
shutil.copy(tmp/"out"/"results.json", "tests/tune/data/results-v0.json")
from test_report import _seed, SETTINGS, IMAGES
from predify.demo.report import build_report
results = [_seed(0, 40), _seed(1, -40)]
run = {"quick": True, "train_images": 600, "test_images": IMAGES, "split_seed": 0, "backbone_epochs": 4, "feedback_epochs": 2, "tune_steps": 3, "tune_batch_size": 32}
rep = build_report(results, SETTINGS, run)
rep.hyperparameters = [{"feedforward": 0.8, "feedback": 0.1, "memory": 0.1, "pc": 0.01}]*2 + [{"feedforward": 0.8, "feedback": 0.0, "memory": 0.2, "pc": 0.01}]
Path("tests/demo/data/report-v2.json").write_text(json.dumps(rep.to_json(), indent=1))
