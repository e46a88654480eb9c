"""Tests of predify.evaluate.analysis (correlation distance, prediction errors,
reconstructions) and of the PNG plots."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from evaluate_helpers import TIMESTEPS, make_pnet, sample_images

from predify.errors import ConfigError, DataError
from predify.evaluate.analysis import (
    NOISE_SIGMAS,
    RepresentationAnalysis,
    add_gaussian_noise,
    correlation_distance,
    reconstructions,
    representation_analysis,
)
from predify.evaluate.pixel_space import PixelSpaceNet
from predify.evaluate.plots import (
    plot_correlation_distance,
    plot_prediction_errors,
    plot_reconstructions,
)

T = TIMESTEPS
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def model() -> PixelSpaceNet:
    return PixelSpaceNet(make_pnet(timesteps=T)).eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return sample_images(24)[0]


def test_correlation_distance_values() -> None:
    generator = torch.Generator().manual_seed(0)
    first = torch.randn(3, 2, 5, 5, generator=generator)
    distance = correlation_distance(first, first)
    assert torch.equal(distance, torch.zeros(3))
    torch.testing.assert_close(correlation_distance(first, -first), torch.full((3,), 2.0))
    # Pearson r ignores offset and scale.
    torch.testing.assert_close(correlation_distance(first, 3 * first + 1), torch.zeros(3))
    second = torch.randn(3, 2, 5, 5, generator=generator)
    expected = [
        1 - np.corrcoef(a.flatten(), b.flatten())[0, 1] for a, b in zip(first, second, strict=True)
    ]
    torch.testing.assert_close(
        correlation_distance(first, second), torch.tensor(expected, dtype=torch.float32)
    )
    # A constant sample has no correlation: distance 1, unless both are the same.
    constant = torch.zeros(1, 4)
    assert correlation_distance(constant, torch.rand(1, 4)).item() == pytest.approx(1.0)
    assert correlation_distance(constant, constant).item() == 0.0
    with pytest.raises(ValueError, match="shapes differ"):
        correlation_distance(first, second[:2])


def test_noisy_representations_drift_further_with_more_noise(model, images) -> None:
    analysis = representation_analysis(
        model, images, timesteps=T, batch_size=10, n_resamples=100, seed=0
    )
    sigmas, pcoders = len(NOISE_SIGMAS), model.num_pcoders
    assert analysis.correlation_distance.shape == (sigmas, pcoders, T + 1)
    assert analysis.correlation_distance_ci.shape == (sigmas, pcoders, T + 1, 2)
    assert analysis.prediction_error_clean.shape == (T + 1, pcoders)
    assert analysis.prediction_error_noisy.shape == (sigmas, T + 1, pcoders)
    # More noise, further from the clean representation, at every pcoder and timestep.
    assert (np.diff(analysis.correlation_distance, axis=0) > 0).all()
    low, high = analysis.correlation_distance_ci[..., 0], analysis.correlation_distance_ci[..., 1]
    assert (low <= analysis.correlation_distance + 1e-12).all()
    assert (analysis.correlation_distance <= high + 1e-12).all()
    # Noise makes the first decoder's prediction of the (noisy) input worse.
    assert (analysis.prediction_error_noisy[:, :, 0] > analysis.prediction_error_clean[:, 0]).all()
    payload = analysis.to_json()
    assert list(payload["correlation_distance"]) == ["0.25", "0.5", "0.75", "1", "2"]
    assert list(payload["correlation_distance"]["0.5"]) == model.pcoder_names
    assert next(iter(payload["prediction_error"])) == "clean"
    back = RepresentationAnalysis.from_json(json.loads(json.dumps(payload)))
    np.testing.assert_array_equal(back.correlation_distance, analysis.correlation_distance)
    np.testing.assert_array_equal(back.correlation_distance_ci, analysis.correlation_distance_ci)
    np.testing.assert_array_equal(back.prediction_error_clean, analysis.prediction_error_clean)
    np.testing.assert_array_equal(back.prediction_error_noisy, analysis.prediction_error_noisy)
    assert back.to_json() == payload


def test_zero_noise_gives_zero_distance_and_the_recorded_errors(model, images) -> None:
    analysis = representation_analysis(
        model, images, timesteps=T, sigmas=[0.0], batch_size=24, n_resamples=0
    )
    assert np.allclose(analysis.correlation_distance, 0.0, atol=1e-6)
    assert np.isnan(analysis.correlation_distance_ci).all()
    with torch.no_grad():
        recorded = model(images, timesteps=T, record=True).errors
    np.testing.assert_allclose(analysis.prediction_error_clean, recorded.double(), rtol=1e-5)
    np.testing.assert_allclose(analysis.prediction_error_noisy[0], recorded.double(), rtol=1e-5)


def test_batches_are_weighted_by_their_size(model, images) -> None:
    whole = representation_analysis(
        model, images, timesteps=T, sigmas=[0.5], batch_size=24, n_resamples=0
    )
    split = representation_analysis(
        model, images, timesteps=T, sigmas=[0.5], batch_size=7, n_resamples=0
    )
    np.testing.assert_allclose(
        split.prediction_error_clean, whole.prediction_error_clean, rtol=1e-5
    )
    # The noise differs (drawn per batch shape) but the clean side must agree exactly.
    assert split.num_images == whole.num_images == 24


def test_noise_is_seeded_and_optionally_clipped(images) -> None:
    def noisy(seed: int, clip: bool) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return add_gaussian_noise(images, 2.0, generator, clip=clip)

    assert torch.equal(noisy(0, False), noisy(0, False))
    assert not torch.equal(noisy(0, False), noisy(1, False))
    assert noisy(0, False).min() < 0 and noisy(0, False).max() > 1
    assert noisy(0, True).min() >= 0 and noisy(0, True).max() <= 1


def test_reconstructions_are_the_first_decoder_in_pixel_space(images) -> None:
    pnet = make_pnet(timesteps=T)
    model = PixelSpaceNet(pnet, {"mean": [0.1307], "std": [0.3081]})
    recon = reconstructions(model, images[:3], timesteps=T, sigma=0.0)
    assert recon.predictions.shape == (T + 1, 3, 1, 28, 28)
    assert torch.equal(recon.noisy, images[:3])
    with torch.no_grad():
        preds = pnet((images[:3] - 0.1307) / 0.3081, timesteps=T, record=True).preds[0]
    torch.testing.assert_close(recon.predictions, preds * 0.3081 + 0.1307)
    noisy = reconstructions(model, images[:3], timesteps=T, sigma=0.5, seed=4)
    assert not torch.equal(noisy.noisy, images[:3])


def test_bad_analysis_inputs(model, images) -> None:
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        representation_analysis(model, images + 1, timesteps=T)
    with pytest.raises(ConfigError, match="sigmas"):
        representation_analysis(model, images, timesteps=T, sigmas=[-0.5])


def test_plots_are_png_files(model, images, tmp_path) -> None:
    analysis = representation_analysis(
        model, images[:8], timesteps=T, sigmas=[0.5, 1.0], n_resamples=0
    )
    recon = reconstructions(model, images[:2], timesteps=T)
    for plot, argument, name in (
        (plot_correlation_distance, analysis, "distance.png"),
        (plot_prediction_errors, analysis, "errors.png"),
        (plot_reconstructions, recon, "recon.png"),
    ):
        path = plot(argument, tmp_path / name)
        assert path.read_bytes()[:8] == PNG_MAGIC


def test_importing_the_package_does_not_import_matplotlib() -> None:
    code = (
        "import sys, predify.evaluate, predify.evaluate.cli, predify.evaluate.api, "
        "predify.evaluate.plots; "
        "print('matplotlib' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
