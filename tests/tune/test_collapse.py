"""Collapse diagnostics: the logit scale and representation norms per timestep, and the warning
below half the t = 0 norm. Planted bug seen failing: ``norms[-1] > ratio * norms[0]`` in
``ScaleTrace.shrunk``."""

from __future__ import annotations

import torch

from predify.tune.collapse import ScaleAccumulator, ScaleTrace, collapse_warning


def test_the_accumulator_averages_per_image_scales_over_batches() -> None:
    accumulator = ScaleAccumulator(timesteps=1, pcoders=1)
    # Per-image std over classes of [0, 2] and [0, 4] is sqrt(2) and sqrt(8) (unbiased, n - 1);
    # representation norms 3 ([3, 0]) and 5 ([3, 4]): mean 4.
    logits = torch.tensor([[0.0, 2.0], [0.0, 4.0]])
    reps = [torch.tensor([[3.0, 0.0], [3.0, 4.0]])]
    accumulator.add(0, logits[:1], [reps[0][:1]])
    accumulator.add(0, logits[1:], [reps[0][1:]])
    accumulator.add(1, logits / 2, [reps[0] / 2])
    trace = accumulator.result()
    expected = (2**0.5 + 8**0.5) / 2
    assert abs(trace.logit_scale[0] - expected) < 1e-6
    assert abs(trace.logit_scale[1] - expected / 2) < 1e-6
    assert trace.representation_norm == ((4.0, 2.0),)


def test_a_warning_names_the_representations_below_half_their_start() -> None:
    trace = ScaleTrace(
        logit_scale=(7.7, 3.0, 1.7),
        representation_norm=((51.0, 20.0, 8.8), (52.0, 40.0, 27.0), (58.0, 50.0, 12.4)),
    )
    assert trace.shrunk() == [0, 2]
    message = collapse_warning(trace, ["pcoder1", "pcoder2", "pcoder3"], "noise gaussian:1.0")
    assert message is not None
    assert "pcoder1 51 -> 8.8" in message and "pcoder3" in message and "pcoder2" not in message
    steady = ScaleTrace((5.0, 5.0), ((10.0, 5.5),))
    assert collapse_warning(steady, ["pcoder1"], "x") is None
    assert ScaleTrace.from_json(trace.to_json()) == trace
