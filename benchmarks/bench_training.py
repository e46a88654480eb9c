"""Cost of one feedback-training step (the paper's objective) against its floor and the naive way.

Three ways to take one optimiser step on the decoders, backbone frozen:

* ``lean``: :meth:`predify.FeedbackTrainer.step` as shipped: the backbone runs under no_grad with
  temporary forward hooks that keep the pcoder modules' outputs; decoders forward with grad;
  backward to the decoder weights only; Adam step; the per-pcoder losses read back as floats.
* ``floor``: the least any implementation must do, written out by hand below: the backbone's
  layers called one after the other under no_grad (no hooks; the activations are simply the
  intermediate results), the decoders forward, backward to the decoder weights, Adam step.
* ``naive``: the backbone's parameters require grad and the whole forward pass is recorded; one
  backward through everything (backbone included), Adam step on the decoders.

The three run interleaved on the same network, in an order that rotates every round (lean,
floor, naive; floor, naive, lean; ...), so that load from other processes hits all alike and none
always follows the naive step's large frees. Each step is timed; the median (and the minimum,
the least disturbed by other processes) over the rounds after the warm-up is reported, with the
ratios to the floor measured in the same run.

Usage::

    python benchmarks/bench_training.py           # PResNet18 batch 8 and PVGG16 batch 1, 224x224
    python benchmarks/bench_training.py --quick   # 64x64 inputs, a smoke run (seconds)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import predify
from predify.models import presnet18, pvgg16
from predify.train import FeedbackTrainer


@dataclass
class Case:
    name: str
    build: Callable[[int], predify.PredictiveNet]
    layers: Callable[[nn.Module], list[nn.Module]]
    """The backbone's forward as a list of modules applied in order (for the floor)."""
    batch: int


def resnet_layers(backbone: nn.Module) -> list[nn.Module]:
    b = backbone
    return [b.conv1, b.bn1, b.relu, b.maxpool, b.layer1, b.layer2, b.layer3, b.layer4,
            b.avgpool, nn.Flatten(1), b.fc]  # fmt: skip


def vgg_layers(backbone: nn.Module) -> list[nn.Module]:
    return [*backbone.features, backbone.avgpool, nn.Flatten(1), *backbone.classifier]


CASES = [
    Case("PResNet18 (maxpool, layer1-4; automatic decoders)",
         lambda size: presnet18(weights=None, image_size=size), resnet_layers, 8),
    Case("PVGG16 (the paper's 5 pcoders and decoders)",
         lambda size: pvgg16(weights=None, image_size=size), vgg_layers, 1),
]  # fmt: skip


def floor_step(
    layers: list[nn.Module],
    kept: list[nn.Module],
    decoders: list[nn.Module],
    optimizer: torch.optim.Optimizer,
    images: Tensor,
) -> None:
    """No hooks, no checks: the intermediate results of the pcoder modules are the targets."""
    activations = []
    with torch.no_grad():
        x = images
        for layer in layers:
            x = layer(x)
            if any(layer is module for module in kept):
                activations.append(x)
    optimizer.zero_grad(set_to_none=True)
    targets = [images, *activations[:-1]]
    loss = sum(
        F.mse_loss(decoder(a), t)
        for decoder, a, t in zip(decoders, activations, targets, strict=True)
    )
    assert isinstance(loss, Tensor)
    loss.backward()
    optimizer.step()


def naive_step(
    pnet: predify.PredictiveNet, optimizer: torch.optim.Optimizer, images: Tensor
) -> None:
    """The whole graph recorded, backbone parameters included, and one backward through it."""
    from predify.submodules import forward_hooks

    captured: list[Tensor] = []
    with forward_hooks(
        [(m, lambda module, i, o: captured.append(o)) for m in pnet._modules_to_update]
    ):
        pnet.backbone(images)
    optimizer.zero_grad(set_to_none=True)
    pnet.backbone.zero_grad(set_to_none=True)
    targets = [images, *captured[:-1]]
    loss = sum(
        F.mse_loss(p.decoder(a), t) for p, a, t in zip(pnet.pcoders, captured, targets, strict=True)
    )
    assert isinstance(loss, Tensor)
    loss.backward()
    optimizer.step()


def timed(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def bench_case(case: Case, size: int, batch: int, rounds: int, warmup: int) -> dict[str, float]:
    torch.manual_seed(0)
    pnet = case.build(size)
    images = torch.rand(batch, 3, size, size)
    trainer = FeedbackTrainer(pnet, lr=1e-4, weight_decay=0.0)
    trainer.prepare()  # frozen backbone in eval mode for every variant, as in training
    decoders = [pcoder.decoder for pcoder in pnet.pcoders]
    floor_optimizer = torch.optim.Adam(pnet.decoder_parameters(), lr=1e-4)
    naive_optimizer = torch.optim.Adam(pnet.decoder_parameters(), lr=1e-4)
    layers = case.layers(pnet.backbone)
    kept = list(pnet._modules_to_update)
    backbone_parameters = list(pnet.backbone.parameters())

    def naive() -> None:
        for parameter in backbone_parameters:
            parameter.requires_grad_(True)
        try:
            naive_step(pnet, naive_optimizer, images)
        finally:
            for parameter in backbone_parameters:
                parameter.requires_grad_(False)
                parameter.grad = None

    variants: dict[str, Callable[[], object]] = {
        "lean": lambda: trainer.step(images),
        "floor": lambda: floor_step(layers, kept, decoders, floor_optimizer, images),
        "naive": naive,
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for round_index in range(warmup + rounds):
        # Rotate the order: each variant follows each other one equally often, so what the step
        # before left behind (freed buffers, caches) favours none of them.
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            elapsed = timed(variants[name])
            if round_index >= warmup:
                times[name].append(elapsed)
    return {
        **{name: statistics.median(values) for name, values in times.items()},
        **{f"{name}_min": min(values) for name, values in times.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="64x64 inputs, 1 warm-up, 3 rounds")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds (default 6)")
    parser.add_argument("--size", type=int, default=None, help="image side (default 224)")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    size = args.size or (64 if args.quick else 224)
    rounds = args.rounds or (3 if args.quick else 6)
    warmup = 1 if args.quick else 3
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}, "
        f"{size}x{size}, median of {rounds} rounds after {warmup} warm-up, interleaved; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        "| network | batch | floor (s) | lean (s) | naive (s) | lean / floor | naive / floor "
        "| lean / floor, min |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for case in CASES:
        times = bench_case(case, size, case.batch, rounds, warmup)
        floor = times["floor"]
        print(
            f"| {case.name} | {case.batch} | {floor:.3f} | {times['lean']:.3f} | "
            f"{times['naive']:.3f} | {times['lean'] / floor:.3f} | "
            f"{times['naive'] / floor:.3f} | {times['lean_min'] / times['floor_min']:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
