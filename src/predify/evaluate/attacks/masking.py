"""Signs of gradient masking in an attack campaign's results."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from .results import AttackResult, MaskingChecks, epsilon_label

__all__ = ["FULL_SUCCESS", "WHITE_BOX", "gradient_masking_checks"]

#: A white-box attack at the largest epsilon should reach this success rate; less suggests
#: gradient masking (or too few steps).
FULL_SUCCESS = 0.99
#: The gradient-based attacks; the others (Square, transfer) are the checks against them.
WHITE_BOX: tuple[str, ...] = ("pgd", "bim")
# Success falling with epsilon, or Square or transfer beating the white-box attack, by more
# than this is flagged.
_MASKING_MARGIN = 0.05


def gradient_masking_checks(
    attacks: Sequence[AttackResult], epsilons: Sequence[float]
) -> MaskingChecks:
    """Diagnostics of gradient masking from the results of
    [`run_attacks()`][predify.evaluate.attacks.run_attacks].

    * the white-box attacks should reach `FULL_SUCCESS` at the largest epsilon;
    * success should not fall as epsilon grows (beyond 5 points);
    * the gradient-free Square attack and the transfer attack should not beat the white-box
      attack on the same readout (beyond 5 points).

    Args:
        attacks: the campaign's results (skipped attacks are ignored).
        epsilons: the campaign's budgets.
    """
    ran = {result.name: result for result in attacks if result.skipped is None}
    if not epsilons:
        return MaskingChecks()
    largest = max(epsilons)
    warnings: list[str] = []
    worst: dict[str, float] = {}
    for name in WHITE_BOX:
        if name in ran:
            worst[name] = min(ran[name].at(largest).success)
            warnings += _white_box_warnings(ran[name], worst[name], sorted(epsilons))
    white_box = ran.get("pgd") or ran.get("bim")
    if white_box is not None:
        for name in ("square", "transfer"):
            if name in ran:
                warnings += _beaten_warnings(white_box, ran[name], sorted(epsilons))
    return MaskingChecks(
        max_epsilon=largest,
        white_box_success_at_max_epsilon=worst,
        reaches_full_success=all(v >= FULL_SUCCESS for v in worst.values()) if worst else None,
        warnings=tuple(warnings),
    )


def _white_box_warnings(result: AttackResult, worst: float, ordered: list[float]) -> list[str]:
    warnings = []
    if worst < FULL_SUCCESS:
        warnings.append(
            f"{result.name} reaches only {worst:.1%} success at epsilon "
            f"{epsilon_label(ordered[-1])} on some readout: possible gradient masking, or too "
            "few steps / too small a budget"
        )
    for index, readout in enumerate(result.readouts):
        rates = [result.at(epsilon).success[index] for epsilon in ordered]
        if any(later < earlier - _MASKING_MARGIN for earlier, later in itertools.pairwise(rates)):
            warnings.append(f"{result.name} success falls as epsilon grows at readout {readout}")
    return warnings


def _beaten_warnings(
    white_box: AttackResult, other: AttackResult, ordered: list[float]
) -> list[str]:
    warnings = []
    readouts = white_box.readouts
    for epsilon in ordered:
        for position, readout in enumerate(other.readouts):
            if readout not in readouts:
                continue
            box = white_box.at(epsilon).success[readouts.index(readout)]
            value = other.at(epsilon).success[position]
            if value > box + _MASKING_MARGIN:
                warnings.append(
                    f"{other.name} ({value:.1%}) beats the white-box attack ({box:.1%}) at "
                    f"epsilon {epsilon_label(epsilon)}, readout {readout}: possible gradient "
                    "masking"
                )
    return warnings
