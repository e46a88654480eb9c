"""The attack campaign: every attack at every epsilon and readout, with the finished cells kept
in a [`ResultStore`][predify.runtime.store.ResultStore] and the gradient-masking checks.

A *cell* is one (attack, epsilon, readout): its adversarial images, crafted chunk by chunk (one
batch each, shared among the processes of a multi-process run), are judged at every timestep in
one unrolled pass, and the store keeps which images were fooled (packed bits), under a key that
includes a digest of the other settings. An ``minimal`` cell (epsilon 0) keeps each image's smallest
L2 and L-inf perturbation instead.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ...errors import ConfigError
from ...runtime.distributed import DistributedInfo, assigned, broadcast_from_main, gather_to_main
from ...runtime.progress import resolve_progress
from ...runtime.store import ResultStore, pack_bits, unpack_bits
from ...runtime.validation import check_int
from ..metrics import bootstrap_ci
from ..pixel_space import PixelSpaceNet, check_pixel_range
from .autoattack import AUTOATTACK_BUDGET, autoattack
from .cost import AttackCost
from .gradient_free import square
from .masking import WHITE_BOX, gradient_masking_checks
from .minimal import MINIMAL_METHOD, median_distance, minimal_perturbations
from .objectives import Norm, Readout, check_readout, success_mask, target_labels
from .results import (
    AttackBudget,
    AttackReport,
    AttackResult,
    EpsilonResult,
    MinimalDistance,
    MinimalPerturbations,
    ReadoutResult,
    epsilon_label,
)
from .white_box import bim, check_budget, pgd

__all__ = [
    "ATTACKS",
    "DEFAULT_MINIMAL_STEPS",
    "DEFAULT_RESTARTS",
    "DEFAULT_SQUARE_QUERIES",
    "DEFAULT_STEPS",
    "attack_cost",
    "attack_passes",
    "default_epsilons",
    "run_attacks",
]

#: PGD/BIM steps and PGD restarts by default: 50 steps of 2.5 * eps / 50 from 5 random starts,
#: between Madry et al. (ICLR 2018: 40-100 steps, up to 20 restarts on MNIST, 7-20 steps on
#: CIFAR-10) and AutoAttack's APGD (100 iterations; 5 restarts in its "plus" version). The
#: Predify paper ran foolbox's BIM; ``--attacks bim`` runs it with the same step count.
DEFAULT_STEPS = 50
DEFAULT_RESTARTS = 5
#: Square's queries per image by default: the Square paper's ImageNet budget and AutoAttack's
#: standard version (Andriushchenko et al., ECCV 2020; Croce and Hein, ICML 2020).
DEFAULT_SQUARE_QUERIES = 5000
#: Attack steps per budget tried by the minimal-perturbation bisection (10 bisections after
#: the whole cube: 11 runs per image, readout and norm).
DEFAULT_MINIMAL_STEPS = 20
_BISECTIONS = 10

#: The attacks [`run_attacks()`][predify.evaluate.attacks.run_attacks] knows.
ATTACKS: tuple[str, ...] = ("pgd", "bim", "square", "transfer", "autoattack", "minimal")
# Square here is written for L-inf budgets only.
_SQUARE_SKIPPED = "the Square attack here is L-inf only"
_AUTOATTACK_SKIPPED = {
    "targeted": "AutoAttack's standard version is untargeted",
    "sum": "AutoAttack attacks one readout's logits; the summed objective has none",
}
# Gradient passes of the feed-forward network cost about this many forward passes.
_BACKWARD_COST = 3


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
    restarts: int
    square_queries: int
    minimal_steps: int
    bisections: int
    batch_size: int
    seed: int
    targeted: bool
    target_shift: int
    num_images: int
    num_classes: int

    def tag(self) -> str:
        """A short digest of the settings, part of every cell's progress key: cells crafted
        with other settings are never mistaken for these."""
        return f"{zlib.crc32(repr(self).encode()):08x}"


Cell = tuple[str, float, Readout]


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


@dataclass(frozen=True)
class _Chunk:
    """Images ``start .. start + len(labels)`` of the campaign: the unit of work a process
    takes (every chunk is one batch, whatever the process count)."""

    start: int
    images: Tensor
    labels: Tensor
    targets: Tensor | None

    def generators(self, seed: int, cell: Cell) -> list[torch.Generator]:
        """One generator per image, seeded by (seed, attack, epsilon, readout, image index)."""
        attack, epsilon, readout = cell
        label = epsilon_label(epsilon)
        return [
            torch.Generator().manual_seed(_seed(seed, attack, label, readout, self.start + i))
            for i in range(len(self.labels))
        ]


def _craft(model: PixelSpaceNet, cell: Cell, chunk: _Chunk, budget: _Budget) -> Tensor:
    """Adversarial versions of one chunk by the cell's attack (pgd, bim, square, autoattack)."""
    attack, epsilon, readout = cell
    images, labels, targets = chunk.images, chunk.labels, chunk.targets
    if attack == "pgd":
        return pgd(
            model, images, labels, epsilon=epsilon, timesteps=budget.timesteps, readout=readout,
            norm=budget.norm, steps=budget.steps, restarts=budget.restarts, targets=targets,
            generator=chunk.generators(budget.seed, cell),
        )  # fmt: skip
    if attack == "bim":
        return bim(
            model, images, labels, epsilon=epsilon, timesteps=budget.timesteps, readout=readout,
            norm=budget.norm, steps=budget.steps, targets=targets,
        )  # fmt: skip
    if attack == "square":
        return square(
            model, images, labels, epsilon=epsilon, timesteps=budget.timesteps, readout=readout,
            queries=budget.square_queries, targets=targets,
            generator=chunk.generators(budget.seed, cell),
        )  # fmt: skip
    assert isinstance(readout, int)  # "sum" is skipped for AutoAttack
    # AutoAttack draws for a whole batch from the global generator: seeded per chunk.
    crafted, _ = autoattack(
        model, images, labels, epsilon=epsilon, readout=readout, norm=budget.norm,
        num_classes=budget.num_classes,
        seed=_seed(budget.seed, attack, epsilon_label(epsilon), readout, chunk.start),
    )  # fmt: skip
    return crafted


def _cell_values(model: PixelSpaceNet, cell: Cell, chunk: _Chunk, budget: _Budget) -> np.ndarray:
    """One chunk's share of a cell: bool [T+1, n] success at every timestep of the images the
    attack crafts, or for ``minimal`` float [2, n] smallest L2 and L-inf distances."""
    attack, _, readout = cell
    if attack == "minimal":
        assert isinstance(readout, int)
        return minimal_perturbations(
            model,
            chunk.images,
            chunk.labels,
            readout=readout,
            steps=budget.minimal_steps,
            bisections=budget.bisections,
        )
    crafted = _craft(model, cell, chunk, budget)
    return _success_all_timesteps(model, crafted, chunk.labels, chunk.targets, budget)


def _cell_key(cell: Cell, budget: _Budget) -> str:
    attack, epsilon, readout = cell
    return f"attack-{attack}-eps{epsilon_label(epsilon)}-t{readout}-{budget.tag()}"


def _stored_cell(store: ResultStore | None, cell: Cell, budget: _Budget) -> np.ndarray | None:
    payload = store.get(_cell_key(cell, budget)) if store is not None else None
    if payload is None:
        return None
    try:
        if cell[0] == "minimal":
            values = np.asarray(payload["distances"], dtype=np.float64)
            if values.shape != (2, budget.num_images):
                return None
            return np.where(values < 0, np.inf, values)  # JSON holds no inf: -1 stands for it
        return unpack_bits(str(payload["success_bits"]), (budget.timesteps + 1, budget.num_images))
    except (KeyError, ValueError, TypeError):
        return None  # a damaged file: compute the cell again


def _store_cell(store: ResultStore, cell: Cell, values: np.ndarray, budget: _Budget) -> None:
    attack, epsilon, readout = cell
    payload: dict[str, object] = {"attack": attack, "epsilon": epsilon, "readout": readout}
    if attack == "minimal":
        payload["distances"] = np.where(np.isfinite(values), values, -1.0).tolist()
    else:
        payload["success_bits"] = pack_bits(values)
    store.put(_cell_key(cell, budget), payload)


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


@dataclass(frozen=True)
class _Readouts:
    """Where each kind of attack aims."""

    white_box: list[Readout]
    square: list[Readout]
    minimal: list[Readout]


def _skip_reason(attack: str, norm: Norm, targeted: bool, readouts: _Readouts) -> str | None:
    if attack == "square" and norm != "linf":
        return _SQUARE_SKIPPED
    if attack == "autoattack" and targeted:
        return _AUTOATTACK_SKIPPED["targeted"]
    if attack == "autoattack" and readouts.white_box == ["sum"]:
        return _AUTOATTACK_SKIPPED["sum"]
    return None


def _plan(
    attacks: Sequence[str],
    epsilons: Sequence[float],
    readouts: _Readouts,
    norm: Norm,
    targeted: bool,
) -> list[Cell]:
    """The (attack, epsilon, readout) cells to craft, each once (``minimal``: epsilon 0)."""
    plan: list[Cell] = []
    for attack in attacks:
        if _skip_reason(attack, norm, targeted, readouts) is not None:
            continue
        if attack in (*WHITE_BOX, "autoattack"):
            plan += [(attack, eps, readout) for eps in epsilons for readout in readouts.white_box]
        elif attack == "square":
            plan += [("square", eps, readout) for eps in epsilons for readout in readouts.square]
        elif attack == "transfer":
            # Crafted by PGD on the feed-forward readout: the PGD cell (eps, t = 0) itself.
            plan += [("pgd", eps, 0) for eps in epsilons if ("pgd", eps, 0) not in plan]
        elif attack == "minimal":
            plan += [("minimal", 0.0, readout) for readout in readouts.minimal]
    return plan


Cells = dict[Cell, np.ndarray]


@dataclass(frozen=True)
class _Rates:
    """Success rates (and their bootstrap intervals) from the cells' per-image flags."""

    cells: Cells
    n_resamples: int
    confidence: float
    seed: int

    def white_box(self, attack: str, epsilon: float, readout: Readout) -> ReadoutResult:
        """PGD/BIM/AutoAttack against ``readout``: success there, its interval, and at every
        timestep."""
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
        self, name: str, epsilons: Sequence[float], readouts: _Readouts, budget: _Budget
    ) -> AttackResult:
        """The result of ``name`` at every epsilon."""
        norm = budget.norm
        spent = _attack_budget(name, budget)
        skipped = _skip_reason(name, norm, budget.targeted, readouts)
        if skipped is not None:
            return AttackResult(name, norm, spent, skipped=skipped)
        if name in (*WHITE_BOX, "autoattack"):
            by_eps = [
                EpsilonResult(eps, tuple(self.white_box(name, eps, r) for r in readouts.white_box))
                for eps in epsilons
            ]
            return AttackResult(name, norm, spent, tuple(by_eps))
        if name == "square":
            by_eps = [
                EpsilonResult(eps, tuple(self._at(name, eps, r, int(r)) for r in readouts.square))
                for eps in epsilons
            ]
            return AttackResult(name, norm, spent, tuple(by_eps))
        # transfer: PGD's images against t = 0, judged at every timestep
        steps = range(budget.timesteps + 1)
        by_eps = [
            EpsilonResult(eps, tuple(self._at("pgd", eps, 0, t) for t in steps)) for eps in epsilons
        ]
        return AttackResult(name, norm, spent, tuple(by_eps), source_readout=0)

    def _at(self, attack: str, epsilon: float, crafted_at: Readout, timestep: int) -> ReadoutResult:
        return ReadoutResult(timestep, _rate(self.cells[attack, epsilon, crafted_at][timestep]))

    def minimal(self, readouts: Sequence[Readout], budget: _Budget) -> MinimalPerturbations:
        """The median smallest L2 and L-inf distance at each readout."""
        results = []
        for readout in readouts:
            distances = self.cells["minimal", 0.0, readout]
            for row, norm in enumerate(("l2", "linf")):
                found = float(np.isfinite(distances[row]).mean())
                median = median_distance(distances[row])
                results.append(MinimalDistance(int(readout), norm, median, found))  # type: ignore[arg-type]
        return MinimalPerturbations(
            MINIMAL_METHOD, _attack_budget("minimal", budget), tuple(results)
        )


def _attack_budget(name: str, budget: _Budget) -> AttackBudget:
    """What ``name`` spends per image (and per epsilon and readout)."""
    if name == "pgd":
        return AttackBudget(steps=budget.steps, restarts=budget.restarts)
    if name == "bim":
        return AttackBudget(steps=budget.steps)
    if name == "square":
        return AttackBudget(queries=budget.square_queries)
    if name == "transfer":
        return AttackBudget(steps=budget.steps, restarts=budget.restarts)
    if name == "minimal":
        return AttackBudget(steps=budget.minimal_steps)
    return replace(AUTOATTACK_BUDGET, target_classes=min(9, budget.num_classes - 1))


def attack_passes(name: str, budget: AttackBudget) -> tuple[int, int]:
    """(gradient passes, forward-only passes) an attack spends per image, epsilon and readout
    at most (images it fools stop early), each through the network unrolled to the readout.

    AutoAttack's standard version: APGD-CE ``steps``, APGD-T and FAB-T ``steps`` per target
    class, Square ``queries`` forward passes. minimal: ``steps`` for each of 11 budgets, in L2
    and again in L-inf.
    """
    steps = budget.steps or 0
    if name in ("pgd", "transfer"):
        return steps * (budget.restarts or 1), budget.restarts or 1
    if name == "bim":
        return steps, 1
    if name == "square":
        return 0, budget.queries or 0
    if name == "minimal":
        return 2 * (_BISECTIONS + 1) * steps, 2 * (_BISECTIONS + 1)
    return steps * (1 + 2 * (budget.target_classes or 0)), budget.queries or 0


def attack_cost(
    attacks: Sequence[str],
    epsilons: Sequence[float],
    timesteps: int,
    *,
    norm: Norm = "linf",
    targeted: bool = False,
    readouts: Sequence[int] | Literal["sum"] | None = None,
    square_readouts: Sequence[int] | None = None,
    steps: int = DEFAULT_STEPS,
    restarts: int = DEFAULT_RESTARTS,
    square_queries: int = DEFAULT_SQUARE_QUERIES,
    minimal_steps: int = DEFAULT_MINIMAL_STEPS,
    num_classes: int = 10,
) -> AttackCost:
    """What [`run_attacks()`][predify.evaluate.attacks.run_attacks] with these settings spends
    per image at most: each cell's passes
    ([`attack_passes()`][predify.evaluate.attacks.attack_passes]) times the timesteps unrolled
    for its readout (readout + 1; T + 1 for ``"sum"``)."""
    white_box = _readout_list(readouts, timesteps)
    square_list = _readout_list(
        sorted({0, timesteps}) if square_readouts is None else square_readouts, timesteps
    )
    minimal = sorted({0, timesteps}) if readouts == "sum" else white_box
    chosen = _Readouts(white_box, square_list, list(minimal))
    budget = _Budget(
        norm, timesteps, steps, restarts, square_queries, minimal_steps, _BISECTIONS, 1, 0,
        targeted, 1, 0, num_classes,
    )  # fmt: skip
    plan = _plan(attacks, [float(eps) for eps in epsilons], chosen, norm, targeted)
    gradient = forward = 0
    for attack, _, readout in plan:
        unrolled = (timesteps if readout == "sum" else int(readout)) + 1
        passes = attack_passes(attack, _attack_budget(attack, budget))
        gradient += passes[0] * unrolled
        forward += passes[1] * unrolled
    return AttackCost(len(plan), gradient, forward)


def _rate(flags: np.ndarray) -> float:
    return float(flags.mean())


def _chunks(images: Tensor, labels: Tensor, targets: Tensor | None, size: int) -> list[_Chunk]:
    return [
        _Chunk(
            start,
            images[start : start + size],
            labels[start : start + size],
            _part(targets, slice(start, start + size)),
        )
        for start in range(0, len(images), size)
    ]


def _compute_cells(
    model: PixelSpaceNet,
    todo: Sequence[Cell],
    chunks: Sequence[_Chunk],
    budget: _Budget,
    store: ResultStore | None,
    distributed: DistributedInfo | None,
    progress: bool,
) -> Cells:
    """The cells of ``todo``: every process attacks its share of the chunks (every
    ``world_size``-th), rank 0 puts them together in image order and stores each cell as soon
    as it is complete. Empty on the other ranks."""
    mine = assigned(chunks, distributed)
    main = distributed is None or distributed.is_main
    bar = tqdm(
        total=len(todo) * sum(len(chunk.labels) for chunk in mine), desc="attacks", unit="img",
        disable=not (progress and main),
    )  # fmt: skip
    cells: Cells = {}
    with bar:
        for cell in todo:
            bar.set_postfix_str(f"{cell[0]} eps {epsilon_label(cell[1])} t={cell[2]}")
            parts = []
            for chunk in mine:
                parts.append((chunk.start, _cell_values(model, cell, chunk, budget)))
                bar.update(len(chunk.labels))
            gathered = gather_to_main(parts, distributed)
            if gathered is None:
                continue
            ordered = sorted((part for share in gathered for part in share), key=lambda p: p[0])
            cells[cell] = np.concatenate([values for _, values in ordered], axis=1)
            if store is not None:
                _store_cell(store, cell, cells[cell], budget)
    return cells


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
    steps: int = DEFAULT_STEPS,
    restarts: int = DEFAULT_RESTARTS,
    square_queries: int = DEFAULT_SQUARE_QUERIES,
    minimal_steps: int = DEFAULT_MINIMAL_STEPS,
    batch_size: int = 100,
    seed: int = 0,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    store: ResultStore | None = None,
    progress: bool | None = None,
    distributed: DistributedInfo | None = None,
) -> AttackReport | None:
    """White-box PGD/BIM/AutoAttack at each readout, Square and transfer from t = 0, for every
    epsilon, and the minimal perturbation (``minimal``) at each readout.

    Args:
        model: network in pixel space.
        images: [N, C, H, W] in [0, 1]; labels: int [N].
        attacks: a subset of `ATTACKS`.
        epsilons: budgets in pixel units (the norm's).
        timesteps: T.
        targeted: aim at ``(label + target_shift) mod num_classes`` (AutoAttack is skipped).
        readouts: timesteps attacked by PGD/BIM/AutoAttack and measured by ``minimal``
            (default: every one, 0..T), or ``"sum"`` to attack the sum of the losses of all
            timesteps.
        square_readouts: timesteps the Square attack aims at (default: 0 and T).
        steps, restarts: PGD/BIM iterations and PGD's random starts; square_queries: Square's
            query budget per image; minimal_steps: the attack steps per budget the
            minimal-perturbation bisection tries.
        batch_size: images attacked together; also the chunk of images a process takes, so
            the results do not depend on the process count.
        seed: seeds random starts and Square's draws per (attack, epsilon, readout, image
            index), and AutoAttack per chunk.
        n_resamples, confidence: bootstrap intervals of success rates (0: none).
        store: finished cells are read from and written to it (rank 0), under keys that
            include a digest of the other settings.
        distributed: this process's place in a multi-process run: the chunks of images are
            shared among the processes and gathered on rank 0.

    Returns:
        On rank 0 (or alone) an [`AttackReport`][predify.evaluate.attacks.AttackReport]: per
        attack, per epsilon, the success rate at each readout (PGD/BIM/AutoAttack, with the
        rate at every timestep of the images crafted against it and a bootstrap interval;
        Square at ``square_readouts``; transfer at every timestep), the gradient-masking
        checks and the minimal perturbations. None on the other ranks.
    """
    unknown = [name for name in attacks if name not in ATTACKS]
    if unknown:
        raise ConfigError(f"unknown attack {unknown[0]!r}; expected some of {', '.join(ATTACKS)}")
    epsilons = [float(eps) for eps in epsilons]
    for eps in epsilons:
        check_budget(eps, norm, steps)
    for value, name in ((restarts, "restarts"), (square_queries, "square_queries"),
                        (minimal_steps, "minimal_steps"), (batch_size, "batch_size")):  # fmt: skip
        check_int(value, name)
    check_pixel_range(images)
    white_box = _readout_list(readouts, timesteps)
    square_list = _readout_list(
        sorted({0, timesteps}) if square_readouts is None else square_readouts, timesteps
    )
    chosen = _Readouts(
        white_box, square_list, sorted({0, timesteps}) if readouts == "sum" else white_box
    )
    classes = model.num_classes() if num_classes is None else num_classes
    images, labels = images.to(model.device), labels.to(model.device)
    targets = target_labels(labels, classes, target_shift) if targeted else None
    budget = _Budget(
        norm, timesteps, steps, restarts, square_queries, minimal_steps, _BISECTIONS, batch_size,
        seed, targeted, target_shift, len(images), classes,
    )  # fmt: skip
    plan = _plan(attacks, epsilons, chosen, norm, targeted)
    main = distributed is None or distributed.is_main
    stored = {cell: _stored_cell(store, cell, budget) for cell in plan} if main else {}
    todo = broadcast_from_main([cell for cell in plan if stored.get(cell) is None], distributed)
    chunks = _chunks(images, labels, targets, batch_size)
    computed = _compute_cells(
        model, todo, chunks, budget, store, distributed, resolve_progress(progress)
    )
    if not main:
        return None
    cells = {cell: values for cell, values in stored.items() if values is not None} | computed
    clean = _success_all_timesteps(model, images, labels, targets, budget)
    rates = _Rates(cells, n_resamples, confidence, seed)
    results = tuple(
        rates.attack(name, epsilons, chosen, budget) for name in attacks if name != "minimal"
    )
    return AttackReport(
        norm=norm,
        targeted=targeted,
        target_shift=target_shift if targeted else None,
        epsilons=tuple(epsilons),
        timesteps=timesteps,
        num_images=len(images),
        objective="sum" if readouts == "sum" else "per-timestep",
        readouts=tuple(white_box),
        success_definition=(
            "fraction of attacked images whose prediction at the readout is the target"
            if targeted
            else "fraction of attacked images misclassified at the readout"
        ),
        clean_success=tuple(_rate(row) for row in clean),
        attacks=results,
        checks=gradient_masking_checks(results, epsilons),
        minimal=rates.minimal(chosen.minimal, budget) if "minimal" in attacks else None,
    )
