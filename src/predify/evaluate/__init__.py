"""Evaluation of predictive networks: metrics, corruptions and robustness benchmarks.

* `metrics`: top-1 error, CE/mCE (AlexNet-normalised or relative to
  t = 0), bootstrap intervals.
* `corruptions`: the ImageNet-C corruptions on torch batches, readers of
  pre-generated benchmarks.
* `robustness`: the corruption x severity x timestep sweep.
* `attacks`: PGD/BIM through the dynamics, Square, transfer from t = 0, and the campaign
  that runs them ([`AttackReport`][predify.evaluate.attacks.AttackReport]: per attack, epsilon
  and readout).
* `readout_classifier`: [`classifier()`][predify.evaluate.readout_classifier.classifier], the
  network at one readout as the [B, K]-logits module that torchattacks, foolbox and AutoAttack
  take.
* `analysis`: correlation distance of clean vs noisy representations,
  prediction errors, reconstructions.
* `plots`: the PNG plots (matplotlib is imported only when drawing).
* `api`: [`evaluate_run()`][predify.evaluate.evaluate_run] (``predify evaluate`` from Python), with
  `data` (the evaluated images), `results` (the typed
  [`EvaluationReport`][predify.evaluate.results.EvaluationReport] and ``results.json``,
  [`read_results()`][predify.evaluate.results.read_results]) and `report` (its tables, plots and
  summary).

The names below are imported on first use, so ``import predify.evaluate`` stays cheap (the
``predify`` command imports it for every subcommand).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .analysis import (
        NOISE_SIGMAS,
        Reconstructions,
        RepresentationAnalysis,
        add_gaussian_noise,
        correlation_distance,
        reconstructions,
        representation_analysis,
    )
    from .api import EvaluateSettings, evaluate_run
    from .attacks import (
        ATTACKS,
        AttackBudget,
        AttackReport,
        AttackResult,
        EpsilonResult,
        MaskingChecks,
        ReadoutResult,
        attack_loss,
        bim,
        gradient_masking_checks,
        input_gradient,
        pgd,
        run_attacks,
        square,
        success_mask,
        target_labels,
    )
    from .corruptions import ALL_CORRUPTIONS, corrupt, parse_severities, resolve_corruptions
    from .metrics import (
        bootstrap_ci,
        ce_relative_to_t0,
        corruption_error,
        mean_corruption_error,
        misclassified,
        paired_bootstrap_diff,
        relative_corruption_error,
        top1_error,
    )
    from .pixel_space import PixelSpaceNet, check_pixel_range
    from .readout_classifier import ReadoutClassifier, classifier
    from .results import EvaluatedData, EvaluationReport, read_results
    from .robustness import (
        AlexNetSummary,
        BenchmarkCorruptions,
        CellResult,
        CorruptionSummary,
        CorruptionSweep,
        OnTheFlyCorruptions,
        corruption_sweep,
        evaluate_cell,
        summarize_sweep,
    )

__all__ = [
    "ALL_CORRUPTIONS",
    "ATTACKS",
    "NOISE_SIGMAS",
    "AlexNetSummary",
    "AttackBudget",
    "AttackReport",
    "AttackResult",
    "BenchmarkCorruptions",
    "CellResult",
    "CorruptionSummary",
    "CorruptionSweep",
    "EpsilonResult",
    "EvaluateSettings",
    "EvaluatedData",
    "EvaluationReport",
    "MaskingChecks",
    "OnTheFlyCorruptions",
    "PixelSpaceNet",
    "ReadoutClassifier",
    "ReadoutResult",
    "Reconstructions",
    "RepresentationAnalysis",
    "add_gaussian_noise",
    "attack_loss",
    "bim",
    "bootstrap_ci",
    "ce_relative_to_t0",
    "check_pixel_range",
    "classifier",
    "correlation_distance",
    "corrupt",
    "corruption_error",
    "corruption_sweep",
    "evaluate_cell",
    "evaluate_run",
    "gradient_masking_checks",
    "input_gradient",
    "mean_corruption_error",
    "misclassified",
    "paired_bootstrap_diff",
    "parse_severities",
    "pgd",
    "read_results",
    "reconstructions",
    "relative_corruption_error",
    "representation_analysis",
    "resolve_corruptions",
    "run_attacks",
    "square",
    "success_mask",
    "summarize_sweep",
    "target_labels",
    "top1_error",
]

# public name -> submodule that defines it (kept equal to __all__ by a test); one line of names
# per submodule.
_NAMES_BY_MODULE = {
    "analysis": "NOISE_SIGMAS Reconstructions RepresentationAnalysis add_gaussian_noise "
    "correlation_distance reconstructions representation_analysis",
    "attacks": "ATTACKS AttackBudget AttackReport AttackResult EpsilonResult MaskingChecks "
    "ReadoutResult attack_loss bim gradient_masking_checks input_gradient pgd run_attacks square "
    "success_mask target_labels",
    "corruptions": "ALL_CORRUPTIONS corrupt parse_severities resolve_corruptions",
    "metrics": "bootstrap_ci ce_relative_to_t0 corruption_error mean_corruption_error "
    "misclassified paired_bootstrap_diff relative_corruption_error top1_error",
    "pixel_space": "PixelSpaceNet check_pixel_range",
    "readout_classifier": "ReadoutClassifier classifier",
    "robustness": "AlexNetSummary BenchmarkCorruptions CellResult CorruptionSummary "
    "CorruptionSweep OnTheFlyCorruptions corruption_sweep evaluate_cell summarize_sweep",
    "api": "EvaluateSettings evaluate_run",
    "results": "EvaluatedData EvaluationReport read_results",
}
_EXPORTS: dict[str, str] = {
    name: module for module, names in _NAMES_BY_MODULE.items() for name in names.split()
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
