"""The dynamics against the reference outputs of the original Predify (tests/data/golden).

Each case is run through the fast analytic decoder path (the decoders are plain
ConvTranspose2d/ReLU/Upsample stacks) and through the decoder-generic autograd path (each decoder
wrapped in a module the analytic path does not recognise), with gradients disabled and enabled,
through ``forward`` and through the step API; everything must equal the reference to 1e-5.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

import predify
from predify.decoder_layers import analytic_layers
from testkit import GOLDEN_DIR, GoldenNet, golden_pnet, load_case

CASES = ["case_a", "case_b"]
TIMESTEPS = 6
ATOL = 1e-5


@pytest.fixture(scope="module", params=CASES)
def case(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return request.param, load_case(request.param)


def assert_matches_golden(output: predify.PNetOutput, data: dict[str, Any]) -> None:
    def close(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
        torch.testing.assert_close(
            actual.detach(), expected, atol=ATOL, rtol=0, msg=lambda m: f"{what}: {m}"
        )

    close(output.logits, data["logits"], "logits")
    assert output.reps is not None and output.preds is not None and output.errors is not None
    assert len(output.reps) == len(data["reps"])
    assert len(output.preds) == len(data["preds"])
    for index, (rep, expected) in enumerate(zip(output.reps, data["reps"], strict=True)):
        close(rep, expected, f"reps[{index}]")
    for index, (pred, expected) in enumerate(zip(output.preds, data["preds"], strict=True)):
        close(pred, expected, f"preds[{index}]")
    close(output.errors, data["errors"], "errors")


@pytest.mark.parametrize("generic", [False, True], ids=["analytic", "generic"])
@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
def test_forward_matches_golden(
    case: tuple[str, dict[str, Any]], generic: bool, grad: bool
) -> None:
    name, data = case
    pnet = golden_pnet(name, generic=generic)
    analytic = [analytic_layers(pcoder.decoder) is not None for pcoder in pnet.pcoders]
    assert analytic == [not generic] * len(pnet.pcoders), "the test does not take the path it names"
    with torch.set_grad_enabled(grad):
        output = pnet(data["input"], timesteps=TIMESTEPS, record=True)
    assert output.logits.shape == data["logits"].shape
    assert output.logits.requires_grad == grad
    assert_matches_golden(output, data)


@pytest.mark.parametrize("generic", [False, True], ids=["analytic", "generic"])
def test_step_api_matches_golden(case: tuple[str, dict[str, Any]], generic: bool) -> None:
    name, data = case
    pnet = golden_pnet(name, generic=generic)
    with torch.no_grad():
        state = pnet.start(data["input"])
        states = [state]
        for _ in range(TIMESTEPS):
            state = pnet.step(state)
            states.append(state)
    for t, state in enumerate(states):
        assert state.timestep == t
        torch.testing.assert_close(state.logits, data["logits"][t], atol=ATOL, rtol=0)
        for index in range(len(pnet.pcoders)):
            torch.testing.assert_close(state.reps[index], data["reps"][index][t], atol=ATOL, rtol=0)
            prediction = state.preds[index]
            assert prediction is not None
            torch.testing.assert_close(prediction, data["preds"][index][t], atol=ATOL, rtol=0)
        assert state.errors is not None
        torch.testing.assert_close(state.errors, data["errors"][t], atol=ATOL, rtol=0)


def test_step_api_leaves_its_input_state_unchanged(case: tuple[str, dict[str, Any]]) -> None:
    name, data = case
    pnet = golden_pnet(name)
    with torch.no_grad():
        state = pnet.start(data["input"])
        reps = [r.clone() for r in state.reps]
        pnet.step(state)
        again = pnet.step(state)
    for before, after in zip(reps, state.reps, strict=True):
        assert torch.equal(before, after)
    torch.testing.assert_close(again.logits, data["logits"][1], atol=ATOL, rtol=0)


def test_logits_without_record_match_golden(case: tuple[str, dict[str, Any]]) -> None:
    name, data = case
    pnet = golden_pnet(name)
    with torch.no_grad():
        output = pnet(data["input"], timesteps=TIMESTEPS)
    assert output.reps is None and output.preds is None and output.errors is None
    torch.testing.assert_close(output.logits, data["logits"], atol=ATOL, rtol=0)


def test_decoder_modules_match_golden(case: tuple[str, dict[str, Any]]) -> None:
    name, data = case
    pnet = golden_pnet(name)
    assert [repr(pcoder.decoder) for pcoder in pnet.pcoders] == data["decoder_modules"]
    for pcoder, state in zip(pnet.pcoders, data["decoder_states"], strict=True):
        assert list(pcoder.decoder.state_dict()) == list(state)


def test_case_b_c_sqrt() -> None:
    data = load_case("case_b")
    pnet = golden_pnet("case_b")
    c_sqrt = [pcoder.c_sqrt for pcoder in pnet.pcoders]
    torch.testing.assert_close(
        torch.tensor(c_sqrt, dtype=data["C_sqrt"].dtype), data["C_sqrt"], atol=ATOL, rtol=0
    )
    assert c_sqrt == pytest.approx([math.sqrt(108), math.sqrt(288), math.sqrt(144)], abs=1e-9)
    assert all(pcoder.gradient_scaling for pcoder in pnet.pcoders)


def test_case_a_has_no_gradient_scaling() -> None:
    pnet = golden_pnet("case_a")
    assert not any(pcoder.gradient_scaling for pcoder in pnet.pcoders)


@pytest.mark.parametrize("name", CASES)
def test_golden_tomls_parse(name: str) -> None:
    data = load_case(name)
    config = predify.load_config(GOLDEN_DIR / f"{name}.toml")
    assert config == predify.PNetConfig.from_json(data["config"])
    assert config.input_size == tuple(data["config"]["input_size"])
    assert config.gradient_scaling == data["config"]["gradient_scaling"]
    assert [p.module for p in config.pcoders] == [p["module"] for p in data["config"]["pcoders"]]
    assert [p.predictor for p in config.pcoders] == [
        p.get("predictor") for p in data["config"]["pcoders"]
    ]
    for index, raw in enumerate(data["config"]["pcoders"]):
        assert config.hyperparameters_of(index).to_json() == raw["hyperparameters"]


@pytest.mark.parametrize("name", CASES)
def test_golden_config_dict_builds_the_same_network(name: str) -> None:
    data = load_case(name)
    backbone = GoldenNet()
    backbone.load_state_dict(data["backbone_state"])
    pnet = predify.predify(backbone, data["config"])
    for pcoder, state in zip(pnet.pcoders, data["decoder_states"], strict=True):
        pcoder.decoder.load_state_dict(state, strict=True)
    with torch.no_grad():
        output = pnet(data["input"], timesteps=TIMESTEPS, record=True)
    assert_matches_golden(output, data)
