"""FeedbackTrainer: the lean objective's gradients, training through the dynamics, checkpoints,
exact resumption, Ctrl-C and non-finite losses."""

from __future__ import annotations

import copy
import random
import signal
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch.utils.data import DataLoader, TensorDataset

import predify
from predify.errors import CheckpointError, ConfigError
from predify.models import PRESNET18_MODULES, ShallowCNN, pshallow
from predify.network import PNetState, PredictiveNet
from predify.submodules import forward_hooks
from predify.train import (
    FeedbackTrainer,
    LambdaCallback,
    MetricsLogging,
    ModelCheckpoint,
    NonFiniteLossError,
    seed_everything,
)
from predify.train.objectives import OBJECTIVES
from predify.train.state import TRAIN_CHECKPOINT_FORMAT, read_training_checkpoint

WIDTHS = (4, 8, 8)


def tiny_pnet(seed: int = 0, **kwargs: object) -> PredictiveNet:
    """A predictive ShallowCNN for 1x28x28 images, small enough for many steps per second."""
    torch.manual_seed(seed)
    backbone = ShallowCNN(1, 10, widths=WIDTHS)
    return pshallow(backbone, in_channels=1, image_size=28, widths=WIDTHS, **kwargs)  # type: ignore[arg-type]


def tiny_resnet_pnet() -> PredictiveNet:
    torch.manual_seed(0)
    backbone = torchvision.models.resnet18(weights=None)
    config = predify.auto_config(backbone, (3, 64, 64), PRESNET18_MODULES)
    return predify.predify(backbone, config)


def images(count: int, channels: int = 1, side: int = 28, seed: int = 0) -> torch.Tensor:
    return torch.rand(count, channels, side, side, generator=torch.Generator().manual_seed(seed))


def dataset(count: int = 60) -> TensorDataset:
    return TensorDataset(images(count, seed=1), torch.arange(count) % 10)


def decoder_gradients(pnet: PredictiveNet) -> list[torch.Tensor]:
    gradients = []
    for parameter in pnet.decoder_parameters():
        assert parameter.grad is not None
        gradients.append(parameter.grad.detach().clone())
    return gradients


def assert_close_relative(
    actual: list[torch.Tensor], expected: list[torch.Tensor], tol: float
) -> None:
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        scale = want.norm().item()
        assert scale > 0
        assert (got - want).norm().item() <= tol * scale


def naive_decoder_gradients(pnet: PredictiveNet, batch: torch.Tensor) -> list[torch.Tensor]:
    """The objective computed the plain way: backbone with requires_grad, one full backward."""
    model = copy.deepcopy(pnet)
    model.backbone.requires_grad_(True)
    model.backbone.eval()
    captured: list[torch.Tensor | None] = [None] * model.num_pcoders

    def keeper(index: int) -> Callable[..., None]:
        def hook(module: torch.nn.Module, inputs: object, output: torch.Tensor) -> None:
            captured[index] = output

        return hook

    with forward_hooks([(m, keeper(i)) for i, m in enumerate(model.updated_modules)]):
        model.backbone(batch)
    activations = [a for a in captured if a is not None]
    assert all(a.requires_grad for a in activations)  # the graph spans the backbone
    targets = [batch, *activations[:-1]]
    loss = sum(
        F.mse_loss(pcoder.decoder(activation), target)
        for pcoder, activation, target in zip(model.pcoders, activations, targets, strict=True)
    )
    assert isinstance(loss, torch.Tensor)
    loss.backward()
    assert next(model.backbone.parameters()).grad is not None  # backward reached the first conv
    return decoder_gradients(model)


# ---------------------------------------------------------------------- the paper's objective
@pytest.mark.parametrize("kind", ["shallow", "resnet18"])
def test_lean_gradients_equal_the_naive_full_backward(kind: str) -> None:
    if kind == "shallow":
        pnet, batch = tiny_pnet(), images(4)
    else:
        pnet, batch = tiny_resnet_pnet(), images(2, channels=3, side=64)
    expected = naive_decoder_gradients(pnet, batch)
    trainer = FeedbackTrainer(pnet)
    losses = trainer.backward(batch)
    assert losses.shape == (pnet.num_pcoders,)
    assert not losses.requires_grad
    assert_close_relative(decoder_gradients(pnet), expected, 1e-6)
    # Frozen means frozen: no gradient reached the backbone.
    assert all(p.grad is None and not p.requires_grad for p in pnet.backbone.parameters())


def test_step_reports_each_pcoder_and_learns() -> None:
    pnet = tiny_pnet()
    trainer = FeedbackTrainer(pnet, lr=1e-2)
    batch = images(16)
    first = trainer.step(batch)
    assert list(first) == ["pcoder1", "pcoder2", "pcoder3", "total"]
    assert first["total"] == pytest.approx(sum(first[f"pcoder{i}"] for i in (1, 2, 3)))
    for _ in range(20):
        last = trainer.step(batch)
    assert last["total"] < 0.5 * first["total"]
    assert trainer.global_step == 21


def test_backbone_statistics_and_weights_do_not_change() -> None:
    pnet = tiny_resnet_pnet()
    pnet.train()  # a caller's train() must not let BatchNorm statistics drift
    before = copy.deepcopy(pnet.backbone.state_dict())
    trainer = FeedbackTrainer(pnet, lr=1e-2)
    pnet.train()
    trainer.step(images(2, channels=3, side=64))
    for key, value in pnet.backbone.state_dict().items():
        assert torch.equal(value, before[key]), key


# ---------------------------------------------------------------------- through the dynamics
def unrolled_reference_gradients(
    pnet: PredictiveNet, batch: torch.Tensor, steps: int
) -> list[torch.Tensor]:
    """Full backprop through ``forward``: sum of the recorded errors over t = 0..T."""
    model = copy.deepcopy(pnet)
    out = model(batch, timesteps=steps, record=True)
    assert out.errors is not None and out.errors.shape == (steps + 1, model.num_pcoders)
    out.errors.sum().backward()
    return decoder_gradients(model)


def truncated_reference_gradients(
    pnet: PredictiveNet, batch: torch.Tensor, steps: int
) -> list[torch.Tensor]:
    """Backprop cut after every step (tbptt=1), written out by hand."""
    model = copy.deepcopy(pnet)
    state = model.start(batch)
    for t in range(steps + 1):
        if t > 0:
            state = model.step(state)
        assert state.errors is not None
        state.errors.sum().backward()
        state = PNetState(
            input=batch,
            timestep=state.timestep,
            logits=state.logits.detach(),
            reps=[r.detach() for r in state.reps],
            preds=[p.detach() for p in state.preds if p is not None],
            error_terms=[e.detach() for e in state.error_terms if e is not None],
        )
    return decoder_gradients(model)


@pytest.mark.parametrize("checkpoint_activations", [False, True])
def test_multistep_gradients_match_backprop_through_forward(checkpoint_activations: bool) -> None:
    pnet, batch = tiny_pnet(), images(4)
    expected = unrolled_reference_gradients(pnet, batch, steps=3)
    trainer = FeedbackTrainer(pnet, timesteps=3, checkpoint_activations=checkpoint_activations)
    losses = trainer.backward(batch)
    assert_close_relative(decoder_gradients(pnet), expected, 1e-6)
    with torch.no_grad():
        recorded = pnet(batch, timesteps=3, record=True).errors
    assert recorded is not None
    torch.testing.assert_close(losses, recorded.sum(0), rtol=1e-5, atol=0)


@pytest.mark.parametrize("checkpoint_activations", [False, True])
def test_tbptt_cuts_the_graph_after_each_window(checkpoint_activations: bool) -> None:
    pnet, batch = tiny_pnet(), images(4)
    expected = truncated_reference_gradients(pnet, batch, steps=3)
    full = unrolled_reference_gradients(pnet, batch, steps=3)
    trainer = FeedbackTrainer(
        pnet, timesteps=3, tbptt=1, checkpoint_activations=checkpoint_activations
    )
    trainer.backward(batch)
    assert_close_relative(decoder_gradients(pnet), expected, 1e-6)
    # ... and truncation does change the gradient, so the comparison above means something.
    difference = sum((a - b).norm() for a, b in zip(expected, full, strict=True))
    assert float(difference) > 1e-6


def test_bad_settings_are_refused() -> None:
    pnet = tiny_pnet()
    with pytest.raises(ConfigError, match="gradient scaling needs a CUDA device"):
        FeedbackTrainer(pnet, precision="fp16", device="cpu")
    with pytest.raises(ConfigError, match="tbptt"):
        FeedbackTrainer(pnet, tbptt=2)
    with pytest.raises(ConfigError, match="optimizer"):
        FeedbackTrainer(pnet, optimizer_name="lbfgs")
    with pytest.raises(ConfigError, match="lr"):
        FeedbackTrainer(pnet, lr=-1.0)


def test_non_finite_loss_names_step_and_pcoder_and_keeps_weights() -> None:
    pnet = tiny_pnet()
    trainer = FeedbackTrainer(pnet)
    trainer.step(images(4))
    before = [p.detach().clone() for p in pnet.decoder_parameters()]
    poisoned = images(4)
    poisoned[0, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteLossError, match=r"at step 2 \(pcoder1\); lower the learning rate"):
        trainer.step(poisoned)
    assert all(torch.equal(a, b) for a, b in zip(pnet.decoder_parameters(), before, strict=True))
    assert trainer.global_step == 1


# ---------------------------------------------------------------------- fit, checkpoints, resume
def make_trainer(decoder_seed: int | None = None) -> FeedbackTrainer:
    """Always the same backbone; other initial decoders when ``decoder_seed`` is given."""
    pnet = tiny_pnet(0)
    if decoder_seed is not None:
        torch.manual_seed(decoder_seed)
        with torch.no_grad():
            for parameter in pnet.decoder_parameters():
                parameter.normal_()
    return FeedbackTrainer(
        pnet,
        lr=3e-3,
        seed=7,
        scheduler=lambda optimizer: torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.5),
    )


def test_resume_after_ctrl_c_continues_exactly(tmp_path: Path) -> None:
    data = dataset(60)  # 6 batches of 10 per epoch
    reference: dict[int, dict[str, float]] = {}
    uninterrupted = make_trainer()
    uninterrupted.fit(
        data, epochs=2, batch_size=10, callbacks=[LambdaCallback(reference.__setitem__)]
    )
    assert sorted(reference) == list(range(1, 13))

    checkpoint = tmp_path / "checkpoint.pt"
    first_part: dict[int, dict[str, float]] = {}

    def interrupt_at_step_8(step: int, losses: dict[str, float]) -> None:
        first_part[step] = losses
        if step == 8:
            signal.raise_signal(signal.SIGINT)  # as a Ctrl-C would

    interrupted = make_trainer()
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(data, epochs=2, batch_size=10, handle_interrupt=True,
                        callbacks=[LambdaCallback(interrupt_at_step_8),
                                   ModelCheckpoint(checkpoint)])  # fmt: skip
    assert first_part == {step: reference[step] for step in range(1, 9)}  # same seed, same losses
    progress = read_training_checkpoint(checkpoint)["progress"]
    assert progress == {"step": 8, "epoch": 1, "batch_in_epoch": 2, "seed": 7}

    resumed = make_trainer(
        decoder_seed=123
    )  # other initial decoders: everything must come from the file
    resumed.load_checkpoint(checkpoint)
    second_part: dict[int, dict[str, float]] = {}
    resumed.fit(data, epochs=2, batch_size=10,
                callbacks=[LambdaCallback(second_part.__setitem__)])  # fmt: skip
    assert second_part == {step: reference[step] for step in range(9, 13)}
    assert resumed.lr == uninterrupted.lr == pytest.approx(3e-3 / 4)
    for a, b in zip(
        resumed.pnet.decoder_parameters(), uninterrupted.pnet.decoder_parameters(), strict=True
    ):
        assert torch.equal(a, b)


def test_checkpoint_is_weights_only_and_restores_every_rng(tmp_path: Path) -> None:
    trainer = make_trainer()
    trainer.step(images(4))
    seed_everything(42)
    path = trainer.save_checkpoint(tmp_path / "ckpt.pt")
    expected = (torch.rand(3), np.random.rand(3), random.random())
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == TRAIN_CHECKPOINT_FORMAT
    assert payload["progress"]["step"] == 1
    seed_everything(0)
    torch.rand(5)
    other = make_trainer(decoder_seed=3)
    other.load_checkpoint(path)
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]
    assert other.global_step == 1


def test_a_failed_checkpoint_write_keeps_the_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = make_trainer()
    path = trainer.save_checkpoint(tmp_path / "ckpt.pt")
    trainer.step(images(4))

    def failing_save(obj: object, file: object) -> None:
        Path(str(file)).write_bytes(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("predify.train.state.torch.save", failing_save)
    with pytest.raises(CheckpointError, match="No space left on device"):
        trainer.save_checkpoint(path)
    assert read_training_checkpoint(path)["progress"]["step"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


def test_a_checkpoint_of_another_objective_is_refused(tmp_path: Path) -> None:
    path = make_trainer().save_checkpoint(tmp_path / "ckpt.pt")
    with pytest.raises(CheckpointError, match="timesteps=0"):
        FeedbackTrainer(tiny_pnet(), timesteps=2).load_checkpoint(path)
    with pytest.raises(CheckpointError, match="not found"):
        make_trainer().load_checkpoint(tmp_path / "missing.pt")


def test_fit_accepts_a_data_loader_and_logs_csv(tmp_path: Path) -> None:
    trainer = make_trainer()
    loader = DataLoader(dataset(30), batch_size=10, shuffle=False)
    means = trainer.fit(loader, epochs=2, callbacks=[MetricsLogging(tmp_path, tensorboard=False)])
    assert len(means) == 2 and means[1]["total"] < means[0]["total"]
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert rows[0] == "step,epoch,lr,pcoder1,pcoder2,pcoder3,total"
    assert [row.split(",")[:2] for row in rows[1:]] == [
        [str(step), str((step - 1) // 3)] for step in range(1, 7)
    ]


def test_the_objectives_are_named_in_one_registry() -> None:
    assert sorted(OBJECTIVES) == ["dynamics", "reconstruction"]
    assert FeedbackTrainer(tiny_pnet()).objective.name == "reconstruction"
    assert FeedbackTrainer(tiny_pnet(), timesteps=2).objective.name == "dynamics"
