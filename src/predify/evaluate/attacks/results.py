"""What an attack campaign measured, typed: per attack, per epsilon, per readout.

[`AttackReport`][predify.evaluate.attacks.AttackReport] holds one
[`AttackResult`][predify.evaluate.attacks.AttackResult] per attack (its name, norm and
[`AttackBudget`][predify.evaluate.attacks.AttackBudget]), each with one
[`EpsilonResult`][predify.evaluate.attacks.EpsilonResult] per budget, each with one
[`ReadoutResult`][predify.evaluate.attacks.ReadoutResult] per readout; and the gradient-masking
diagnostics, [`MaskingChecks`][predify.evaluate.attacks.MaskingChecks]. JSON only at the file
edge: `to_json()` / `from_json()` write and read the ``attacks`` block of ``results.json``
(lists, never epsilons as keys); `from_v1_json()` reads the block of the first format, where
each attack was a dict keyed by epsilons printed with 6 significant digits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

from ..._io import JsonObject
from .objectives import Norm, Readout

__all__ = [
    "AttackBudget",
    "AttackReport",
    "AttackResult",
    "EpsilonResult",
    "MaskingChecks",
    "MinimalDistance",
    "MinimalPerturbations",
    "ReadoutResult",
    "epsilon_label",
]

Objective = Literal["per-timestep", "sum"]


def epsilon_label(epsilon: float) -> str:
    """An epsilon as tables, warnings and the first format print it (6 significant digits)."""
    return f"{epsilon:.6g}"


def _readout(value: Any) -> Readout:
    return "sum" if value == "sum" else int(value)


def _floats(values: Sequence[Any]) -> tuple[float, ...]:
    return tuple(float(value) for value in values)


def _interval(values: Sequence[Any] | None) -> tuple[float, float] | None:
    if values is None:
        return None
    low, high = values
    return float(low), float(high)


@dataclass(frozen=True)
class AttackBudget:
    """What an attack may spend per image; None where a quantity does not apply to it.

    Attributes:
        steps: gradient iterations (PGD, BIM, the minimal-perturbation bisection per budget;
            AutoAttack: those of APGD-CE, of APGD-T per target class and of FAB-T per target
            class).
        restarts: random starts (PGD; BIM starts from the image and has none).
        queries: forward passes (Square; AutoAttack: those of its Square attack).
        target_classes: classes each targeted attack of AutoAttack aims at in turn.
    """

    steps: int | None = None
    restarts: int | None = None
    queries: int | None = None
    target_classes: int | None = None

    def to_json(self) -> dict[str, int | None]:
        return {
            "steps": self.steps,
            "restarts": self.restarts,
            "queries": self.queries,
            "target_classes": self.target_classes,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AttackBudget:
        def count(name: str) -> int | None:
            value = data.get(name)
            return None if value is None else int(value)

        return cls(count("steps"), count("restarts"), count("queries"), count("target_classes"))


@dataclass(frozen=True)
class ReadoutResult:
    """One attack at one epsilon, measured at one readout.

    Attributes:
        readout: the timestep whose prediction is judged (``"sum"``: every timestep must be
            fooled). For the transfer attack, the timestep the images crafted at
            ``source_readout`` are evaluated at.
        success: the fraction of attacked images on which the attack succeeded there.
        success_ci: its bootstrap interval (None without resamples).
        success_all_timesteps: the success rate at every timestep 0..T of the images crafted
            against this readout (PGD and BIM only).
    """

    readout: Readout
    success: float
    success_ci: tuple[float, float] | None = None
    success_all_timesteps: tuple[float, ...] | None = None

    def to_json(self) -> JsonObject:
        return {
            "readout": self.readout,
            "success": self.success,
            "success_ci": None if self.success_ci is None else list(self.success_ci),
            "success_all_timesteps": (
                None if self.success_all_timesteps is None else list(self.success_all_timesteps)
            ),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReadoutResult:
        every = data.get("success_all_timesteps")
        return cls(
            readout=_readout(data["readout"]),
            success=float(data["success"]),
            success_ci=_interval(data.get("success_ci")),
            success_all_timesteps=None if every is None else _floats(every),
        )


@dataclass(frozen=True)
class EpsilonResult:
    """One attack at one budget: its results at each readout, in the attack's readout order."""

    epsilon: float
    readouts: tuple[ReadoutResult, ...]

    @property
    def success(self) -> list[float]:
        """The success rate at each readout."""
        return [result.success for result in self.readouts]

    def to_json(self) -> JsonObject:
        return {"epsilon": self.epsilon, "readouts": [r.to_json() for r in self.readouts]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EpsilonResult:
        readouts = tuple(ReadoutResult.from_json(item) for item in data["readouts"])
        return cls(float(data["epsilon"]), readouts)


@dataclass(frozen=True)
class AttackResult:
    """One attack of a campaign.

    Attributes:
        name: ``pgd``, ``bim``, ``square`` or ``transfer``.
        norm: the norm of its budgets.
        budget: what it spent per image.
        epsilons: one result per budget, in increasing order of the campaign's epsilons.
        source_readout: for the transfer attack, the readout its images were crafted against.
        skipped: why the attack did not run (then ``epsilons`` is empty).
        notes: what the attack's own checks reported (AutoAttack's flags, e.g. a randomized or
            dynamic defense), each once.
    """

    name: str
    norm: Norm
    budget: AttackBudget
    epsilons: tuple[EpsilonResult, ...] = ()
    source_readout: int | None = None
    skipped: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def readouts(self) -> list[Readout]:
        """The readouts its results are measured at (the same for every epsilon)."""
        return [result.readout for result in self.epsilons[0].readouts] if self.epsilons else []

    def at(self, epsilon: float) -> EpsilonResult:
        """The result at ``epsilon``; KeyError when it was not attacked at it."""
        for result in self.epsilons:
            if result.epsilon == epsilon:
                return result
        raise KeyError(f"{self.name} has no result at epsilon {epsilon_label(epsilon)}")

    def to_json(self) -> JsonObject:
        return {
            "attack": self.name,
            "norm": self.norm,
            "budget": self.budget.to_json(),
            "source_readout": self.source_readout,
            "skipped": self.skipped,
            "notes": list(self.notes),
            "epsilons": [result.to_json() for result in self.epsilons],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AttackResult:
        source = data.get("source_readout")
        return cls(
            name=str(data["attack"]),
            norm=_norm(data["norm"]),
            budget=AttackBudget.from_json(data["budget"]),
            epsilons=tuple(EpsilonResult.from_json(item) for item in data["epsilons"]),
            source_readout=None if source is None else int(source),
            skipped=data.get("skipped"),
            notes=tuple(str(note) for note in data.get("notes", ())),
        )


def _norm(value: Any) -> Norm:
    if value not in ("linf", "l2"):
        raise ValueError(f"unknown norm {value!r}")
    return cast(Norm, value)


@dataclass(frozen=True)
class MaskingChecks:
    """Diagnostics of gradient masking
    ([`gradient_masking_checks()`][predify.evaluate.attacks.gradient_masking_checks]).

    Attributes:
        max_epsilon: the largest budget (None without budgets).
        white_box_success_at_max_epsilon: per white-box attack, its lowest success over the
            readouts at the largest budget.
        reaches_full_success: whether every white-box attack reaches `FULL_SUCCESS` there (None
            without a white-box attack).
        warnings: one sentence per suspicious finding.
    """

    max_epsilon: float | None = None
    white_box_success_at_max_epsilon: dict[str, float] = field(default_factory=dict)
    reaches_full_success: bool | None = None
    warnings: tuple[str, ...] = ()

    def to_json(self) -> JsonObject:
        return {
            "max_epsilon": self.max_epsilon,
            "white_box_success_at_max_epsilon": dict(self.white_box_success_at_max_epsilon),
            "reaches_full_success": self.reaches_full_success,
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MaskingChecks:
        largest = data.get("max_epsilon")
        full = data.get("reaches_full_success")
        return cls(
            max_epsilon=None if largest is None else float(largest),
            white_box_success_at_max_epsilon={
                str(name): float(value)
                for name, value in data["white_box_success_at_max_epsilon"].items()
            },
            reaches_full_success=None if full is None else bool(full),
            warnings=tuple(str(warning) for warning in data["warnings"]),
        )


@dataclass(frozen=True)
class MinimalDistance:
    """The smallest perturbation found that changes the decision at one readout, in one norm.

    Attributes:
        readout: the timestep whose prediction must change.
        norm: ``l2`` or ``linf``, in pixel units.
        median: the median over the images of the smallest distance found (0 for an image the
            network already gets wrong); None when no perturbation was found for half of them
            or more (the median is then larger than any distance found).
        found: the fraction of images with a perturbation found (clean errors included).
    """

    readout: int
    norm: Norm
    median: float | None
    found: float

    def to_json(self) -> JsonObject:
        return {"readout": self.readout, "norm": self.norm, "median": self.median,
                "found": self.found}  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MinimalDistance:
        median = data["median"]
        return cls(
            int(data["readout"]),
            _norm(data["norm"]),
            None if median is None else float(median),
            float(data["found"]),
        )


@dataclass(frozen=True)
class MinimalPerturbations:
    """The minimal-perturbation measure of a campaign: per readout, the median smallest L2 and
    L-inf perturbation that changes the decision.

    Attributes:
        method: how the perturbations were searched for, in words.
        budget: what the search spent per image, readout and norm.
        distances: one result per (readout, norm), readouts in the campaign's order, L2 first.
    """

    method: str
    budget: AttackBudget
    distances: tuple[MinimalDistance, ...]

    def at(self, readout: int, norm: Norm) -> MinimalDistance:
        """The result at ``readout`` in ``norm``; KeyError when it was not measured."""
        for result in self.distances:
            if result.readout == readout and result.norm == norm:
                return result
        raise KeyError(f"no minimal {norm} perturbation measured at readout {readout}")

    def to_json(self) -> JsonObject:
        return {
            "method": self.method,
            "budget": self.budget.to_json(),
            "distances": [result.to_json() for result in self.distances],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MinimalPerturbations:
        return cls(
            str(data["method"]),
            AttackBudget.from_json(data["budget"]),
            tuple(MinimalDistance.from_json(item) for item in data["distances"]),
        )


@dataclass(frozen=True)
class AttackReport:
    """What [`run_attacks()`][predify.evaluate.attacks.run_attacks] measured; `to_json()` is
    the ``attacks`` block of ``results.json``.

    Attributes:
        norm: the norm of every budget.
        targeted: whether the attacks aimed at ``(label + target_shift) mod classes``.
        target_shift: the shift of a targeted campaign (None otherwise).
        epsilons: the budgets, in pixel units.
        timesteps: T.
        num_images: images attacked.
        objective: ``per-timestep`` (one attack per readout) or ``sum`` (one attack on the sum
            of the losses of every timestep).
        readouts: the readouts the white-box attacks aimed at.
        success_definition: what a success is, in words.
        clean_success: the success rate at every timestep before any attack.
        attacks: one result per attack, in the order asked for.
        checks: the gradient-masking diagnostics.
        minimal: the minimal-perturbation measure (None when ``minimal`` was not asked for).
    """

    norm: Norm
    targeted: bool
    target_shift: int | None
    epsilons: tuple[float, ...]
    timesteps: int
    num_images: int
    objective: Objective
    readouts: tuple[Readout, ...]
    success_definition: str
    clean_success: tuple[float, ...]
    attacks: tuple[AttackResult, ...]
    checks: MaskingChecks
    minimal: MinimalPerturbations | None = None

    def attack(self, name: str) -> AttackResult | None:
        """The result of the attack called ``name``; None when it was not run."""
        return next((result for result in self.attacks if result.name == name), None)

    def to_json(self) -> JsonObject:
        return {
            "norm": self.norm,
            "targeted": self.targeted,
            "target_shift": self.target_shift,
            "epsilons": list(self.epsilons),
            "timesteps": self.timesteps,
            "num_images": self.num_images,
            "objective": self.objective,
            "readouts": list(self.readouts),
            "success_definition": self.success_definition,
            "clean_success": list(self.clean_success),
            "attacks": [result.to_json() for result in self.attacks],
            "checks": self.checks.to_json(),
            "minimal_perturbation": None if self.minimal is None else self.minimal.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AttackReport:
        """Inverse of `to_json()`; KeyError/ValueError/TypeError on a malformed block."""
        attacks = tuple(AttackResult.from_json(item) for item in data["attacks"])
        return cls._with(data, attacks, MaskingChecks.from_json(data["checks"]))

    @classmethod
    def from_v1_json(cls, data: Mapping[str, Any]) -> AttackReport:
        """The ``attacks`` block of the first format (``predify-evaluate-v1``)."""
        epsilons = _floats(data["epsilons"])
        timesteps = int(data["timesteps"])
        readouts = [_readout(value) for value in data["readouts"]]
        steps = int(data["steps"])
        norm = _norm(data["norm"])
        attacks = []
        for name, block in data.items():
            if name in ("pgd", "bim"):
                restarts = 1 if name == "pgd" else None
                budget = AttackBudget(steps=steps, restarts=restarts)
                attacks.append(_v1_attack(name, norm, budget, block, epsilons, readouts))
            elif name == "square" and "skipped" in block:
                attacks.append(
                    AttackResult("square", norm, AttackBudget(), skipped=block["skipped"])
                )
            elif name == "square":
                budget = AttackBudget(queries=int(block["queries"]))
                square_readouts = [_readout(value) for value in block["readouts"]]
                attacks.append(_v1_attack("square", norm, budget, block, epsilons, square_readouts))
            elif name == "transfer":
                budget = AttackBudget(steps=steps, restarts=1)
                every = list(range(timesteps + 1))
                result = _v1_attack("transfer", norm, budget, block, epsilons, every)
                attacks.append(replace(result, source_readout=0))
        return cls._with(data, tuple(attacks), MaskingChecks.from_json(data["checks"]))

    @classmethod
    def _with(
        cls, data: Mapping[str, Any], attacks: tuple[AttackResult, ...], checks: MaskingChecks
    ) -> AttackReport:
        """The header fields, which both formats share, around ``attacks`` and ``checks``."""
        shift = data["target_shift"]
        objective = data["objective"]
        minimal = data.get("minimal_perturbation")
        if objective not in ("per-timestep", "sum"):
            raise ValueError(f"unknown objective {objective!r}")
        return cls(
            norm=_norm(data["norm"]),
            targeted=bool(data["targeted"]),
            target_shift=None if shift is None else int(shift),
            epsilons=_floats(data["epsilons"]),
            timesteps=int(data["timesteps"]),
            num_images=int(data["num_images"]),
            objective=objective,
            readouts=tuple(_readout(value) for value in data["readouts"]),
            success_definition=str(data["success_definition"]),
            clean_success=_floats(data["clean_success"]),
            attacks=attacks,
            checks=checks,
            minimal=None if minimal is None else MinimalPerturbations.from_json(minimal),
        )


def _v1_attack(
    name: str,
    norm: Norm,
    budget: AttackBudget,
    block: Mapping[str, Any],
    epsilons: Sequence[float],
    readouts: Sequence[Readout],
) -> AttackResult:
    """A v1 attack block, keyed by epsilon: ``success`` (one rate per readout) and, in PGD/BIM
    blocks only, ``success_all_timesteps`` (keyed by readout too) and maybe ``success_ci``."""
    intervals = block.get("success_ci")
    every = block.get("success_all_timesteps")
    by_epsilon = []
    for epsilon in epsilons:
        key = epsilon_label(epsilon)
        results = tuple(
            ReadoutResult(
                readout=readout,
                success=float(rate),
                success_ci=None if intervals is None else _interval(intervals[key][index]),
                success_all_timesteps=None if every is None else _floats(every[key][str(readout)]),
            )
            for index, (readout, rate) in enumerate(
                zip(readouts, block["success"][key], strict=True)
            )
        )
        by_epsilon.append(EpsilonResult(epsilon, results))
    return AttackResult(name, norm, budget, tuple(by_epsilon))
