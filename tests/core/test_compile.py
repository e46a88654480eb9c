"""The compile-friendly fast path: the traced backbone, torch.compile, autocast and devices.

``PredictiveNet`` runs the backbone as an fx program with a tap after each pcoder module
(``predify._tracing``) instead of registering hooks around every pass; these tests check that the
program computes what the hook path computes, follows the live backbone, falls back where it
must, and that ``torch.compile`` of the whole network equals eager (compiled CPU tests are slow:
about 10-30 s each on two shared cores, most of it inductor's C++ compilation).
"""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from torch import nn

import predify
from predify import ConfigError
from predify.runtime.precision import (
    Execution,
    autocast,
    grad_scaler,
    prepare_input,
    prepare_network,
)
from testkit import GOLDEN_DIR, GoldenNet, golden_pnet, load_case

COMPILE_ATOL = 1e-4  # the bound for compiled vs eager logits


def force_hook_path(pnet: predify.PredictiveNet) -> torch.utils.hooks.RemovableHandle:
    """A no-op hook on the backbone itself: the traced program would skip it, so the network
    must take the hook path."""
    return pnet.backbone.register_forward_pre_hook(lambda module, inputs: None)


def assert_outputs_close(
    actual: predify.PNetOutput, expected: predify.PNetOutput, atol: float
) -> None:
    torch.testing.assert_close(actual.logits, expected.logits, atol=atol, rtol=0)
    for name in ("reps", "preds"):
        got, want = getattr(actual, name), getattr(expected, name)
        assert got is not None and want is not None
        for index, (a, b) in enumerate(zip(got, want, strict=True)):
            where = f"{name}[{index}]"
            torch.testing.assert_close(
                a, b, atol=atol, rtol=0, msg=lambda m, where=where: f"{where}: {m}"
            )
    assert actual.errors is not None and expected.errors is not None
    torch.testing.assert_close(actual.errors, expected.errors, atol=atol, rtol=0)


# ---------------------------------------------------------------------- the traced backbone
@pytest.mark.parametrize("name", ["case_a", "case_b"])
def test_traced_and_hook_paths_both_equal_the_golden_outputs(name: str) -> None:
    data = load_case(name)
    pnet = golden_pnet(name)
    assert pnet.traced
    with torch.no_grad():
        traced = pnet(data["input"], timesteps=6, record=True)
    handle = force_hook_path(pnet)
    try:
        assert not pnet.traced
        with torch.no_grad():
            hooked = pnet(data["input"], timesteps=6, record=True)
    finally:
        handle.remove()
    assert pnet.traced
    # Reference: the original implementation's recorded outputs (tests/data/golden/README.md).
    torch.testing.assert_close(traced.logits, data["logits"], atol=1e-5, rtol=0)
    torch.testing.assert_close(hooked.logits, data["logits"], atol=1e-5, rtol=0)
    assert_outputs_close(traced, hooked, atol=1e-6)


class Normalised(nn.Module):
    """Normalisation buffers and a plain flag read by the root's own forward (fx bakes both)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1))
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.top = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
        self.negate = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.top(self.body(x - self.mean)))
        return -logits if self.negate else logits


def normalised_pnet() -> predify.PredictiveNet:
    torch.manual_seed(0)
    backbone = Normalised().eval()
    config = predify.auto_config(backbone, (3, 16, 16), ["body", "top"])
    return predify.predify(backbone, config).eval()


def hooked_call(pnet: predify.PredictiveNet, x: torch.Tensor) -> torch.Tensor:
    handle = force_hook_path(pnet)
    try:
        with torch.no_grad():
            return pnet(x, timesteps=2).logits
    finally:
        handle.remove()


def test_traced_program_follows_the_live_backbone() -> None:
    pnet = normalised_pnet()
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    pnet.double()  # replaces every buffer tensor: a stale copy would still be float32
    with torch.no_grad():
        traced = pnet(x, timesteps=2).logits
    assert pnet.traced and traced.dtype == torch.float64
    torch.testing.assert_close(traced, hooked_call(pnet, x), atol=1e-12, rtol=0)
    # New values in the live buffers and weights are seen too.
    with torch.no_grad():
        pnet.backbone.mean.fill_(0.0)
        pnet.backbone.head[2].weight.mul_(2.0)
        changed = pnet(x, timesteps=2).logits
    assert (changed - traced).abs().max() > 1e-3
    torch.testing.assert_close(changed, hooked_call(pnet, x), atol=1e-12, rtol=0)
    # A plain attribute read by forward (baked into a trace) is traced again when it changes.
    pnet.backbone.negate = True
    with torch.no_grad():
        negated = pnet(x, timesteps=2).logits
    torch.testing.assert_close(negated, -changed, atol=1e-12, rtol=0)


class DataDependent(nn.Module):
    """Branches on a tensor value in Python: fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.conv(x)
        if features.mean() > 0:
            features = features * 2
        return self.head(features)


def test_untraceable_backbone_runs_with_hooks() -> None:
    torch.manual_seed(0)
    backbone = DataDependent().eval()
    pnet = predify.predify(backbone, predify.auto_config(backbone, (3, 8, 8), ["conv"])).eval()
    assert not pnet.traced
    x = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        output = pnet(x, timesteps=2, record=True)
        # t = 0 is the plain backbone, whichever path ran it.
        torch.testing.assert_close(output.logits[0], backbone(x), atol=1e-6, rtol=0)
    assert output.reps is not None and output.reps[0].shape == (3, 2, 8, 8, 8)


def test_copies_trace_their_own_backbone() -> None:
    pnet = normalised_pnet()
    twin = copy.deepcopy(pnet)
    twin.double()  # new buffer tensors in the copy's backbone
    with torch.no_grad():
        twin.backbone.mean.fill_(0.25)
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        original = pnet(x, timesteps=1).logits
        copied = twin(x.double(), timesteps=1).logits
    assert copied.dtype == torch.float64
    assert not torch.allclose(original.double(), copied)
    torch.testing.assert_close(copied, hooked_call(twin, x.double())[:2], atol=1e-12, rtol=0)


# ---------------------------------------------------------------------- torch.compile (inductor)
@pytest.mark.slow
def test_compiled_network_equals_eager_without_graph_breaks() -> None:
    pnet = golden_pnet("case_b")  # gradient scaling, three pcoders
    x = load_case("case_b")["input"]
    compiled = torch.compile(pnet, fullgraph=True)  # fullgraph: any graph break is an error
    with torch.no_grad():
        eager = pnet(x, timesteps=3, record=True)
        assert_outputs_close(compiled(x, timesteps=3, record=True), eager, COMPILE_ATOL)
        # New hyperparameters (what tuning does between trials) reuse the compiled code.
        pnet.set_hyperparameters(predify.Hyperparameters(0.6, 0.3, 0.05))
        eager = pnet(x, timesteps=3, record=True)
        with torch.compiler.set_stance("fail_on_recompile"):
            again = compiled(x, timesteps=3, record=True)
    assert_outputs_close(again, eager, COMPILE_ATOL)


@pytest.mark.slow
def test_compiled_gradients_equal_eager() -> None:
    torch.manual_seed(0)
    backbone = GoldenNet().eval()
    pnet = predify.predify(backbone, GOLDEN_DIR / "case_a.toml").eval()
    pnet.set_hyperparameters_learnable(True)
    x = torch.rand(2, 3, 16, 16)
    parameters = pnet.decoder_parameters() + pnet.hyperparameter_parameters()

    def gradients(model: nn.Module) -> list[torch.Tensor]:
        loss = model(x, timesteps=2).logits[-1].square().sum()
        return list(torch.autograd.grad(loss, parameters))

    # aot_eager: dynamo's graph and AOTAutograd's joint forward/backward without inductor's
    # C++ compilation (which would take minutes here); inductor's numerics are the test above.
    compiled = torch.compile(pnet, backend="aot_eager", fullgraph=True)
    for got, want in zip(gradients(compiled), gradients(pnet), strict=True):
        torch.testing.assert_close(got, want, atol=COMPILE_ATOL, rtol=1e-4)


@pytest.mark.slow
def test_two_compiled_networks_follow_changing_batch_sizes() -> None:
    """A second batch size makes dynamo compile again with a symbolic batch dimension, and a
    second network's different constants (c_sqrt) become symbolic inputs: the upsampling
    adjoint must accept symbolic sizes (aten's backward ops reject them in torch 2.14) and no
    Python float may reach a nested compile region."""
    first = golden_pnet("case_b")  # automatic decoders: Upsample + ConvTranspose2d
    second = golden_pnet("case_b")
    for pcoder in second.pcoders:
        pcoder.c_sqrt = pcoder.c_sqrt * 1.5
    for pnet in (first, second):
        compiled = torch.compile(pnet, backend="aot_eager", fullgraph=True)
        with torch.no_grad():
            for batch in (2, 3):
                x = torch.rand(batch, 3, 32, 32)
                torch.testing.assert_close(
                    compiled(x, timesteps=2).logits,
                    pnet(x, timesteps=2).logits,
                    atol=1e-6,
                    rtol=0,
                )


@pytest.mark.parametrize(
    "layer",
    [
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        nn.Upsample(scale_factor=3, mode="bilinear", align_corners=True),
        nn.Upsample(size=(11, 7), mode="bilinear", align_corners=False),
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Upsample(size=(9, 13), mode="nearest"),
    ],
    ids=["bilinear-x2", "bilinear-x3-corners", "bilinear-size", "nearest-x2", "nearest-size"],
)
def test_upsampling_adjoint_matrices_equal_autograd(layer: nn.Upsample) -> None:
    """The matrix form of the adjoint (used while compiling) against autograd's VJP."""
    from predify.decoder_layers import _interpolation_matrix

    x = torch.rand(2, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    output = layer(x)
    grad = torch.rand_like(output)
    (expected,) = torch.autograd.grad(output, x, grad)
    factor = layer.scale_factor
    scale = float(factor) if factor is not None else None  # type: ignore[arg-type]
    rows = _interpolation_matrix(output.shape[-2], 5, layer, scale, grad)
    columns = _interpolation_matrix(output.shape[-1], 6, layer, scale, grad)
    got = torch.einsum("oh,bcow,wv->bchv", rows, grad, columns)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


# ---------------------------------------------------------------------- precision
# bf16 keeps 8 significant bits (unit roundoff 2^-9, about 0.2%). Over 6 timesteps of the golden
# networks the largest difference from fp32 measured 0.4-0.9% of the largest |value| (logits and
# representations); the bound allows 2%.
BF16_RELATIVE = 2e-2


@pytest.mark.parametrize("name", ["case_a", "case_b"])
def test_bf16_autocast_on_the_cpu_is_close_to_fp32(name: str) -> None:
    pnet = golden_pnet(name)
    x = load_case(name)["input"]
    with torch.no_grad():
        reference = pnet(x, timesteps=6, record=True)
        with autocast("cpu", Execution(precision="bf16")):
            low = pnet(x, timesteps=6, record=True)
    assert low.logits.dtype == torch.bfloat16, "autocast did not run the network in bf16"
    assert low.reps is not None and reference.reps is not None
    for got, want in [(low.logits, reference.logits), *zip(low.reps, reference.reps, strict=True)]:
        error = (got.float() - want).abs().max() / want.abs().max()
        assert error < BF16_RELATIVE, f"bf16 differs from fp32 by {float(error):.2%}"


def test_bf16_autocast_runs_the_upsampling_adjoint() -> None:
    """ResNet-18's automatic decoders upsample bilinearly; their adjoint must accept bf16."""
    torch.manual_seed(0)
    backbone = torchvision.models.resnet18(weights=None).eval()
    config = predify.auto_config(backbone, (3, 32, 32), ["maxpool", "layer1", "layer2"])
    pnet = predify.predify(backbone, config).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        reference = pnet(x, timesteps=2).logits
        with autocast("cpu", Execution(precision="bf16")):
            low = pnet(x, timesteps=2).logits
    assert low.dtype == torch.bfloat16
    error = (low.float() - reference).abs().max() / reference.abs().max()
    assert error < BF16_RELATIVE


def test_execution_options_are_validated() -> None:
    expected = r"--precision: expected one of fp32, bf16, fp16, got 'fp8'"
    with pytest.raises(ConfigError, match=expected):
        Execution(precision="fp8")
    assert Execution().autocast_dtype is None
    assert Execution(precision="fp16").autocast_dtype == torch.float16
    assert not grad_scaler("cpu", Execution(precision="bf16")).is_enabled()


def test_channels_last_gives_the_same_numbers() -> None:
    pnet = golden_pnet("case_a")
    x = load_case("case_a")["input"]
    with torch.no_grad():
        reference = pnet(x, timesteps=3, record=True)
        execution = Execution(channels_last=True)
        prepare_network(pnet, torch.device("cpu"), execution)
        first_conv = pnet.backbone.features[0].weight
        assert first_conv.is_contiguous(memory_format=torch.channels_last)
        nhwc = prepare_input(x, execution)
        assert nhwc.is_contiguous(memory_format=torch.channels_last)
        assert_outputs_close(pnet(nhwc, timesteps=3, record=True), reference, atol=1e-5)


# ---------------------------------------------------------------------- CUDA
def _cuda_pair() -> tuple[predify.PredictiveNet, predify.PredictiveNet, torch.Tensor]:
    cpu = golden_pnet("case_b")
    gpu = golden_pnet("case_b").cuda()
    return cpu, gpu, load_case("case_b")["input"]


@pytest.mark.cuda
def test_cuda_fp32_equals_the_cpu() -> None:
    cpu, gpu, x = _cuda_pair()
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    with torch.no_grad():
        expected = cpu(x, timesteps=6, record=True)
        got = gpu(x.cuda(), timesteps=6, record=True)
    assert got.logits.device.type == "cuda"
    torch.testing.assert_close(got.logits.cpu(), expected.logits, atol=1e-4, rtol=0)


@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_autocast_is_close_to_fp32(precision: str) -> None:
    cpu, gpu, x = _cuda_pair()
    execution = Execution(precision=precision)
    with torch.no_grad():
        expected = cpu(x, timesteps=6).logits
        with autocast("cuda", execution):
            got = gpu(x.cuda(), timesteps=6).logits
    assert got.dtype == execution.autocast_dtype
    error = (got.float().cpu() - expected).abs().max() / expected.abs().max()
    assert error < BF16_RELATIVE


@pytest.mark.cuda
def test_cuda_compiled_channels_last_bf16_is_close_to_eager() -> None:
    cpu, gpu, x = _cuda_pair()
    execution = Execution(precision="bf16", channels_last=True, compile=True)
    prepare_network(gpu, torch.device("cuda"), execution)
    with torch.no_grad():
        expected = cpu(x, timesteps=3).logits
        with autocast("cuda", execution):
            got = gpu(prepare_input(x.cuda(), execution), timesteps=3).logits
    error = (got.float().cpu() - expected).abs().max() / expected.abs().max()
    assert error < BF16_RELATIVE
