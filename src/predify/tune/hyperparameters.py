"""Installing hyperparameter sets into a network: per pcoder or shared, fixed or learnable.

Tuning never edits the network's own hyperparameter modules in place. It installs fresh
[`HyperparameterModule`][predify.hyperparameter_module.HyperparameterModule] modules
(learnable for gradient tuning, fixed for a
trial or an evaluation), and puts the originals back when it is done, so a failed or interrupted
tuning leaves the network as it was.
[`apply_hyperparameters()`][predify.tune.hyperparameters.apply_hyperparameters] installs tuned
values for good
and rewrites ``pnet.config`` to match, so ``pnet.resolved_config()`` and saved checkpoints agree
with the dynamics.

Shared hyperparameters are one module used by every pcoder (the config's
``shared_hyperparameters``). The top pcoder has nothing above it, so it ignores the shared lambda:
it mixes beta with memory ``1 - beta``;
[`effective_values()`][predify.tune.hyperparameters.effective_values] reports that.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace

import torch
from torch import nn

from ..config import Hyperparameters, PNetConfig
from ..errors import ConfigError
from ..hyperparameter_module import HyperparameterModule
from ..network import PredictiveNet

__all__ = [
    "apply_hyperparameters",
    "check_values",
    "config_values",
    "effective_values",
    "frozen_parameters",
    "install_hyperparameters",
    "load_tuned",
    "starting_values",
    "temporary_hyperparameters",
    "tuned_config",
]


def starting_values(pnet: PredictiveNet, shared: bool) -> list[Hyperparameters]:
    """The network's current values in the layout tuning uses.

    Per pcoder: one set per pcoder, bottom first. Shared: a list of one set; from a network with
    per-pcoder values it is the bottom pcoder's (the only one that is sure to have a lambda).
    """
    values = pnet.hyperparameter_values()
    return [values[0]] if shared else values


def _normalise(
    pnet: PredictiveNet, values: Hyperparameters | Sequence[Hyperparameters], shared: bool
) -> list[Hyperparameters]:
    """One set (shared) or one per pcoder (top lambda forced to 0), validated."""
    listed = [values] if isinstance(values, Hyperparameters) else list(values)
    if shared:
        if len(listed) != 1:
            raise ConfigError(f"shared hyperparameters: expected one set, got {len(listed)}")
        listed[0].validate("hyperparameters", has_feedback=True)
        return listed
    if len(listed) == 1:
        listed = listed * pnet.num_pcoders
    if len(listed) != pnet.num_pcoders:
        raise ConfigError(
            f"expected {pnet.num_pcoders} hyperparameter sets (one per pcoder), got {len(listed)}"
        )
    result = []
    for index, (pcoder, value) in enumerate(zip(pnet.pcoders, listed, strict=True)):
        if not pcoder.has_feedback:
            value = replace(value, feedback=0.0)
        value.validate(f"pcoders[{index}].hyperparameters", has_feedback=pcoder.has_feedback)
        result.append(value)
    return result


def install_hyperparameters(
    pnet: PredictiveNet,
    values: Hyperparameters | Sequence[Hyperparameters],
    *,
    shared: bool,
    learnable: bool,
) -> list[HyperparameterModule]:
    """Give every pcoder a fresh hyperparameter module holding ``values``.

    Args:
        values: one set for all (shared, or broadcast to every pcoder) or one per pcoder.
        shared: one module for all pcoders; else one module per pcoder.
        learnable: parameterise the modules for gradient descent (softmax mixing, softplus alpha).

    Returns:
        The installed modules without duplicates: one when shared, else one per pcoder.
    """
    listed = _normalise(pnet, values, shared)
    device = pnet.pcoders[0].hyperparameters.fixed.device
    if shared:
        modules = [HyperparameterModule(listed[0], has_feedback=True, learnable=learnable)]
        per_pcoder = modules * pnet.num_pcoders
    else:
        modules = [
            HyperparameterModule(value, has_feedback=pcoder.has_feedback, learnable=learnable)
            for pcoder, value in zip(pnet.pcoders, listed, strict=True)
        ]
        per_pcoder = modules
    for pcoder, module in zip(pnet.pcoders, per_pcoder, strict=True):
        pcoder.hyperparameters = module.to(device)
    return modules


@contextmanager
def temporary_hyperparameters(
    pnet: PredictiveNet,
    values: Hyperparameters | Sequence[Hyperparameters],
    *,
    shared: bool,
    learnable: bool = False,
) -> Iterator[list[HyperparameterModule]]:
    """Install ``values`` (see `install_hyperparameters()`) for the ``with`` block only.

    The original modules come back on exit, by an exception too, untouched.
    """
    originals = [pcoder.hyperparameters for pcoder in pnet.pcoders]
    try:
        yield install_hyperparameters(pnet, values, shared=shared, learnable=learnable)
    finally:
        for pcoder, module in zip(pnet.pcoders, originals, strict=True):
            pcoder.hyperparameters = module


def module_values(modules: Sequence[HyperparameterModule]) -> list[Hyperparameters]:
    """The current values of installed modules (one per module: one when shared)."""
    return [module.values() for module in modules]


def effective_values(
    pnet: PredictiveNet, values: Sequence[Hyperparameters], shared: bool
) -> list[Hyperparameters]:
    """What each pcoder uses, bottom first: the shared set broadcast, the top's lambda 0.

    The top pcoder's memory is then ``1 - beta``, as in its update.
    """
    listed = list(values) * pnet.num_pcoders if shared else list(values)
    return [
        value if pcoder.has_feedback else replace(value, feedback=0.0)
        for pcoder, value in zip(pnet.pcoders, listed, strict=True)
    ]


def check_values(values: Sequence[Hyperparameters], where: str) -> None:
    """Raise [`ConfigError`][predify.tune.hyperparameters.ConfigError] unless every value is
    finite, in range and sums to <= 1."""
    for index, value in enumerate(values):
        numbers = (value.feedforward, value.feedback, value.pc)
        if not all(math.isfinite(number) for number in numbers):
            raise ConfigError(f"{where}: hyperparameter set {index} is not finite: {value}")
        value.validate(f"{where}[{index}]", has_feedback=True)


def tuned_config(
    pnet: PredictiveNet, values: Sequence[Hyperparameters], shared: bool
) -> PNetConfig:
    """``pnet.resolved_config()`` (decoders, c_sqrt) with ``values`` written in.

    Shared: ``shared_hyperparameters = true`` and one top-level ``[hyperparameters]`` table; per
    pcoder: one table per pcoder (lambda 0 on the top one). Loadable by
        [`predify.predify()`][predify.predify].
    """
    config = pnet.resolved_config()
    listed = _normalise(pnet, values, shared)
    if shared:
        pcoders = tuple(replace(pcoder, hyperparameters=None) for pcoder in config.pcoders)
        return replace(
            config, pcoders=pcoders, shared_hyperparameters=True, hyperparameters=listed[0]
        )
    pcoders = tuple(
        replace(pcoder, hyperparameters=value)
        for pcoder, value in zip(config.pcoders, listed, strict=True)
    )
    return replace(config, pcoders=pcoders, shared_hyperparameters=False)


def apply_hyperparameters(
    pnet: PredictiveNet, values: Sequence[Hyperparameters], shared: bool
) -> None:
    """Install ``values`` in ``pnet`` for good and make ``pnet.config`` describe them.

    The modules are fixed or learnable as the network's config says
    (``learnable_hyperparameters``). Switching between shared and per-pcoder values changes the
    module layout, which ``pnet.config`` then records.
    """
    config = tuned_config(pnet, values, shared)
    install_hyperparameters(
        pnet, values, shared=shared, learnable=pnet.config.learnable_hyperparameters
    )
    pnet.config = config


@contextmanager
def frozen_parameters(parameters: Iterable[nn.Parameter]) -> Iterator[None]:
    """Set ``requires_grad = False`` on ``parameters`` for the block; restore each flag after.

    With the flags off, autograd computes no gradient for these tensors at all (not merely one
    that no optimiser applies), which also keeps their ``.grad`` as it was.
    """
    flags = [(parameter, parameter.requires_grad) for parameter in parameters]
    try:
        for parameter, _ in flags:
            parameter.requires_grad_(False)
        yield
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


def config_values(config: PNetConfig) -> tuple[list[Hyperparameters], bool]:
    """The hyperparameters a config sets: ``([shared], True)`` or ``(one per pcoder, False)``."""
    if config.shared_hyperparameters:
        return [config.shared()], True
    return [config.hyperparameters_of(index) for index in range(len(config.pcoders))], False


def load_tuned(
    run_dir: str | os.PathLike[str],
    tuned: str | os.PathLike[str] | PNetConfig,
    device: str | torch.device = "cpu",
) -> PredictiveNet:
    """The network of a run directory with the hyperparameters of a tuned config installed.

    Building from the tuned TOML and then loading the run's feedback file would not do: the
    feedback file holds hyperparameters too, and loading it puts the untuned ones back.

    Args:
        run_dir: the run directory that was tuned.
        tuned: a ``tuned.toml`` written by ``predify tune`` (or a config object).
        device: where to put the network.

    Raises:
        ConfigError: the tuned config lists other pcoder modules than the run.
    """
    from ..config import load_config
    from ..runtime.runs import load_run

    pnet = load_run(run_dir, device=device).pnet
    config = load_config(tuned)
    run_modules = [pcoder.module for pcoder in pnet.config.pcoders]
    tuned_modules = [pcoder.module for pcoder in config.pcoders]
    if run_modules != tuned_modules:
        raise ConfigError(
            f"{tuned}: tuned for the pcoders {tuned_modules}, but {run_dir} has {run_modules}"
        )
    values, shared = config_values(config)
    apply_hyperparameters(pnet, values, shared)
    return pnet
