"""results.json at the file edge: the first format still reads, and the tables and summary drawn
from the typed report equal what the code of that format wrote (tests/evaluate/data/results-v1,
see its README for the commands and commit)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from evaluate_helpers import make_run_dir

from predify.cli import main
from predify.errors import DataError
from predify.evaluate.attacks import AttackReport, gradient_masking_checks
from predify.evaluate.report import summary_text, write_tables
from predify.evaluate.results import RESULTS_FORMAT, EvaluationReport, read_results

V1 = Path(__file__).parent / "data" / "results-v1"
CASES = ["full", "l2-targeted-sum"]


@pytest.mark.parametrize("case", CASES)
def test_v1_results_render_the_tables_and_summary_that_version_wrote(case, tmp_path) -> None:
    folder = V1 / case
    report = read_results(folder)
    written = write_tables(tmp_path, report)
    expected = sorted(path.name for path in folder.glob("*.csv"))
    assert sorted(written) == expected
    for name in expected:
        assert (tmp_path / name).read_text() == (folder / name).read_text(), name
    lines = summary_text(report, tmp_path, 0.0).splitlines()
    assert lines[:-1] == (folder / "summary.txt").read_text().splitlines()


@pytest.mark.parametrize("case", CASES)
def test_masking_checks_of_v1_results_are_those_v1_computed(case) -> None:
    report = read_results(V1 / case)
    assert report.attacks is not None
    stored = json.loads((V1 / case / "results.json").read_text())["attacks"]["checks"]
    checks = gradient_masking_checks(report.attacks.attacks, report.attacks.epsilons)
    assert checks.to_json() == stored


@pytest.mark.parametrize("case", CASES)
def test_the_current_format_reads_back_to_the_same_report(case, tmp_path) -> None:
    report = read_results(V1 / case)
    data = report.to_json()
    assert data["format"] == RESULTS_FORMAT
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    again = read_results(path)
    assert again.attacks == report.attacks  # frozen dataclasses all the way down
    assert again.to_json() == data
    assert report.attacks is not None
    assert AttackReport.from_json(report.attacks.to_json()) == report.attacks


def test_v1_attack_budgets_and_skipped_square_are_migrated() -> None:
    attacks = read_results(V1 / "l2-targeted-sum").attacks
    assert attacks is not None and attacks.objective == "sum" and attacks.readouts == ("sum",)
    pgd, square, transfer = attacks.attacks
    assert (pgd.budget.steps, pgd.budget.restarts) == (2, 1)
    assert square.skipped is not None and square.epsilons == ()
    assert transfer.source_readout == 0 and transfer.readouts == [0, 1, 2]
    full = read_results(V1 / "full").attacks
    assert full is not None
    assert full.attack("square").budget.queries == 4  # type: ignore[union-attr]
    assert full.attack("bim").budget.restarts is None  # type: ignore[union-attr]
    # Intervals and per-timestep rates (in no table) against the v1 file itself.
    stored = json.loads((V1 / "full" / "results.json").read_text())["attacks"]["bim"]
    bim = full.attack("bim")
    assert bim is not None
    for index, result in enumerate(bim.at(0.1).readouts):
        assert result.success_ci == tuple(stored["success_ci"]["0.1"][index])
        every = stored["success_all_timesteps"]["0.1"][str(result.readout)]
        assert result.success_all_timesteps == tuple(every)


def test_evaluating_the_v1_settings_again_gives_the_v1_results(tmp_path) -> None:
    """The same run and options as ``full/`` (its README), evaluated by this code: the same
    numbers wherever no random draw enters, and the same layout. Since #18 every random draw
    (corruption noise, the analysis's noise, attack starts, Square) is seeded per image (v1: per
    cell and batch) and PGD restarts 5 times by default, so those numbers differ from v1's."""
    run = make_run_dir(tmp_path / "run", timesteps=2)
    out = tmp_path / "out"
    options = (V1 / "README.md").read_text().split("`full/`: `")[1].split("`")[0].split()[5:]
    assert main(["evaluate", str(run), "--out", str(out), *options]) == 0
    now, then = read_results(out), read_results(V1 / "full")
    assert now.attacks is not None and then.attacks is not None
    assert now.attacks.clean_success == then.attacks.clean_success
    assert now.attacks.readouts == then.attacks.readouts
    assert now.attacks.epsilons == then.attacks.epsilons
    assert [r.name for r in now.attacks.attacks] == [r.name for r in then.attacks.attacks]
    assert now.corruption is not None and then.corruption is not None
    # Issue #18 seeds every image's random draws by the image (v1: by the cell and batch), so
    # the random corruption (gaussian_noise) and the analysis's noise draw other numbers; the
    # clean cell and the deterministic corruption (contrast) must not move.
    assert now.corruption.clean_error == then.corruption.clean_error
    assert (
        now.corruption.corruption_error["contrast"] == then.corruption.corruption_error["contrast"]
    )
    assert now.analysis is not None and then.analysis is not None
    clean_errors = now.analysis.prediction_error_clean, then.analysis.prediction_error_clean
    assert clean_errors[0].tolist() == clean_errors[1].tolist()

    # The tables' rows of the clean images and of the deterministic corruption keep v1's bytes
    # (attacks.csv and correlation_distance.csv hold random draws only).
    def fixed_rows(text: str) -> list[str]:
        lines = text.splitlines()
        return lines[:1] + [row for row in lines[1:] if row.split(",")[0] in ("clean", "contrast")]

    compared = [name for name in then.tables if name.split(".")[0] in
                ("corruption_errors", "ce_relative_to_t0", "prediction_errors")]  # fmt: skip
    assert len(compared) == 3, then.tables
    for name in compared:
        now_rows, then_rows = (fixed_rows(p.read_text()) for p in (out / name, V1 / "full" / name))
        assert len(then_rows) > 1 and now_rows == then_rows, name


def test_unknown_format_is_refused_in_one_line_naming_it(tmp_path) -> None:
    data = json.loads((V1 / "full" / "results.json").read_text())
    data["format"] = "predify-evaluate-v9"
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError) as caught:
        read_results(tmp_path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and "predify-evaluate-v9" in message


def test_damaged_results_are_refused_in_one_line(tmp_path) -> None:
    data = json.loads((V1 / "full" / "results.json").read_text())
    del data["attacks"]["pgd"]["success"]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="damaged results file") as caught:
        read_results(path)
    assert "\n" not in str(caught.value)
    path.write_text("{")
    with pytest.raises(DataError, match="damaged"):
        read_results(path)


def test_a_report_from_json_is_typed() -> None:
    report = EvaluationReport.from_json(json.loads((V1 / "full" / "results.json").read_text()))
    assert report.data.num_images == 12 and report.analysis is not None
    assert report.analysis.correlation_distance.shape == (5, 3, 3)  # sigmas, pcoders, T + 1
