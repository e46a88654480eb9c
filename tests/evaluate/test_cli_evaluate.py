"""End-to-end tests of ``predify evaluate`` through :func:`predify.cli.main`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from evaluate_helpers import make_run_dir
from PIL import Image

import predify.data
from predify.cli import main
from predify.data import mnist5k_splits
from predify.data.mnist5k import Splits
from predify.evaluate import robustness
from predify.evaluate.api import parse_readouts
from predify.evaluate.data import load_evaluation_data
from predify.evaluate.results import read_results
from predify.models import pshallow
from predify.runtime.runs import RunInfo, load_run, save_run
from testkit import error_line

T = 2
# Small everywhere: the point is the plumbing, not the numbers.
FAST = [
    "--max-images", "30", "--batch-size", "16", "--attack-images", "6", "--epsilons", "0.1,0.3",
    "--attack-steps", "4", "--square-queries", "8", "--analysis-images", "10",
    "--bootstrap", "50", "--severities", "1,3",
]  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_run_dir(tmp_path_factory.mktemp("run"), timesteps=T)


def _evaluate(run: Path, out: Path, *extra: str) -> int:
    return main(["evaluate", str(run), "--out", str(out), *FAST, *extra])


def test_end_to_end_writes_results_tables_and_plots(run_dir, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    code = _evaluate(
        run_dir,
        out,
        "--corruptions",
        "gaussian_noise,contrast",
        "--attacks",
        "pgd,bim,square,transfer",
    )
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["timesteps"] == T
    assert set(results["corruption_error"]) == {"gaussian_noise", "contrast"}
    for by_severity in results["corruption_error"].values():
        assert list(by_severity) == ["1", "3"]
        assert all(len(errors) == T + 1 for errors in by_severity.values())
        assert all(0 <= e <= 1 for errors in by_severity.values() for e in errors)
    corruption = results["corruption"]
    assert corruption["corruption_error"] == results["corruption_error"]
    for key in ("clean_error", "ce_relative_to_t0", "mce_relative_to_t0", "relative_mce_vs_t0",
                "mean_corruption_error_ci", "mce_relative_to_t0_ci"):  # fmt: skip
        assert key in corruption
    assert corruption["alexnet"] is None  # 10 classes: no AlexNet normalisation
    assert corruption["num_images"] == results["data"]["num_images"] == 30
    assert results["data"]["spec"] == "mnist5k:test (split seed 0)"
    assert results["format"] == "predify-evaluate-v2"
    attacks = read_results(out).attacks
    assert attacks is not None
    assert attacks.readouts == (0, 1, 2) and attacks.num_images == 6
    assert [result.name for result in attacks.attacks] == ["pgd", "bim", "square", "transfer"]
    for result in attacks.attacks:
        assert [at.epsilon for at in result.epsilons] == [0.1, 0.3]
    assert attacks.attack("pgd").budget.steps == 4  # type: ignore[union-attr]
    assert attacks.attack("square").budget.queries == 8  # type: ignore[union-attr]
    assert attacks.attack("transfer").readouts == list(range(T + 1))  # type: ignore[union-attr]
    assert attacks.attack("square").readouts == [0, T]  # type: ignore[union-attr]
    analysis = results["analysis"]
    assert list(analysis["correlation_distance"]) == ["0.25", "0.5", "0.75", "1", "2"]
    for name in ("corruption_errors.csv", "ce_relative_to_t0.csv", "attacks.csv",
                 "correlation_distance.csv", "prediction_errors.csv"):  # fmt: skip
        assert (out / name).is_file() and name in results["tables"]
    header = (out / "corruption_errors.csv").read_text().splitlines()[0]
    assert header == "corruption,severity,timestep,error"
    for name in ("corruption_error.png", "ce_relative_to_t0.png", "attack_success.png",
                 "correlation_distance.png", "prediction_errors.png",
                 "reconstructions.png"):  # fmt: skip
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    stdout = capsys.readouterr().out
    assert "clean error t=0 -> t=2" in stdout and "results.json" in stdout


def test_a_killed_sweep_restarts_from_its_finished_cells(run_dir, tmp_path, monkeypatch) -> None:
    evaluated: list[str] = []
    real = robustness.evaluate_cell

    def counting(model, source, corruption, severity, timesteps):
        if len(evaluated) == 3 and kill:
            raise KeyboardInterrupt  # what Ctrl-C or a kill does mid-sweep
        evaluated.append(f"{corruption}-{severity}")
        return real(model, source, corruption, severity, timesteps)

    monkeypatch.setattr(robustness, "evaluate_cell", counting)
    options = ["--corruptions", "gaussian_noise,contrast", "--attacks", "none", "--no-analysis"]
    out = tmp_path / "out"
    kill = True
    assert _evaluate(run_dir, out, *options) == 130
    assert not (out / "results.json").exists()
    assert len(list((out / "progress").glob("c*.json"))) == 3  # clean + 2 finished cells
    evaluated.clear()
    kill = False
    assert _evaluate(run_dir, out, *options) == 0
    assert evaluated == ["contrast-1", "contrast-3"]  # only the 2 cells left
    resumed = json.loads((out / "results.json").read_text())
    # The same numbers as a run that was never interrupted.
    evaluated.clear()
    assert _evaluate(run_dir, tmp_path / "fresh", *options) == 0
    assert len(evaluated) == 5
    fresh = json.loads((tmp_path / "fresh" / "results.json").read_text())
    assert resumed["corruption"]["corruption_error"] == fresh["corruption"]["corruption_error"]
    assert resumed["corruption"]["clean_error"] == fresh["corruption"]["clean_error"]
    # A finished run does nothing again.
    evaluated.clear()
    assert _evaluate(run_dir, out, *options) == 0
    assert evaluated == []


def test_changed_settings_are_refused_unless_restart(run_dir, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    options = ["--corruptions", "contrast", "--attacks", "none", "--no-analysis", "--no-plots"]
    assert _evaluate(run_dir, out, *options) == 0
    capsys.readouterr()
    assert _evaluate(run_dir, out, *options, "--seed", "5") == 2
    line = error_line(capsys, "evaluate")
    assert "different settings" in line and "--restart" in line
    assert _evaluate(run_dir, out, *options, "--seed", "5", "--restart") == 0
    # Attack settings are part of the attack cells' keys: changing them adds cells, no refusal.
    attack = ["--attacks", "pgd", "--attack-timesteps", "2", "--epsilons", "0.3"]
    assert _evaluate(run_dir, out, *options, "--seed", "5", *attack) == 0
    assert _evaluate(run_dir, out, *options, "--seed", "5", *attack, "--attack-steps", "2") == 0
    assert len(list((out / "progress").glob("attack-pgd-eps0.3-t2-*.json"))) == 2


def _fake_splits(scale: float):
    """mnist5k_splits whose test images are scaled out of [0, 1]."""
    real = mnist5k_splits

    def splits(seed: int = 0, fractions=(0.6, 0.2, 0.2)) -> Splits:
        original = real(seed, fractions)
        images, labels = original.test.tensors
        test = torch.utils.data.TensorDataset(images * scale, labels)
        return Splits(original.train, original.val, test, *(original.train_indices,
                      original.val_indices, original.test_indices))  # fmt: skip

    return splits


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (["--corruptions", "gausian_noise"], "unknown corruption 'gausian_noise'"),
        (["--severities", "0-2"], "severity must be an integer from 1 to 5, got 0"),
        (["--severities", "6"], "severity must be an integer from 1 to 5, got 6"),
        (["--attacks", "pgd,fgsm"], "unknown 'fgsm'"),
        (["--epsilons", "0.1,abc"], "cannot read 'abc'"),
        (["--attack-timesteps", "7"], "7 is not in 0..2"),
        (["--max-images", "0"], "--max-images: expected an integer >= 1"),
        (["--data", "mnist5k:holdout"], "unknown mnist5k split"),
        ("missing-run", "run directory not found"),
        ("out-of-range", "expected pixel values in [0, 1]"),
        ("five-classes", "10 classes, but the model predicts 5"),
        ("run-json-classes", "num_classes = 7 but the network outputs 10 logits"),
    ],
)
def test_bad_input_gives_one_line_and_exit_status_2(
    case, expected, run_dir, tmp_path, capsys, monkeypatch
) -> None:
    run, extra = run_dir, []
    if case == "missing-run":
        run = tmp_path / "no-such-run"
    elif case == "out-of-range":
        monkeypatch.setattr(predify.data, "mnist5k_splits", _fake_splits(2.0))
    elif case == "five-classes":
        run = make_run_dir(tmp_path / "run5", timesteps=T, trained=False, num_classes=5)
    elif case == "run-json-classes":
        run = make_run_dir(tmp_path / "run7", timesteps=T, trained=False,
                           info_changes={"num_classes": 7})  # fmt: skip
    else:
        extra = case
    code = main(["evaluate", str(run), "--out", str(tmp_path / "out"), *FAST, *extra])
    assert code == 2
    assert expected in error_line(capsys, "evaluate")


def test_defaults_evaluate_the_runs_test_split(run_dir) -> None:
    loaded = load_run(run_dir)
    data = load_evaluation_data(loaded, None, max_images=50, seed=0)
    split = mnist5k_splits(0).test
    assert data.spec == "mnist5k:test (split seed 0)"
    assert data.dataset_size == len(split) and data.num_images == 50
    assert torch.equal(data.head(50)[0], split.tensors[0][data.indices])
    assert torch.equal(data.labels, split.tensors[1][data.indices])
    assert data.selection == "seeded-random"
    everything = load_evaluation_data(loaded, None, max_images=None, seed=0)
    assert everything.num_images == len(split) and everything.selection == "all"
    assert sorted(everything.indices) == list(range(len(split)))
    # A random subset in random order: even its first few images cover several classes.
    assert len(set(data.labels[:10].tolist())) >= 4
    assert parse_readouts("auto", 10) == [0, 2, 4, 6, 8, 10]
    assert parse_readouts("auto", 3) == [0, 1, 2, 3]
    assert parse_readouts("ends", 10) == [0, 10]


def test_benchmark_arrays_with_a_folder_as_clean_data(tmp_path) -> None:
    """--benchmark cifar-c:ROOT reads pre-generated corruptions; --data gives the clean images."""
    rng = np.random.default_rng(0)
    bench = tmp_path / "cifar-c"
    bench.mkdir()
    np.save(bench / "contrast.npy", rng.integers(0, 256, (5 * 8, 32, 32, 3), dtype=np.uint8))
    np.save(bench / "labels.npy", rng.integers(0, 3, 8))
    folder = tmp_path / "clean"
    for label in range(3):
        (folder / f"class{label}").mkdir(parents=True)
        for index in range(3):
            pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"class{label}" / f"{index}.png")
    torch.manual_seed(0)
    pnet = pshallow(in_channels=3, num_classes=3, image_size=32, timesteps=1)
    info = RunInfo(
        backbone={"name": "shallow_cnn", "kwargs": {"in_channels": 3, "num_classes": 3}},
        data={"spec": f"folder:{folder}"},
        num_classes=3,
        normalization={"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
    )
    run = save_run(tmp_path / "run", pnet, info)
    out = tmp_path / "out"
    code = main(["evaluate", str(run), "--out", str(out), "--benchmark", f"cifar-c:{bench}",
                 "--corruptions", "contrast", "--severities", "2", "--attacks", "none",
                 "--no-analysis", "--no-plots", "--bootstrap", "0"])  # fmt: skip
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["data"]["num_images"] == 9  # the clean folder
    assert len(results["corruption_error"]["contrast"]["2"]) == 2
    assert results["corruption"]["num_images"] == 8  # paired down to the benchmark's size
