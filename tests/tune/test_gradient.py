"""Gradient tuning: valid values, a lower loss, frozen weights, and the evaluation helpers."""

from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import predify
import predify.tune.gradient as gradient_module
from predify.config import Hyperparameters
from predify.errors import ConfigError, DataError
from predify.models import ShallowCNN
from predify.tune import (
    TuningError,
    accuracy_per_timestep,
    evaluate_per_timestep,
    parse_noise,
    temporary_hyperparameters,
    trajectory_csv,
    tune_and_evaluate,
    tune_gradient,
)
from testkit import SMALL_TIMESTEPS as TIMESTEPS
from testkit import SMALL_WIDTHS as WIDTHS

NOISE = parse_noise("gaussian:0.5")


def _assert_valid(values: list[Hyperparameters]) -> None:
    for value in values:
        beta, lam, memory, alpha = value.feedforward, value.feedback, value.memory, value.pc
        for weight in (beta, lam, memory):
            assert -1e-6 <= weight <= 1 + 1e-6
        assert math.isclose(beta + lam + memory, 1.0, abs_tol=1e-6)
        assert alpha >= 0 and math.isfinite(alpha)


def _snapshot(pnet):
    weights = {k: v.clone() for k, v in pnet.backbone.state_dict().items()}
    weights.update(
        {f"decoder{k}": p.detach().clone() for k, p in enumerate(pnet.decoder_parameters())}
    )
    return weights


@pytest.fixture
def pnet(trained_pnet):
    return copy.deepcopy(trained_pnet)


def test_tuning_lowers_the_loss_keeps_values_valid_and_weights_frozen(pnet, val_data):
    # A mix of flags, to check each one comes back as it was.
    pnet.backbone.classifier.weight.requires_grad_(False)
    flags = {name: p.requires_grad for name, p in pnet.named_parameters()}
    before_weights = _snapshot(pnet)
    before_values = pnet.hyperparameter_values()
    pnet.train()

    result = tune_gradient(
        pnet,
        val_data,
        NOISE,
        timesteps=TIMESTEPS,
        epochs=2,
        batch_size=32,
        lr_mixing=5e-2,
        lr_pc=5e-2,
        progress=False,
    )

    assert result.steps == 8 and len(result.trajectory) == 9
    assert result.tuning_loss_after < result.tuning_loss_before
    assert len(result.hyperparameters) == pnet.num_pcoders and len(result.effective) == 3
    _assert_valid(result.effective)
    _assert_valid([point for row in result.trajectory for point in row.values])
    assert result.effective[-1].feedback == 0.0
    assert result.hyperparameters != result.initial
    # The starting point, up to the float32 round trip through softmax and softplus.
    for start, value in zip(result.initial, before_values, strict=True):
        assert start.feedforward == pytest.approx(value.feedforward, abs=1e-6)
        assert start.feedback == pytest.approx(value.feedback, abs=1e-6)
        assert start.pc == pytest.approx(value.pc, rel=1e-5)
    # The network is left exactly as it was: weights, flags, gradients, values, mode.
    after_weights = _snapshot(pnet)
    assert all(torch.equal(before_weights[k], after_weights[k]) for k in before_weights)
    assert {name: p.requires_grad for name, p in pnet.named_parameters()} == flags
    assert all(p.grad is None for p in pnet.parameters())
    assert pnet.hyperparameter_values() == before_values
    assert pnet.training and pnet.backbone.training
    # The trajectory's CSV has one row per step and a final row.
    lines = trajectory_csv(result.trajectory).splitlines()
    assert lines[0].split(",")[:5] == [
        "step",
        "loss",
        "note",
        "pcoder1_feedforward",
        "pcoder1_feedback",
    ]
    assert len(lines) == 1 + 9 and lines[-1].split(",")[2] == "final"


def test_applying_the_result_changes_the_dynamics_and_the_config_loads(pnet, val_data, tmp_path):
    result = tune_gradient(
        pnet,
        val_data,
        NOISE,
        timesteps=TIMESTEPS,
        max_steps=3,
        batch_size=32,
        progress=False,
        lr_mixing=5e-2,
    )
    assert result.steps == 3
    path = tmp_path / "tuned.toml"
    result.config_for(pnet).save(path)
    result.apply_to(pnet)
    for got, want in zip(pnet.hyperparameter_values(), result.effective, strict=True):
        assert got.feedforward == pytest.approx(want.feedforward, abs=1e-6)
        assert got.feedback == pytest.approx(want.feedback, abs=1e-6)
        assert got.pc == pytest.approx(want.pc, rel=1e-5)
    rebuilt = predify.predify(ShallowCNN(in_channels=1, widths=WIDTHS), path)
    for got, want in zip(rebuilt.hyperparameter_values(), result.effective, strict=True):
        assert got.feedforward == pytest.approx(want.feedforward, abs=1e-6)
        assert got.pc == pytest.approx(want.pc, rel=1e-5)


def test_shared_tuning_learns_one_set_and_writes_a_shared_config(pnet, val_data, tmp_path):
    result = tune_gradient(
        pnet,
        TensorDataset(*val_data),
        NOISE,
        timesteps=TIMESTEPS,
        max_steps=2,
        batch_size=32,
        shared=True,
        progress=False,
    )
    assert result.shared and len(result.hyperparameters) == 1
    shared = result.hyperparameters[0]
    assert [v.feedforward for v in result.effective] == [shared.feedforward] * 3
    assert result.effective[0].feedback == shared.feedback and result.effective[2].feedback == 0
    config = result.config_for(pnet)
    assert config.shared_hyperparameters and config.hyperparameters == shared
    config.save(tmp_path / "shared.toml")
    rebuilt = predify.predify(ShallowCNN(in_channels=1, widths=WIDTHS), tmp_path / "shared.toml")
    assert rebuilt.pcoders[0].hyperparameters is rebuilt.pcoders[2].hyperparameters


def test_a_data_loader_and_a_time_budget_are_accepted(pnet, val_data, monkeypatch):
    """The budget is read from a simulated clock on which every forward pass of the network
    takes 0.25 s, so the test does not depend on the machine's speed."""
    clock = [0.0]

    def forward_costs_a_quarter_second(*_: object) -> None:
        clock[0] += 0.25

    monkeypatch.setattr(gradient_module, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    pnet.register_forward_hook(forward_costs_a_quarter_second)  # this test's own copy
    loader = DataLoader(TensorDataset(*val_data), batch_size=32)
    result = tune_gradient(
        pnet,
        loader,
        NOISE,
        timesteps=TIMESTEPS,
        epochs=50,
        time_budget_s=1.0,
        progress=False,
        measure_loss=False,
    )
    # Steps start at 0, 0.25, 0.5 and 0.75 s; one more would end at 1.25 s, past the budget
    # (50 epochs of 4 batches would be 200 steps).
    assert result.stopped_by_budget
    assert result.steps == 4 and result.seconds == pytest.approx(1.0)
    assert result.tuning_loss_before is None and math.isfinite(result.final_loss)
    _assert_valid(result.effective)


def test_a_non_finite_loss_stops_with_one_clear_line(pnet, val_data):
    weights = _snapshot(pnet)
    with pytest.raises(TuningError, match="non-finite") as error:
        tune_gradient(pnet, val_data, parse_noise("gaussian:1e38"), timesteps=2, progress=False)
    assert "\n" not in str(error.value)
    after = _snapshot(pnet)
    assert all(torch.equal(weights[k], after[k]) for k in weights)
    assert all(p.requires_grad for p in pnet.backbone.parameters())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"timesteps": 0}, "timesteps"), ({"epochs": 0}, "epochs"), ({"lr_mixing": -1.0}, "lr")],
)
def test_bad_settings_are_refused(pnet, val_data, kwargs, match):
    settings = {"timesteps": TIMESTEPS, "progress": False, **kwargs}
    with pytest.raises(predify.PredifyError, match=match):
        tune_gradient(pnet, val_data, NOISE, **settings)


def test_accuracy_per_timestep_is_reproducible_and_t0_ignores_the_hyperparameters(pnet):
    from predify.data import mnist5k_splits

    images, labels = mnist5k_splits(0).test.tensors
    images, labels = images[:200], labels[:200]
    first = accuracy_per_timestep(
        pnet, images, labels, NOISE, TIMESTEPS, torch.Generator().manual_seed(5)
    )
    second = evaluate_per_timestep(
        pnet, images, labels, NOISE, TIMESTEPS, torch.Generator().manual_seed(5), batch_size=64
    )
    assert first.shape == (TIMESTEPS + 1,) and first.dtype == torch.float64
    assert torch.equal(first, second.accuracy)
    assert second.correct.shape == (TIMESTEPS + 1, 200)
    assert 0.3 < float(first[0]) <= 1.0  # the fixture's backbone is well above chance (0.1)
    strong = Hyperparameters(feedforward=0.2, feedback=0.3, pc=0.5)
    with temporary_hyperparameters(pnet, [strong] * 3, shared=False):
        changed = accuracy_per_timestep(
            pnet, images, labels, NOISE, TIMESTEPS, torch.Generator().manual_seed(5)
        )
    assert changed[0] == first[0]
    assert not torch.equal(changed, first)


def test_temporary_values_are_validated(pnet):
    invalid = [Hyperparameters(0.9, 0.5, 0.1)] * 3
    with pytest.raises(ConfigError), temporary_hyperparameters(pnet, invalid, shared=False):
        pass
    assert pnet.hyperparameter_values()[0].feedforward == pytest.approx(0.8)


def test_tune_and_evaluate_reports_held_out_accuracy_and_refuses_seen_images(pnet, val_data):
    from predify.data import mnist5k_splits

    test_images, test_labels = mnist5k_splits(0).test.tensors
    report = tune_and_evaluate(
        pnet,
        val_data,
        test_images[:100],
        test_labels[:100],
        NOISE,
        timesteps=2,
        max_steps=2,
        batch_size=32,
        progress=False,
    )
    summary = report.to_json()
    assert len(summary["accuracy_before"]) == len(summary["accuracy_after"]) == 3
    assert summary["accuracy_before"][0] == summary["accuracy_after"][0]
    low, high = summary["final_timestep_gain"]["ci95"]
    assert low <= summary["final_timestep_gain"]["after_minus_before"] <= high
    # Held-out images that the tuning split contains are refused before any work.
    images, labels = val_data
    mixed = torch.cat([test_images[:10], images[20:25]])
    with pytest.raises(DataError, match="share 5 identical images"):
        tune_and_evaluate(
            pnet, val_data, mixed, torch.cat([test_labels[:10], labels[20:25]]), NOISE
        )
    loader = DataLoader(TensorDataset(*val_data), batch_size=16, shuffle=True)
    with pytest.raises(DataError, match="share 5 identical images"):
        tune_and_evaluate(pnet, loader, mixed, torch.cat([test_labels[:10], labels[20:25]]), NOISE)
