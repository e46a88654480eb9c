"""FeedbackTrainer.fit's callbacks, and what fitting does (and does not do) to the model."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import TensorDataset

from predify.models import ShallowCNN, pshallow
from predify.train import Callback, FeedbackTrainer, ModelCheckpoint
from predify.train.state import read_training_checkpoint


def _pnet() -> Any:
    torch.manual_seed(0)
    return pshallow(ShallowCNN(1, widths=(4, 8, 8)), image_size=28, timesteps=1)


def _data(count: int = 12) -> TensorDataset:
    return TensorDataset(torch.rand(count, 1, 28, 28, generator=torch.Generator().manual_seed(1)))


class Recorder(Callback):
    def __init__(self) -> None:
        self.events: list[str] = []
        self.handler_during_fit: Any = None
        self.count = 0

    def on_fit_start(self, trainer: FeedbackTrainer, epochs: int) -> None:
        self.events.append(f"fit_start {epochs}")
        self.handler_during_fit = signal.getsignal(signal.SIGINT)

    def on_epoch_start(self, trainer: FeedbackTrainer, total_batches: int) -> None:
        self.events.append(f"epoch_start {trainer.epoch} of {total_batches}")

    def on_step_end(self, trainer: FeedbackTrainer, losses: Any, lr: float, epoch: int) -> None:
        self.count += 1
        self.events.append(f"step {trainer.global_step}")

    def on_epoch_end(self, trainer: FeedbackTrainer, mean_losses: Any) -> None:
        self.events.append(f"epoch_end {sorted(mean_losses)[-1]}")

    def on_checkpoint(self, trainer: FeedbackTrainer, path: Path) -> None:
        self.events.append(f"checkpoint {path.name}")

    def on_exception(self, trainer: FeedbackTrainer, error: BaseException) -> None:
        self.events.append(f"exception {type(error).__name__}")

    def on_fit_end(self, trainer: FeedbackTrainer) -> None:
        self.events.append("fit_end")

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count}

    def load_state_dict(self, state: Any) -> None:
        self.count = int(state["count"])


def test_building_a_trainer_leaves_the_model_alone_until_fitting_starts() -> None:
    pnet = _pnet()
    trainer = FeedbackTrainer(pnet, device="cpu")
    assert all(p.requires_grad for p in pnet.backbone.parameters())
    assert pnet.training  # not switched to eval either
    trainer.fit(_data(4), epochs=1, batch_size=4)
    assert not any(p.requires_grad for p in pnet.backbone.parameters())
    assert not pnet.backbone.training


def test_callbacks_see_every_event_in_order(tmp_path: Path) -> None:
    recorder = Recorder()
    trainer = FeedbackTrainer(_pnet())
    every_third = ModelCheckpoint(tmp_path / "c.pt", every_n_steps=3)
    trainer.fit(_data(), epochs=2, batch_size=6, callbacks=[recorder, every_third])
    assert recorder.events == [
        "fit_start 2",
        "epoch_start 0 of 2", "step 1", "step 2", "epoch_end total",
        "epoch_start 1 of 2", "step 3", "checkpoint c.pt", "step 4", "epoch_end total",
        # Callbacks run in list order: the checkpoint's own fit_end writes after the recorder's.
        "fit_end", "checkpoint c.pt",
    ]  # fmt: skip


def test_library_fit_installs_no_signal_handler_unless_asked() -> None:
    default = signal.getsignal(signal.SIGINT)
    quiet, handled = Recorder(), Recorder()
    FeedbackTrainer(_pnet()).fit(_data(4), epochs=1, batch_size=4, callbacks=[quiet])
    FeedbackTrainer(_pnet()).fit(
        _data(4), epochs=1, batch_size=4, callbacks=[handled], handle_interrupt=True
    )
    assert quiet.handler_during_fit is default
    assert handled.handler_during_fit is not default
    assert signal.getsignal(signal.SIGINT) is default  # restored


def test_an_exception_reaches_the_callbacks_and_a_callbacks_state_is_checkpointed(
    tmp_path: Path,
) -> None:
    class Failing(Callback):
        def on_step_end(self, trainer: Any, losses: Any, lr: float, epoch: int) -> None:
            if trainer.global_step == 2:
                raise RuntimeError("planted")

    recorder = Recorder()
    trainer = FeedbackTrainer(_pnet())
    checkpoint = tmp_path / "c.pt"
    with pytest.raises(RuntimeError, match="planted"):
        trainer.fit(_data(), epochs=1, batch_size=3, callbacks=[recorder, Failing()])
    assert recorder.events[-1] == "exception RuntimeError"
    trainer.save_checkpoint(checkpoint)  # outside fit: no callback state to keep
    assert read_training_checkpoint(checkpoint)["callbacks"] == {}

    second = Recorder()
    trainer = FeedbackTrainer(_pnet())
    trainer.fit(_data(), epochs=1, batch_size=6, callbacks=[second, ModelCheckpoint(checkpoint)])
    assert read_training_checkpoint(checkpoint)["callbacks"] == {"0:Recorder": {"count": 2}}
    resumed = FeedbackTrainer(_pnet())
    resumed.load_checkpoint(checkpoint)
    third = Recorder()
    resumed.fit(_data(), epochs=2, batch_size=6, callbacks=[third])
    assert third.count == 4  # restored 2, then two more steps
