"""``predify demo``: the whole method on embedded data, end to end, in about two minutes on a CPU.

>>> from predify.demo import QUICK, run_demo
>>> report = run_demo("predify-demo", QUICK)     # doctest: +SKIP
>>> report.accuracy["paper"]["0.25"]              # doctest: +SKIP

- :mod:`~predify.demo.experiment`: :class:`DemoSettings`, :func:`run_demo`, :class:`DemoReport`
  (train the backbone and its feedback, tune per noise level, evaluate, bootstrap);
- :mod:`~predify.demo.evaluation`: the evaluated conditions (noise, clipping, paper's or tuned
  hyperparameters, shuffled-feedback control) scored at every timestep;
- :mod:`~predify.demo.report` and :mod:`~predify.demo.plots`: report.md, the printed table, the
  figures; :mod:`~predify.demo.cli`: the command.
"""

from .experiment import (
    FULL,
    NOISE_LEVELS,
    QUICK,
    SPLIT_SEED,
    DemoReport,
    DemoSettings,
    run_demo,
)
from .report import summary_table

__all__ = [
    "FULL",
    "NOISE_LEVELS",
    "QUICK",
    "SPLIT_SEED",
    "DemoReport",
    "DemoSettings",
    "run_demo",
    "summary_table",
]
