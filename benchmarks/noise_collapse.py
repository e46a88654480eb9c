"""Why a CNN trained on clean MNIST-5k collapses under Gaussian noise, and which backbone does not.

Trains each candidate backbone with the demo's recipe (Adam, one-cycle schedule, clean training
split only, no noise augmentation) and measures on the *validation* split (the test split is
never looked at):

- accuracy at each noise sigma;
- the mean activation of every stage, clean vs noisy (noise shifts the mean of a ReLU map: a
  zero-mean perturbation of a pre-activation raises E[ReLU(.)]);
- the shift of the pooled (classifier-input) features, as a fraction of their clean spread
  between classes;
- the logits' shift and what the network predicts under noise (one class for every image is the
  sign of a common shift rather than of lost detail).

``python benchmarks/noise_collapse.py [--candidates shallow,conv3fc,...] [--seeds 0]``
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from predify.data import mnist5k_splits
from predify.models import ShallowCNN, SmallCNN

SIGMAS = (0.0, 0.25, 0.5, 1.0)


class Conv3FC(nn.Module):
    """conv-ReLU-pool x2, conv-ReLU, flatten, linear-ReLU, linear (no global average pool)."""

    def __init__(
        self,
        widths: tuple[int, int, int] = (32, 64, 64),
        hidden: int = 128,
        kernel: int = 3,
        dropout: float = 0.0,
        third_pool: bool = False,
    ) -> None:
        super().__init__()
        first, second, third = widths
        pad = kernel // 2
        layers: list[nn.Module] = [
            nn.Conv2d(1, first, kernel, padding=pad), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(first, second, kernel, padding=pad), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(second, third, kernel, padding=pad), nn.ReLU(),
        ]  # fmt: skip
        side = 7
        if third_pool:
            layers.append(nn.MaxPool2d(2))
            side = 3
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(third * side * side, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, 10),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


class ShallowMaxPool(ShallowCNN):
    """ShallowCNN with a global max pool instead of the global average pool."""

    def __init__(self) -> None:
        super().__init__(in_channels=1)
        self.pool = nn.AdaptiveMaxPool2d(1)  # type: ignore[assignment]


CANDIDATES: dict[str, Callable[[], nn.Module]] = {
    "shallow": lambda: ShallowCNN(in_channels=1),
    "shallow_maxpool": ShallowMaxPool,
    "conv3fc": lambda: Conv3FC(),
    # The zoo's SmallCNN is this family's (16, 32, 32), hidden 64 member.
    "small_cnn": lambda: SmallCNN(in_channels=1, num_classes=10, image_size=28),
    "conv3fc_k5": lambda: Conv3FC(kernel=5),
    "conv3fc_drop": lambda: Conv3FC(dropout=0.25),
    "conv3fc_pool3": lambda: Conv3FC(third_pool=True),
    "conv3fc_small_pool3": lambda: Conv3FC((16, 32, 32), hidden=64, third_pool=True),
}


def train(
    model: nn.Module, images: Tensor, labels: Tensor, epochs: int, lr: float, seed: int
) -> nn.Module:
    """The demo's backbone recipe: Adam, one-cycle, batch 64, seeded order."""
    steps_per_epoch = math.ceil(len(labels) / 64)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, lr, total_steps=epochs * steps_per_epoch
    )
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(labels), generator=generator)
        for start in range(0, len(labels), 64):
            batch = order[start : start + 64]
            loss = F.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()


def stage_outputs(model: nn.Module, x: Tensor) -> tuple[list[Tensor], Tensor, Tensor]:
    """Every ReLU output of ``model.features``, the classifier input, and the logits."""
    relus = []
    h = x
    for layer in model.features:  # type: ignore[union-attr]
        h = layer(h)
        if isinstance(layer, nn.ReLU):
            relus.append(h)
    if isinstance(model, ShallowCNN):
        pooled = torch.flatten(model.pool(h), 1)
        logits = model.classifier(pooled)
    else:
        pooled = torch.flatten(h, 1)
        logits = model.classifier(h)
    return relus, pooled, logits


def recentred_logits(model: nn.Module, pooled: Tensor) -> Tensor:
    """The logits from a classifier input (both classifiers take flat features)."""
    return model.classifier(pooled)  # type: ignore[operator]


@torch.no_grad()
def measure(model: nn.Module, images: Tensor, labels: Tensor, seed: int) -> dict[str, Any]:
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed + 1000))
    clean_relus, clean_pooled, clean_logits = stage_outputs(model, images)
    class_means = torch.stack([clean_pooled[labels == c].mean(0) for c in range(10)])
    between_class = (class_means - class_means.mean(0)).norm(dim=1).mean()
    out: dict[str, Any] = {}
    for sigma in SIGMAS:
        relus, pooled, logits = stage_outputs(model, images + sigma * noise)
        predicted = logits.argmax(-1)
        counts = torch.bincount(predicted, minlength=10)
        out[str(sigma)] = {
            "accuracy": float((predicted == labels).float().mean()),
            "stage_mean": [float(r.mean()) for r in relus],
            "stage_mean_clean": [float(r.mean()) for r in clean_relus],
            "active_fraction": [float((r > 0).float().mean()) for r in relus],
            # Mean shift of the classifier input (common to all images) vs the distance of class
            # means from their centre: > 1 means noise moves every image farther than classes
            # are apart.
            "pooled_common_shift_over_class_spread": float(
                (pooled - clean_pooled).mean(0).norm() / between_class
            ),
            "pooled_relative_norm": float(
                pooled.norm(dim=1).mean() / clean_pooled.norm(dim=1).mean()
            ),
            "logit_common_shift": [round(float(v), 2) for v in (logits - clean_logits).mean(0)],
            "top_predicted_class_share": float(counts.max()) / len(labels),
            # The diagnostic: remove only the common shift (noisy mean -> clean mean) of the
            # classifier input and classify again. What it recovers is what the shift cost.
            "accuracy_common_shift_removed": float(
                (
                    recentred_logits(model, pooled - pooled.mean(0) + clean_pooled.mean(0)).argmax(
                        -1
                    )
                    == labels
                )
                .float()
                .mean()
            ),
            "top_predicted_class": int(counts.argmax()),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--lrs", default="1e-2,3e-3")
    parser.add_argument("--details", action="store_true", help="print every stage's numbers")
    args = parser.parse_args()
    torch.set_num_threads(1)
    splits = mnist5k_splits(0)
    train_images, train_labels = splits.train.tensors
    val_images, val_labels = splits.val.tensors
    details: list[tuple[str, float, int, dict[str, Any]]] = []
    print(
        "| candidate | lr | seed | params | train s | val "
        + " | val ".join(map(str, SIGMAS))
        + " |"
    )
    print("|---|---|---|---|---|" + "---|" * len(SIGMAS))
    for name in args.candidates.split(","):
        for lr in (float(v) for v in args.lrs.split(",")):
            for seed in (int(v) for v in args.seeds.split(",")):
                torch.manual_seed(seed)
                model = CANDIDATES[name]()
                started = time.perf_counter()
                train(model, train_images, train_labels, args.epochs, lr, seed)
                seconds = time.perf_counter() - started
                result = measure(model, val_images, val_labels, seed)
                params = sum(p.numel() for p in model.parameters())
                accuracies = " | ".join(f"{100 * result[str(s)]['accuracy']:.1f}" for s in SIGMAS)  # type: ignore[index]
                print(
                    f"| {name} | {lr:g} | {seed} | {params} | {seconds:.1f} | {accuracies} |",
                    flush=True,
                )
                if args.details:
                    details.append((name, lr, seed, result))
    if details:
        print()
        print(
            "| candidate | lr | seed | sigma | accuracy | mean of each ReLU stage (clean -> noisy) "
            "| common shift of classifier input / class spread | logit shift, largest "
            "| share of the most predicted class | accuracy, common shift removed |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name, lr, seed, result in details:
            for sigma in SIGMAS:
                row = result[str(sigma)]
                stages = ", ".join(
                    f"{clean:.2f} -> {noisy:.2f}"
                    for clean, noisy in zip(row["stage_mean_clean"], row["stage_mean"], strict=True)
                )
                print(
                    f"| {name} | {lr:g} | {seed} | {sigma} | {100 * row['accuracy']:.1f} "
                    f"| {stages} "
                    f"| {row['pooled_common_shift_over_class_spread']:.2f} "
                    f"| {max(row['logit_common_shift'], key=abs):+.1f} "
                    f"| {100 * row['top_predicted_class_share']:.1f} "
                    f"| {100 * row['accuracy_common_shift_removed']:.1f} |"
                )


if __name__ == "__main__":
    main()
