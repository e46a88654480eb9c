"""What tuning adds to the images: pixel noise (``gaussian:0.5``, see `predify.data.noise`) or
an ImageNet-C corruption at a severity (``fog:3``, ``gaussian_noise:5``, from
`predify.evaluate.corruptions`): the follow-up paper tuned per CIFAR-100-C corruption and level.
A level of a pre-generated benchmark (``cifar-c/fog:3``, a
[`BenchmarkLevel`][predify.tune.noise.BenchmarkLevel]) adds nothing: its images are read
already corrupted (`predify.tune.benchmark`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..data.noise import NOISE_FORMS, NoiseSpec, parse_noise
from ..errors import ConfigError

__all__ = [
    "BENCHMARKS",
    "TUNE_NOISE_FORMS",
    "BenchmarkLevel",
    "CorruptionNoise",
    "TuneNoise",
    "parse_tune_noise",
]

#: The forms ``--noise`` accepts in ``predify tune``.
TUNE_NOISE_FORMS = f"{NOISE_FORMS}, or CORRUPTION:SEVERITY (e.g. fog:3, gaussian_noise:5)"

#: The pre-generated benchmarks ``--benchmark`` reads (as ``predify evaluate`` does).
BENCHMARKS = ("cifar-c", "imagenet-c")


@dataclass(frozen=True)
class CorruptionNoise:
    """One corruption at one severity, applied to every tuning and evaluation batch.

    Attributes:
        kind: the corruption's name (one of ``predify.evaluate.corruptions.ALL_CORRUPTIONS``).
        level: the severity, 1-5 (a float, as the noise levels of plots are).
    """

    kind: str
    level: float
    clip: bool = True
    """Always True: corrupted images are in [0, 1]."""

    def __post_init__(self) -> None:
        from ..evaluate.corruptions import ALL_CORRUPTIONS

        if self.kind not in ALL_CORRUPTIONS:
            raise ConfigError(
                f"noise {self.kind!r}: unknown corruption; expected {TUNE_NOISE_FORMS}"
            )
        if self.level not in (1, 2, 3, 4, 5):
            raise ConfigError(
                f"noise {self.kind}:{self.level:g}: the severity must be an integer 1-5"
            )
        object.__setattr__(self, "level", float(self.level))

    def __str__(self) -> str:
        return f"{self.kind}:{int(self.level)}"

    @property
    def label(self) -> str:
        """A name safe in file names, ``fog-3``."""
        return f"{self.kind}-{int(self.level)}"

    def apply(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """The corrupted images [B, C, H, W] in [0, 1] (random corruptions draw from
        ``generator``)."""
        from ..evaluate.corruptions import corrupt

        return corrupt(images, self.kind, int(self.level), generator)


@dataclass(frozen=True)
class BenchmarkLevel:
    """One corruption and severity of a pre-generated benchmark (``cifar-c/fog:3``): its images
    are read already corrupted, so [`apply()`][predify.tune.noise.BenchmarkLevel.apply] leaves
    them as they are.

    Attributes:
        benchmark: ``cifar-c`` or ``imagenet-c``.
        kind: the corruption's name.
        level: the severity, 1-5 (a float, as the noise levels of plots are).
    """

    benchmark: str
    kind: str
    level: float
    clip: bool = True
    """Always True: benchmark images are in [0, 1]."""

    def __post_init__(self) -> None:
        if self.benchmark not in BENCHMARKS:
            raise ConfigError(
                f"noise {self.benchmark}/{self.kind}: unknown benchmark {self.benchmark!r}; "
                f"expected one of {', '.join(BENCHMARKS)}"
            )
        checked = CorruptionNoise(self.kind, self.level)
        object.__setattr__(self, "level", checked.level)

    def __str__(self) -> str:
        return f"{self.benchmark}/{self.kind}:{int(self.level)}"

    @property
    def label(self) -> str:
        """A name safe in file names, ``cifar-c-fog-3``."""
        return f"{self.benchmark}-{self.kind}-{int(self.level)}"

    def apply(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """``images`` unchanged: they were read corrupted."""
        return images


TuneNoise = NoiseSpec | CorruptionNoise | BenchmarkLevel
"""Pixel noise, a corruption, or a level of a pre-generated benchmark."""


def parse_tune_noise(text: str, *, clip: bool = False) -> TuneNoise:
    """``gaussian:0.5``-style pixel noise ([`parse_noise()`][predify.data.noise.parse_noise]),
    ``CORRUPTION:SEVERITY``, or ``BENCHMARK/CORRUPTION:SEVERITY`` (a benchmark level, as results
    files name it); ``clip`` applies to pixel noise (corruptions stay in [0, 1]).

    Raises:
        ConfigError: one line naming the spec and the accepted forms.
    """
    from ..evaluate.corruptions import ALL_CORRUPTIONS

    if not isinstance(text, str):
        raise ConfigError(f"noise {text!r}: expected a string such as gaussian:0.5 or fog:3")
    kind, separator, value = text.strip().partition(":")
    benchmark, slash, corruption = kind.partition("/")
    if slash and benchmark.strip().lower() in BENCHMARKS:  # as results files name the levels
        level = parse_tune_noise(f"{corruption}:{value}")
        if not isinstance(level, CorruptionNoise):
            raise ConfigError(f"noise {text!r}: expected BENCHMARK/CORRUPTION:SEVERITY")
        return BenchmarkLevel(benchmark.strip().lower(), level.kind, level.level)
    if kind.strip().lower() not in ALL_CORRUPTIONS:
        return parse_noise(text, clip=clip)
    try:
        severity = int(value)
    except ValueError:
        raise ConfigError(
            f"noise {text!r}: {value.strip()!r} is not a severity; expected {TUNE_NOISE_FORMS}"
        ) from None
    if not separator:
        raise ConfigError(f"noise {text!r} is not understood; expected {TUNE_NOISE_FORMS}")
    return CorruptionNoise(kind.strip().lower(), severity)
