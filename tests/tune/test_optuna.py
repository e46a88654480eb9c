"""Optuna tuning: the search space, the starting trial, pruning, and the missing extra."""

from __future__ import annotations

import math
import sys

import pytest

from predify.config import Hyperparameters
from predify.errors import ConfigError
from predify.tune import TuningError, parse_noise, tune_optuna
from predify.tune.optuna_search import _as_params

from .conftest import TIMESTEPS

pytest.importorskip("optuna")


def test_search_is_valid_starts_from_the_network_and_never_ends_worse(trained_pnet, val_data):
    before = trained_pnet.hyperparameter_values()
    result = tune_optuna(
        trained_pnet,
        val_data,
        parse_noise("gaussian:0.5"),
        timesteps=TIMESTEPS,
        trials=8,
        batch_size=32,
        seed=1,
        progress=False,
    )
    assert result.method == "optuna" and result.details["trials"] == 8
    assert result.details["complete"] + result.details["pruned"] == 8
    for value in result.effective:
        assert 0 <= value.feedforward <= 1 and 0 <= value.feedback <= 1
        assert value.feedforward + value.feedback <= 1 + 1e-9
        assert 1e-4 <= value.pc <= 1.0
    assert result.effective[-1].feedback == 0.0
    # Trial 0 evaluates the network's own values; the best can only be as good or better.
    first = result.trajectory[0]
    assert first.step == 0 and first.note == "complete"
    for got, want in zip(result.initial, before, strict=True):
        assert got.feedforward == pytest.approx(want.feedforward)
        assert got.feedback == pytest.approx(want.feedback)
        assert got.pc == pytest.approx(want.pc)
    assert result.final_loss <= first.loss
    assert result.tuning_loss_before == pytest.approx(first.loss)
    assert {point.note for point in result.trajectory} <= {"complete", "pruned", "diverged"}
    assert all(math.isfinite(p.loss) for p in result.trajectory if p.note != "diverged")
    assert trained_pnet.hyperparameter_values() == before


def test_shared_search_has_one_set(trained_pnet, val_data):
    result = tune_optuna(
        trained_pnet,
        (val_data[0][:64], val_data[1][:64]),
        parse_noise("uniform:0.5"),
        timesteps=2,
        trials=3,
        shared=True,
        progress=False,
    )
    assert result.shared and len(result.hyperparameters) == 1
    assert result.details["trials"] == 3


def test_pruning_uses_the_reported_values_and_no_finite_trial_is_an_error(trained_pnet, val_data):
    import optuna

    # Every reported running loss is above 0, so this pruner stops every trial at its first batch.
    with pytest.raises(TuningError, match="no Optuna trial gave a finite loss") as error:
        tune_optuna(
            trained_pnet,
            val_data,
            parse_noise("gaussian:0.5"),
            timesteps=2,
            trials=3,
            batch_size=32,
            pruner=optuna.pruners.ThresholdPruner(upper=0.0),
            progress=False,
        )
    assert "\n" not in str(error.value)


def test_parameters_reproduce_the_starting_values():
    values = [Hyperparameters(0.8, 0.1, 0.01), Hyperparameters(0.5, 0.0, 1e-6)]
    params = _as_params(values, [True, False], shared=False, alpha_range=(1e-4, 1.0))
    assert params["beta_0"] == 0.8
    assert params["lambda_share_0"] * (1 - 0.8) == pytest.approx(0.1)
    assert "lambda_share_1" not in params
    assert params["alpha_1"] == 1e-4  # clipped into the search range


def test_missing_optuna_is_one_clear_line(monkeypatch, trained_pnet, val_data):
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(ConfigError, match=r"pip install 'predify\[optuna\]'") as error:
        tune_optuna(trained_pnet, val_data, parse_noise("gaussian:0.5"), trials=2)
    assert "\n" not in str(error.value)
