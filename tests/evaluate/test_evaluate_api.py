"""``evaluate_run``: the Python function under ``predify evaluate``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from evaluate_helpers import make_run_dir

from predify.cli import main
from predify.errors import ConfigError
from predify.evaluate import EvaluateSettings, EvaluationReport, evaluate_run
from predify.runtime.runs import load_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run_dir(tmp_path_factory.mktemp("api") / "run", timesteps=2)


def test_evaluate_run_returns_the_results_the_command_writes(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = EvaluateSettings(
        corruptions=("gaussian_noise", "contrast"), severities=(1, 3), attacks=(),
        analysis=False, max_images=20, batch_size=10, bootstrap=20, device="cpu",
    )  # fmt: skip
    report = evaluate_run(load_run(run_dir), settings)
    assert isinstance(report, EvaluationReport)
    assert list(tmp_path.iterdir()) == []  # no out: nothing written
    assert report.attacks is None and report.analysis is None
    errors = report.to_json()["corruption_error"]
    assert sorted(errors) == ["contrast", "gaussian_noise"]
    assert all(
        len(values) == 3 for by_severity in errors.values() for values in by_severity.values()
    )

    out = tmp_path / "cli"
    code = main([
        "evaluate", str(run_dir), "--out", str(out), "--corruptions", "gaussian_noise,contrast",
        "--severities", "1,3", "--attacks", "none", "--no-analysis", "--max-images", "20",
        "--batch-size", "10", "--bootstrap", "20", "--device", "cpu", "--no-plots",
    ])  # fmt: skip
    assert code == 0
    written = json.loads((out / "results.json").read_text())
    assert written["corruption"] == report.to_json()["corruption"]


@pytest.mark.parametrize("photographs", [True, False])
def test_results_say_where_frost_came_from_and_cells_are_not_mixed(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, photographs: bool
) -> None:
    if not photographs:
        # As if imagecorruptions were not installed: frost falls back to generated textures.
        monkeypatch.setitem(sys.modules, "imagecorruptions", None)
    expected = "imagecorruptions" if photographs else "generated"
    settings = EvaluateSettings(
        corruptions=("frost",), severities=(1,), attacks=(), analysis=False, max_images=10,
        batch_size=10, bootstrap=10, device="cpu", plots=False, out=str(tmp_path / "eval"),
    )  # fmt: skip
    report = evaluate_run(load_run(run_dir), settings)
    assert report.frost_source == expected
    written = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert written["frost_source"] == expected

    without_frost = EvaluateSettings(
        corruptions=("contrast",), severities=(1,), attacks=(), analysis=False, max_images=10,
        batch_size=10, bootstrap=10, device="cpu",
    )  # fmt: skip
    assert "frost_source" not in evaluate_run(load_run(run_dir), without_frost).to_json()


def test_cells_made_with_other_frost_images_are_not_reused(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = EvaluateSettings(
        corruptions=("frost",), severities=(1,), attacks=(), analysis=False, max_images=10,
        batch_size=10, bootstrap=10, device="cpu", plots=False, out=str(tmp_path / "eval"),
    )  # fmt: skip
    evaluate_run(load_run(run_dir), settings)
    monkeypatch.setitem(sys.modules, "imagecorruptions", None)
    # Same --out, other frost images: the store's settings differ, so it refuses to mix them.
    with pytest.raises(ConfigError, match=r"frost_source|settings"):
        evaluate_run(load_run(run_dir), settings)
