"""Throughput of the predictive networks per precision, eager and compiled, against the floor.

For each network and each *mode* (a precision, optionally ``+compile`` and ``+cl`` for
channels-last), one call ``pnet(x, timesteps=T)`` under ``no_grad`` is timed against the floor of
the same precision, measured in the same process: one backbone forward pass, every decoder's
forward pass and one vector-Jacobian product through every decoder (the error gradient), eager,
under the same autocast (``floor_parts`` of ``bench_dynamics.py``). Calls are interleaved
(every mode and its floor once per round, in a rotating order) so that load from other
processes hits all alike; reported are medians over the rounds after a warm-up call (which, for
compiled modes, is the compilation: its time is printed separately).

* ``images/s`` = batch / time of one call;
* ``x floor`` = time of one call / ((T + 1) x floor step): the whole call against T + 1 floor
  steps (the call runs the backbone T + 1 times and the decoders T times, so an implementation
  that adds nothing lands slightly below 1);
* ``vs eager`` = time of the mode's call / time of the eager call of the same precision: the
  compile speed-up, measured side by side (a ratio below 1 is faster);
* on CUDA, ``peak MiB``: ``torch.cuda.max_memory_allocated`` during one call.

``--cell`` adds the time per image of one ImageNet-C cell (one corruption at one severity, 50,000
images, T timesteps) in the fastest mode: corrupting the batch on the device (the mean over the 15
ImageNet-C corruptions at severity 3) plus the network call, divided by the batch size; and
50,000 times that.

Usage::

    python benchmarks/bench_throughput.py                  # CPU: PResNet18 fp32, eager vs compile
    python benchmarks/bench_throughput.py --quick          # smoke run (pshallow, 32 x 32, T = 2)
    python benchmarks/bench_throughput.py --device cuda --networks presnet18,pvgg16 \\
        --modes fp32,bf16,bf16+compile --batch 64 --timesteps 10 --cell     # gpu_check.sh
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

import predify
from predify.models import create_model
from predify.runtime.precision import Execution, autocast, prepare_input

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dynamics import floor_parts

CELL_IMAGES = 50_000


@dataclass(frozen=True)
class Mode:
    name: str
    execution: Execution

    @staticmethod
    def parse(text: str) -> Mode:
        parts = text.split("+")
        flags = set(parts[1:])
        unknown = flags - {"compile", "cl"}
        if unknown:
            raise SystemExit(f"--modes: unknown flag(s) {sorted(unknown)} in {text!r}")
        execution = Execution(
            precision=parts[0], channels_last="cl" in flags, compile="compile" in flags
        )
        return Mode(text, execution)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(function: Callable[[], object], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    function()
    synchronize(device)
    return time.perf_counter() - start


def build(name: str, size: int, device: torch.device) -> predify.PredictiveNet:
    torch.manual_seed(0)
    kwargs = {"weights": None} if name != "pshallow" else {}
    pnet = create_model(name, **kwargs)
    if size != pnet.input_size[-1]:
        raise SystemExit(f"--size {size}: {name} is built for {list(pnet.input_size)}")
    return pnet.to(device).eval()


def bench_network(
    name: str,
    modes: list[Mode],
    *,
    device: torch.device,
    batch: int,
    size: int,
    timesteps: int,
    rounds: int,
) -> tuple[list[dict[str, object]], dict[str, torch.nn.Module]]:
    pnet = build(name, size, device)
    x = torch.rand(batch, 3, size, size, device=device)
    runners: dict[str, Callable[[], object]] = {}
    floors: dict[str, Callable[[], None]] = {}
    networks: dict[str, torch.nn.Module] = {}
    compile_seconds: dict[str, float] = {}
    for mode in modes:
        execution = mode.execution
        network: torch.nn.Module = pnet
        if execution.channels_last:
            network = create_model(name, **({"weights": None} if name != "pshallow" else {}))
            network.load_state_dict(pnet.state_dict())
            network.to(device).eval().to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        if execution.compile:
            network = torch.compile(network)
        batch_x = prepare_input(x, execution)

        def call(network: torch.nn.Module = network, batch_x: torch.Tensor = batch_x,
                 execution: Execution = execution) -> object:  # fmt: skip
            with torch.no_grad(), autocast(device, execution):
                return network(batch_x, timesteps=timesteps).logits

        backbone, decoders = floor_parts(pnet, x)

        def floor(backbone: Callable[[], None] = backbone,
                  decoders: Callable[[], None] = decoders,
                  execution: Execution = execution) -> None:  # fmt: skip
            with autocast(device, execution):
                backbone()
                decoders()

        compile_seconds[mode.name] = timed(call, device)  # warm-up; compiles in compiled modes
        floor()
        runners[mode.name] = call
        networks[mode.name] = network
        floors[mode.name] = floor
    samples: dict[str, list[float]] = {
        f"{m.name}/{k}": [] for m in modes for k in ("call", "floor")
    }
    for round_index in range(rounds):
        order = modes[round_index % len(modes) :] + modes[: round_index % len(modes)]
        for mode in order:
            samples[f"{mode.name}/call"].append(timed(runners[mode.name], device))
            samples[f"{mode.name}/floor"].append(timed(floors[mode.name], device))
    rows: list[dict[str, object]] = []
    eager_call = {
        m.execution.precision: statistics.median(samples[f"{m.name}/call"])
        for m in modes
        if not m.execution.compile and not m.execution.channels_last
    }
    for mode in modes:
        call_s = statistics.median(samples[f"{mode.name}/call"])
        floor_s = statistics.median(samples[f"{mode.name}/floor"])
        spread = (max(samples[f"{mode.name}/call"]) - min(samples[f"{mode.name}/call"])) / call_s
        row: dict[str, object] = {
            "network": name,
            "mode": mode.name,
            "call_s": call_s,
            "images_per_s": batch / call_s,
            "x_floor": call_s / ((timesteps + 1) * floor_s),
            "vs_eager": call_s / eager_call[mode.execution.precision]
            if mode.execution.precision in eager_call
            else float("nan"),
            "first_call_s": compile_seconds[mode.name],
            "spread": spread,
        }
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            runners[mode.name]()
            synchronize(device)
            row["peak_mib"] = (torch.cuda.max_memory_allocated(device) - base) / 2**20
        rows.append(row)
    return rows, networks


def bench_cell(
    network: torch.nn.Module,
    mode: Mode,
    *,
    device: torch.device,
    batch: int,
    size: int,
    timesteps: int,
) -> dict[str, float]:
    """Seconds per image of an ImageNet-C cell: corruption on the device plus the network (the
    one already built, and compiled, for ``mode``)."""
    from predify.evaluate import corrupt
    from predify.evaluate.corruptions import IMAGENET_C_CORRUPTIONS

    images = torch.rand(batch, 3, size, size, device=device)
    generator = torch.Generator(device=device).manual_seed(0)
    corrupt_s = []
    for corruption in IMAGENET_C_CORRUPTIONS:
        corrupt(images, corruption, 3, generator)  # warm-up
        corrupt_s.append(timed(lambda c=corruption: corrupt(images, c, 3, generator), device))
    corrupted = corrupt(images, "gaussian_noise", 3, generator)

    def call() -> object:
        with torch.no_grad(), autocast(device, mode.execution):
            return network(prepare_input(corrupted, mode.execution), timesteps=timesteps).logits

    call()
    network_s = statistics.median(timed(call, device) for _ in range(3))
    per_image = (statistics.mean(corrupt_s) + network_s) / batch
    return {
        "corrupt_per_image_s": statistics.mean(corrupt_s) / batch,
        "network_per_image_s": network_s / batch,
        "per_image_s": per_image,
        "cell_s": per_image * CELL_IMAGES,
    }


def environment(device: torch.device) -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none used"
    return (
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}; "
        f"{platform.machine()}, {os.cpu_count()} CPU cores, torch threads "
        f"{torch.get_num_threads()}; GPU: {gpu}; Python {platform.python_version()}, torch "
        f"{torch.__version__}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--networks", default="presnet18")
    parser.add_argument("--modes", default="fp32,fp32+compile")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--timesteps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--cell", action="store_true", help="time per image of an ImageNet-C cell")
    parser.add_argument("--quick", action="store_true", help="pshallow at 32x32, T = 2: smoke run")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    networks = args.networks.split(",")
    if args.quick:
        networks, args.size, args.timesteps, args.rounds, args.batch = ["pshallow"], 32, 2, 2, 4
    modes = [Mode.parse(text) for text in args.modes.split(",")]
    print(f"Machine: {environment(device)}")
    print(
        f"no_grad, record=False; T = {args.timesteps}, batch {args.batch}, "
        f"{args.size}x{args.size}; median of {args.rounds} interleaved rounds after a warm-up"
    )
    print()
    print("| network | mode | s / call | images/s | x floor | vs eager | first call s | spread |"
          + (" peak MiB |" if device.type == "cuda" else ""))  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if device.type == "cuda" else ""))
    all_rows = []
    built: dict[tuple[str, str], torch.nn.Module] = {}
    for name in networks:
        rows, by_mode = bench_network(
            name,
            modes,
            device=device,
            batch=args.batch,
            size=args.size,
            timesteps=args.timesteps,
            rounds=args.rounds,
        )
        for row in rows:
            line = (
                f"| {row['network']} | {row['mode']} | {row['call_s']:.4f} | "
                f"{row['images_per_s']:.2f} | {row['x_floor']:.3f} | {row['vs_eager']:.3f} | "
                f"{row['first_call_s']:.1f} | {row['spread']:.0%} |"
            )
            if "peak_mib" in row:
                line += f" {row['peak_mib']:.0f} |"
            print(line, flush=True)
        all_rows.extend(rows)
        built.update({(name, mode): network for mode, network in by_mode.items()})
    if args.cell:
        print()
        print("| network | mode | corrupt s/image | network s/image | s/image | cell (50,000) s |")
        print("|---|---|---:|---:|---:|---:|")
        for name in networks:
            fastest = min(
                (row for row in all_rows if row["network"] == name),
                key=lambda row: float(row["call_s"]),  # type: ignore[arg-type]
            )
            mode = Mode.parse(str(fastest["mode"]))
            cell = bench_cell(
                built[name, mode.name], mode, device=device, batch=args.batch, size=args.size,
                timesteps=args.timesteps,
            )  # fmt: skip
            print(
                f"| {name} | {mode.name} | {cell['corrupt_per_image_s']:.5f} | "
                f"{cell['network_per_image_s']:.5f} | {cell['per_image_s']:.5f} | "
                f"{cell['cell_s']:.0f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
