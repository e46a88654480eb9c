"""Training precision (#13): bf16 autocast on the CPU, fp16 with a GradScaler on CUDA, and the
``predify train`` options that choose them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_cli_train import BASE
from test_trainer import images, tiny_pnet

from predify.cli import build_parser, main
from predify.errors import UsageError
from predify.runtime.runs import read_run_info
from predify.train import FeedbackTrainer
from predify.train.cli import settings_from_args
from predify.train.settings import TrainingRecord, TrainSettings
from testkit import error_line

STEPS = 4
#: bf16 keeps 8 bits of mantissa (relative rounding 2**-8 ~ 0.004 per operation). Measured on this
#: test's 4 steps: at most 0.11% off fp32's losses; 1% leaves room for other CPUs' kernels.
BF16_RELATIVE_TOLERANCE = 0.01


def losses(trainer: FeedbackTrainer) -> list[float]:
    return [trainer.step(images(8, seed=10 + step))["total"] for step in range(STEPS)]


def test_bf16_training_on_the_cpu_is_close_to_fp32() -> None:
    fp32 = losses(FeedbackTrainer(tiny_pnet(), device="cpu", lr=1e-2))
    trainer = FeedbackTrainer(tiny_pnet(), device="cpu", lr=1e-2, precision="bf16")
    assert trainer.scaler is None  # bf16 has fp32's exponent range: nothing to rescale
    bf16 = losses(trainer)
    assert len(bf16) == STEPS
    for low, full in zip(bf16, fp32, strict=True):
        assert abs(low - full) <= BF16_RELATIVE_TOLERANCE * abs(full), (bf16, fp32)
    # ... and autocast really ran: bf16 rounding moves the losses off fp32's.
    assert bf16 != fp32
    # The decoders' weights stay fp32 (checkpoints do not depend on the precision).
    assert all(p.dtype == torch.float32 for p in trainer.pnet.decoder_parameters())


def _all_nhwc(trainer: FeedbackTrainer) -> bool:
    weights = [p for p in trainer.pnet.decoder_parameters() if p.dim() == 4]
    assert weights
    return all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)


def test_channels_last_training_matches_the_default_layout() -> None:
    default = FeedbackTrainer(tiny_pnet(), device="cpu", lr=1e-2)
    fp32 = losses(default)
    assert not _all_nhwc(default)  # so the check below means something
    trainer = FeedbackTrainer(tiny_pnet(), device="cpu", lr=1e-2, channels_last=True)
    nhwc = losses(trainer)
    assert _all_nhwc(trainer)
    assert nhwc == pytest.approx(fp32, rel=1e-4)


def test_the_cli_options_reach_the_settings() -> None:
    parser = build_parser()

    def settings(*options: str) -> TrainSettings:
        return settings_from_args(parser.parse_args([*BASE, "--out", "x", *options]))

    assert settings().precision == "fp32"
    assert settings().channels_last is False
    chosen = settings("--precision", "bf16", "--channels-last")
    assert (chosen.precision, chosen.channels_last) == ("bf16", True)
    assert settings("--precision", "fp16").precision == "fp16"


def test_a_bf16_run_records_its_precision_and_resumes_with_it(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main([*BASE, "--precision", "bf16", "--epochs", "1", "--out", str(out)]) == 0
    training = read_run_info(out).extra["training"]
    assert training["precision"] == "bf16"
    assert "amp" not in training  # --amp is gone; precision alone says it
    assert main(["train", "--resume", str(out), "--epochs", "2", "--no-progress"]) == 0
    training = read_run_info(out).extra["training"]
    assert (training["precision"], training["steps"]) == ("bf16", 8)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--precision", "fp16", "--device", "cpu"], "--precision fp16: gradient scaling needs"),
        (["--compile"], "--compile: not offered by predify train"),
    ],
)
def test_unsupported_precision_choices_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], expected: str
) -> None:
    assert main([*BASE, *options, "--out", str(tmp_path / "run")]) == 2
    assert expected in error_line(capsys, "train")


def test_resume_refuses_a_new_precision(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main([*BASE, "--epochs", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--precision", "bf16", "--no-progress"]) == 2
    assert "--precision" in error_line(capsys, "train")


@pytest.mark.cuda
def test_fp16_training_on_cuda_scales_the_gradients() -> None:
    trainer = FeedbackTrainer(tiny_pnet(), device="cuda", lr=1e-2, precision="fp16")
    assert trainer.scaler is not None and trainer.scaler.is_enabled()
    fp16 = losses(trainer)
    fp32 = losses(FeedbackTrainer(tiny_pnet(), device="cuda", lr=1e-2))
    for low, full in zip(fp16, fp32, strict=True):
        assert abs(low - full) <= BF16_RELATIVE_TOLERANCE * abs(full), (fp16, fp32)
    assert trainer.scaler.get_scale() > 1.0  # the loss was scaled up before backward
    assert all(p.dtype == torch.float32 for p in trainer.pnet.decoder_parameters())


def test_the_amp_option_is_gone_and_old_run_json_blocks_migrate() -> None:
    with pytest.raises(UsageError, match="unrecognized arguments: --amp"):
        build_parser().parse_args([*BASE, "--out", "x", "--amp"])
    # A training block written before --precision existed: "amp": true meant fp16.
    old = {"data": "mnist5k", "epochs": 2, "amp": True, "status": "finished", "steps": 8}
    record = TrainingRecord.from_json(old, "run.json")
    assert (record.settings.precision, record.settings.epochs, record.steps) == ("fp16", 2, 8)
    # Written by #13 (both keys): precision wins.
    both = {"data": "mnist5k", "amp": False, "precision": "bf16"}
    assert TrainingRecord.from_json(both, "run.json").settings.precision == "bf16"
    assert "amp" not in TrainingRecord(TrainSettings(data="mnist5k")).to_json()
