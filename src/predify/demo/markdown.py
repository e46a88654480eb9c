"""The demo's text reports, rendered from a [`DemoReport`][predify.demo.report.DemoReport]: the
printed table and report.md."""

from __future__ import annotations

from .findings import CONTROL_WORDS, change_text, plain_text, seeds_text, verdict
from .report import INTERVAL_METHOD, DemoReport

__all__ = ["markdown_report", "summary_table"]

#: The rows of report.md's main table, per noise level.
_SETTINGS = (
    ("paper", "feedback (paper hyperparameters)"),
    ("clipped", "noise clipped to [0, 1]"),
    ("shuffled_feedback", "shuffled feedback (control)"),
    ("tuned", "tuned hyperparameters (validation split)"),
)


def _percent(value: float) -> str:
    return f"{100 * value:5.1f}"


def _seeds_label(seeds: list[int]) -> str:
    return f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''}"


def summary_table(report: DemoReport) -> str:
    """The printed table: across-seed accuracy (%) at t = 0 and t = T, and the changes."""
    header = (
        f"{'sigma':>5}  {'t=0':>5}  {f't={report.last}':>5}  {'change t=0->T [95% CI]':<24}"
        f"{'shuffled fb':<24}{'clipped noise':<24}{'tuned (val split)':<24}"
    )
    lines = [header, "-" * len(header)]
    for level in report.levels:
        accuracy = level.accuracy("paper")
        lines.append(
            f"{level.sigma:>5}  {_percent(accuracy[0])}  {_percent(accuracy[-1])}  "
            + "".join(
                f"{change_text(level.change(c), True):<24}"
                for c in ("paper", "shuffled_feedback", "clipped", "tuned")
            )
        )
    seeds = report.seeds
    lines.append(
        f"accuracy in %, means over {_seeds_label(seeds)} ({', '.join(map(str, seeds))}); "
        "changes in percentage points, intervals over seeds and test images"
    )
    return "\n".join(lines)


def _accuracy_rows(report: DemoReport) -> list[str]:
    rows = []
    for level in report.levels:
        for condition, label in _SETTINGS:
            accuracy, change = level.accuracy(condition), level.change(condition)
            rows.append(
                f"| {level.sigma} | {label} | {_percent(accuracy[0])} | "
                f"{_percent(accuracy[-1])} | {change_text(change, True)} | "
                f"{seeds_text(change)} | {verdict(change)} |"
            )
    return rows


def _control_rows(report: DemoReport) -> list[str]:
    return [
        f"| {level.sigma} | {change_text(level.feedback_minus_shuffled, True)} | "
        f"{verdict(level.feedback_minus_shuffled, CONTROL_WORDS)} |"
        for level in report.levels
    ]


def _tuned_rows(report: DemoReport) -> list[str]:
    rows = []
    for level in report.levels:
        cells = " | ".join(
            f"{v.feedforward:.2f} / {v.feedback:.2f} / {v.memory:.2f} / {v.pc:.3g}"
            for v in level.tuned_hyperparameters
        )
        rows.append(f"| {level.sigma} | {cells} | {change_text(level.tuned_minus_paper, True)} |")
    return rows


def _distance_rows(report: DemoReport) -> list[str]:
    rows = []
    for level in report.levels:
        if not level.correlation_distance:
            continue
        cells = " | ".join(
            f"{values[0]:.3f} -> {values[-1]:.3f}"
            f" ({plain_text(level.correlation_distance_change[name])})"
            for name, values in level.correlation_distance.items()
        )
        rows.append(f"| {level.sigma} | {cells} |")
    return rows


def _scale_rows(report: DemoReport) -> list[str]:
    rows = []
    for level in report.levels:
        for condition, trace in level.scales.items():
            cells = " | ".join(
                f"{series[0]:.3g} -> {series[-1]:.3g}"
                for series in (trace.logit_scale, *trace.representation_norm)
            )
            rows.append(f"| {level.sigma} | {condition} | {cells} |")
    return rows


def _error_rows(report: DemoReport) -> list[str]:
    return [
        f"| {level.sigma} | "
        + " | ".join(f"{v[0]:.4g} -> {v[-1]:.4g}" for v in level.prediction_error.values())
        + " |"
        for level in report.levels
    ]


def _introduction(report: DemoReport) -> list[str]:
    info, seeds = report.run, report.seeds
    quick_note = (
        ["> Quick mode: reduced sizes for tests; the numbers are not meant to be read.", ""]
        if info.quick
        else []
    )
    feedforward = ", ".join(
        f"sigma {level.sigma}: {100 * level.feedforward_accuracy.mean:.1f}%"
        for level in report.levels
    )
    return [
        "# predify demo: predictive-coding feedback on MNIST-5k",
        "",
        *quick_note,
        f"**{_seeds_label(seeds)}** ({', '.join(map(str, seeds))}): each trains its own backbone "
        "(SmallCNN: three conv stages, flatten, a hidden layer; "
        f"{info.train_images} clean MNIST-5k training images, {info.backbone_epochs} epochs, no "
        "noise augmentation), then its feedback (the decoders of `psmallcnn`, "
        f"{info.feedback_epochs} epochs on the same clean images, backbone frozen), then tunes "
        "feedforward, feedback and pc (β, λ, α) per pcoder at each noise level on the validation "
        f"split ({info.tune_steps} Adam steps of {info.tune_batch_size} images). Every seed is "
        f"evaluated on the same {info.test_images} held-out test images (split seed "
        f"{info.split_seed}) under the same noise draw: additive Gaussian noise in pixel units "
        f"(images in [0, 1]), T = {report.last} timesteps, the paper's hyperparameters "
        "feedforward 0.8, feedback 0.1, pc 0.01 unless tuned.",
        "",
        f"Feed-forward test accuracy of the backbone (t = 0), mean over seeds: {feedforward}. "
        "(The ShallowCNN used before collapsed to one class at sigma >= 0.5: its global average "
        "pool turns the rise of every ReLU map's mean under noise into a shift common to all "
        "images; `benchmarks/noise_collapse.py` measures it.)",
        "",
    ]


def _tables(report: DemoReport) -> list[str]:
    names = report.pcoder_names
    columns = f"| sigma | {' | '.join(names)} |"
    return [
        "## Accuracy (%) at t = 0 (feed-forward) and t = T, means over seeds",
        "",
        "| sigma | setting | t = 0 | t = T | change [95% CI] | per seed | verdict |",
        "|---|---|---|---|---|---|---|",
        *_accuracy_rows(report),
        "",
        "## Is the gain image-specific? Feedback minus shuffled feedback at t = T",
        "",
        "In the control each image receives the top-down predictions of another image of its "
        "batch (a random derangement, fixed for all timesteps); its own error-correction term "
        "is unchanged. Positive: the image's own feedback does better than another's.",
        "",
        "| sigma | difference [95% CI] | verdict |",
        "|---|---|---|",
        *_control_rows(report),
        "",
        "## Tuned hyperparameters (feedforward / feedback / memory / pc per pcoder, seed means)",
        "",
        "Tuned at each noise level on the validation split (Adam on the "
        f"`{report.run.tune_objective}` objective; see docs/tutorials/tune.md), then evaluated "
        "on the test split; the last column is tuned minus paper accuracy at t = T. Each "
        "seed's values: `per_seed` in report.json and `tuned_hyperparameters.png`.",
        "",
        f"| sigma | {' | '.join(names)} | tuned - paper at T [95% CI] |",
        f"|---|{'---|' * len(names)}---|",
        *_tuned_rows(report),
        "",
        "## Correlation distance between clean and noisy representations, t = 0 -> t = T",
        "",
        "1 - Pearson r between each test image's representation with and without noise "
        "(paper hyperparameters), mean over images and seeds; in brackets the change with "
        "its interval. Falling: the noisy representation moves toward the clean one.",
        "",
        columns,
        f"|---|{'---|' * len(names)}",
        *_distance_rows(report),
        "",
        "## Scale of the logits and representations, t = 0 -> t = T",
        "",
        "Logits: the standard deviation over classes; pcoders: the L2 norm of the representation; "
        "means over test images and seeds (`scales.png`). A tuning that lowers its loss by "
        "shrinking the logits collapses the representations (below half the t = 0 norm: a "
        "warning in the findings).",
        "",
        f"| sigma | setting | logits | {' | '.join(names)} |",
        f"|---|---|---|{'---|' * len(names)}",
        *_scale_rows(report),
        "",
        "## Prediction error (MSE) of each pcoder, t = 0 -> t = T",
        "",
        "pcoder1 predicts the (noisy) input, so its error includes noise it cannot predict.",
        "",
        columns,
        f"|---|{'---|' * len(names)}",
        *_error_rows(report),
        "",
    ]


def markdown_report(report: DemoReport) -> str:
    """report.md: the tables and the findings."""
    return "\n".join(
        [
            *_introduction(report),
            f"Intervals: {INTERVAL_METHOD}.",
            "",
            *_tables(report),
            "## What the numbers say",
            "",
            *[f"- {finding}" for finding in report.findings],
            "",
            "## Files",
            "",
            "- `accuracy_vs_timestep.png`, `tuned_hyperparameters.png`, "
            "`correlation_distance.png`, `reconstructions.png`, `prediction_error.png`",
            "- `report.json`: every number above, each seed's under `per_seed`",
            "- `seed-N/`: the run directory of seed N (`run.json`, `config.toml`, `backbone.pt`, "
            "feedback weights, `checkpoint.pt`, `metrics.csv`): `predify evaluate DIR/seed-0`, "
            "`predify tune DIR/seed-0`",
            "",
        ]
    )
