"""Feedback checkpoints: round trips, refusals that name the tensor, the original format."""

from __future__ import annotations

import pickle
import stat
from pathlib import Path

import pytest
import torch

import predify
from predify import CheckpointError, Hyperparameters
from predify.checkpoint import (
    convert_original_state_dict,
    feedback_state_dict,
    load_feedback,
    load_original_feedback,
    load_predictive_net,
    read_feedback_file,
    save_feedback,
)
from testkit import GOLDEN_DIR, GoldenNet, golden_pnet, load_case


def fresh_pnet(case: str = "case_b") -> predify.PredictiveNet:
    """The golden network with freshly drawn (seed 0) backbone and decoders."""
    return golden_pnet(case, trained=False)


def assert_same_feedback(a: predify.PredictiveNet, b: predify.PredictiveNet) -> None:
    state_a, state_b = feedback_state_dict(a), feedback_state_dict(b)
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        torch.testing.assert_close(state_a[key], state_b[key], rtol=0, atol=0, msg=key)
    assert [p.c_sqrt for p in a.pcoders] == [p.c_sqrt for p in b.pcoders]
    assert a.hyperparameter_values() == b.hyperparameter_values()


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_round_trip_restores_decoders_hyperparameters_and_c_sqrt(
    tmp_path: Path, suffix: str
) -> None:
    source = fresh_pnet()
    source.set_hyperparameters(Hyperparameters(0.5, 0.25, 0.03))
    source.pcoders[1].c_sqrt = 7.5
    path = save_feedback(source, tmp_path / f"feedback{suffix}", metadata={"note": "x"})
    target = fresh_pnet()
    target.pcoders[0].decoder[1].weight.data.zero_()
    metadata = load_feedback(target, path)
    assert metadata == {"note": "x"}
    assert_same_feedback(source, target)
    config, tensors, _ = read_feedback_file(path)
    assert config.pcoders[1].c_sqrt == 7.5
    assert set(tensors) == set(feedback_state_dict(source))


def test_learnable_hyperparameters_load_as_learnable(tmp_path: Path) -> None:
    source = fresh_pnet()
    source.set_hyperparameters_learnable(True)
    with torch.no_grad():
        source.pcoders[0].hyperparameters.mixing_logits.add_(torch.tensor([0.5, -0.2, 0.1]))
    path = save_feedback(source, tmp_path / "feedback.pt")
    target = fresh_pnet()
    load_feedback(target, path)
    assert target.pcoders[0].hyperparameters.learnable
    assert len(target.hyperparameter_parameters()) == len(source.hyperparameter_parameters())
    assert target.hyperparameter_values() == source.hyperparameter_values()


def test_files_with_the_old_alpha_raw_name_still_load(tmp_path: Path) -> None:
    # Files written before one vocabulary named the learnable pc weight "alpha_raw".
    source = fresh_pnet()
    source.set_hyperparameters_learnable(True)
    with torch.no_grad():
        source.pcoders[1].hyperparameters.pc_raw.add_(0.5)
    path = save_feedback(source, tmp_path / "feedback.pt")
    payload = torch.load(path, weights_only=True)
    payload["state"] = {
        key.replace(".pc_raw", ".alpha_raw"): value for key, value in payload["state"].items()
    }
    assert any(key.endswith(".alpha_raw") for key in payload["state"])
    del payload["metadata"]["sha256"]
    torch.save(payload, path)
    target = fresh_pnet()
    load_feedback(target, path)
    assert target.hyperparameter_values() == source.hyperparameter_values()
    # And through torch's own load_state_dict.
    state = {
        key.replace(".pc_raw", ".alpha_raw"): value
        for key, value in source.pcoders.state_dict().items()
    }
    other = fresh_pnet()
    other.pcoders.load_state_dict(state)
    assert other.hyperparameter_values() == source.hyperparameter_values()


def test_decoders_only_keeps_the_networks_hyperparameters(tmp_path: Path) -> None:
    source = fresh_pnet()
    path = save_feedback(source, tmp_path / "feedback.pt")
    target = fresh_pnet()
    tuned = [
        Hyperparameters(0.4, 0.4, 0.02),
        Hyperparameters(0.3, 0.5, 0.02),
        Hyperparameters(0.9, 0.0, 0.0),
    ]
    target.set_hyperparameters(tuned)
    load_feedback(target, path, hyperparameters=False)
    assert target.hyperparameter_values() == tuned
    for a, b in zip(source.pcoders, target.pcoders, strict=True):
        for (key, x), (_, y) in zip(
            a.decoder.state_dict().items(), b.decoder.state_dict().items(), strict=True
        ):
            torch.testing.assert_close(x, y, rtol=0, atol=0, msg=key)


def test_a_tensor_of_another_shape_is_refused_naming_it_and_both_shapes(tmp_path: Path) -> None:
    path = save_feedback(fresh_pnet(), tmp_path / "feedback.pt")
    payload = torch.load(path, weights_only=True)
    payload["state"]["1.decoder.1.weight"] = torch.zeros(16, 8, 5, 5)
    del payload["metadata"]["sha256"]  # a file made by hand, without the checksum
    torch.save(payload, path)
    target = fresh_pnet()
    before = feedback_state_dict(target)
    with pytest.raises(CheckpointError) as info:
        load_feedback(target, path)
    message = str(info.value)
    assert "1.decoder.1.weight" in message and "[16, 8, 5, 5]" in message
    assert "[16, 8, 3, 3]" in message
    # Nothing was half-loaded.
    after = feedback_state_dict(target)
    assert all(torch.equal(before[key], after[key]) for key in before)


def test_a_file_for_another_network_is_refused(tmp_path: Path) -> None:
    path = save_feedback(fresh_pnet("case_a"), tmp_path / "feedback.pt")
    with pytest.raises(CheckpointError, match=r"does not fit|shape"):
        load_feedback(fresh_pnet("case_b"), path)


def test_missing_unreadable_and_foreign_files_are_one_line_errors(tmp_path: Path) -> None:
    pnet = fresh_pnet()
    with pytest.raises(CheckpointError, match="not found"):
        load_feedback(pnet, tmp_path / "nothing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="cannot read") as info:
        load_feedback(pnet, garbage)
    assert "\n" not in str(info.value)
    plain = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(2)}, plain)
    with pytest.raises(CheckpointError, match="not a predify feedback checkpoint"):
        load_feedback(pnet, plain)


class _Payload:
    """An object a pickle would construct on load: weights_only refuses it."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("this must never run",))


def test_pickled_code_is_never_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump({"format": "predify-feedback-v1", "state": _Payload()}, handle, protocol=2)
    for load in (load_feedback, load_original_feedback):
        with pytest.raises(CheckpointError):
            load(fresh_pnet(), path)
    assert "this must never run" not in capsys.readouterr().out


def test_a_failed_save_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save_feedback(fresh_pnet(), tmp_path / "feedback.pt")
    before = path.read_bytes()

    def broken_save(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_feedback(fresh_pnet("case_a"), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["feedback.pt"]


def test_load_predictive_net_builds_from_the_files_config(tmp_path: Path) -> None:
    source = fresh_pnet()
    path = save_feedback(source, tmp_path / "feedback.safetensors")
    backbone = GoldenNet()
    backbone.load_state_dict(source.backbone.state_dict())
    rebuilt = load_predictive_net(backbone, path)
    assert_same_feedback(source, rebuilt)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x, timesteps=3).logits, source(x, timesteps=3).logits)


def _original_layout(case: dict[str, object], layout: str) -> object:
    """The golden case_a weights as the original package's checkpoints hold them: keys
    ``pcoderN.pmodule.*`` beside the backbone's; ``module.`` before every key when the network was
    wrapped in DataParallel; ``{"state_dict": ..., "epoch": ...}`` when saved with training state.
    """
    original: dict[str, torch.Tensor] = {
        f"backbone.{k}": v
        for k, v in case["backbone_state"].items()  # type: ignore[attr-defined]
    }
    for index, state in enumerate(case["decoder_states"]):  # type: ignore[arg-type]
        original.update({f"pcoder{index + 1}.pmodule.{k}": v for k, v in state.items()})
    if "module" in layout:
        original = {f"module.{k}": v for k, v in original.items()}
    if "wrapped" in layout:
        return {"state_dict": original, "epoch": 7}
    return original


@pytest.mark.parametrize("layout", ["plain", "module", "wrapped", "wrapped_module"])
def test_original_state_dict_converts_and_reproduces_the_golden_outputs(
    tmp_path: Path, layout: str
) -> None:
    """A checkpoint in each of the original package's layouts loads through the converter and
    gives the golden outputs (the decoders start from a different draw, so nothing else could)."""
    case = load_case("case_a")
    path = tmp_path / "pnet_original.pt"
    torch.save(_original_layout(case, layout), path)
    backbone = GoldenNet()
    backbone.load_state_dict(case["backbone_state"])
    torch.manual_seed(123)
    pnet = predify.predify(backbone, GOLDEN_DIR / "case_a.toml")
    with torch.no_grad():
        before = pnet(case["input"], timesteps=6).logits
    assert not torch.allclose(before[-1], case["logits"][-1], atol=1e-3)
    load_original_feedback(pnet, path)
    with torch.no_grad():
        logits = pnet(case["input"], timesteps=6).logits
    torch.testing.assert_close(logits, case["logits"], rtol=0, atol=1e-5)


def test_original_converter_refuses_what_does_not_fit(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"pcoder1\.pmodule"):
        convert_original_state_dict({"features.0.weight": torch.zeros(1)})
    path = tmp_path / "bad.pt"
    torch.save({"pcoder1.pmodule.weight": torch.zeros(3, 3, 4, 4)}, path)
    with pytest.raises(CheckpointError) as info:
        load_original_feedback(fresh_pnet("case_a"), path)
    # The file's own key, not an internal one.
    assert "pcoder1.pmodule.weight" in str(info.value) and "[3, 3, 4, 4]" in str(info.value)
    torch.save({"pcoder1.pmodule.weight": torch.zeros(8, 3, 4, 4)}, path)
    with pytest.raises(CheckpointError, match=r"no pcoder2\.pmodule\.\*"):
        load_original_feedback(fresh_pnet("case_a"), path)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_saved_files_get_the_mode_a_plain_open_gives(tmp_path: Path, suffix: str) -> None:
    # Written through a private temporary file (and safetensors makes its own, 0600); the
    # result must get what a plain open() gives under this process's umask.
    path = save_feedback(fresh_pnet(), tmp_path / f"feedback{suffix}")
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
