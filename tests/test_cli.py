"""The exit statuses every subcommand of ``predify`` documents: 0, 2 for a user error (one line on
stderr, no traceback), 130 for Ctrl-C; a bug keeps its traceback."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

import pytest

import predify.cli
from predify.cli import main
from predify.errors import ConfigError
from testkit import error_line

COMMANDS = ["demo", "train", "evaluate", "tune", "models"]
# The fewest arguments each subcommand parses.
ARGUMENTS = {
    "demo": [],
    "train": ["--data", "mnist5k:val"],
    "evaluate": ["some-run", "--out", "some-out"],
    "tune": ["some-run", "--noise", "gaussian:0.5"],
    "models": [],
}


def _replace_run(monkeypatch: pytest.MonkeyPatch, command: str, error: BaseException) -> None:
    module = importlib.import_module(predify.cli._COMMANDS[command][0])

    def run(args: argparse.Namespace) -> int:
        raise error

    monkeypatch.setattr(module, "run", run)


@pytest.mark.parametrize("command", COMMANDS)
def test_ctrl_c_exits_130_with_one_line(command, monkeypatch, capsys) -> None:
    _replace_run(monkeypatch, command, KeyboardInterrupt())
    assert main([command, *ARGUMENTS[command]]) == 130
    assert capsys.readouterr().err.strip() == f"predify {command}: interrupted"


@pytest.mark.parametrize("command", COMMANDS)
def test_a_user_error_exits_2_with_one_line(command, monkeypatch, capsys) -> None:
    _replace_run(monkeypatch, command, ConfigError("lr: expected a number > 0,\ngot -1"))
    assert main([command, *ARGUMENTS[command]]) == 2
    line = error_line(capsys, command)
    assert line.endswith("lr: expected a number > 0, got -1")


def test_a_bug_keeps_its_traceback(monkeypatch) -> None:
    _replace_run(monkeypatch, "tune", ZeroDivisionError("a bug"))
    with pytest.raises(ZeroDivisionError):
        main(["tune", *ARGUMENTS["tune"]])


def test_no_subcommand_and_bad_options_exit_2(capsys) -> None:
    assert main([]) == 2
    capsys.readouterr()
    assert main(["train", "--epochs", "many"]) == 2
    assert "--epochs" in error_line(capsys, "train")


def test_the_real_entry_point_returns_the_status_to_the_shell(tmp_path) -> None:
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "predify.cli",
            "evaluate",
            str(tmp_path / "nowhere"),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert process.returncode == 2, process.stderr
    assert process.stderr.strip().startswith("predify evaluate: error: ")
