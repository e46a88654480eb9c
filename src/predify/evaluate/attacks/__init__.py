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

White-box attacks (written here, on torch only): PGD (Madry et al., random starts, step
2.5 * eps / steps; 50 steps and 5 restarts by default) and BIM (Kurakin et al., iterative FGSM
from the clean image, step 1.25 * eps / steps), in L-inf or L2. Each keeps, per image, the first
iterate that succeeds. AutoAttack's standard version (Croce and Hein, 2020) runs through the
authors' ``pyautoattack`` package (``pip install 'predify[attacks]'``). Guards against gradient
masking, reported beside them: a gradient-free Square attack (L-inf, Andriushchenko et al.,
2020, 5000 queries by default, a compact version written here) and a transfer attack (PGD
crafted on the feed-forward readout t = 0, evaluated at every timestep). The minimal
perturbation (``minimal``): the median smallest L2 and L-inf perturbation that changes the decision
at each readout, by a bisection over each image's budget with BIM.

Random draws are seeded per (seed, attack, epsilon, readout, image index), so results do not
depend on the batch an image is attacked in nor on the number of processes.

Modules: `objectives` (loss, success, input gradient), `white_box` (PGD, BIM), `gradient_free`
(Square), `autoattack` (AutoAttack), `minimal` (the bisection), `campaign`
([`run_attacks()`][predify.evaluate.attacks.run_attacks] and its finished-cell store),
`cost` (the cost estimate printed before a run), `results` (the typed
[`AttackReport`][predify.evaluate.attacks.AttackReport] and its JSON),
`masking` (the gradient-masking checks).
"""

from __future__ import annotations

from .autoattack import AUTOATTACK_BUDGET, autoattack
from .campaign import (
    ATTACKS,
    DEFAULT_MINIMAL_STEPS,
    DEFAULT_RESTARTS,
    DEFAULT_SQUARE_QUERIES,
    DEFAULT_STEPS,
    attack_cost,
    attack_passes,
    default_epsilons,
    run_attacks,
)
from .cost import GRADIENT_COST, AttackCost, CostEstimate
from .gradient_free import square
from .masking import FULL_SUCCESS, gradient_masking_checks
from .minimal import MINIMAL_METHOD, minimal_perturbations
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
    MinimalDistance,
    MinimalPerturbations,
    ReadoutResult,
    epsilon_label,
)
from .white_box import NORMS, bim, check_budget, image_generators, pgd

__all__ = [
    "ATTACKS",
    "AUTOATTACK_BUDGET",
    "DEFAULT_MINIMAL_STEPS",
    "DEFAULT_RESTARTS",
    "DEFAULT_SQUARE_QUERIES",
    "DEFAULT_STEPS",
    "FULL_SUCCESS",
    "GRADIENT_COST",
    "MINIMAL_METHOD",
    "NORMS",
    "AttackBudget",
    "AttackCost",
    "AttackReport",
    "AttackResult",
    "CostEstimate",
    "EpsilonResult",
    "MaskingChecks",
    "MinimalDistance",
    "MinimalPerturbations",
    "Norm",
    "Readout",
    "ReadoutResult",
    "attack_cost",
    "attack_loss",
    "attack_passes",
    "autoattack",
    "bim",
    "check_budget",
    "check_readout",
    "default_epsilons",
    "epsilon_label",
    "gradient_masking_checks",
    "image_generators",
    "input_gradient",
    "minimal_perturbations",
    "pgd",
    "readout_success",
    "run_attacks",
    "square",
    "success_mask",
    "target_labels",
]
