"""``tune_run``: the Python function under ``predify tune``."""

from __future__ import annotations

from pathlib import Path

from predify.tune.api import TuneReport, TuneSettings, tune_run


def test_tune_run_is_quiet_returns_the_levels_and_skips_finished_ones(
    run_dir: Path, tmp_path: Path, capsys
) -> None:
    settings = TuneSettings(out=tmp_path, epochs=1, max_images=60, batch_size=30, device="cpu")
    report = tune_run(run_dir, ["gaussian:0.4"], settings)
    assert isinstance(report, TuneReport)
    assert capsys.readouterr().out == ""  # verbose is the CLI's
    (level,) = report.levels
    assert level["noise"] == "gaussian:0.4"
    assert len(level["accuracy_after"]) == report.settings["timesteps"] + 1
    stamp = (tmp_path / "gaussian-0.4" / "result.json").stat().st_mtime_ns
    again = tune_run(run_dir, ["gaussian:0.4"], settings)
    assert again.levels == report.levels
    assert (tmp_path / "gaussian-0.4" / "result.json").stat().st_mtime_ns == stamp
    assert "levels" in report.to_json() and "out" not in report.to_json()
