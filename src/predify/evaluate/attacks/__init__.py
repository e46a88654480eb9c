"""Adversarial attacks through the unrolled feedback dynamics.

Images live in [0, 1]; the model is a
[`PixelSpaceNet`][predify.evaluate.pixel_space.PixelSpaceNet], so
budgets are in pixel units and normalisation happens inside. Every attack aims at one *readout*:

* ``readout=t`` (an int): the loss is the cross-entropy of ``logits[t]``, the network read out
  after t timesteps. The gradient flows back through the whole unrolled computation up to t:
  every pcoder update, every decoder prediction and every error-gradient term.
* ``readout="sum"``: the loss is the sum of the cross-entropies of all timesteps 0..T.

Untargeted attacks raise the loss of the true label; targeted ones lower the loss of the target
``(label + shift) mod classes`` (the Predify paper's choice). An attack *succeeds* on an image
when the prediction at the readout is wrong (untargeted) or is the target (targeted); for
``"sum"``, when that holds at every timestep. Success rates are fractions of all attacked images,
so at epsilon 0 the untargeted rate is the clean error.

White-box attacks (written here, on torch only): PGD (Madry et al., random start, step
2.5 * eps / steps) and BIM (Kurakin et al., iterative FGSM from the clean image, step
1.25 * eps / steps), in L-inf or L2. Each keeps, per image, the first iterate that succeeds.
Guards against gradient masking, reported beside them: a gradient-free Square attack (L-inf,
Andriushchenko et al., 2020, a compact version written here; ``torchattacks`` is not needed) and
a transfer attack (PGD crafted on the feed-forward readout t = 0, evaluated at every timestep).

Modules: `objectives` (loss, success, input gradient), `white_box` (PGD, BIM), `gradient_free`
(Square), `campaign` ([`run_attacks()`][predify.evaluate.attacks.run_attacks] and its finished-cell
store), `results` (the typed [`AttackReport`][predify.evaluate.attacks.AttackReport] and its
JSON), `masking` (the gradient-masking checks).
"""

from __future__ import annotations

from .campaign import ATTACKS, default_epsilons, run_attacks
from .gradient_free import square
from .masking import FULL_SUCCESS, gradient_masking_checks
from .objectives import (
    Norm,
    Readout,
    attack_loss,
    check_readout,
    input_gradient,
    readout_success,
    success_mask,
    target_labels,
)
from .results import (
    AttackBudget,
    AttackReport,
    AttackResult,
    EpsilonResult,
    MaskingChecks,
    ReadoutResult,
    epsilon_label,
)
from .white_box import NORMS, bim, check_budget, pgd

__all__ = [
    "ATTACKS",
    "FULL_SUCCESS",
    "NORMS",
    "AttackBudget",
    "AttackReport",
    "AttackResult",
    "EpsilonResult",
    "MaskingChecks",
    "Norm",
    "Readout",
    "ReadoutResult",
    "attack_loss",
    "bim",
    "check_budget",
    "check_readout",
    "default_epsilons",
    "epsilon_label",
    "gradient_masking_checks",
    "input_gradient",
    "pgd",
    "readout_success",
    "run_attacks",
    "square",
    "success_mask",
    "target_labels",
]
