"""Tests of predify.evaluate.robustness (the corruption sweep), pixel_space and progress."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from evaluate_helpers import TIMESTEPS, make_pnet, sample_images

import predify.evaluate as evaluate
from predify.errors import ConfigError, DataError
from predify.evaluate import robustness
from predify.evaluate.corruptions import corrupt
from predify.evaluate.metrics import (
    ALEXNET_CLEAN_ERROR,
    ALEXNET_ERRORS_BY_SEVERITY,
    ce_relative_to_t0,
    corruption_error,
    relative_corruption_error,
    top1_error,
)
from predify.evaluate.pixel_space import PixelSpaceNet
from predify.evaluate.robustness import (
    CLEAN,
    BenchmarkCorruptions,
    CellResult,
    CorruptionSweep,
    OnTheFlyCorruptions,
    corruption_sweep,
    summarize_sweep,
)
from predify.evaluate.streaming import image_seed
from predify.models import pshallow
from predify.runtime.store import ResultStore

T = TIMESTEPS


@pytest.fixture(scope="module")
def model() -> PixelSpaceNet:
    return PixelSpaceNet(make_pnet(timesteps=T)).eval()


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    return sample_images(40)


def test_sweep_errors_match_separate_passes_per_timestep(model, data) -> None:
    images, labels = data
    source = OnTheFlyCorruptions(images, labels, batch_size=16, seed=3)
    sweep = corruption_sweep(
        model, source, ["gaussian_noise", "contrast"], [1, 4], timesteps=T, progress=False
    )
    assert sweep.evaluated == 5  # clean + 2 x 2
    for name, severity in [("gaussian_noise", 4), ("contrast", 1)]:
        # The same random numbers: one generator per image, seeded by its position.
        corrupted = torch.cat(
            [
                corrupt(
                    images[i : i + 1],
                    name,
                    severity,
                    torch.Generator().manual_seed(image_seed(3, f"{name}/{severity}", i)),
                )
                for i in range(40)
            ]
        )
        with torch.no_grad():
            # Each timestep from its own pass, unrolled only that far: the one-pass sweep must
            # give the same predictions.
            expected = [
                float(top1_error(model(corrupted, timesteps=t).logits[t], labels))
                for t in range(T + 1)
            ]
        np.testing.assert_allclose(sweep.cells[name, severity].errors, expected)
    with torch.no_grad():
        clean = top1_error(model(images, timesteps=T).logits, labels)
    np.testing.assert_allclose(sweep.clean.errors, clean.numpy())
    table = sweep.corruption_error()
    assert list(table) == ["gaussian_noise", "contrast"]
    assert list(table["contrast"]) == ["1", "4"] and len(table["contrast"]["4"]) == T + 1


def test_each_cell_is_one_unrolled_pass_per_batch(model, data, monkeypatch) -> None:
    calls: list[tuple[int, int, bool]] = []
    forward = PixelSpaceNet.forward

    def counting(self, images, timesteps, record=False):
        calls.append((images.shape[0], timesteps, record))
        return forward(self, images, timesteps, record)

    monkeypatch.setattr(PixelSpaceNet, "forward", counting)
    images, labels = data
    source = OnTheFlyCorruptions(images, labels, batch_size=25)
    corruption_sweep(model, source, ["brightness"], [2], timesteps=T, progress=False)
    # Two cells (clean, brightness-2) x two batches (25 + 15), each one pass with timesteps=T.
    assert calls == [(25, T, False), (15, T, False)] * 2


def test_a_cell_does_not_depend_on_the_other_cells(model, data) -> None:
    images, labels = data
    source = OnTheFlyCorruptions(images, labels, batch_size=40, seed=1)
    both = corruption_sweep(
        model, source, ["shot_noise", "impulse_noise"], [3], timesteps=T, progress=False
    )
    alone = corruption_sweep(model, source, ["impulse_noise"], [3], timesteps=T, progress=False)
    assert np.array_equal(
        both.cells["impulse_noise", 3].wrong, alone.cells["impulse_noise", 3].wrong
    )


def test_restart_reuses_finished_cells_and_refuses_other_settings(model, data, tmp_path) -> None:
    images, labels = data
    source = OnTheFlyCorruptions(images, labels, batch_size=40)
    settings = {"timesteps": T, "seed": 0}
    first = corruption_sweep(
        model, source, ["contrast"], [1, 2], timesteps=T,
        store=ResultStore(tmp_path, settings), progress=False,
    )  # fmt: skip
    assert first.evaluated == 3
    assert ResultStore(tmp_path, settings).keys() == [
        "clean", "corruption-contrast-1", "corruption-contrast-2",
    ]  # fmt: skip
    # A new severity: only its cell is evaluated.
    second = corruption_sweep(
        model, source, ["contrast"], [1, 2, 3], timesteps=T,
        store=ResultStore(tmp_path, settings), progress=False,
    )  # fmt: skip
    assert second.evaluated == 1
    assert np.array_equal(second.cells["contrast", 2].wrong, first.cells["contrast", 2].wrong)
    with pytest.raises(ConfigError, match=r"different settings \(changed: timesteps\).*--restart"):
        ResultStore(tmp_path, {"timesteps": T + 1, "seed": 0})
    fresh = ResultStore(tmp_path, {"timesteps": T + 1, "seed": 0}, restart=True)
    assert fresh.keys() == []


def test_cell_round_trips_through_json() -> None:
    wrong = np.random.default_rng(0).random((4, 13)) < 0.3
    cell = CellResult("fog", 2, wrong)
    back = CellResult.from_json(cell.to_json())
    assert (back.corruption, back.severity) == ("fog", 2)
    assert np.array_equal(back.wrong, wrong)
    assert cell.to_json()["errors"] == pytest.approx(wrong.mean(axis=1).tolist())


def _synthetic_sweep(errors: dict[tuple[str, int], list[list[bool]]], clean) -> CorruptionSweep:
    cells = {key: CellResult(key[0], key[1], np.array(value)) for key, value in errors.items()}
    names = list(dict.fromkeys(name for name, _ in errors))
    severities = sorted({severity for _, severity in errors})
    timesteps = len(clean) - 1
    return CorruptionSweep(
        timesteps, names, severities, CellResult(CLEAN, 0, np.array(clean)), cells
    )


def test_summary_follows_the_metric_definitions() -> None:
    rng = np.random.default_rng(1)
    wrong = {
        (name, severity): rng.random((3, 50)) < 0.2 + 0.1 * severity
        for name in ("gaussian_noise", "fog")
        for severity in (1, 2, 3)
    }
    clean = rng.random((3, 50)) < 0.1
    sweep = _synthetic_sweep(wrong, clean)
    result = summarize_sweep(sweep, alexnet=True, n_resamples=200)
    assert result.clean_error == result.to_json()["clean_error"]  # fields are the JSON
    summary = result.to_json()
    assert summary["clean_error"] == pytest.approx(clean.mean(axis=1).tolist())
    for name in ("gaussian_noise", "fog"):
        table = np.stack([wrong[name, s].mean(axis=1) for s in (1, 2, 3)], axis=1)  # [T+1, S]
        assert summary["corruption_error"][name]["2"] == pytest.approx(table[:, 1].tolist())
        assert summary["ce_relative_to_t0"][name] == pytest.approx(ce_relative_to_t0(table))
        relative = [
            relative_corruption_error(table[t], clean.mean(axis=1)[t], table[0], clean.mean(1)[0])
            for t in range(3)
        ]
        assert summary["relative_ce_vs_t0"][name] == pytest.approx(relative)
        baseline = [ALEXNET_ERRORS_BY_SEVERITY[name][s - 1] for s in (1, 2, 3)]
        alexnet = summary["alexnet"]
        assert alexnet["ce"][name] == pytest.approx(
            [corruption_error(table[t], baseline) for t in range(3)]
        )
        assert alexnet["relative_ce"][name][1] == pytest.approx(
            relative_corruption_error(table[1], clean.mean(1)[1], baseline, ALEXNET_CLEAN_ERROR)
        )
    mean = np.mean([summary["ce_relative_to_t0"][n] for n in ("gaussian_noise", "fog")], axis=0)
    assert summary["mce_relative_to_t0"] == pytest.approx(mean.tolist())
    assert summary["mce_relative_to_t0"][0] == pytest.approx(1.0)
    assert summary["alexnet"]["mce"] == pytest.approx(
        np.mean([summary["alexnet"]["ce"][n] for n in ("gaussian_noise", "fog")], axis=0).tolist()
    )
    for t in range(3):
        low, high = summary["mce_relative_to_t0_ci"][t]
        assert low <= summary["mce_relative_to_t0"][t] <= high
        low, high = summary["mean_corruption_error_ci"][t]
        assert low <= summary["mean_corruption_error"][t] <= high
        low, high = summary["corruption_error_ci"]["fog"]["3"][t]
        assert low <= summary["corruption_error"]["fog"]["3"][t] <= high
    assert summarize_sweep(sweep).to_json()["alexnet"] is None


def test_undefined_relative_errors_are_none() -> None:
    never_wrong = [[False] * 4, [False] * 4]
    sweep = _synthetic_sweep({("contrast", 1): never_wrong}, never_wrong)
    summary = summarize_sweep(sweep, n_resamples=20).to_json()
    assert summary["ce_relative_to_t0"]["contrast"] == [None, None]
    assert summary["mce_relative_to_t0"] == [None, None]
    assert summary["relative_ce_vs_t0"]["contrast"] == [None, None]


def test_pixel_space_net_normalizes_inside(data) -> None:
    pnet = make_pnet(timesteps=1)
    model = PixelSpaceNet(pnet, {"mean": [0.1307], "std": [0.3081]})
    images = data[0][:4]
    with torch.no_grad():
        expected = pnet((images - 0.1307) / 0.3081, timesteps=1).logits
        torch.testing.assert_close(model(images, timesteps=1).logits, expected)
    torch.testing.assert_close(model.to_pixels(model.normalize(images)), images)
    assert model.num_classes() == 10
    with pytest.raises(ConfigError, match="channels"):
        PixelSpaceNet(pnet, {"mean": [0.5, 0.5, 0.5], "std": [0.2, 0.2, 0.2]})


def test_bad_sweep_inputs(model, data) -> None:
    images, labels = data
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        OnTheFlyCorruptions(images * 3 - 1, labels, batch_size=8)
    source = OnTheFlyCorruptions(images, labels, batch_size=40)
    with pytest.raises(DataError, match="unknown corruption 'gausian_noise'"):
        corruption_sweep(model, source, ["gausian_noise"], [1], timesteps=T, progress=False)
    with pytest.raises(DataError, match="severity must be an integer from 1 to 5, got 6"):
        corruption_sweep(model, source, ["contrast"], [6], timesteps=T, progress=False)


def test_benchmark_arrays_are_read_instead_of_corrupting(tmp_path) -> None:
    """CIFAR-C layout: <corruption>.npy with N/5 images per severity, and labels.npy."""
    from predify.evaluate.corruptions import CifarCArrays

    rng = np.random.default_rng(0)
    arrays = rng.integers(0, 256, size=(5 * 6, 32, 32, 3), dtype=np.uint8)
    np.save(tmp_path / "fog.npy", arrays)
    np.save(tmp_path / "labels.npy", rng.integers(0, 10, size=30))
    torch.manual_seed(0)
    model = PixelSpaceNet(pshallow(in_channels=3, image_size=32, timesteps=2)).eval()
    clean = torch.rand(6, 3, 32, 32)
    source = BenchmarkCorruptions(
        lambda name, severity: CifarCArrays(tmp_path, name, severity),
        indices=[5, 0, 2, 1, 3, 4],
        clean_images=clean,
        clean_labels=torch.arange(6),
        batch_size=4,
    )
    sweep = corruption_sweep(model, source, ["fog"], [2], timesteps=2, progress=False)
    reader = CifarCArrays(tmp_path, "fog", 2)
    images = torch.stack([reader[i][0] for i in [5, 0, 2, 1, 3, 4]])
    labels = torch.tensor([reader[i][1] for i in [5, 0, 2, 1, 3, 4]])
    with torch.no_grad():
        expected = top1_error(model(images, timesteps=2).logits, labels)
    np.testing.assert_allclose(sweep.cells["fog", 2].errors, expected.numpy())


def test_package_exports_resolve_lazily() -> None:
    assert sorted(evaluate.__all__) == sorted(evaluate._EXPORTS)
    for name in evaluate.__all__:
        assert getattr(evaluate, name) is not None
    assert evaluate.corruption_sweep is robustness.corruption_sweep
