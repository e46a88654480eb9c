"""The hyperparameters the Predify paper's code used, by name, each with the place it comes from.

>>> from predify.presets import get_preset, list_presets
>>> list_presets()
['get-model', 'paper-evaluation', 'peffnetb0-class-defaults', 'pvgg16-class-defaults']
>>> preset = get_preset("paper-evaluation")
>>> preset.for_pcoders(3)[-1]          # the top pcoder has no feedback term
Hyperparameters(feedforward=0.8, feedback=0.0, pc=0.01)
>>> preset.apply(pnet)                  # doctest: +SKIP

Sources are the paper's code, github.com/bhavinc/predify2021 at commit e968414 (June 2022).
On the top pcoder a feedback value is never used there (its ``PCoder`` has
``has_feedback=False``: ``e = ffm*ff + (1-ffm)*e - erm*g``), so every preset gives it 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .config import Hyperparameters
from .errors import ConfigError, look_up

if TYPE_CHECKING:
    from .network import PredictiveNet

__all__ = ["PRESETS", "HyperparameterPreset", "get_preset", "list_presets"]

_REPOSITORY = "github.com/bhavinc/predify2021@e968414"


@dataclass(frozen=True)
class HyperparameterPreset:
    """beta, lambda, alpha for every pcoder, as one set or one per pcoder (bottom first).

    Attributes:
        name: what [`get_preset()`][predify.presets.get_preset] takes.
        values: one [`Hyperparameters`][predify.config.Hyperparameters] for all pcoders, or one per
            pcoder.
        source: where the values are written (repository, commit, file and line).
        description: what they were used for.
        models: the zoo networks they were written for (empty: any network).
    """

    name: str
    values: Hyperparameters | tuple[Hyperparameters, ...]
    source: str
    description: str
    models: tuple[str, ...] = ()

    def for_pcoders(self, count: int) -> list[Hyperparameters]:
        """The values of ``count`` pcoders, bottom first, with feedback 0 on the top one.

        Raises:
            ConfigError: the preset is per pcoder and ``count`` is not its length.
        """
        if isinstance(self.values, Hyperparameters):
            per_pcoder = [self.values] * count
        else:
            if len(self.values) != count:
                raise ConfigError(
                    f"preset {self.name!r}: holds values for {len(self.values)} pcoders "
                    f"(written for {', '.join(self.models) or 'a network of that size'}), the "
                    f"network has {count}"
                )
            per_pcoder = list(self.values)
        return [*per_pcoder[:-1], replace(per_pcoder[-1], feedback=0.0)]

    def apply(self, pnet: PredictiveNet) -> None:
        """Set these values on ``pnet`` (see `for_pcoders()`)."""
        pnet.set_hyperparameters(self.for_pcoders(pnet.num_pcoders))


def _per_pcoder(
    feedforward: Sequence[float], feedback: Sequence[float], pc: Sequence[float]
) -> tuple[Hyperparameters, ...]:
    return tuple(Hyperparameters(*v) for v in zip(feedforward, feedback, pc, strict=True))


PRESETS: dict[str, HyperparameterPreset] = {
    preset.name: preset
    for preset in (
        HyperparameterPreset(
            name="paper-evaluation",
            values=Hyperparameters(feedforward=0.8, feedback=0.1, pc=0.01),
            source=(
                f"{_REPOSITORY}: predify2021/adversarial_attacks/get_adversarial_attacks.py "
                "lines 103-119 (hps), also mce_scores/calculate_mce_scores.py lines 52-61 and "
                "manifold_projection/calculate_corr_dists.py lines 51-57"
            ),
            description=(
                "beta 0.8, lambda 0.1, alpha 0.01 on every pcoder: the values the paper's "
                "adversarial-attack, mCE and correlation-distance scripts set (the last two "
                "multiply alpha by per-pcoder factors lws[n], undefined in the published code)"
            ),
        ),
        HyperparameterPreset(
            name="pvgg16-class-defaults",
            values=_per_pcoder((0.2, 0.4, 0.4, 0.5, 0.6), (0.05, 0.1, 0.1, 0.1, 0.0), (0.01,) * 5),
            source=(
                f"{_REPOSITORY}: predify2021/model_factory/pvgg16_shared.py line 10 "
                "(PVGG16SeparateHP.__init__ defaults); the same values as the per-pcoder "
                "hyperparameters of model_factory/config_PVGG16.toml"
            ),
            description="the per-pcoder defaults of the paper's PVGG16 network class",
            models=("pvgg16",),
        ),
        HyperparameterPreset(
            name="peffnetb0-class-defaults",
            values=_per_pcoder((0.3,) * 8, (0.3,) * 8, (0.01,) * 8),
            source=(
                f"{_REPOSITORY}: predify2021/model_factory/peffficientnetb0_shared.py line 8 "
                "(PEfficientNetB0_SeparateHP.__init__ defaults)"
            ),
            description="the per-pcoder defaults of the paper's PEfficientNetB0 network class",
            models=("peffnetb0",),
        ),
        HyperparameterPreset(
            name="get-model",
            values=Hyperparameters(feedforward=0.33, feedback=0.33, pc=0.01),
            source=(
                f"{_REPOSITORY}: predify2021/model_factory/get_model.py lines 29-31 and 56-58 "
                "(ff_multiplier=0.33, fb_multiplier=0.33, er_multiplier=0.01)"
            ),
            description=(
                "what get_model builds both networks with before any script sets its own "
                "(it overrides the network classes' defaults)"
            ),
        ),
    )
}


def list_presets() -> list[str]:
    """The names [`get_preset()`][predify.presets.get_preset] accepts, sorted."""
    return sorted(PRESETS)


def get_preset(name: str) -> HyperparameterPreset:
    """The preset called ``name``.

    Raises:
        ConfigError: no preset has that name (the message suggests the nearest).
    """
    return look_up("hyperparameter preset", name, PRESETS)
