"""What ``predify evaluate`` measured, typed, and ``results.json``, its file.

[`EvaluationReport`][predify.evaluate.results.EvaluationReport] gathers the sections: a
[`CorruptionSummary`][predify.evaluate.robustness.CorruptionSummary], an
[`AttackReport`][predify.evaluate.attacks.AttackReport], a
[`RepresentationAnalysis`][predify.evaluate.analysis.RepresentationAnalysis]. Tables, plots and
the printed summary are drawn from these objects; JSON happens only here, at the file edge:
`to_json()` writes the current format, `RESULTS_FORMAT`, and
[`read_results()`][predify.evaluate.results.read_results] reads it and the formats before it.

Formats:

* ``predify-evaluate-v1``: ``attacks`` holds one dict per attack, keyed by epsilons printed with
  6 significant digits (``success["0.1"]``), and one ``steps`` for every attack.
* ``predify-evaluate-v2``: ``attacks.attacks`` is a list of attacks, each with its ``budget``
  (``steps``, ``restarts``, ``queries``), a list of ``epsilons`` and, per epsilon, a list of
  ``readouts`` (``readout``, ``success``, ``success_ci``, ``success_all_timesteps``). The other
  blocks are as in v1. Later v2 files add ``data.selection`` (the protocol: ``all``,
  ``seeded-random``, ``robustbench``) and ``data.skipped_files``; files without them still read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._io import JsonObject
from ..data.files import SkippedFiles
from ..errors import DataError
from .analysis import Reconstructions, RepresentationAnalysis
from .attacks import AttackReport
from .robustness import CorruptionSummary

__all__ = [
    "READABLE_FORMATS",
    "RESULTS_FORMAT",
    "EvaluatedData",
    "EvaluationReport",
    "read_results",
]

#: The format ``results.json`` is written in (its ``format`` field).
RESULTS_FORMAT = "predify-evaluate-v2"
_V1 = "predify-evaluate-v1"
#: The formats `read_results()` reads.
READABLE_FORMATS: tuple[str, ...] = (_V1, RESULTS_FORMAT)


@dataclass(frozen=True)
class EvaluatedData:
    """The images an evaluation ran on.

    Attributes:
        spec: the data set, as the user gave it (with the split seed where one applies).
        num_images: images evaluated.
        dataset_size: images in the whole data set.
        benchmark: the pre-generated benchmark (``cifar-c:ROOT``, ``imagenet-c:ROOT``), if any.
        selection: which images, the protocol run: ``all`` (every image of the data set),
            ``seeded-random`` (``num_images`` of them drawn with the seed) or ``robustbench``
            (RobustBench's ImageNet validation images, the first ``num_images`` of its list of
            5,000); None in files written before it was recorded.
        skipped_files: unreadable image files left out (``--skip-bad-images``).
    """

    spec: str
    num_images: int
    dataset_size: int
    benchmark: str | None = None
    selection: str | None = None
    skipped_files: SkippedFiles = field(default_factory=SkippedFiles)

    def to_json(self) -> JsonObject:
        return {
            "spec": self.spec,
            "num_images": self.num_images,
            "dataset_size": self.dataset_size,
            "benchmark": self.benchmark,
            "selection": self.selection,
            "skipped_files": self.skipped_files.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EvaluatedData:
        """Inverse of `to_json()`; files without ``selection`` / ``skipped_files`` (written before
        they were recorded) read as None / nothing skipped."""
        benchmark = data.get("benchmark")
        selection = data.get("selection")
        return cls(
            spec=str(data["spec"]),
            num_images=int(data["num_images"]),
            dataset_size=int(data["dataset_size"]),
            benchmark=None if benchmark is None else str(benchmark),
            selection=None if selection is None else str(selection),
            skipped_files=SkippedFiles.from_json(data.get("skipped_files")),
        )


@dataclass
class EvaluationReport:
    """What [`evaluate_run()`][predify.evaluate.api.evaluate_run] measured; `to_json()` is
    ``results.json``.

    ``corruption``, ``attacks`` and ``analysis`` are None when not evaluated.
    """

    run_dir: str
    model: str
    num_classes: int
    timesteps: int
    device: str
    seed: int
    data: EvaluatedData
    corruption: CorruptionSummary | None = None
    attacks: AttackReport | None = None
    analysis: RepresentationAnalysis | None = None
    reconstructions: Reconstructions | None = None
    """The first decoder's reconstructions of a few images (not in the JSON)."""
    frost_source: str | None = None
    """Where frost's images came from (``"imagecorruptions"``: the published photographs;
    ``"generated"``: predify's textures); None when frost was not evaluated."""
    elapsed_seconds: float = 0.0
    tables: list[str] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    world_size: int = 1
    """Processes that shared the work (``torchrun``); the numbers do not depend on it."""
    precision: str = "fp32"
    is_main: bool = True
    """False on the other ranks of a multi-process run, whose report is not filled in."""

    def to_json(self) -> JsonObject:
        """``results.json`` in the current format, `RESULTS_FORMAT`."""
        results: JsonObject = {
            "format": RESULTS_FORMAT,
            "run_dir": self.run_dir,
            "model": self.model,
            "num_classes": self.num_classes,
            "timesteps": self.timesteps,
            "device": self.device,
            "precision": self.precision,
            "world_size": self.world_size,
            "seed": self.seed,
            "data": self.data.to_json(),
        }
        if self.corruption is not None:
            results["corruption"] = self.corruption.to_json()
        if self.frost_source is not None:
            results["frost_source"] = self.frost_source
        # Also at the top level: {corruption: {"<severity>": [error at t = 0..T]}}.
        results["corruption_error"] = (
            self.corruption.corruption_error if self.corruption is not None else {}
        )
        if self.attacks is not None:
            results["attacks"] = self.attacks.to_json()
        if self.analysis is not None:
            results["analysis"] = self.analysis.to_json()
        results["elapsed_seconds"] = self.elapsed_seconds
        results["tables"] = self.tables
        results["plots"] = self.plots
        return results

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EvaluationReport:
        """``results.json`` read back, in any of `READABLE_FORMATS`.

        Raises:
            DataError: another format (one line, naming it).
            KeyError, ValueError, TypeError: a damaged file of a known format.
        """
        version = data.get("format")
        if version not in READABLE_FORMATS:
            raise DataError(
                f"results format {version!r} is not one this predify reads "
                f"({', '.join(READABLE_FORMATS)}); a newer predify may have written it"
            )
        corruption = data.get("corruption")
        attacks = data.get("attacks")
        analysis = data.get("analysis")
        read_attacks = AttackReport.from_v1_json if version == _V1 else AttackReport.from_json
        return cls(
            run_dir=str(data["run_dir"]),
            model=str(data["model"]),
            num_classes=int(data["num_classes"]),
            timesteps=int(data["timesteps"]),
            device=str(data["device"]),
            seed=int(data["seed"]),
            data=EvaluatedData.from_json(data["data"]),
            corruption=None if corruption is None else CorruptionSummary.from_json(corruption),
            attacks=None if attacks is None else read_attacks(attacks),
            analysis=None if analysis is None else RepresentationAnalysis.from_json(analysis),
            frost_source=data.get("frost_source"),
            elapsed_seconds=float(data["elapsed_seconds"]),
            tables=[str(name) for name in data["tables"]],
            plots=[str(name) for name in data["plots"]],
            world_size=int(data.get("world_size", 1)),
            precision=str(data.get("precision", "fp32")),
        )


def read_results(path: str | os.PathLike[str]) -> EvaluationReport:
    """A ``results.json`` (or the folder holding it) that ``predify evaluate`` wrote.

    Raises:
        DataError: unreadable, damaged, or in a format this predify does not read (one line
            naming the file).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        return EvaluationReport.from_json(data)
    except DataError as error:
        raise DataError(f"{path}: {error}") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from None
    except (KeyError, ValueError, TypeError) as error:
        raise DataError(f"{path}: damaged results file ({type(error).__name__}: {error})") from None
