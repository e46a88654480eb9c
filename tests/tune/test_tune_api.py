"""``tune_run``: the Python function under ``predify tune``, and its results files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from predify.errors import DataError
from predify.tune.api import RESULTS_FORMAT, TuneReport, TuneSettings, tune_run
from predify.tune.reliance import LevelReport

DATA = Path(__file__).parent / "data"


def test_tune_run_is_quiet_returns_the_levels_and_skips_finished_ones(
    run_dir: Path, tmp_path: Path, capsys
) -> None:
    settings = TuneSettings(out=tmp_path, epochs=1, max_images=60, batch_size=30, device="cpu")
    report = tune_run(run_dir, ["gaussian:0.4"], settings)
    assert isinstance(report, TuneReport)
    assert capsys.readouterr().out == ""  # verbose is the CLI's
    (level,) = report.levels
    assert isinstance(level, LevelReport) and str(level.noise) == "gaussian:0.4"
    assert len(level.after.accuracy) == report.settings["timesteps"] + 1
    assert report.splits.tuning == "mnist5k:val" and report.splits.evaluation_images == 60
    stamp = (tmp_path / "gaussian-0.4" / "result.json").stat().st_mtime_ns
    again = tune_run(run_dir, ["gaussian:0.4"], settings)
    # The skipped level is read back from progress/: the same results file.
    assert again.to_json() == report.to_json()
    assert again.levels[0].before.correct is None  # only the accuracies are kept on disk
    assert (tmp_path / "gaussian-0.4" / "result.json").stat().st_mtime_ns == stamp
    written = json.loads((tmp_path / "results.json").read_text())
    assert written == report.to_json() and written["format"] == RESULTS_FORMAT
    assert "out" not in written
    assert TuneReport.from_json(written).to_json() == written


def test_results_written_before_the_format_was_versioned_still_read() -> None:
    """tests/tune/data/results-v0.json was written by the code before this format (see the
    README there): beta/lambda/alpha keys, no format field."""
    old = json.loads((DATA / "results-v0.json").read_text())
    assert "format" not in old and "beta" in old["run_values"][0]
    report = TuneReport.from_json(old)
    (level,) = report.levels
    old_level = old["levels"][0]
    # Values from the file itself, renamed to the config's names.
    assert report.run_values[0].feedback == old["run_values"][0]["lambda"]
    for got, want in zip(level.result.effective, old_level["effective"], strict=True):
        assert (got.feedforward, got.feedback, got.pc) == (
            want["beta"],
            want["lambda"],
            want["alpha"],
        )
    assert level.after.accuracy.tolist() == old_level["accuracy_after"]
    assert level.gain.diff == old_level["final_timestep_gain"]["after_minus_before"]
    assert str(level.noise) == "gaussian:0.4" and level.result.timesteps == 2
    migrated = report.to_json()
    assert migrated["format"] == RESULTS_FORMAT
    assert set(migrated["levels"][0]["effective"][0]) == {"feedforward", "feedback", "memory", "pc"}


def test_results_of_another_format_are_refused_in_one_line() -> None:
    data = json.loads((DATA / "results-v0.json").read_text())
    data["format"] = "predify-tune-results-v9"
    with pytest.raises(DataError, match="predify-tune-results-v9") as error:
        TuneReport.from_json(data)
    assert "\n" not in str(error.value)
    level = dict(data["levels"][0], format="predify-tune-level-v7")
    with pytest.raises(DataError, match="predify-tune-level-v7"):
        LevelReport.from_json(level)


def test_a_corruption_at_a_severity_is_a_tuning_noise(run_dir: Path, tmp_path: Path) -> None:
    """``fog:3`` tunes on fogged images (the follow-up paper tuned per CIFAR-100-C corruption and
    level); the objective and the scales are written into the results."""
    settings = TuneSettings(
        out=tmp_path, epochs=1, max_images=40, batch_size=20, timesteps=2, device="cpu"
    )
    report = tune_run(run_dir, ["fog:3"], settings)
    (level,) = report.levels
    assert str(level.noise) == "fog:3" and (tmp_path / "fog-3" / "result.json").is_file()
    written = json.loads((tmp_path / "fog-3" / "result.json").read_text())
    assert written["objective"] == "scale-free-last" and written["noise"] == "fog:3"
    assert len(written["scales_after"]["representation_norm"]) == len(report.pcoders)
    assert (tmp_path / "scales.png").is_file()
    again = LevelReport.from_json(written)
    assert again.noise == level.noise
    assert again.after.scales is not None and level.after.scales is not None
    # Written rounded to 1e-6.
    assert again.after.scales.logit_scale == pytest.approx(level.after.scales.logit_scale, abs=1e-6)


@pytest.mark.parametrize("spec", ["fog:0", "fog:6", "fog:x", "smog:3"])
def test_bad_corruption_specs_are_one_line(spec: str) -> None:
    from predify.errors import ConfigError
    from predify.tune import parse_tune_noise

    with pytest.raises(ConfigError, match="noise"):
        parse_tune_noise(spec)
