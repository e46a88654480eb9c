"""Optuna tuning: the search space, the starting trial, pruning, and the missing extra."""

from __future__ import annotations

import math
import sys

import pytest

from predify.config import Hyperparameters
from predify.errors import ConfigError
from predify.tune import TuningError, parse_noise, tune_optuna
from predify.tune.optuna_search import DEFAULT_PC_RANGE, _as_params
from testkit import SMALL_TIMESTEPS as TIMESTEPS

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
    params = _as_params(values, [True, False], shared=False, pc_range=(1e-4, 1.0))
    assert params["feedforward_0"] == 0.8
    assert params["feedback_share_0"] * (1 - 0.8) == pytest.approx(0.1)
    assert "feedback_share_1" not in params
    assert params["pc_1"] == 1e-4  # clipped into the search range


def test_missing_optuna_is_one_clear_line(monkeypatch, trained_pnet, val_data):
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(ConfigError, match=r"pip install 'predify\[optuna\]'") as error:
        tune_optuna(trained_pnet, val_data, parse_noise("gaussian:0.5"), trials=2)
    assert "\n" not in str(error.value)


def test_the_default_pruner_stops_a_bad_trial_early(trained_pnet, val_data, monkeypatch):
    """Four trials of the network's own values, then a bad one: the default pruner must stop it
    as soon as its warm-up allows (after 2 of the 4 batches), and let the good ones finish."""
    import optuna

    # Measured here: after 2 of the 4 batches, the running loss (summed over t = 1..3) of the
    # feed-forward values (beta 1, almost no error correction) is 2.49, that of the bad ones 3.18.
    good = [Hyperparameters(1.0, 0.0, 1e-4) for _ in trained_pnet.pcoders]
    bad = [
        Hyperparameters(0.5, 0.5 if pcoder.has_feedback else 0.0, 1.0)
        for pcoder in trained_pnet.pcoders
    ]
    feedback = [pcoder.has_feedback for pcoder in trained_pnet.pcoders]
    studies = []
    real_create_study = optuna.create_study

    def create_study(**kwargs):
        study = real_create_study(**kwargs)
        for _ in range(4):
            study.enqueue_trial(_as_params(good, feedback, False, DEFAULT_PC_RANGE))
        study.enqueue_trial(_as_params(bad, feedback, False, DEFAULT_PC_RANGE))
        studies.append(study)
        return study

    monkeypatch.setattr(optuna, "create_study", create_study)
    result = tune_optuna(
        trained_pnet,
        val_data,
        parse_noise("gaussian:0.5"),
        timesteps=TIMESTEPS,
        trials=5,
        batch_size=32,  # 128 images: 4 reports per trial
        progress=False,
    )
    trials = studies[0].trials[:5]  # tune_optuna enqueues its own start after these
    states = optuna.trial.TrialState
    assert [t.state for t in trials] == [states.COMPLETE] * 4 + [states.PRUNED]
    assert all(len(t.intermediate_values) == 4 for t in trials[:4])
    assert sorted(trials[4].intermediate_values) == [0, 1]
    assert trials[4].intermediate_values[1] > trials[0].intermediate_values[1]
    assert result.details["pruned"] == 1 and result.details["pruner"] == "MedianPruner"
    assert result.trajectory[4].note == "pruned"
