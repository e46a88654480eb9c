"""The attack campaign: every attack at every epsilon and readout, with the finished cells kept
in a [`ResultStore`][predify.runtime.store.ResultStore] and the gradient-masking checks.

A *cell* is one (attack, epsilon, readout): its adversarial images, crafted batch by batch, are
judged at every timestep in one unrolled pass, and the store keeps which images were fooled
(packed bits), under a key that includes a digest of the other settings.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ...errors import ConfigError
from ...runtime.progress import resolve_progress
from ...runtime.store import ResultStore, pack_bits, unpack_bits
from ..metrics import bootstrap_ci
from ..pixel_space import PixelSpaceNet, check_pixel_range
from .gradient_free import square
from .masking import WHITE_BOX, gradient_masking_checks
from .objectives import Norm, Readout, check_readout, success_mask, target_labels
from .results import (
    AttackBudget,
    AttackReport,
    AttackResult,
    EpsilonResult,
    ReadoutResult,
    epsilon_label,
)
from .white_box import bim, check_budget, pgd

__all__ = ["ATTACKS", "default_epsilons", "run_attacks"]

#: The attacks [`run_attacks()`][predify.evaluate.attacks.run_attacks] knows.
ATTACKS: tuple[str, ...] = ("pgd", "bim", "square", "transfer")
# Square here is written for L-inf budgets only.
_SQUARE_SKIPPED = "the Square attack here is L-inf only"


def default_epsilons(norm: Norm, channels: int) -> list[float]:
    """Three budgets used when none are given: MNIST-scale ones for 1-channel images, the usual
    ImageNet/CIFAR ones (k/255 in L-inf) otherwise. The largest is meant to be large enough for
    a working white-box attack to fool nearly every image (the gradient-masking check)."""
    if norm == "linf":
        return [0.05, 0.1, 0.3] if channels == 1 else [1 / 255, 4 / 255, 16 / 255]
    return [0.5, 1.5, 5.0] if channels == 1 else [0.25, 1.0, 4.0]


def _seed(seed: int, *parts: object) -> int:
    return zlib.crc32("/".join(str(part) for part in (seed, *parts)).encode())


@dataclass(frozen=True)
class _Budget:
    """What every attack cell of one [`run_attacks()`][predify.evaluate.attacks.run_attacks] call
    shares."""

    norm: Norm
    timesteps: int
    steps: int
    square_queries: int
    batch_size: int
    seed: int
    targeted: bool
    target_shift: int
    num_images: int

    def tag(self) -> str:
        """A short digest of the settings, part of every cell's progress key: cells crafted
        with other settings are never mistaken for these."""
        return f"{zlib.crc32(repr(self).encode()):08x}"


def _success_all_timesteps(
    model: PixelSpaceNet,
    images: Tensor,
    labels: Tensor,
    targets: Tensor | None,
    budget: _Budget,
) -> np.ndarray:
    """bool [T+1, N]: success at every timestep, one unrolled pass per batch."""
    flags = []
    with torch.inference_mode():
        for start in range(0, len(images), budget.batch_size):
            part = slice(start, start + budget.batch_size)
            logits = model(images[part], timesteps=budget.timesteps).logits
            flags.append(success_mask(logits, labels[part], _part(targets, part)).cpu())
    return torch.cat(flags, dim=1).numpy()


def _part(targets: Tensor | None, part: slice) -> Tensor | None:
    return None if targets is None else targets[part]


def _craft(
    model: PixelSpaceNet,
    attack: str,
    images: Tensor,
    labels: Tensor,
    targets: Tensor | None,
    epsilon: float,
    readout: Readout,
    budget: _Budget,
    generator: torch.Generator,
) -> Tensor:
    """Adversarial versions of one batch by ``attack`` (pgd, bim or square)."""
    if attack == "pgd":
        return pgd(
            model, images, labels, epsilon=epsilon, timesteps=budget.timesteps, readout=readout,
            norm=budget.norm, steps=budget.steps, targets=targets, generator=generator,
        )  # fmt: skip
    if attack == "bim":
        return bim(
            model, images, labels, epsilon=epsilon, timesteps=budget.timesteps, readout=readout,
            norm=budget.norm, steps=budget.steps, targets=targets,
        )  # fmt: skip
    return square(
        model, images, labels, epsilon=epsilon, timesteps=budget.timesteps, readout=readout,
        queries=budget.square_queries, targets=targets, generator=generator,
    )  # fmt: skip


def _attack_cell(
    model: PixelSpaceNet,
    attack: str,
    epsilon: float,
    readout: Readout,
    images: Tensor,
    labels: Tensor,
    targets: Tensor | None,
    budget: _Budget,
    store: ResultStore | None,
) -> np.ndarray:
    """bool [T+1, N]: success at every timestep of the images one (attack, epsilon, readout)
    cell crafts; read from ``store`` when it holds the cell, else computed and stored."""
    key = f"attack-{attack}-eps{epsilon_label(epsilon)}-t{readout}-{budget.tag()}"
    shape = (budget.timesteps + 1, len(images))
    payload = store.get(key) if store is not None else None
    if payload is not None:
        try:
            return unpack_bits(str(payload["success_bits"]), shape)
        except (KeyError, ValueError):
            pass  # a damaged file: compute the cell again
    seed = _seed(budget.seed, attack, epsilon_label(epsilon), readout)
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for start in range(0, len(images), budget.batch_size):
        part = slice(start, start + budget.batch_size)
        batch = (images[part], labels[part], _part(targets, part))
        batches.append(_craft(model, attack, *batch, epsilon, readout, budget, generator))
    crafted = torch.cat(batches)
    success = _success_all_timesteps(model, crafted, labels, targets, budget)
    if store is not None:
        store.put(key, {"attack": attack, "epsilon": epsilon, "readout": readout,
                        "success_bits": pack_bits(success)})  # fmt: skip
    return success


def _readout_list(readouts: Sequence[int] | Literal["sum"] | None, timesteps: int) -> list[Readout]:
    chosen: list[Readout]
    if readouts == "sum":
        chosen = ["sum"]
    elif readouts is None:
        chosen = list(range(timesteps + 1))
    else:
        chosen = [int(readout) for readout in readouts]
    for readout in chosen:
        check_readout(readout, timesteps)
    return chosen


def _plan(
    attacks: Sequence[str],
    epsilons: Sequence[float],
    readouts: Sequence[Readout],
    square_readouts: Sequence[Readout],
    norm: Norm,
) -> list[tuple[str, float, Readout]]:
    """The (attack, epsilon, readout) cells to craft, each once."""
    plan: list[tuple[str, float, Readout]] = []
    for attack in attacks:
        if attack in WHITE_BOX:
            plan += [(attack, eps, readout) for eps in epsilons for readout in readouts]
        elif attack == "square" and norm == "linf":
            plan += [("square", eps, readout) for eps in epsilons for readout in square_readouts]
        elif attack == "transfer":
            # Crafted by PGD on the feed-forward readout: the PGD cell (eps, t = 0) itself.
            plan += [("pgd", eps, 0) for eps in epsilons if ("pgd", eps, 0) not in plan]
    return plan


Cells = dict[tuple[str, float, Readout], np.ndarray]


@dataclass(frozen=True)
class _Rates:
    """Success rates (and their bootstrap intervals) from the cells' per-image flags."""

    cells: Cells
    n_resamples: int
    confidence: float
    seed: int

    def white_box(self, attack: str, epsilon: float, readout: Readout) -> ReadoutResult:
        """PGD/BIM against ``readout``: success there, its interval, and at every timestep."""
        flags = self.cells[attack, epsilon, readout]
        at_readout = np.asarray(flags.all(axis=0) if readout == "sum" else flags[readout])
        interval = None
        if self.n_resamples > 0:
            low, high = bootstrap_ci(
                np.asarray(at_readout).astype(np.float64), n_resamples=self.n_resamples,
                confidence=self.confidence, seed=_seed(self.seed, f"{attack}{epsilon}{readout}"),
            )  # fmt: skip
            interval = (float(low), float(high))
        every = tuple(_rate(row) for row in flags)
        return ReadoutResult(readout, _rate(at_readout), interval, every)

    def attack(
        self, name: str, epsilons: Sequence[float], readouts: Sequence[Readout], budget: _Budget
    ) -> AttackResult:
        """The result of ``name`` at every epsilon (``readouts``: where PGD/BIM or Square
        aimed)."""
        norm = budget.norm
        if name in WHITE_BOX:
            restarts = 1 if name == "pgd" else None
            spent = AttackBudget(steps=budget.steps, restarts=restarts)
            by_eps = [
                EpsilonResult(eps, tuple(self.white_box(name, eps, r) for r in readouts))
                for eps in epsilons
            ]
            return AttackResult(name, norm, spent, tuple(by_eps))
        if name == "square":
            spent = AttackBudget(queries=budget.square_queries)
            if norm != "linf":
                return AttackResult(name, norm, spent, skipped=_SQUARE_SKIPPED)
            by_eps = [
                EpsilonResult(eps, tuple(self._at(name, eps, r, int(r)) for r in readouts))
                for eps in epsilons
            ]
            return AttackResult(name, norm, spent, tuple(by_eps))
        # transfer: PGD's images against t = 0, judged at every timestep
        spent = AttackBudget(steps=budget.steps, restarts=1)
        steps = range(budget.timesteps + 1)
        by_eps = [
            EpsilonResult(eps, tuple(self._at("pgd", eps, 0, t) for t in steps)) for eps in epsilons
        ]
        return AttackResult(name, norm, spent, tuple(by_eps), source_readout=0)

    def _at(self, attack: str, epsilon: float, crafted_at: Readout, timestep: int) -> ReadoutResult:
        return ReadoutResult(timestep, _rate(self.cells[attack, epsilon, crafted_at][timestep]))


def _rate(flags: np.ndarray) -> float:
    return float(flags.mean())


def run_attacks(
    model: PixelSpaceNet,
    images: Tensor,
    labels: Tensor,
    *,
    attacks: Sequence[str],
    epsilons: Sequence[float],
    timesteps: int,
    norm: Norm = "linf",
    targeted: bool = False,
    target_shift: int = 1,
    num_classes: int | None = None,
    readouts: Sequence[int] | Literal["sum"] | None = None,
    square_readouts: Sequence[int] | None = None,
    steps: int = 10,
    square_queries: int = 300,
    batch_size: int = 100,
    seed: int = 0,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    store: ResultStore | None = None,
    progress: bool | None = None,
) -> AttackReport:
    """White-box PGD/BIM at each readout, Square and transfer from t = 0, for every epsilon.

    Args:
        model: network in pixel space.
        images: [N, C, H, W] in [0, 1]; labels: int [N].
        attacks: a subset of `ATTACKS`.
        epsilons: budgets in pixel units (the norm's).
        timesteps: T.
        targeted: aim at ``(label + target_shift) mod num_classes``.
        readouts: timesteps attacked by PGD/BIM (default: every one, 0..T), or ``"sum"`` to
            attack the sum of the losses of all timesteps.
        square_readouts: timesteps the Square attack aims at (default: 0 and T).
        steps: PGD/BIM iterations; square_queries: Square's query budget per image.
        batch_size: images attacked together.
        seed: seeds random starts and Square's draws (per attack, epsilon and readout).
        n_resamples, confidence: bootstrap intervals of success rates (0: none).
        store: finished (attack, epsilon, readout) cells are read from and written to it,
            under keys that include a digest of the other settings.

    Returns:
        An [`AttackReport`][predify.evaluate.attacks.AttackReport]: per attack, per epsilon,
        the success rate at each readout of ``readouts`` (PGD/BIM, with the rate at every
        timestep of the images crafted against it and a bootstrap interval) or
        ``square_readouts`` (Square), and at every timestep 0..T for ``transfer``; and the
        gradient-masking checks.
    """
    unknown = [name for name in attacks if name not in ATTACKS]
    if unknown:
        raise ConfigError(f"unknown attack {unknown[0]!r}; expected some of {', '.join(ATTACKS)}")
    epsilons = [float(eps) for eps in epsilons]
    for eps in epsilons:
        check_budget(eps, norm, steps)
    check_pixel_range(images)
    readout_list = _readout_list(readouts, timesteps)
    square_list = _readout_list(
        sorted({0, timesteps}) if square_readouts is None else square_readouts, timesteps
    )
    classes = model.num_classes() if num_classes is None else num_classes
    images, labels = images.to(model.device), labels.to(model.device)
    targets = target_labels(labels, classes, target_shift) if targeted else None
    budget = _Budget(
        norm, timesteps, steps, square_queries, batch_size, seed, targeted, target_shift,
        len(images),
    )  # fmt: skip
    plan = _plan(attacks, epsilons, readout_list, square_list, norm)
    cells = {
        (attack, eps, readout): _attack_cell(
            model, attack, eps, readout, images, labels, targets, budget, store
        )
        for attack, eps, readout in tqdm(
            plan, desc="attacks", unit="cell", disable=not resolve_progress(progress)
        )
    }
    clean = _success_all_timesteps(model, images, labels, targets, budget)
    rates = _Rates(cells, n_resamples, confidence, seed)
    results = tuple(
        rates.attack(name, epsilons, square_list if name == "square" else readout_list, budget)
        for name in attacks
    )
    return AttackReport(
        norm=norm,
        targeted=targeted,
        target_shift=target_shift if targeted else None,
        epsilons=tuple(epsilons),
        timesteps=timesteps,
        num_images=len(images),
        objective="sum" if readouts == "sum" else "per-timestep",
        readouts=tuple(readout_list),
        success_definition=(
            "fraction of attacked images whose prediction at the readout is the target"
            if targeted
            else "fraction of attacked images misclassified at the readout"
        ),
        clean_success=tuple(_rate(row) for row in clean),
        attacks=results,
        checks=gradient_masking_checks(results, epsilons),
    )
