"""``predify demo``: the whole method on embedded data, end to end, over several seeds.

>>> from dataclasses import replace
>>> from predify.demo import QUICK, run_demo
>>> report = run_demo("predify-demo", replace(QUICK, seeds=3))   # doctest: +SKIP
>>> report.level(0.5).change("tuned").mean                        # doctest: +SKIP

- [`settings`][predify.demo.settings]: [`DemoSettings`][predify.demo.DemoSettings],
[`FULL`][predify.demo.FULL], [`QUICK`][predify.demo.QUICK];
- [`experiment`][predify.demo.experiment]: [`run_demo()`][predify.demo.run_demo] (every seed, then
the report and figures);
- [`seeds`][predify.demo.seeds]: one seed (train the backbone and its feedback, tune per noise
  level, evaluate), and several seeds in parallel processes with a progress bar per stage;
- [`evaluation`][predify.demo.evaluation]: the evaluated conditions (noise, clipping, paper's or
tuned
  hyperparameters, shuffled-feedback control) scored at every timestep;
- [`statistics`][predify.demo.statistics]: the interval over seeds and test images;
- [`report`][predify.demo.report]: [`DemoReport`][predify.demo.DemoReport] and its parts, typed,
  and ``report.json`` (its only reader and writer);
- [`summary`][predify.demo.summary]: the seeds' results to the report (means, intervals);
- [`findings`][predify.demo.findings]: the findings in words, from the report's numbers;
- [`markdown`][predify.demo.markdown] and [`plots`][predify.demo.plots]: report.md, the printed
  table and the figures, from the report; [`cli`][predify.demo.cli]: the command.
"""

from .experiment import run_demo
from .markdown import summary_table
from .report import DemoReport
from .settings import FULL, NOISE_LEVELS, QUICK, SPLIT_SEED, TEST_SEED, DemoSettings

__all__ = [
    "FULL",
    "NOISE_LEVELS",
    "QUICK",
    "SPLIT_SEED",
    "TEST_SEED",
    "DemoReport",
    "DemoSettings",
    "run_demo",
    "summary_table",
]
