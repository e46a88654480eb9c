"""`predify.evaluate.classifier()` handed to the attack libraries (torchattacks, foolbox,
AutoAttack), the cross-checks of predify's attacks against them, and the minimal perturbation on a
classifier whose answer is known. Small sizes, CPU, seconds each."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from evaluate_helpers import TIMESTEPS, make_pnet, sample_images
from torch import nn

from predify.errors import ConfigError
from predify.evaluate import ReadoutClassifier, classifier
from predify.evaluate.attacks import autoattack, bim, minimal_perturbations, run_attacks
from predify.evaluate.pixel_space import PixelSpaceNet

T = TIMESTEPS


@pytest.fixture(scope="module")
def model() -> PixelSpaceNet:
    return PixelSpaceNet(make_pnet(timesteps=T)).eval()


def _accuracy(module: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return module(images).argmax(dim=-1) == labels


# ---------------------------------------------------------------------------------------------
# the classifier
# ---------------------------------------------------------------------------------------------


def test_classifier_is_the_readout_of_the_unrolled_network_with_normalisation_inside() -> None:
    pnet = make_pnet(timesteps=T)
    pnet.normalization = {"mean": [0.25], "std": [0.5]}
    images, _ = sample_images(6)
    with torch.no_grad():
        every = pnet((images - 0.25) / 0.5, timesteps=T).logits  # [T+1, B, K], by hand
        for t in range(T + 1):
            torch.testing.assert_close(classifier(pnet, timestep=t)(images), every[t])
        torch.testing.assert_close(classifier(pnet, timestep="mean")(images), every.mean(dim=0))
    assert classifier(pnet, timestep="mean", timesteps=1).timesteps == 1


def test_classifier_is_in_eval_mode_leaves_no_hook_and_passes_gradients_to_the_pixels() -> None:
    pnet = make_pnet(timesteps=T).train()
    hooks_before = [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in pnet.modules()]
    model = classifier(pnet, timestep=T)
    assert isinstance(model, ReadoutClassifier) and not model.training and not pnet.training
    images, labels = sample_images(4)
    images.requires_grad_(True)
    loss = nn.functional.cross_entropy(model(images), labels)
    (gradient,) = torch.autograd.grad(loss, images)
    assert gradient.shape == images.shape and gradient.abs().sum() > 0
    hooks_after = [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in pnet.modules()]
    assert hooks_after == hooks_before
    # The same images give the same logits twice: no state is carried between calls.
    with torch.no_grad():
        torch.testing.assert_close(model(images), model(images))


@pytest.mark.parametrize("timestep", [-1, 1.5, "last", True])
def test_classifier_refuses_a_bad_timestep(timestep) -> None:
    with pytest.raises(ConfigError, match="timestep"):
        classifier(make_pnet(timesteps=T), timestep=timestep)


# ---------------------------------------------------------------------------------------------
# the libraries on it
# ---------------------------------------------------------------------------------------------


def test_torchattacks_runs_on_the_classifier(model) -> None:
    torchattacks = pytest.importorskip("torchattacks")
    images, labels = sample_images(16)
    readout = classifier(model, timestep=T)
    adversarial = torchattacks.PGD(readout, eps=0.3, alpha=0.05, steps=10)(images, labels)
    assert (adversarial - images).abs().max() <= 0.3 + 1e-6
    # A large budget fools this small MNIST network on nearly every image.
    assert _accuracy(readout, adversarial, labels).float().mean() <= 0.1


def test_predify_bim_equals_foolbox_bim_image_by_image(model) -> None:
    """Same epsilon, steps and step size, no random start. foolbox runs every step and returns
    the last iterate; predify's BIM stops an image at its first successful iterate. So: images
    predify did not fool followed the same iterates and must come back equal (float32 ops in the
    same order: x + a * sign(g), clip to the ball, clip to [0, 1]); per-image success must agree
    on every image (foolbox's last iterate stays adversarial here, checked)."""
    fb = pytest.importorskip("foolbox")
    images, labels = sample_images(48)
    epsilon, steps, step = 0.1, 10, 0.02
    for readout in (0, T):
        network = classifier(model, timestep=readout)
        attack = fb.attacks.LinfBasicIterativeAttack(abs_stepsize=step, steps=steps)
        fmodel = fb.PyTorchModel(network, bounds=(0, 1))
        _, theirs, their_success = attack(fmodel, images, labels, epsilons=epsilon)
        ours = bim(
            model, images, labels, epsilon=epsilon, timesteps=T, readout=readout, steps=steps,
            step_size=step,
        )  # fmt: skip
        our_success = ~_accuracy(network, ours, labels)
        assert torch.equal(our_success, their_success.cpu()), readout
        assert 0.2 < our_success.float().mean() < 1.0  # a case where both outcomes occur
        kept = ~our_success
        torch.testing.assert_close(ours[kept], theirs[kept], rtol=0, atol=1e-6)


@pytest.mark.slow
def test_autoattack_runs_on_the_classifier_and_agrees_with_torchattacks(model) -> None:
    """pyautoattack (the authors' code) through predify's wrapper and torchattacks' AutoAttack
    port, standard version, same images and budget: robust accuracies within a few images.
    Takes about a minute on two shared CPU cores."""
    pytest.importorskip("pyautoattack")
    torchattacks = pytest.importorskip("torchattacks")
    images, labels = sample_images(24)
    readout = classifier(model, timestep=0)
    ours, notes = autoattack(model, images, labels, epsilon=0.05, readout=0, num_classes=10, seed=0)
    assert isinstance(notes, tuple)
    assert (ours - images).abs().max() <= 0.05 + 1e-6
    theirs = torchattacks.AutoAttack(readout, eps=0.05, version="standard", n_classes=10, seed=0)(
        images, labels
    )
    ours_robust = int(_accuracy(readout, ours, labels).sum())
    theirs_robust = int(_accuracy(readout, theirs, labels).sum())
    assert ours_robust <= int(_accuracy(readout, images, labels).sum())
    assert abs(ours_robust - theirs_robust) <= 2, (ours_robust, theirs_robust)


def test_autoattack_leaves_the_global_random_state_alone(model) -> None:
    pytest.importorskip("pyautoattack")
    images, labels = sample_images(4)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    autoattack(model, images, labels, epsilon=0.3, readout=0, num_classes=10, seed=7)
    assert torch.equal(torch.rand(3), expected)


def test_autoattack_in_the_campaign_states_its_budget_and_is_skipped_when_targeted(model) -> None:
    pytest.importorskip("pyautoattack")
    images, labels = sample_images(8)
    settings = {"epsilons": [0.3], "timesteps": T, "readouts": [0], "n_resamples": 0,
                "progress": False}  # fmt: skip
    report = run_attacks(model, images, labels, attacks=["autoattack"], **settings)
    assert report is not None
    (result,) = report.attacks
    assert result.skipped is None
    assert result.budget.to_json() == {
        "steps": 100,
        "restarts": 1,
        "queries": 5000,
        "target_classes": 9,
    }  # AutoAttack's standard version (Croce and Hein, 2020)
    assert result.at(0.3).success[0] >= 0.9
    targeted = run_attacks(model, images, labels, attacks=["autoattack"], targeted=True, **settings)
    assert targeted is not None and targeted.attacks[0].skipped is not None


# ---------------------------------------------------------------------------------------------
# minimal perturbation
# ---------------------------------------------------------------------------------------------


class _Linear(PixelSpaceNet):
    """logits = [0, w.x + b]: class 1 exactly where w.x + b > 0. The smallest perturbation
    that changes the decision has L2 norm |w.x + b| / ||w||_2 and L-inf norm |w.x + b| /
    ||w||_1 (Hölder duality), as long as the closest point stays inside [0, 1]."""

    def __init__(self, weight: torch.Tensor, bias: float) -> None:
        nn.Module.__init__(self)
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.bias = bias

    def forward(
        self, images: torch.Tensor, timesteps: int, record: bool = False
    ) -> SimpleNamespace:
        score = images.flatten(1) @ self.weight.flatten() + self.bias
        logits = torch.stack([torch.zeros_like(score), score], dim=-1)
        return SimpleNamespace(logits=logits.unsqueeze(0).expand(timesteps + 1, -1, -1))


def test_the_minimal_perturbation_of_a_linear_classifier_is_the_known_one() -> None:
    """BIM moves along w (L2) or sign(w) (L-inf), so the bisection reaches the exact distance
    to its resolution: the largest budget (sqrt(36) = 6 in L2, 1 in L-inf) / 2**10, plus the
    overshoot of the first successful step (<= 2.5 * eps / steps of the budget)."""
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(1, 6, 6, generator=generator)
    images = 0.4 + 0.2 * torch.rand(10, 1, 6, 6, generator=generator)
    bias = -float((images.flatten(1) @ weight.flatten()).median())
    score = images.flatten(1) @ weight.flatten() + bias
    labels = (score > 0).long()
    keep = score.abs() > 1e-3
    images, labels, score = images[keep], labels[keep], score[keep]
    distances = minimal_perturbations(_Linear(weight, bias), images, labels, readout=0, steps=20)
    for row, (exact, largest) in enumerate(
        ((score.abs() / weight.norm(p=2), 6.0), (score.abs() / weight.norm(p=1), 1.0))
    ):
        exact_np = exact.double().numpy()
        resolution = largest / 2**10
        # Never below the exact distance: each one is an adversarial image's norm.
        assert np.all(distances[row] >= exact_np * (1 - 1e-4)), row
        assert np.all(distances[row] <= exact_np * 1.125 + 2 * resolution), (
            row,
            distances[row],
            exact_np,
        )
    # An image the classifier already gets wrong is at distance 0.
    flipped = minimal_perturbations(_Linear(weight, bias), images[:2], 1 - labels[:2], readout=0)
    assert np.all(flipped == 0)


def test_the_campaign_reports_median_minimal_distances_per_readout(model) -> None:
    images, labels = sample_images(8)
    report = run_attacks(
        model, images, labels, attacks=["minimal"], epsilons=[0.1], timesteps=T, readouts=[0, T],
        minimal_steps=5, n_resamples=0, progress=False,
    )  # fmt: skip
    assert report is not None and report.minimal is not None and report.attacks == ()
    distances = minimal_perturbations(model, images, labels, readout=T, steps=5)
    at_t = report.minimal.at(T, "l2")
    assert at_t.found == float(np.isfinite(distances[0]).mean())
    assert at_t.median == pytest.approx(float(np.median(distances[0])))
    assert report.minimal.budget.steps == 5
    assert type(report).from_json(report.to_json()) == report
