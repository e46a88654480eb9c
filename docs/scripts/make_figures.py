"""Make the documentation's pictures: a diagram of the dynamics and the demo's plots.

    python docs/scripts/make_figures.py            # full demo (about 1.5 min on 2 CPU cores)
    python docs/scripts/make_figures.py --quick    # the demo's quick sizes, for a smoke run

Everything is drawn here or by ``predify demo`` on its embedded data: nothing is downloaded. The
PNGs land in ``docs/images/`` and are committed, so building the site does not run the demo.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import tempfile
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

IMAGES = Path(__file__).resolve().parents[1] / "images"
DEMO_PLOTS = (
    "accuracy_vs_timestep.png",
    "tuned_hyperparameters.png",
    "correlation_distance.png",
    "reconstructions.png",
    "prediction_error.png",
)


def _box(axis, x: float, y: float, text: str, color: str, width: float = 1.5) -> None:
    axis.add_patch(
        FancyBboxPatch(
            (x - width / 2, y - 0.3), width, 0.6, boxstyle="round,pad=0.05",
            facecolor=color, edgecolor="black", linewidth=0.8,
        )
    )  # fmt: skip
    axis.text(x, y, text, ha="center", va="center", fontsize=9)


def _arrow(axis, start, end, color: str, label: str = "", style: str = "-", bend: float = 0.0):
    axis.add_patch(
        FancyArrowPatch(
            start, end, arrowstyle="-|>", mutation_scale=10, color=color, linestyle=style,
            linewidth=1.2, connectionstyle=f"arc3,rad={bend}",
        )
    )  # fmt: skip
    if label:
        axis.text(
            (start[0] + end[0]) / 2 + (0.12 if bend else 0.0),
            (start[1] + end[1]) / 2,
            label, fontsize=7, color=color, ha="left", va="center",
        )  # fmt: skip


def dynamics_diagram(path: Path) -> None:
    """Encoders e_n bottom-up, decoders d_n top-down, the four terms of the update."""
    figure = Figure(figsize=(8.0, 5.4))
    axis = figure.add_axes((0, 0, 1, 1))
    axis.set_xlim(0, 10.5)
    axis.set_ylim(-0.2, 7)
    axis.axis("off")
    levels = [(1.0, "image x"), (2.8, "e_1(t)"), (4.6, "e_2(t)"), (6.4, "e_3(t)  (top)")]
    for y, text in levels:
        _box(axis, 3.0, y, text, "#dde8f5" if y > 1 else "#eeeeee")
    for n, ((y0, _), (y1, _)) in enumerate(itertools.pairwise(levels), start=1):
        _arrow(axis, (2.7, y0 + 0.32), (2.7, y1 - 0.32), "black")
        axis.text(2.6, (y0 + y1) / 2, f"ff_{n}(t): backbone\nlayers (beta)", fontsize=7,
                  ha="right", va="center")  # fmt: skip
        _arrow(axis, (3.5, y1 - 0.32), (3.5, y0 + 0.32), "#c0392b", bend=0.0)
        below = "the image" if n == 1 else f"e_{n - 1}"
        use = "its error drives e_1" if n == 1 else f"feedback into e_{n - 1} (lambda)"
        axis.text(3.6, (y0 + y1) / 2, f"d_{n}(e_{n}) predicts {below}:\n{use}", fontsize=7,
                  color="#c0392b", va="center")  # fmt: skip
        gradient = f"- alpha * gradient of\n  MSE(d_{n}(e_{n}), {below})\n  with respect to e_{n}"
        axis.text(6.6, y1, gradient, fontsize=7, color="#27ae60", va="center")
        _arrow(axis, (6.5, y1), (3.8, y1), "#27ae60")
        axis.text(0.1, y1, f"memory e_{n}(t-1)\n(1 - beta - lambda)", fontsize=7,
                  color="#7f8c8d", va="center")  # fmt: skip
        _arrow(axis, (1.45, y1), (2.2, y1), "#7f8c8d")
    axis.text(
        5.2, 0.05,
        "e_n(t) = beta ff_n(t) + lambda d_{n+1}(t-1) + (1 - beta - lambda) e_n(t-1)"
        " - alpha g_n(t-1)",
        ha="center", fontsize=8.5, family="monospace",
    )  # fmt: skip
    with open(path, "wb") as file:
        figure.savefig(file, format="png", dpi=120, bbox_inches="tight")


def demo_plots(quick: bool) -> None:
    from predify.cli import main as predify_main

    with tempfile.TemporaryDirectory() as directory:
        arguments = ["demo", "--out", str(Path(directory) / "demo"), *["--quick"] * quick]
        status = predify_main(arguments)
        if status != 0:
            raise SystemExit(f"predify demo failed with status {status}")
        for name in DEMO_PLOTS:
            shutil.copyfile(Path(directory) / "demo" / name, IMAGES / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the demo's quick sizes")
    parser.add_argument("--diagram-only", action="store_true", help="skip the demo")
    args = parser.parse_args()
    IMAGES.mkdir(parents=True, exist_ok=True)
    dynamics_diagram(IMAGES / "dynamics.png")
    if not args.diagram_only:
        demo_plots(args.quick)


if __name__ == "__main__":
    main()
