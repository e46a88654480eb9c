"""The published feedback weights' formats load into the zoo's networks, tensor by tensor.

The files are made here, small and fake, in the layouts the original code writes (read from
miladmozafari/predify@eca7a74 and bhavinc/predify2021@e968414):

- the training scripts save, per pcoder and epoch, ``{"pcoderweights":
  pcoder.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch}`` to
  ``pnet_pretrained_pc{n}_{epoch:03d}.pth`` (the paper's PEfficientNetB0 weights); a
  ``PCoderN``'s state dict also holds its ``C_sqrt`` buffer;
- ``get_model`` reads the paper's PVGG16 weights from
  ``pvgg16_imagenet_pretrained_pc{n}_pmodule.pth``, plain ``pmodule`` state dicts;
- a generated network's ``state_dict()`` holds ``backbone.*``, ``pcoder{n}.pmodule.*``,
  ``pcoder{n}.C_sqrt`` (PCoderN), the buffers ``ffm{n}``, ``fbm{n}``, ``erm{n}`` and the
  parameters ``ff_part{n}``, ``fb_part{n}``, ``mem_part{n}``, ``errorm{n}`` (PNetSeparateHP), or
  ``ffm``, ``fbm``, ``erm`` ... (PNetSameHP).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import predify
from paper_layouts import PEFF_DECODERS, paper_peff_decoder
from predify import CheckpointError, Hyperparameters
from predify.checkpoint import load_original_feedback
from predify.models import create_model
from testkit import GOLDEN_DIR, GoldenNet

#: Exact C of those decoders at 224 x 224: an impulse spreads over 4 x 4 after the bilinear x2
#: upsampling, 6 x 6 after the 3 x 3 transposed convolution (3 x 3 without upsampling), in
#: every output channel.
PEFF_EXACT_C = [(36 if up else 9) * c_out for up, _, c_out in PEFF_DECODERS]


@pytest.fixture(scope="module")
def peffnetb0() -> predify.PredictiveNet:
    torch.manual_seed(0)
    return create_model("peffnetb0", weights=None, gradient_scaling=True)


def fresh(pnet: predify.PredictiveNet) -> predify.PredictiveNet:
    """Reset the shared network's decoders and c_sqrt, so tests do not see each other's loads."""
    torch.manual_seed(123)
    for pcoder in pnet.pcoders:
        for module in pcoder.decoder.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        pcoder.c_sqrt = 1.0
    pnet.set_hyperparameters(Hyperparameters(0.8, 0.1, 0.01))
    return pnet


def paper_pmodules(seed: int) -> list[nn.Sequential]:
    torch.manual_seed(seed)
    return [paper_peff_decoder(*layout) for layout in PEFF_DECODERS]


def save_training_checkpoints(
    directory: Path, pmodules: list[nn.Sequential], epoch: int, c_sqrt: list[float] | None = None
) -> list[Path]:
    """As the training scripts' last loop: one file per pcoder, the shared optimiser in each."""
    optimizer = torch.optim.RMSprop(
        [{"params": m.parameters()} for m in pmodules], lr=0.001, weight_decay=5e-4
    )
    for module in pmodules:  # one step, so that the optimiser holds state tensors
        for parameter in module.parameters():
            parameter.grad = torch.full_like(parameter, 1e-3)
    optimizer.step()
    paths = []
    for index, module in enumerate(pmodules):
        weights = {f"pmodule.{k}": v for k, v in module.state_dict().items()}
        if c_sqrt is not None:
            weights["C_sqrt"] = torch.tensor(c_sqrt[index])
        path = directory / f"pnet_pretrained_pc{index + 1}_{epoch:03d}.pth"
        torch.save(
            {"pcoderweights": weights, "optimizer": optimizer.state_dict(), "epoch": epoch}, path
        )
        paths.append(path)
    return paths


def network_state(
    pmodules: list[nn.Module],
    c_sqrt: list[float] | None,
    hyperparameters: list[tuple[float, float, float]],
) -> dict[str, Tensor]:
    """A generated PNetSeparateHP network's state_dict (a token backbone tensor included)."""
    state = {"backbone.conv_stem.weight": torch.rand(32, 3, 3, 3)}
    for n, (module, (ffm, fbm, erm)) in enumerate(zip(pmodules, hyperparameters, strict=True), 1):
        state.update({f"pcoder{n}.pmodule.{k}": v for k, v in module.state_dict().items()})
        if c_sqrt is not None:
            state[f"pcoder{n}.C_sqrt"] = torch.tensor(c_sqrt[n - 1])
        state.update({f"ffm{n}": torch.tensor(ffm), f"fbm{n}": torch.tensor(fbm)})
        state[f"erm{n}"] = torch.tensor(erm)
        for name in ("ff_part", "fb_part", "mem_part", "errorm"):
            state[f"{name}{n}"] = torch.tensor(0.5)
    return state


def assert_decoders_equal(pnet: predify.PredictiveNet, pmodules: list[nn.Module]) -> None:
    for index, (pcoder, module) in enumerate(zip(pnet.pcoders, pmodules, strict=True)):
        loaded, expected = pcoder.decoder.state_dict(), module.state_dict()
        assert loaded.keys() == expected.keys(), index
        for key in expected:
            torch.testing.assert_close(
                loaded[key], expected[key], rtol=0, atol=0, msg=f"pcoder{index + 1} {key}"
            )


# ---------------------------------------------------------------------- training checkpoints
def test_training_checkpoint_directory_loads_the_latest_complete_epoch(
    tmp_path: Path, peffnetb0: predify.PredictiveNet
) -> None:
    pnet = fresh(peffnetb0)
    epoch3, epoch7 = paper_pmodules(3), paper_pmodules(7)
    save_training_checkpoints(tmp_path, epoch3, 3)
    save_training_checkpoints(tmp_path, epoch7, 7)
    # Epoch 9 is still being written: only two pcoders have a file.
    save_training_checkpoints(tmp_path, paper_pmodules(9)[:2], 9)
    report = load_original_feedback(pnet, tmp_path)
    assert report.layout == "training-checkpoints" and report.epoch == 7
    assert [p.name for p in report.files] == [f"pnet_pretrained_pc{n}_007.pth" for n in range(1, 9)]
    assert_decoders_equal(pnet, epoch7)
    report = load_original_feedback(pnet, tmp_path, epoch=3)
    assert report.epoch == 3
    assert_decoders_equal(pnet, epoch3)
    with pytest.raises(CheckpointError, match=r"no files of epoch 9 .*\[3, 7\]"):
        load_original_feedback(pnet, tmp_path, epoch=9)


def test_training_checkpoints_as_a_list_and_their_c_sqrt(
    tmp_path: Path, peffnetb0: predify.PredictiveNet
) -> None:
    pnet = fresh(peffnetb0)
    pmodules = paper_pmodules(1)
    stored = [10.0 + n for n in range(8)]
    paths = save_training_checkpoints(tmp_path, pmodules, 12, c_sqrt=stored)
    with pytest.warns(UserWarning, match="adopted the gradient-scaling constants"):
        report = load_original_feedback(pnet, [str(p) for p in paths])
    assert_decoders_equal(pnet, pmodules)
    assert [p.c_sqrt for p in pnet.pcoders] == stored
    assert report.c_sqrt_adopted == dict(enumerate(stored))
    assert report.epoch == 12
    # Recomputed exactly instead: the fan-outs worked out by hand above.
    report = load_original_feedback(pnet, paths, c_sqrt="exact")
    assert [p.c_sqrt for p in pnet.pcoders] == pytest.approx([math.sqrt(c) for c in PEFF_EXACT_C])
    assert report.c_sqrt_adopted == {}


# ---------------------------------------------------------------------- whole networks
WRAPPERS: dict[str, Callable[[dict[str, Tensor]], Any]] = {
    "plain": lambda state: state,
    "dataparallel": lambda state: {f"module.{k}": v for k, v in state.items()},
    "state_dict": lambda state: {"state_dict": state, "epoch": 3},
    "model": lambda state: {"model": state, "optimizer": {}},
    "model_state_dict": lambda state: {"model_state_dict": state},
}


@pytest.mark.parametrize("wrapper", list(WRAPPERS))
def test_whole_network_state_dicts(
    tmp_path: Path, peffnetb0: predify.PredictiveNet, wrapper: str
) -> None:
    pnet = fresh(peffnetb0)
    pmodules = paper_pmodules(5)
    # Random-looking C of ReLU decoders, and the getters' 0.33 (fbm on the top one: unused).
    stored = [7.25 + n for n in range(8)]
    values = [
        (round(0.5 + 0.02 * n, 4), round(0.2 + 0.01 * n, 4), 0.01 * (n + 1)) for n in range(8)
    ]
    path = tmp_path / "pnet.pth"
    torch.save(WRAPPERS[wrapper](network_state(pmodules, stored, values)), path)
    before = pnet.hyperparameter_values()
    with pytest.warns(UserWarning, match=r"pcoders\[0\] 7\.25 \(exact 10\.3923\)"):
        report = load_original_feedback(pnet, path)
    assert report.layout == "network" and report.files == (path,)
    assert_decoders_equal(pnet, pmodules)
    assert [p.c_sqrt for p in pnet.pcoders] == stored
    assert pnet.hyperparameter_values() == before  # not asked for
    with pytest.warns(UserWarning):
        report = load_original_feedback(pnet, path, hyperparameters=True)
    expected = [Hyperparameters(*v) for v in values]
    expected[-1] = Hyperparameters(values[-1][0], 0.0, values[-1][2])
    assert pnet.hyperparameter_values() == expected
    assert report.hyperparameters == pnet.hyperparameter_values()


def test_unset_c_sqrt_is_not_adopted_and_unscaled_networks_say_they_ignore_it(
    tmp_path: Path, peffnetb0: predify.PredictiveNet
) -> None:
    pnet = fresh(peffnetb0)
    pmodules = paper_pmodules(2)
    path = tmp_path / "pnet.pth"
    # -1 is what PCoderN registers before its first forward pass.
    torch.save(network_state(pmodules, [-1.0] * 8, [(0.8, 0.1, 0.01)] * 8), path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = load_original_feedback(pnet, path)
    assert report.c_sqrt_adopted == {} and [p.c_sqrt for p in pnet.pcoders] == [1.0] * 8

    unscaled = create_model("peffnetb0", weights=None, gradient_scaling=False, image_size=64)
    torch.save(network_state(pmodules, [9.0] * 8, [(0.8, 0.1, 0.01)] * 8), path)
    with pytest.warns(UserWarning, match=r"pcoder1\.C_sqrt.*this network does not"):
        report = load_original_feedback(unscaled, path)
    assert report.c_sqrt_ignored == tuple(range(8))
    assert_decoders_equal(unscaled, pmodules)


def test_shared_hyperparameter_buffers(tmp_path: Path) -> None:
    pnet = predify.predify(GoldenNet(), {**_golden_dict(), "shared_hyperparameters": True})
    state = {
        f"pcoder{n}.pmodule.{k}": v
        for n, pcoder in enumerate(pnet.pcoders, 1)
        for k, v in pcoder.decoder.state_dict().items()
    }
    state.update(ffm=torch.tensor(0.6), fbm=torch.tensor(0.3), erm=torch.tensor(0.05))
    path = tmp_path / "same_hp.pt"
    torch.save(state, path)
    load_original_feedback(pnet, path, hyperparameters=True)
    assert pnet.hyperparameter_values() == [Hyperparameters(0.6, 0.3, 0.05)] * 2 + [
        Hyperparameters(0.6, 0.0, 0.05)
    ]


def _golden_dict() -> dict[str, Any]:
    return predify.load_config(GOLDEN_DIR / "case_a.toml").to_json()


# ---------------------------------------------------------------------- PVGG16 decoder files
def test_pvgg16_pmodule_files_load_into_the_zoos_pvgg16(tmp_path: Path) -> None:
    """predify2021's get_model: pmodule.load_state_dict(torch.load(f'..._pc{n}_pmodule.pth'))."""
    torch.manual_seed(0)
    pnet = create_model("pvgg16", weights=None, image_size=32)
    # The layout of PVGG16SeparateHP (pvgg16_shared.py): a bare ConvTranspose2d first, then
    # Sequential(ConvTranspose2d, ReLU): keys 'weight' and '0.weight'.
    shapes = [(64, 3, 5), (128, 64, 10), (256, 128, 14), (512, 256, 14), (512, 512, 14)]
    expected: list[dict[str, Tensor]] = []
    for n, (c_in, c_out, k) in enumerate(shapes, 1):
        prefix = "" if n == 1 else "0."
        generator = torch.Generator().manual_seed(n)
        weight = torch.empty(c_in, c_out, k, k).uniform_(-0.01, 0.01, generator=generator)
        state = {f"{prefix}weight": weight, f"{prefix}bias": torch.rand(c_out, generator=generator)}
        torch.save(state, tmp_path / f"pvgg16_imagenet_pretrained_pc{n}_pmodule.pth")
        expected.append(state)
    report = load_original_feedback(pnet, tmp_path)
    assert report.layout == "decoder-files" and report.epoch is None
    for n, (pcoder, state) in enumerate(zip(pnet.pcoders, expected, strict=True), 1):
        loaded = pcoder.decoder.state_dict()
        assert loaded.keys() == state.keys()
        for key, value in state.items():
            torch.testing.assert_close(loaded[key], value, rtol=0, atol=0, msg=f"pc{n} {key}")


# ---------------------------------------------------------------------- refusals
def test_missing_and_unexpected_tensors_are_named_by_the_files_own_keys(
    tmp_path: Path, peffnetb0: predify.PredictiveNet
) -> None:
    # #11: the message names the file's keys (pcoder5.pmodule.0.weight, counted from 1), not the
    # network's internals (pcoders[4], features[...]).
    pnet = fresh(peffnetb0)
    state = network_state(paper_pmodules(4), None, [(0.8, 0.1, 0.01)] * 8)
    del state["pcoder5.pmodule.1.bias"]
    state["pcoder5.pmodule.2.weight"] = torch.zeros(3)
    path = tmp_path / "planted.pth"
    torch.save({"module." + key: value for key, value in state.items()}, path)
    with pytest.raises(CheckpointError) as info:
        load_original_feedback(pnet, path)
    message = str(info.value)
    assert message == (
        f"{path}: does not fit the network: missing tensors module.pcoder5.pmodule.1.bias; "
        "unexpected tensors module.pcoder5.pmodule.2.weight"
    )
    # Per-pcoder training checkpoints: the key inside the file's 'pcoderweights'.
    paths = save_training_checkpoints(tmp_path, paper_pmodules(4), 2)
    payload = torch.load(paths[2], weights_only=True)
    del payload["pcoderweights"]["pmodule.1.weight"]
    torch.save(payload, paths[2])
    with pytest.raises(CheckpointError) as info:
        load_original_feedback(pnet, paths)
    assert str(info.value) == (
        f"{paths[2]}: does not fit the network: missing tensors pcoderweights['pmodule.1.weight']"
    )


def test_errors_name_the_files_own_keys_and_load_nothing(
    tmp_path: Path, peffnetb0: predify.PredictiveNet
) -> None:
    pnet = fresh(peffnetb0)
    before = {k: v.clone() for k, v in pnet.pcoders.state_dict().items() if isinstance(v, Tensor)}
    pmodules = paper_pmodules(4)
    pmodules[7] = nn.Sequential(nn.ConvTranspose2d(320, 190, 3, 1, 1))  # wrong width, last one
    path = tmp_path / "pnet.pth"
    torch.save(network_state(pmodules, None, [(0.8, 0.1, 0.01)] * 8), path)
    with pytest.raises(CheckpointError) as info:
        load_original_feedback(pnet, path)
    message = str(info.value)
    assert str(path) in message and "pcoder8.pmodule.0.weight" in message
    assert "[320, 190, 3, 3]" in message and "[320, 192, 3, 3]" in message
    after = pnet.pcoders.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items()), "something was loaded"

    paths = save_training_checkpoints(tmp_path, paper_pmodules(4), 1)
    with pytest.raises(CheckpointError, match="pass the files of all 8 pcoders"):
        load_original_feedback(pnet, paths[0])
    with pytest.raises(CheckpointError, match=r"7 per-pcoder files .* the network has 8"):
        load_original_feedback(pnet, paths[:7])
    with pytest.raises(CheckpointError, match="no hyperparameter buffers"):
        load_original_feedback(pnet, paths, hyperparameters=True)
    torch.save({"pcoderweights": {"pmodule.0.weight": torch.zeros(1), "extra": 1}}, paths[0])
    with pytest.raises(CheckpointError, match=r"pcoderweights\['extra'\]"):
        load_original_feedback(pnet, paths)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="no per-pcoder files"):
        load_original_feedback(pnet, empty)
    odd = tmp_path / "odd.pt"
    torch.save({"name": "x"}, odd)
    with pytest.raises(CheckpointError, match="not an original Predify feedback file"):
        load_original_feedback(pnet, odd)


def test_training_checkpoints_load_into_the_torchvision_backend_too(tmp_path: Path) -> None:
    """The same decoders on torchvision's EfficientNet-B0 (other module names, same shapes)."""
    pnet = create_model("peffnetb0", weights=None, backend="torchvision", image_size=64)
    pmodules = paper_pmodules(8)
    report = load_original_feedback(pnet, save_training_checkpoints(tmp_path, pmodules, 49))
    assert report.epoch == 49 and pnet.pcoders[0].module_path == "features[0]"
    assert_decoders_equal(pnet, pmodules)
