"""Module paths, the build-time dry run, and the promise to leave no trace on the user's backbone.

No hook, attribute, buffer value or training flag of the backbone may change because it was
predified or run: after building, after forward calls, after exceptions raised while building or
inside a call, and after the predictive network is deleted.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn.modules import module as module_globals

import predify
from predify import ConfigError, DataError
from predify.submodules import canonical_path, resolve_module
from testkit import GOLDEN_DIR, GoldenNet


class Block(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)) + x)


class Tiny(nn.Module):
    """Nested Sequentials, a ModuleList of Sequentials, named blocks and BatchNorm."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.layer2 = nn.Sequential(Block(8), Block(8))
        self.blocks = nn.ModuleList(
            [
                nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU()),
                nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16)),
                nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.ReLU()),
            ]
        )
        self.layer4 = nn.Conv2d(16, 32, 3, padding=1)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 5))
        self.fail = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer2(self.features(x))
        for block in self.blocks:
            x = block(x)
        if self.fail:
            raise RuntimeError("backbone failure inside the call")
        return self.head(self.layer4(x))


TINY_MODULES = ["features[3]", "layer2.1", "blocks[1][1]", "layer4"]


def tiny_config(modules: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "input_size": [3, 16, 16],
        "pcoders": [{"module": m} for m in modules or TINY_MODULES],
        **extra,
    }


def randomise_batchnorm(model: nn.Module) -> None:
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
                module.num_batches_tracked.fill_(7)


# ---------------------------------------------------------------------- resolve_module
@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("features[3]", lambda m: m.features[3]),
        ("features.3", lambda m: m.features[3]),
        (" features[ 3 ] ", lambda m: m.features[3]),
        ("features[-1]", lambda m: m.features[3]),
        ("features.-4", lambda m: m.features[0]),
        ("layer2.1", lambda m: m.layer2[1]),
        ("layer2[1]", lambda m: m.layer2[1]),
        ("layer2.1.bn", lambda m: m.layer2[1].bn),
        ("layer2[-2].conv", lambda m: m.layer2[0].conv),
        ("blocks[2][0]", lambda m: m.blocks[2][0]),
        ("blocks.2.0", lambda m: m.blocks[2][0]),
        ("blocks[-1][-1]", lambda m: m.blocks[2][1]),
        ("blocks[1]", lambda m: m.blocks[1]),
        ("layer4", lambda m: m.layer4),
        ("head.2", lambda m: m.head[2]),
    ],
)
def test_resolve_module(path: str, expected: Callable[[Tiny], nn.Module]) -> None:
    model = Tiny()
    assert resolve_module(model, path) is expected(model)


def test_canonical_path() -> None:
    assert canonical_path("features[3]") == "features.3"
    assert canonical_path("blocks[2][0]") == "blocks.2.0"
    assert canonical_path("layer2.1") == "layer2.1"
    assert canonical_path("features[-1]") == "features.-1"


@pytest.mark.parametrize(
    ("path", "nearest"),
    [
        ("layr2", "layer2"),
        ("layer2.5", "layer2.1"),
        ("features[4]", "features.3"),
        ("features[-5]", "features.3"),
        ("blocks[3][0]", "blocks.2"),
        ("blocks[2][2]", "blocks.2.1"),
        ("layer4.weight", "layer4"),
        ("missing", "features"),
    ],
)
def test_unknown_path_names_path_and_nearest(path: str, nearest: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_module(Tiny(), path)
    message = str(info.value)
    assert repr(path) in message
    assert "nearest" in message and nearest in message, message


@pytest.mark.parametrize("path", ["", "features..3", "features[3", "layer2.1 x", "a-b"])
def test_malformed_path(path: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_module(Tiny(), path)
    assert repr(path) in str(info.value)


def test_unknown_module_in_config_names_the_pcoder() -> None:
    with pytest.raises(ConfigError) as info:
        predify.predify(Tiny(), tiny_config(["features[3]", "layer2.7"]))
    message = str(info.value)
    assert "pcoders[1].module" in message and "'layer2.7'" in message and "layer2.1" in message


# ---------------------------------------------------------------------- dry-run checks
class SharedActivation(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.act(self.conv1(x))))


def test_module_that_runs_twice() -> None:
    config = {"input_size": [3, 8, 8], "pcoders": [{"module": "conv1"}, {"module": "act"}]}
    with pytest.raises(ConfigError) as info:
        predify.predify(SharedActivation(), config)
    message = str(info.value)
    assert "pcoders[1]" in message and "'act'" in message and "2 times" in message


def test_pcoders_out_of_order() -> None:
    with pytest.raises(ConfigError) as info:
        predify.predify(Tiny(), tiny_config(["layer2.1", "features[3]", "layer4"]))
    message = str(info.value)
    assert "bottom first" in message and "features[3]" in message and "layer2.1" in message


def test_module_returning_non_tensor() -> None:
    class TupleOut(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x, x

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.split = TupleOut()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.split(self.conv(x))[0]

    config = {"input_size": [3, 8, 8], "pcoders": [{"module": "conv"}, {"module": "split"}]}
    with pytest.raises(ConfigError, match=r"pcoders\[1\].*'split'.*tuple"):
        predify.predify(Net(), config)


def test_backbone_failing_on_input_size() -> None:
    with pytest.raises(ConfigError) as info:
        predify.predify(Tiny(), tiny_config(input_size=[4, 16, 16]))
    assert "input_size" in str(info.value) and "[4, 16, 16]" in str(info.value)


@pytest.mark.parametrize("alias", ["features.2", "features[-6]", " features[2] "])
def test_same_module_under_two_spellings_is_a_duplicate(alias: str) -> None:
    """Two pcoders on one module would update its output twice; config validation compares the
    strings, so the builder must compare the resolved modules."""
    config = {
        "input_size": [3, 32, 32],
        "pcoders": [
            {"module": "features[2]", "predictor": "ConvTranspose2d(8, 3, 4, stride=2, padding=1)"},
            {"module": alias, "predictor": "ConvTranspose2d(8, 8, 3, padding=1)"},
        ],
    }
    with pytest.raises(ConfigError) as info:
        predify.predify(GoldenNet(), config)
    assert "pcoders[1]" in str(info.value)


# ---------------------------------------------------------------------- no trace on the backbone
def hook_dicts(module: nn.Module) -> dict[str, dict[Any, Any]]:
    return {
        name: dict(value)
        for name, value in vars(module).items()
        if "hook" in name and isinstance(value, dict)
    }


def snapshot(model: nn.Module) -> dict[str, Any]:
    """Per submodule: its attribute names, hook dicts, training flag and tensor values."""
    return {
        name: (
            sorted(vars(module)),
            hook_dicts(module),
            module.training,
            {k: v.detach().clone() for k, v in module.state_dict(keep_vars=True).items()}
            if not list(module.children())
            else {},
        )
        for name, module in model.named_modules()
    }


def assert_no_trace(model: nn.Module, before: dict[str, Any]) -> None:
    for name, module in model.named_modules():
        assert not module._forward_hooks, f"{name}: forward hook left"
        assert not module._forward_pre_hooks, f"{name}: forward pre-hook left"
        assert not module._backward_hooks, f"{name}: backward hook left"
        assert not module._backward_pre_hooks, f"{name}: backward pre-hook left"
    for hooks in (
        module_globals._global_forward_hooks,
        module_globals._global_forward_pre_hooks,
        module_globals._global_backward_hooks,
        module_globals._global_backward_pre_hooks,
    ):
        assert not hooks
    after = snapshot(model)
    assert after.keys() == before.keys()
    for name, (attrs, hooks, training, tensors) in before.items():
        attrs_now, hooks_now, training_now, tensors_now = after[name]
        assert attrs_now == attrs, f"{name}: attributes changed"
        assert hooks_now == hooks, f"{name}: hooks changed"
        assert training_now == training, f"{name}: training flag changed"
        assert tensors_now.keys() == tensors.keys()
        for key, value in tensors.items():
            assert torch.equal(tensors_now[key], value), f"{name}.{key} changed"


@pytest.fixture
def tiny() -> tuple[Tiny, dict[str, Any]]:
    torch.manual_seed(0)
    model = Tiny()
    randomise_batchnorm(model)
    model.eval()
    model.layer2[1].train()  # mixed flags must be restored one by one
    return model, snapshot(model)


def test_no_trace_after_building_and_calls(tiny: tuple[Tiny, dict[str, Any]]) -> None:
    model, before = tiny
    pnet = predify.predify(model, tiny_config())
    assert pnet.backbone is model
    assert_no_trace(model, before)

    model.eval()
    before = snapshot(model)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        pnet(x, timesteps=2)
        pnet(x, timesteps=1, record=True)
        state = pnet.step(pnet.start(x))
        pnet.step(state, with_predictions=False)
    assert_no_trace(model, before)
    pnet(x, timesteps=2).logits[-1].sum().backward()
    model.zero_grad(set_to_none=True)
    assert_no_trace(model, before)


def test_no_trace_after_exceptions_inside_calls(tiny: tuple[Tiny, dict[str, Any]]) -> None:
    model, _ = tiny
    model.eval()
    pnet = predify.predify(model, tiny_config())
    before = snapshot(model)
    with pytest.raises(DataError):
        pnet(torch.randn(2, 4, 16, 16), timesteps=2)  # wrong channels
    assert_no_trace(model, before)
    with pytest.raises(Exception):  # noqa: B017 - any error, hooks must be gone after it
        pnet(torch.randn(2, 3, 14, 14), timesteps=2)  # wrong spatial size
    assert_no_trace(model, before)
    with torch.no_grad():
        state = pnet.start(torch.randn(2, 3, 16, 16))
    model.fail = True
    for call in (
        lambda: pnet(torch.randn(2, 3, 16, 16), timesteps=2),
        lambda: pnet.step(state),
        lambda: pnet.start(torch.randn(1, 3, 16, 16)),
    ):
        with pytest.raises(RuntimeError, match="backbone failure"):
            call()
        model.fail = True
        assert_no_trace(model, before)
    model.fail = False
    with torch.no_grad():
        pnet(torch.randn(2, 3, 16, 16), timesteps=1)  # still works afterwards
    assert_no_trace(model, before)


@pytest.mark.parametrize(
    "config",
    [
        tiny_config(["layer2.1", "features[3]"]),  # out of order: fails inside the dry run
        tiny_config(["features[3]", "layer2.9"]),  # unknown module: fails before it
        {  # decoder of the wrong shape: fails after the dry run
            "input_size": [3, 16, 16],
            "pcoders": [
                {"module": "features[3]", "predictor": "ConvTranspose2d(8, 3, 3, padding=1)"}
            ],
        },
        {  # invalid predictor string
            "input_size": [3, 16, 16],
            "pcoders": [{"module": "features[3]", "predictor": "os.system('x')"}],
        },
        {  # a module that runs twice
            "input_size": [3, 16, 16],
            "pcoders": [{"module": "layer2.0.conv"}, {"module": "layer2.0.relu"}],
        },
    ],
    ids=["order", "unknown", "decoder_shape", "predictor", "runs_twice"],
)
def test_no_trace_after_failed_build(
    tiny: tuple[Tiny, dict[str, Any]], config: dict[str, Any]
) -> None:
    model, before = tiny
    if config["pcoders"][-1]["module"] == "layer2.0.relu":
        # make layer2.0.relu run twice
        model.layer2[1].relu = model.layer2[0].relu
        before = snapshot(model)
    with pytest.raises(ConfigError):
        predify.predify(model, config)
    assert_no_trace(model, before)


def test_no_trace_after_backbone_error_during_build(tiny: tuple[Tiny, dict[str, Any]]) -> None:
    model, before = tiny
    model.fail = True
    before = snapshot(model)
    with pytest.raises(ConfigError, match="backbone failure"):
        predify.predify(model, tiny_config())
    assert_no_trace(model, before)
    with pytest.raises(ConfigError, match="backbone failure"):
        predify.auto_config(model, (3, 16, 16), TINY_MODULES)
    assert_no_trace(model, before)


def test_no_trace_and_no_reference_after_delete(tiny: tuple[Tiny, dict[str, Any]]) -> None:
    model, _ = tiny
    model.eval()
    before = snapshot(model)
    pnet = predify.predify(model, tiny_config())
    with torch.no_grad():
        pnet(torch.randn(1, 3, 16, 16), timesteps=2)
    ref = weakref.ref(pnet)
    del pnet
    gc.collect()
    assert ref() is None, "something still references the PredictiveNet"
    # The backbone is an ordinary module again: it runs and can be predified again.
    assert_no_trace(model, before)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 16, 16)).shape == (1, 5)
    predify.predify(model, tiny_config())
    assert_no_trace(model, before)


def test_no_trace_on_golden_backbone() -> None:
    model = GoldenNet()
    before = snapshot(model)
    pnet = predify.predify(model, GOLDEN_DIR / "case_b.toml")
    assert_no_trace(model, before)
    with torch.no_grad():
        pnet(torch.randn(1, 3, 32, 32), timesteps=3, record=True)
    assert_no_trace(model, before)


def test_building_keeps_batchnorm_stats_and_flags(tiny: tuple[Tiny, dict[str, Any]]) -> None:
    model, _ = tiny
    model.train()  # training mode: a forward pass would update the running statistics
    model.layer2[0].bn.eval()
    before = snapshot(model)
    config = predify.auto_config(model, (3, 16, 16), TINY_MODULES)
    assert_no_trace(model, before)
    predify.predify(model, config)
    assert_no_trace(model, before)
    assert model.training and not model.layer2[0].bn.training and model.layer2[1].bn.training
    bn = model.features[1]
    assert int(bn.num_batches_tracked) == 7


def test_decoders_are_built_in_training_mode_with_flags_kept() -> None:
    model = Tiny()
    config = tiny_config()
    config["pcoders"][0]["predictor"] = (
        "Sequential(Upsample(scale_factor=2), ConvTranspose2d(8, 3, 3, padding=1), BatchNorm2d(3))"
    )
    pnet = predify.predify(model, config)
    decoder = pnet.pcoders[0].decoder
    assert all(m.training for m in decoder.modules())
    assert int(decoder[2].num_batches_tracked) == 0
    assert torch.equal(decoder[2].running_mean, torch.zeros(3))
