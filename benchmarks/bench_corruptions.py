"""Cost of generating each corruption on the fly, relative to the model that consumes it.

For each of the 19 corruptions at severity 3 (glass blur at severities 1-5, since its cost
depends on the severity), time corrupting one batch of 16 RGB 224 x 224 images on the CPU and
divide by the time PResNet18 takes on the same batch over T = 10 timesteps. A ratio <= 0.25
means on-the-fly corruption adds at most a quarter to an evaluation run.

Timing: ``time.perf_counter``, one warm-up call, then the median of 3 runs; torch's default
number of threads. If ``predify.models.presnet18`` cannot be imported, the model time is that
of torchvision's ResNet-18 forward pass run 11 times (the feed-forward pass plus 10 timesteps),
and the script says so.

Usage: ``python benchmarks/bench_corruptions.py [--batch 16] [--size 224] [--timesteps 10]``
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

from predify.evaluate.corruptions import ALL_CORRUPTIONS, corrupt

TARGET_RATIO = 0.25


def median_seconds(function: Callable[[], object], repeats: int = 3) -> float:
    """Median wall time of ``repeats`` calls of ``function`` after one warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def model_runner(images: torch.Tensor, timesteps: int) -> tuple[str, Callable[[], object]]:
    """(description, callable running the model on ``images``) for the reference time."""
    try:
        from predify.models import presnet18
    except ImportError as error:
        import torchvision

        print(f"predify.models.presnet18 unavailable ({error}); using torchvision resnet18")
        network = torchvision.models.resnet18(weights=None).eval()

        def run_fallback() -> object:
            with torch.no_grad():
                for _ in range(timesteps + 1):
                    network(images)
            return None

        return f"torchvision resnet18 forward x {timesteps + 1}", run_fallback

    pnet = presnet18(weights=None).eval()

    def run_pnet() -> object:
        with torch.no_grad():
            return pnet(images, timesteps=timesteps)

    return f"predify presnet18, timesteps={timesteps}", run_pnet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--timesteps", type=int, default=10)
    args = parser.parse_args()

    generator = torch.Generator().manual_seed(0)
    images = torch.rand(args.batch, 3, args.size, args.size, generator=generator)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads"
    )
    model_name, run_model = model_runner(images, args.timesteps)
    model_seconds = median_seconds(run_model)
    print(f"model: {model_name}: {model_seconds * 1000:.0f} ms per batch of {args.batch}")
    print()
    print("| corruption | severity | time (ms) | ratio to model | <= 0.25 |")
    print("| --- | ---: | ---: | ---: | :---: |")
    over = []
    for name in ALL_CORRUPTIONS:
        severities = (1, 2, 3, 4, 5) if name == "glass_blur" else (3,)
        for severity in severities:

            def run(name: str = name, severity: int = severity) -> object:
                return corrupt(images, name, severity, torch.Generator().manual_seed(1))

            seconds = median_seconds(run)
            ratio = seconds / model_seconds
            within = ratio <= TARGET_RATIO
            if not within:
                over.append(f"{name}@{severity}")
            print(
                f"| {name} | {severity} | {seconds * 1000:.1f} | {ratio:.3f} | "
                f"{'yes' if within else 'NO'} |"
            )
    print()
    print(f"above {TARGET_RATIO}: {', '.join(over) if over else 'none'}")


if __name__ == "__main__":
    main()
