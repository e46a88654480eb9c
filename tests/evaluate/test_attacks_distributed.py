"""Attacks split by image across processes: the ``attacks`` block of results.json from two Gloo
processes (torchrun) equals one process's byte for byte, and an image's attack does not depend
on the batch it is attacked in (seeds per image index)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from evaluate_helpers import TIMESTEPS, make_pnet, make_run_dir, sample_images

from predify.cli import main
from predify.evaluate.attacks import attack_cost, pgd, square
from predify.evaluate.attacks.cost import GRADIENT_COST, AttackCost, CostEstimate
from predify.evaluate.pixel_space import PixelSpaceNet
from testkit import torchrun

T = 2
# 10 images in chunks of 4: an uneven split (chunks 0 and 2 on rank 0, chunk 1 on rank 1).
ARGS = [
    "--max-images", "10", "--attack-images", "10", "--batch-size", "4", "--corruptions", "none",
    "--no-analysis", "--no-plots", "--attacks", "pgd,square,transfer,minimal",
    "--epsilons", "0.05,0.2", "--attack-steps", "3", "--attack-restarts", "2",
    "--square-queries", "10", "--minimal-steps", "2", "--attack-timesteps", "0,2",
    "--bootstrap", "20", "--device", "cpu",
]  # fmt: skip


@pytest.mark.slow
def test_two_processes_write_the_attacks_one_process_writes(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path / "run", timesteps=T)
    alone, shared = tmp_path / "alone", tmp_path / "shared"
    assert main(["evaluate", str(run_dir), "--out", str(alone), *ARGS]) == 0
    output = torchrun(2, "evaluate", str(run_dir), "--out", str(shared), *ARGS)
    assert output.count("cost estimate:") == 1, "only rank 0 prints the estimate"
    one = json.loads((alone / "results.json").read_text())["attacks"]
    two = json.loads((shared / "results.json").read_text())["attacks"]
    assert one["minimal_perturbation"] is not None and len(one["attacks"]) == 3
    assert json.dumps(two, sort_keys=True) == json.dumps(one, sort_keys=True)


def test_an_images_attack_does_not_depend_on_its_batch() -> None:
    """Each image draws from its own generator: attacked in a batch, in the reversed batch or
    alone, it comes out the same."""
    model = PixelSpaceNet(make_pnet(timesteps=TIMESTEPS)).eval()
    images, labels = sample_images(6)
    reverse = torch.arange(5, -1, -1)

    def generators(order: list[int]) -> list[torch.Generator]:
        return [torch.Generator().manual_seed(100 + i) for i in order]

    # A budget at which some images fall early and others take many windows, so that the batch
    # shrinks while the others go on.
    settings = {"epsilon": 0.1, "timesteps": TIMESTEPS, "readout": 0}
    for attack, budget in ((square, {"queries": 30}), (pgd, {"steps": 2, "restarts": 2})):
        together = attack(model, images, labels, generator=generators(list(range(6))),
                          **budget, **settings)  # fmt: skip
        backwards = attack(model, images[reverse], labels[reverse],
                           generator=generators(reverse.tolist()), **budget,
                           **settings)  # fmt: skip
        torch.testing.assert_close(backwards[reverse], together, rtol=0, atol=1e-6)
        for i in (0, 3):
            one = attack(model, images[i : i + 1], labels[i : i + 1], generator=generators([i]),
                         **budget, **settings)  # fmt: skip
            torch.testing.assert_close(one[0], together[i], rtol=0, atol=1e-6)


def test_the_cost_estimate_counts_passes_times_unrolled_timesteps() -> None:
    # By hand: PGD, 1 epsilon, readouts 0 and 2 (1 and 3 timesteps unrolled), 10 steps x 2
    # restarts: 20 gradient and 2 forward passes per readout -> 20*(1+3) = 80 and 2*(1+3) = 8.
    # Square at 0 and T = 2 with 7 queries: 7*(1+3) = 28 forward.
    cost = attack_cost(
        ["pgd", "square"], [0.1], 2, readouts=[0, 2], steps=10, restarts=2, square_queries=7
    )
    assert cost == AttackCost(cells=4, gradient=80, forward=8 + 28)
    # AutoAttack standard, readout 0, 10 classes: 100 * (1 + 2 * 9) gradient passes (APGD-CE,
    # APGD-T and FAB-T over 9 targets), 5000 Square queries (Croce and Hein, 2020).
    auto = attack_cost(["autoattack"], [0.1], 2, readouts=[0])
    assert auto == AttackCost(cells=1, gradient=1900, forward=5000)
    estimate = CostEstimate(46, 250, 5, cost, 32)
    assert estimate.corruption_work == 46 * 250 * 6
    assert estimate.attack_work == 32 * (GRADIENT_COST * 80 + 36)
    assert estimate.line().startswith("cost estimate: corruptions 46 cells x 250 images")
