"""The dynamics on real architectures: memory, gradients, hyperparameters, shape errors, in-place
ops, gradient scaling, and the torchvision models the library promises to support.

Models are kept small (64x64 inputs, batch 2) so that the file runs in seconds on two CPU cores.
"""

from __future__ import annotations

import gc
import math
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
import torchvision
from torch import nn

import predify
from predify import ConfigError, DataError, Hyperparameters
from predify.fan_out import decoder_fan_out
from testkit import GOLDEN_DIR, GoldenNet, golden_pnet, load_case, make_generic

RESNET_MODULES = ["maxpool", "layer1", "layer2", "layer3", "layer4"]
SIZE = (3, 64, 64)


def resnet18_pnet(seed: int = 0, **kwargs: Any) -> predify.PredictiveNet:
    torch.manual_seed(seed)
    backbone = torchvision.models.resnet18(weights=None).eval()
    config = predify.auto_config(backbone, SIZE, RESNET_MODULES, **kwargs)
    return predify.predify(backbone, config).eval()


class VGGish(nn.Module):
    """VGG-like: the pcoder modules are ReLU(inplace=True), followed by in-place ops that change
    the values (Hardtanh clamps at 0.05), so an unprotected representation would be corrupted."""

    def __init__(self, inplace: bool = True) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(inplace=inplace),  # 1: pcoder
            nn.Hardtanh(0.0, 0.05, inplace=inplace),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(inplace=inplace),  # 5: pcoder
            nn.Hardtanh(0.0, 0.05, inplace=inplace),
            nn.Conv2d(16, 16, 3, padding=1),
            nn.ReLU(inplace=inplace),  # 8: pcoder
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


VGG_MODULES = ["features[1]", "features[5]", "features[8]"]
VGG_SIZE = (3, 16, 16)


def vggish_pair() -> tuple[predify.PredictiveNet, predify.PredictiveNet]:
    """The same weights with in-place and out-of-place activations."""
    torch.manual_seed(0)
    inplace, plain = VGGish(True).eval(), VGGish(False).eval()
    plain.load_state_dict(inplace.state_dict())
    config = predify.auto_config(inplace, VGG_SIZE, VGG_MODULES)
    pnet_inplace = predify.predify(inplace, config).eval()
    pnet_plain = predify.predify(plain, config).eval()
    pnet_plain.pcoders.load_state_dict(pnet_inplace.pcoders.state_dict())
    return pnet_inplace, pnet_plain


# ---------------------------------------------------------------------- (a) memory
@contextmanager
def liveness_probe(
    pnet: predify.PredictiveNet, x: torch.Tensor, force_hooks: bool = False
) -> Iterator[list[list[int]]]:
    """At the start of every backbone pass k, count per pass j <= k - 2 its tensors still alive.

    Weak references are taken to every tensor flowing into and out of each backbone leaf module
    (the feed-forward drives, the representations returned by the pcoders, everything computed
    from them) and to every decoder submodule's output (the predictions and their intermediates),
    grouped by pass. The input and each pass's logits (which the output must keep) are excluded.
    ``force_hooks`` runs the backbone through temporary hooks instead of the traced program.
    """
    passes: list[list[weakref.ref[torch.Tensor]]] = []
    stale: list[list[int]] = []
    excluded: set[int] = set()

    def track(tensor: Any) -> None:
        if isinstance(tensor, torch.Tensor) and tensor is not x and passes:
            passes[-1].append(weakref.ref(tensor))

    def on_pass_start(module: nn.Module, inputs: Any) -> None:
        stale.append(
            [
                sum(1 for r in group if r() is not None and id(r()) not in excluded)
                for group in passes[:-1]
            ]
        )
        passes.append([])

    def on_pass_end(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        excluded.add(id(output))
        passes[-1] = [r for r in passes[-1] if r() is not output]

    # A pass starts with the backbone's first leaf module and ends with its last (whose output
    # is the logits): hooks on leaves fire on the traced path and on the hook path alike.
    leaves = [module for module in pnet.backbone.modules() if not list(module.children())]
    handles = [leaves[0].register_forward_pre_hook(on_pass_start)]

    def track_inputs(module: nn.Module, inputs: tuple[Any, ...]) -> None:
        for tensor in inputs:
            track(tensor)

    def track_output(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        track(output)

    for module in pnet.backbone.modules():
        if not list(module.children()):
            handles.append(module.register_forward_pre_hook(track_inputs))
            handles.append(module.register_forward_hook(track_output))
    for pcoder in pnet.pcoders:
        for module in pcoder.decoder.modules():
            handles.append(module.register_forward_hook(track_output))
    handles.append(leaves[-1].register_forward_hook(on_pass_end))  # after track_output
    if force_hooks:
        handles.append(pnet.backbone.register_forward_pre_hook(lambda module, inputs: None))
    assert pnet.traced != force_hooks, "the probe does not test the path it names"
    # The cyclic garbage collector is off during the call: a tensor must be freed by reference
    # counting as soon as it is no longer needed. (One caught in a reference cycle would wait for
    # a collection, which CPython triggers by object counts, not bytes: a real leak for big
    # activations.) The check is also deterministic this way.
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield stale
    finally:
        if was_enabled:
            gc.enable()
        for handle in handles:
            handle.remove()
    # After the call returns, nothing from any pass is alive.
    alive = [r for group in passes for r in group if r() is not None]
    assert not [r for r in alive if id(r()) not in excluded], "tensors outlive the forward call"


def memory_case(model: str) -> tuple[predify.PredictiveNet, torch.Tensor]:
    if model == "resnet18":
        return resnet18_pnet(), torch.randn(2, *SIZE)
    return vggish_pair()[0], torch.randn(2, *VGG_SIZE)


@pytest.mark.parametrize("force_hooks", [False, True], ids=["traced", "hooks"])
@pytest.mark.parametrize("model", ["resnet18", "vggish"])
def test_no_grad_memory_does_not_grow_with_timesteps(model: str, force_hooks: bool) -> None:
    """Under no_grad with record=False, a pass must not keep the tensors of earlier timesteps.

    Method: torch's CPU allocations are invisible to tracemalloc, and RSS is process-global and
    noisy, so the test checks the cause instead of the symptom. Weak references to every
    intermediate tensor are grouped by backbone pass (see :func:`liveness_probe`); at the start of
    pass k every tensor computed in passes 1 .. k - 2 must already be freed (the state of pass
    k - 1 is legitimately alive: it feeds pass k). An implementation that stored the
    representations, predictions or error gradients of every timestep (or kept autograd graphs
    alive) would leave them alive and fail; when nothing older than one pass survives, the peak
    memory of a call is bounded independently of T (apart from the [T+1, B, K] logits, which the
    output holds by contract). The feed-forward pass (t = 0) is checked by the next test.
    """
    pnet, x = memory_case(model)
    for timesteps in (3, 12):
        with torch.no_grad(), liveness_probe(pnet, x, force_hooks) as stale:
            pnet(x, timesteps=timesteps)
        assert len(stale) == timesteps + 1
        for k, counts in enumerate(stale):
            assert counts[1:] == [0] * len(counts[1:]), f"pass {k}: alive per old pass {counts}"
        # Whatever is kept of t = 0 does not grow either.
        assert len({counts[0] for counts in stale[2:]}) <= 1, stale


@pytest.mark.parametrize("force_hooks", [False, True], ids=["traced", "hooks"])
@pytest.mark.parametrize("model", ["resnet18", "vggish"])
def test_no_grad_forward_frees_the_feedforward_state(model: str, force_hooks: bool) -> None:
    """Same check for the t = 0 pass: with record=False its representations and predictions are
    not needed after t = 1, so they must be freed by t = 2 like those of any other pass."""
    pnet, x = memory_case(model)
    with torch.no_grad(), liveness_probe(pnet, x, force_hooks) as stale:
        pnet(x, timesteps=4)
    assert [counts[0] for counts in stale[2:]] == [0, 0, 0], f"alive per old pass: {stale}"


def test_step_api_frees_old_states() -> None:
    pnet = resnet18_pnet()
    x = torch.randn(2, *SIZE)
    with torch.no_grad():
        state = pnet.start(x)
        refs = [weakref.ref(t) for t in (*state.reps, *state.preds, *state.error_terms)]
        assert all(r() is not None for r in refs)
        state = pnet.step(state)
        state = pnet.step(state)
    gc.collect()
    assert all(r() is None for r in refs), "a step keeps references to earlier states"


# ---------------------------------------------------------------------- (b) gradients
def test_gradients_flow_to_input_decoders_and_hyperparameters() -> None:
    pnet = resnet18_pnet()
    pnet.set_hyperparameters_learnable(True)
    hyper = pnet.hyperparameter_parameters()
    assert len(hyper) == 2 * len(pnet.pcoders)
    x = torch.randn(2, *SIZE).requires_grad_()
    output = pnet(x, timesteps=2)
    output.logits[-1].sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for index, pcoder in enumerate(pnet.pcoders):
        for name, parameter in pcoder.decoder.named_parameters():
            assert parameter.grad is not None, f"pcoders[{index}].decoder.{name}: no gradient"
            assert torch.isfinite(parameter.grad).all()
            assert parameter.grad.abs().sum() > 0, f"pcoders[{index}].decoder.{name}: zero grad"
    for index, pcoder in enumerate(pnet.pcoders):
        hp = pcoder.hyperparameters
        assert hp.mixing_logits is not None and hp.pc_raw is not None
        assert hp.mixing_logits.grad is not None and hp.mixing_logits.grad.abs().sum() > 0, index
        assert hp.pc_raw.grad is not None and hp.pc_raw.grad.abs() > 0, index


def test_gradients_with_fixed_hyperparameters_match_generic_path() -> None:
    torch.manual_seed(3)
    x = torch.randn(2, 3, 32, 32)
    grads = []
    for generic in (False, True):
        pnet = golden_pnet("case_b", generic=generic)
        xi = x.clone().requires_grad_()
        pnet(xi, timesteps=3).logits[-1].pow(2).sum().backward()
        grads.append([xi.grad, *(p.grad for p in pnet.decoder_parameters())])
    for analytic, generic in zip(*grads, strict=True):
        torch.testing.assert_close(analytic, generic, atol=1e-6, rtol=1e-4)


GRADCHECK_CONFIG = {
    "input_size": [3, 8, 8],
    # Gradient scaling with c_sqrt = 2 makes the error-gradient term large (alpha * 2 / 2 = 0.3),
    # so a wrongly differentiated (or detached) second-order term cannot hide in the tolerance.
    "gradient_scaling": True,
    "pcoders": [
        {
            "module": "features[2]",
            "predictor": "ConvTranspose2d(8, 3, 4, stride=2, padding=1)",
            "c_sqrt": 2.0,
            "hyperparameters": {"feedforward": 0.4, "feedback": 0.3, "pc": 0.3},
        },
        {
            "module": "features[5]",
            "predictor": "Sequential(ConvTranspose2d(16, 8, 4, stride=2, padding=1), ReLU())",
            "c_sqrt": 2.0,
            "hyperparameters": {"feedforward": 0.5, "feedback": 0.2, "pc": 0.3},
        },
        {
            "module": "features[7]",
            "predictor": "Sequential(Upsample(scale_factor=2, mode='bilinear'), "
            "Conv2d(32, 16, 3, stride=2, padding=1), ReLU())",
            "c_sqrt": 2.0,
            "hyperparameters": {"feedforward": 0.6, "feedback": 0.0, "pc": 0.3},
        },
    ],
}


def gradcheck_pnet(generic: bool) -> predify.PredictiveNet:
    torch.manual_seed(5)
    pnet = predify.predify(GoldenNet().double(), GRADCHECK_CONFIG)
    assert all(p.dtype == torch.float64 for p in pnet.parameters())
    return make_generic(pnet) if generic else pnet


@pytest.mark.parametrize("generic", [False, True], ids=["analytic", "generic"])
def test_gradcheck_through_the_dynamics(generic: bool) -> None:
    pnet = gradcheck_pnet(generic)
    torch.manual_seed(6)
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64, requires_grad=True)

    def run(inp: torch.Tensor) -> torch.Tensor:
        output = pnet(inp, timesteps=2, record=True)
        assert output.reps is not None
        return torch.cat([output.logits[-1].flatten(), output.reps[0][-1].flatten()[:16]])

    assert torch.autograd.gradcheck(run, (x,), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_gradcheck_is_sensitive_to_the_second_order_term(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the error-gradient term detached, the Jacobian must differ clearly from the true one:
    otherwise the gradchecks above could not detect a wrong second-order term."""
    pnet = gradcheck_pnet(False)
    torch.manual_seed(6)
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64)

    def jacobian() -> torch.Tensor:
        return torch.autograd.functional.jacobian(
            lambda inp: pnet(inp, timesteps=2).logits[-1].flatten(), x
        )

    true = jacobian()
    original = predify.PCoder.predict

    def detached(self: predify.PCoder, rep: torch.Tensor, target: torch.Tensor) -> Any:
        prediction, difference, term = original(self, rep, target)
        return prediction, difference, term.detach()

    monkeypatch.setattr(predify.PCoder, "predict", detached)
    wrong = jacobian()
    assert (true - wrong).abs().max() > 1e-3 * true.abs().max()


# ---------------------------------------------------------------------- (c) learnable values
def assert_valid(pnet: predify.PredictiveNet) -> None:
    for index, pcoder in enumerate(pnet.pcoders):
        beta, lam, memory, alpha = (float(w.detach()) for w in pcoder.hyperparameters.weights())
        for name, value in (("beta", beta), ("lambda", lam), ("memory", memory)):
            assert 0.0 <= value <= 1.0, f"pcoders[{index}] {name} = {value}"
        assert beta + lam + memory == pytest.approx(1.0, abs=1e-6)
        assert alpha >= 0.0 and math.isfinite(alpha)
        if not pcoder.has_feedback:
            assert lam == 0.0


def test_learnable_hyperparameters_stay_valid_after_large_steps() -> None:
    data = load_case("case_a")
    pnet = golden_pnet("case_a")
    pnet.set_hyperparameters_learnable(True)
    parameters = pnet.hyperparameter_parameters()
    optimizer = torch.optim.SGD(parameters, lr=50.0)
    generator = torch.Generator().manual_seed(0)
    for step in range(20):
        optimizer.zero_grad()
        if step % 2 == 0:
            loss = pnet(data["input"], timesteps=2).logits[-1].pow(2).sum() * 1e3
            loss.backward()
        else:
            for parameter in parameters:
                parameter.grad = torch.randn(parameter.shape, generator=generator) * 1e3
        optimizer.step()
        assert_valid(pnet)
        with torch.no_grad():
            assert torch.isfinite(pnet(data["input"], timesteps=2).logits).all()


@pytest.mark.parametrize("name", ["case_a", "case_b"])
def test_values_survive_learnable_round_trip(name: str) -> None:
    pnet = predify.predify(GoldenNet(), GOLDEN_DIR / f"{name}.toml")
    before = pnet.hyperparameter_values()
    pnet.set_hyperparameters_learnable(True)
    assert_valid(pnet)
    during = pnet.hyperparameter_values()
    pnet.set_hyperparameters_learnable(False)
    after = pnet.hyperparameter_values()
    assert pnet.hyperparameter_parameters() == []
    for values in (during, after):
        for expected, actual in zip(before, values, strict=True):
            assert actual.feedforward == pytest.approx(expected.feedforward, abs=1e-5)
            assert actual.feedback == pytest.approx(expected.feedback, abs=1e-5)
            assert actual.pc == pytest.approx(expected.pc, abs=1e-5)


def test_learnable_dynamics_equal_fixed_dynamics() -> None:
    data = load_case("case_a")
    pnet = golden_pnet("case_a")
    pnet.set_hyperparameters_learnable(True)
    with torch.no_grad():
        logits = pnet(data["input"], timesteps=6).logits
    torch.testing.assert_close(logits, data["logits"], atol=1e-4, rtol=0)


# ---------------------------------------------------------------------- (d) input errors
def test_wrong_channels_is_a_data_error() -> None:
    pnet = resnet18_pnet()
    with pytest.raises(DataError) as info:
        pnet(torch.randn(2, 1, 64, 64), timesteps=1)
    message = str(info.value)
    assert "3 channels" in message and "[2, 1, 64, 64]" in message
    with pytest.raises(DataError, match="shape"):
        pnet(torch.randn(3, 64, 64), timesteps=1)
    with pytest.raises(DataError, match="floating"):
        pnet(torch.zeros(2, 3, 64, 64, dtype=torch.long), timesteps=1)


@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
def test_wrong_spatial_size_names_pcoder_and_shapes(grad: bool) -> None:
    """72x72 into a resnet18 built for 64x64: layer3 is 5x5, its decoder upsamples to 10x10, but
    layer2 is 9x9. The error must be a DataError naming the pcoder and both shapes."""
    pnet = resnet18_pnet()
    with torch.set_grad_enabled(grad), pytest.raises(DataError) as info:
        pnet(torch.randn(2, 3, 72, 72), timesteps=2)
    message = str(info.value)
    assert "pcoders[3]" in message and "layer3" in message
    assert "[128, 10, 10]" in message and "[128, 9, 9]" in message


def test_other_sizes_that_fit_the_decoders_run() -> None:
    pnet = resnet18_pnet()
    with torch.no_grad():
        logits = pnet(torch.randn(1, 3, 96, 96), timesteps=2).logits
    assert logits.shape == (3, 1, 1000)


def test_negative_timesteps_rejected() -> None:
    pnet = predify.predify(GoldenNet(), GOLDEN_DIR / "case_a.toml")
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="timesteps"):
            pnet(torch.randn(1, 3, 32, 32), timesteps=bad)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- (e) decoder shape at build
def test_decoder_shape_mismatch_at_build() -> None:
    config = predify.load_config(GOLDEN_DIR / "case_a.toml").with_pcoder(
        1,
        predictor="Sequential(ConvTranspose2d(16, 8, kernel_size=3, stride=1, padding=1), ReLU())",
    )
    with pytest.raises(ConfigError) as info:
        predify.predify(GoldenNet(), config)
    message = str(info.value)
    assert "pcoders[1]" in message and "features[5]" in message
    assert "[8, 8, 8]" in message and "[8, 16, 16]" in message


def test_decoder_with_wrong_input_channels_at_build() -> None:
    config = predify.load_config(GOLDEN_DIR / "case_a.toml").with_pcoder(
        2, predictor="ConvTranspose2d(31, 16, 3, padding=1)"
    )
    with pytest.raises(ConfigError) as info:
        predify.predify(GoldenNet(), config)
    assert "pcoders[2].predictor" in str(info.value) and "[32, 8, 8]" in str(info.value)


# ---------------------------------------------------------------------- (f) in-place ops
@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
def test_inplace_ops_after_pcoder_modules_do_not_corrupt_representations(grad: bool) -> None:
    pnet_inplace, pnet_plain = vggish_pair()
    x = torch.randn(2, *VGG_SIZE)
    with torch.set_grad_enabled(grad):
        a = pnet_inplace(x, timesteps=3, record=True)
        b = pnet_plain(x, timesteps=3, record=True)
    # Sanity: the in-place ops really change values, so corruption would show.
    assert (b.reps[0][0] > 0.05).any()
    torch.testing.assert_close(a.logits, b.logits, atol=1e-6, rtol=0)
    for rep_a, rep_b in zip(a.reps, b.reps, strict=True):
        torch.testing.assert_close(rep_a, rep_b, atol=1e-6, rtol=0)
    for pred_a, pred_b in zip(a.preds, b.preds, strict=True):
        torch.testing.assert_close(pred_a, pred_b, atol=1e-6, rtol=0)


def test_inplace_residual_add_after_pcoder_module() -> None:
    """torchvision's BasicBlock does ``out += identity`` on bn2's output, then ReLU(inplace)."""
    torch.manual_seed(0)
    backbone = torchvision.models.resnet18(weights=None).eval()
    modules = ["layer1.0.bn2", "layer1.1.bn2"]
    config = predify.auto_config(backbone, SIZE, modules)
    pnet = predify.predify(backbone, config)
    x = torch.randn(1, *SIZE)
    with torch.no_grad():
        output = pnet(x, timesteps=2, record=True)
        state = pnet.start(x)
        bn2 = backbone.layer1[0].bn2(
            backbone.layer1[0].conv2(
                backbone.layer1[0].relu(
                    backbone.layer1[0].bn1(
                        backbone.layer1[0].conv1(
                            backbone.maxpool(backbone.relu(backbone.bn1(backbone.conv1(x))))
                        )
                    )
                )
            )
        )
    torch.testing.assert_close(state.reps[0], bn2)
    torch.testing.assert_close(output.reps[0][0], bn2)
    assert (bn2 < 0).any()  # the residual add and ReLU would have changed it


class DropoutNet(nn.Module):
    def __init__(self, inplace: bool) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),  # 1: pcoder
            nn.Dropout(0.5, inplace=inplace),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.ReLU(),  # 4: pcoder
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def test_inplace_op_active_only_in_training_mode_does_not_corrupt_representations() -> None:
    """Dropout(inplace=True) writes into its input only in training mode, so a dry run in eval
    mode does not see it; in training mode the stored e_n(t) must still be the pcoder's update,
    as with Dropout(inplace=False) under the same random numbers."""
    torch.manual_seed(0)
    inplace, plain = DropoutNet(True), DropoutNet(False)
    plain.load_state_dict(inplace.state_dict())
    config = predify.auto_config(inplace, (3, 8, 8), ["features[1]", "features[4]"])
    pnet_inplace = predify.predify(inplace, config).train()
    pnet_plain = predify.predify(plain, config).train()
    pnet_plain.pcoders.load_state_dict(pnet_inplace.pcoders.state_dict())
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.manual_seed(1)
        a = pnet_inplace(x, timesteps=2, record=True)
        torch.manual_seed(1)
        b = pnet_plain(x, timesteps=2, record=True)
    torch.testing.assert_close(a.reps[0], b.reps[0])
    torch.testing.assert_close(a.logits, b.logits)


@pytest.mark.parametrize("generic", [False, True], ids=["analytic", "generic"])
def test_inplace_layer_inside_decoder_does_not_corrupt_representation(generic: bool) -> None:
    """d = decoder(e) must not modify e, even when the decoder starts with ReLU(inplace=True)."""

    def config(inplace: bool) -> dict[str, Any]:
        return {
            "input_size": [3, 32, 32],
            "pcoders": [
                {"module": "features[2]", "predictor": "ConvTranspose2d(8, 3, 4, 2, 1)"},
                {  # features[6] is a convolution: its output has negative values
                    "module": "features[6]",
                    "predictor": f"Sequential(ReLU(inplace={inplace}), Upsample(scale_factor=2), "
                    "Conv2d(32, 8, 3, padding=1))",
                },
            ],
        }

    torch.manual_seed(0)
    backbone = GoldenNet()
    a = predify.predify(backbone, config(True))
    b = predify.predify(backbone, config(False))
    b.pcoders.load_state_dict(a.pcoders.state_dict())
    if generic:
        make_generic(a), make_generic(b)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = b(x, timesteps=2, record=True)
        assert (expected.reps[1] < 0).any()
        actual = a(x, timesteps=2, record=True)
    torch.testing.assert_close(actual.reps[1], expected.reps[1])
    torch.testing.assert_close(actual.logits, expected.logits)


# ---------------------------------------------------------------------- (g) c_sqrt
def scaled_golden_a(**changes: Any) -> predify.PNetConfig:
    from dataclasses import replace

    return replace(
        predify.load_config(GOLDEN_DIR / "case_a.toml"), gradient_scaling=True, **changes
    )


def test_c_sqrt_for_decoders_ending_with_relu_is_structural() -> None:
    # features[2] 8@16x16 -> ConvTranspose2d(8, 3, 4, 2, 1): 3 channels x 4x4 = 48
    # features[5] 16@8x8 -> ConvTranspose2d(16, 8, 4, 2, 1) + ReLU: 8 x 4x4 = 128
    # features[7] 32@8x8 -> ConvTranspose2d(32, 16, 3, 1, 1) + ReLU: 16 x 3x3 = 144
    expected = [math.sqrt(48), math.sqrt(128), math.sqrt(144)]
    values = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        pnet = predify.predify(GoldenNet(), scaled_golden_a())
        values.append([pcoder.c_sqrt for pcoder in pnet.pcoders])
    assert values[0] == values[1]
    assert values[0] == pytest.approx(expected, abs=1e-12)
    decoder = pnet.pcoders[1].decoder
    weights = decoder.state_dict()
    assert decoder_fan_out(decoder, (16, 8, 8)) == 128
    for key, value in decoder.state_dict().items():
        assert torch.equal(value, weights[key])  # the probe leaves the decoder unchanged


def test_c_sqrt_can_be_set_and_is_used() -> None:
    torch.manual_seed(0)
    pnet = predify.predify(GoldenNet(), scaled_golden_a())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = pnet(x, timesteps=3).logits
        pnet.pcoders[1].c_sqrt = 5.0
        after = pnet(x, timesteps=3).logits
    assert pnet.pcoders[1].c_sqrt == 5.0
    assert not torch.allclose(before[1:], after[1:], atol=1e-7)
    torch.testing.assert_close(before[0], after[0])
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="c_sqrt"):
            pnet.pcoders[1].c_sqrt = bad
    assert pnet.pcoders[1].c_sqrt == 5.0
    # c_sqrt travels with the state dict.
    torch.manual_seed(0)
    other = predify.predify(GoldenNet(), scaled_golden_a())
    other.load_state_dict(pnet.state_dict())
    assert other.pcoders[1].c_sqrt == 5.0


def test_c_sqrt_in_config_is_honoured() -> None:
    config = scaled_golden_a().with_pcoder(1, c_sqrt=5.0)
    torch.manual_seed(0)
    from_config = predify.predify(GoldenNet(), config)
    torch.manual_seed(0)
    set_later = predify.predify(GoldenNet(), scaled_golden_a())
    set_later.pcoders[1].c_sqrt = 5.0
    assert from_config.pcoders[1].c_sqrt == 5.0
    assert from_config.pcoders[0].c_sqrt == pytest.approx(math.sqrt(48))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            from_config(x, timesteps=3).logits, set_later(x, timesteps=3).logits, atol=0, rtol=0
        )
    assert from_config.resolved_config().pcoders[1].c_sqrt == 5.0


# ---------------------------------------------------------------------- (h) shared hyperparameters
def shared_pnet() -> predify.PredictiveNet:
    torch.manual_seed(0)
    backbone = torchvision.models.resnet18(weights=None).eval()
    config = predify.auto_config(
        backbone,
        SIZE,
        RESNET_MODULES,
        shared_hyperparameters=True,
        hyperparameters=Hyperparameters(0.5, 0.25, 0.01),
    )
    return predify.predify(backbone, config).eval()


def test_shared_hyperparameters_are_one_module() -> None:
    pnet = shared_pnet()
    first = pnet.pcoders[0].hyperparameters
    assert all(pcoder.hyperparameters is first for pcoder in pnet.pcoders)
    pnet.set_hyperparameters_learnable(True)
    assert len(pnet.hyperparameter_parameters()) == 2
    assert all(pcoder.hyperparameters is first for pcoder in pnet.pcoders)
    values = first.values()
    assert values.feedforward == pytest.approx(0.5, abs=1e-5)
    assert values.feedback == pytest.approx(0.25, abs=1e-5)
    x = torch.randn(1, *SIZE)
    pnet(x, timesteps=2).logits[-1].sum().backward()
    assert first.mixing_logits is not None and first.mixing_logits.grad is not None
    # The top pcoder has no feedback term even though the shared lambda is not 0.
    assert not pnet.pcoders[-1].has_feedback


def test_set_hyperparameters_on_shared_module_keeps_feedback() -> None:
    """Setting one value for all pcoders must not zero the shared lambda because the top pcoder
    has no feedback."""
    pnet = shared_pnet()
    pnet.set_hyperparameters(Hyperparameters(0.6, 0.3, 0.02))
    assert all(pcoder.hyperparameters is pnet.pcoders[0].hyperparameters for pcoder in pnet.pcoders)
    for index, values in enumerate(pnet.hyperparameter_values()[:-1]):
        assert values.feedforward == pytest.approx(0.6, abs=1e-6), index
        assert values.feedback == pytest.approx(0.3, abs=1e-6), index
        assert values.pc == pytest.approx(0.02, abs=1e-6), index


def test_set_hyperparameters_per_pcoder() -> None:
    pnet = predify.predify(GoldenNet(), GOLDEN_DIR / "case_a.toml")
    pnet.set_hyperparameters(Hyperparameters(0.5, 0.2, 0.03))
    values = pnet.hyperparameter_values()
    assert values[0].feedback == pytest.approx(0.2) and values[2].feedback == 0.0
    with pytest.raises(ConfigError, match=r"pcoders\[1\]"):
        pnet.set_hyperparameters(
            [Hyperparameters(0.5, 0.2, 0.0), Hyperparameters(0.9, 0.2, 0.0), Hyperparameters()]
        )
    with pytest.raises(ValueError):
        pnet.set_hyperparameters([Hyperparameters()])


# ---------------------------------------------------------------------- (i) auto_config round trip
def test_auto_config_toml_rebuilds_the_same_decoders() -> None:
    torch.manual_seed(0)
    backbone = torchvision.models.resnet18(weights=None).eval()
    config = predify.auto_config(backbone, SIZE, RESNET_MODULES)
    reloaded = predify.PNetConfig.from_toml_string(config.to_toml())
    assert reloaded == config
    a = predify.predify(backbone, config)
    b = predify.predify(backbone, reloaded)
    assert [repr(p.decoder) for p in a.pcoders] == [repr(p.decoder) for p in b.pcoders]
    assert [p.c_sqrt for p in a.pcoders] == [p.c_sqrt for p in b.pcoders]
    b.pcoders.load_state_dict(a.pcoders.state_dict())
    x = torch.randn(1, *SIZE)
    with torch.no_grad():
        torch.testing.assert_close(a(x, timesteps=2).logits, b(x, timesteps=2).logits)


def test_auto_predictor_matches_reference_default() -> None:
    data = load_case("case_b")
    pnet = predify.predify(GoldenNet(), GOLDEN_DIR / "case_b.toml")
    shapes = [(3, 32, 32), (8, 16, 16), (16, 8, 8), (32, 8, 8)]
    for index, pcoder in enumerate(pnet.pcoders):
        text = predify.auto_predictor(shapes[index + 1], shapes[index])
        from predify.parsing import parse_predictor

        assert repr(parse_predictor(text)) == data["decoder_modules"][index]
        assert repr(pcoder.decoder) == data["decoder_modules"][index]


# ---------------------------------------------------------------------- (j) timesteps = 0
@pytest.mark.parametrize("record", [False, True])
def test_zero_timesteps_is_the_plain_backbone(record: bool) -> None:
    pnet = resnet18_pnet()
    x = torch.randn(2, *SIZE)
    with torch.no_grad():
        output = pnet(x, timesteps=0, record=record)
        plain = pnet.backbone(x)
    assert output.logits.shape == (1, 2, 1000)
    torch.testing.assert_close(output.logits[0], plain, atol=0, rtol=0)
    if record:
        assert output.reps is not None and [r.shape[0] for r in output.reps] == [1] * 5
        assert output.preds is not None and output.preds[0].shape == (1, 2, *SIZE)


def test_default_timesteps_from_config() -> None:
    config = predify.load_config(GOLDEN_DIR / "case_a.toml")
    from dataclasses import replace

    pnet = predify.predify(GoldenNet(), replace(config, timesteps=4))
    with torch.no_grad():
        assert pnet(torch.randn(1, 3, 32, 32)).logits.shape == (5, 1, 10)


# ---------------------------------------------------------------------- (k) efficientnet
def test_efficientnet_b0() -> None:
    torch.manual_seed(0)
    backbone = torchvision.models.efficientnet_b0(weights=None).eval()
    modules = [f"features[{i}]" for i in range(8)]
    pnet = predify.predify(backbone, predify.auto_config(backbone, SIZE, modules)).eval()
    assert len(pnet.pcoders) == 8
    x = torch.randn(2, *SIZE)
    with torch.no_grad():
        output = pnet(x, timesteps=2, record=True)
        plain = backbone(x)
    assert output.logits.shape == (3, 2, 1000)
    assert torch.isfinite(output.logits).all()
    torch.testing.assert_close(output.logits[0], plain)
    assert output.errors is not None and torch.isfinite(output.errors).all()
    assert not torch.equal(output.logits[2], output.logits[0])


# ---------------------------------------------------------------------- misc
def test_gradient_scaled_dynamics_are_independent_of_the_batch() -> None:
    """With gradient scaling the error term is alpha * 2 / sqrt(C) * J^T (d - e): no batch-wide
    normalisation, so each sample evolves as if it were alone."""
    pnet = resnet18_pnet(gradient_scaling=True)
    x = torch.randn(3, *SIZE)
    with torch.no_grad():
        batch = pnet(x, timesteps=3).logits
        single = torch.cat([pnet(x[i : i + 1], timesteps=3).logits for i in range(3)], dim=1)
    torch.testing.assert_close(batch, single, atol=1e-4, rtol=1e-4)


def test_network_follows_dtype_of_backbone() -> None:
    pnet = predify.predify(GoldenNet().double(), GOLDEN_DIR / "case_b.toml")
    with torch.no_grad():
        output = pnet(torch.randn(1, 3, 32, 32, dtype=torch.float64), timesteps=2, record=True)
    assert output.logits.dtype == torch.float64
    assert output.preds is not None and output.preds[0].dtype == torch.float64
