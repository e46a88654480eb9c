"""The demo's text reports, from the JSON-ready report: the printed table, report.md and the
findings (plain statements computed from the numbers)."""

from __future__ import annotations

from typing import Any

__all__ = ["findings", "markdown_report", "summary_table"]


def _verdict(
    change: dict[str, float],
    words: tuple[str, str, str] = ("improves", "hurts", "no detectable change"),
) -> str:
    """Whether the 95% interval lies above 0, below 0, or includes it."""
    if change["low"] > 0:
        return words[0]
    if change["high"] < 0:
        return words[1]
    return words[2]


#: Verdict words for "own feedback minus shuffled feedback".
_CONTROL_WORDS = ("own feedback better", "own feedback worse", "no detectable difference")


# ---------------------------------------------------------------------- text reports
def _percent(value: float) -> str:
    return f"{100 * value:5.1f}"


def _change(change: dict[str, float], aligned: bool = True) -> str:
    """``+2.5 [+1.5, +3.6]`` in percentage points (padded to a fixed width when ``aligned``)."""
    width = 5 if aligned else 0
    mean, low, high = (100 * change[key] for key in ("mean", "low", "high"))
    return f"{mean:+{width}.1f} [{low:+{width}.1f}, {high:+{width}.1f}]"


def summary_table(report: dict[str, Any]) -> str:
    """The printed table: accuracy (%) at t = 0 and t = T, and the change with its 95% CI."""
    last = report["timesteps"][-1]
    header = (
        f"{'sigma':>5}  {'t=0':>5}  {f't={last}':>5}  {'change t=0->T [95% CI]':<24}"
        f"{'shuffled fb':<24}{'clipped noise':<24}{'tuned (val split)':<24}"
    )
    lines = [header, "-" * len(header)]
    for sigma in report["noise_levels"]:
        key = str(sigma)
        accuracy = report["accuracy"][key]
        lines.append(
            f"{sigma:>5}  {_percent(accuracy[0])}  {_percent(accuracy[-1])}  "
            f"{_change(report['change_t0_to_T'][key]):<24}"
            f"{_change(report['change_t0_to_T_shuffled_feedback'][key]):<24}"
            f"{_change(report['change_t0_to_T_clipped'][key]):<24}"
            f"{_change(report['change_t0_to_T_tuned'][key]):<24}"
        )
    lines.append(
        "accuracy in %; changes in percentage points, paired bootstrap over test images; "
        f"{report['seeds']} seed"
    )
    return "\n".join(lines)


def markdown_report(report: dict[str, Any]) -> str:
    last = report["timesteps"][-1]
    info = report["run"]
    rows = []
    for sigma in report["noise_levels"]:
        key = str(sigma)
        for label, suffix in (
            ("feedback (paper hyperparameters)", ""),
            ("noise clipped to [0, 1]", "_clipped"),
            ("shuffled feedback (control)", "_shuffled_feedback"),
            ("tuned hyperparameters (validation split)", "_tuned"),
        ):
            accuracy = report[f"accuracy{suffix}"][key]
            change = report[f"change_t0_to_T{suffix}"][key]
            rows.append(
                f"| {sigma} | {label} | {_percent(accuracy[0])} | {_percent(accuracy[-1])} | "
                f"{_change(change)} | {_verdict(change)} |"
            )
    control_rows = []
    for sigma in report["noise_levels"]:
        difference = report["feedback_minus_shuffled_at_T"][str(sigma)]
        control_rows.append(
            f"| {sigma} | {_change(difference)} | {_verdict(difference, _CONTROL_WORDS)} |"
        )
    error_rows = []
    for sigma in report["noise_levels"]:
        errors = report["prediction_error"][str(sigma)]
        cells = " | ".join(f"{v[0]:.4g} -> {v[-1]:.4g}" for v in errors.values())
        error_rows.append(f"| {sigma} | {cells} |")
    pcoder_names = list(report["prediction_error"][str(report["noise_levels"][0])])
    tuned_rows = []
    for sigma in report["noise_levels"]:
        key = str(sigma)
        cells = " | ".join(
            f"{v['feedforward']:.2f} / {v['feedback']:.2f} / {v['memory']:.2f} / {v['pc']:.3g}"
            for v in report["tuned_hyperparameters"][key]
        )
        tuning = report["tuning"][key]
        tuned_rows.append(
            f"| {sigma} | {cells} | {tuning['steps']} | "
            f"{_change(report['tuned_minus_paper_at_T'][key])} |"
        )
    listed = report["findings"]
    quick_note = (
        ["> Quick mode: reduced sizes for tests; the numbers are not meant to be read.", ""]
        if info["quick"]
        else []
    )
    return "\n".join(
        [
            "# predify demo: predictive-coding feedback on MNIST-5k",
            "",
            *quick_note,
            f"Backbone: ShallowCNN trained on {info['train_images']} clean MNIST-5k training "
            f"images ({info['backbone_epochs']} epochs); validation accuracy "
            f"{_percent(info['backbone_val_accuracy']).strip()}%. Feedback: the decoders of "
            f"`pshallow`, trained on the same clean images for {info['feedback_epochs']} epochs "
            "(reconstruction of the layer below, backbone frozen). Evaluation: "
            f"{info['test_images']} held-out test images (split seed {info['split_seed']}), "
            f"additive Gaussian noise in pixel units (images in [0, 1]), T = {last} timesteps, "
            f"hyperparameters beta 0.8, lambda 0.1, alpha 0.01 (the paper's). "
            f"**{report['seeds']} seed** (seed {report['seed']}): the intervals below cover the "
            "sampling of test images, not the variation between training runs.",
            "",
            "## Accuracy (%) at t = 0 (feed-forward) and t = T",
            "",
            "Change in percentage points with a paired bootstrap 95% interval over test images "
            f"({report['bootstrap']['resamples']} resamples); every setting sees the same noise.",
            "",
            "| sigma | setting | t = 0 | t = T | change [95% CI] | verdict |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            "## Is the gain image-specific? Feedback minus shuffled feedback at t = T",
            "",
            "In the control each image receives the top-down predictions of another image of its "
            "batch (a random derangement, fixed for all timesteps); its own error-correction term "
            "is unchanged. Positive: the image's own feedback does better than another's.",
            "",
            "| sigma | difference [95% CI] | verdict |",
            "|---|---|---|",
            *control_rows,
            "",
            "## Tuned hyperparameters (beta / lambda / memory / alpha per pcoder)",
            "",
            "Tuned at each noise level on the validation split (Adam on the cross-entropy summed "
            f"over timesteps, {report['run']['tune_steps']} steps of "
            f"{report['run']['tune_batch_size']} of its {report['run']['tune_images']} images), "
            "then evaluated on the test split; the last column is tuned minus paper accuracy at "
            "t = T.",
            "",
            f"| sigma | {' | '.join(pcoder_names)} | Adam steps | tuned - paper at T [95% CI] |",
            f"|---|{'---|' * len(pcoder_names)}---|---|",
            *tuned_rows,
            "",
            "## Prediction error (MSE) of each pcoder, t = 0 -> t = T",
            "",
            "pcoder1 predicts the (noisy) input, so its error includes noise it cannot predict.",
            "",
            f"| sigma | {' | '.join(pcoder_names)} |",
            f"|---|{'---|' * len(pcoder_names)}",
            *error_rows,
            "",
            "## What the numbers say",
            "",
            *[f"- {finding}" for finding in listed],
            "",
            "## Files",
            "",
            "- `accuracy_vs_timestep.png`, `reconstructions.png`, `prediction_error.png`",
            "- `report.json`: every number above; `metrics.csv`: the feedback training losses",
            "- a run directory (`run.json`, `config.toml`, `backbone.pt`, feedback weights, "
            "`checkpoint.pt`): `predify evaluate DIR`, `predify tune DIR`",
            "",
        ]
    )


def findings(report: dict[str, Any]) -> list[str]:
    """Plain statements computed from the numbers, for every noise level (nothing left out)."""
    lines = []
    last = report["timesteps"][-1]
    for sigma in report["noise_levels"]:
        key = str(sigma)
        accuracy = report["accuracy"][key]
        change = report["change_t0_to_T"][key]
        control = report["feedback_minus_shuffled_at_T"][key]
        clipped = report["change_t0_to_T_clipped"][key]
        tuned = report["change_t0_to_T_tuned"][key]
        tuned_gain = report["tuned_minus_paper_at_T"][key]
        text = (
            f"sigma {sigma}: feed-forward accuracy {100 * accuracy[0]:.1f}%. With the paper's "
            f"feedback the change from t = 0 to t = {last} is {_change(change, False)} points "
            f"({_verdict(change)}); with clipped noise {_change(clipped, False)} "
            f"({_verdict(clipped)}). At t = {last} the image's own feedback minus another "
            f"image's: {_change(control, False)} ({_verdict(control, _CONTROL_WORDS)}). "
            f"With hyperparameters tuned on the validation split: {_change(tuned, False)} "
            f"({_verdict(tuned)}); tuned minus paper at t = {last}: "
            f"{_change(tuned_gain, False)} ({_verdict(tuned_gain)})."
        )
        if accuracy[0] <= 0.15:
            text += " The backbone is at or near chance (10%) here: there is little to recover."
        lines.append(text)
    lines.append(
        "The tuned hyperparameters were fitted on the validation split only (disjoint from the "
        "test split) in a few Adam steps; `predify tune DIR --noise gaussian:SIGMA` runs the "
        "same tuning longer, with Optuna as an alternative."
    )
    lines.append(
        f"{report['seeds']} seed: the intervals describe the sampling of the "
        f"{report['run']['test_images']} test images only; another training run (another seed) "
        "can move these numbers by more than their width."
    )
    return lines
