"""Per-timestep cost of the predictive dynamics on the CPU, against the naive floor.

The floor for one timestep is what any implementation of the update must at least compute:

* one backbone forward pass (no_grad),
* every decoder's forward pass, and
* one vector-Jacobian product through every decoder (``torch.autograd.grad`` with the decoder's
  forward recorded under ``enable_grad``): the gradient of the prediction error.

The floor is measured side by side with the network, in the same process and interleaved with it
(floor, T=0, T=10, floor, ...), so that load from other processes affects both alike. Reported:

* ``ratio_total = time(T=10) / (11 * floor_step)``: the whole call against 11 floor steps (the
  call runs the backbone 11 times but the decoders only 10 times, so a perfect implementation
  lands slightly below 1);
* ``ratio_step = ((time(T=10) - time(T=0)) / 10) / floor_step``: the marginal cost of a timestep.

Peak memory: each T in (1, 10, 50) runs in a fresh subprocess under no_grad; after the model and
input are built and one T=0 warm-up pass ran (one-off allocator and oneDNN set-up), the kernel's
RSS high-water mark is reset (``/proc/self/clear_refs``), and the peak growth is the high-water
mark after the call (``VmHWM``) minus the RSS before it. ``ru_maxrss`` is not used where this
works: on Linux it carries over from the parent process through fork and exec, so a child's
value would include the benchmark's own (larger) peak.

Usage::

    python benchmarks/bench_dynamics.py                   # full run (about 5-8 minutes, 2 cores)
    python benchmarks/bench_dynamics.py --quick           # smoke run, small inputs (seconds)
    python benchmarks/bench_dynamics.py --readme /tmp/dynamics.md   # also write a results page
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torchvision
from torch import nn

import predify

PVGG16_PREDICTORS = [
    "ConvTranspose2d(64, 3, kernel_size=5, stride=1, padding=2)",
    "Sequential(ConvTranspose2d(128, 64, kernel_size=10, stride=2, padding=4), ReLU())",
    "Sequential(ConvTranspose2d(256, 128, kernel_size=14, stride=2, padding=6), ReLU())",
    "Sequential(ConvTranspose2d(512, 256, kernel_size=14, stride=2, padding=6), ReLU())",
    "Sequential(ConvTranspose2d(512, 512, kernel_size=14, stride=2, padding=6), ReLU())",
]
PVGG16_MODULES = ["features[3]", "features[8]", "features[15]", "features[22]", "features[29]"]
RESNET_MODULES = ["maxpool", "layer1", "layer2", "layer3", "layer4"]


@dataclass
class Case:
    name: str
    description: str
    build: Callable[[], predify.PredictiveNet]
    batch: int
    size: int


def build_resnet18(size: int) -> predify.PredictiveNet:
    torch.manual_seed(0)
    backbone = torchvision.models.resnet18(weights=None).eval()
    config = predify.auto_config(backbone, (3, size, size), RESNET_MODULES, gradient_scaling=True)
    return predify.predify(backbone, config).eval()


def pvgg16_config(size: int) -> predify.PNetConfig:
    pcoders = []
    for index, (module, predictor) in enumerate(
        zip(PVGG16_MODULES, PVGG16_PREDICTORS, strict=True)
    ):
        top = index == len(PVGG16_MODULES) - 1
        pcoders.append(
            predify.PCoderConfig(
                module=module,
                predictor=predictor,
                hyperparameters=predify.Hyperparameters(0.8, 0.0 if top else 0.1, 0.01),
            )
        )
    return predify.PNetConfig(pcoders=tuple(pcoders), input_size=(3, size, size), name="PVGG16")


def library_pvgg16() -> Callable[..., predify.PredictiveNet] | None:
    """``predify.models.pvgg16`` when the library has it (it is being written concurrently)."""
    try:
        from predify.models import pvgg16  # type: ignore[attr-defined]
    except ImportError:
        return None
    return pvgg16  # type: ignore[no-any-return]


def build_pvgg16(size: int) -> predify.PredictiveNet:
    torch.manual_seed(0)
    pvgg16 = library_pvgg16()
    if pvgg16 is not None and size == 224:
        return pvgg16(weights=None).eval()
    backbone = torchvision.models.vgg16(weights=None).eval()
    return predify.predify(backbone, pvgg16_config(size)).eval()


def make_cases(quick: bool) -> list[Case]:
    resnet_size, resnet_batch = (64, 2) if quick else (224, 8)
    vgg_size = 64 if quick else 224
    if library_pvgg16() is not None and vgg_size == 224:
        vgg_source = "predify.models.pvgg16(weights=None)"
    else:
        vgg_source = "torchvision vgg16(weights=None) + the paper's PVGG16 config, built here"
    return [
        Case(
            "a",
            f"resnet18, pcoders maxpool+layer1..4, auto decoders, gradient scaling; "
            f"batch {resnet_batch}, {resnet_size}x{resnet_size}",
            lambda: build_resnet18(resnet_size),
            resnet_batch,
            resnet_size,
        ),
        Case(
            "b",
            f"PVGG16 ({vgg_source}); batch 1, {vgg_size}x{vgg_size}",
            lambda: build_pvgg16(vgg_size),
            1,
            vgg_size,
        ),
    ]


# ---------------------------------------------------------------------- timing
def floor_parts(
    pnet: predify.PredictiveNet, x: torch.Tensor
) -> tuple[Callable[[], None], Callable[[], None]]:
    """(backbone forward, decoders forward + VJP) for the representations of a real pass."""
    with torch.no_grad():
        state = pnet.start(x)
    reps = [rep.detach() for rep in state.reps]
    targets = [x, *reps[:-1]]
    decoders: list[nn.Module] = [pcoder.decoder for pcoder in pnet.pcoders]

    def backbone() -> None:
        with torch.no_grad():
            pnet.backbone(x)

    def decoders_and_vjps() -> None:
        for decoder, rep, target in zip(decoders, reps, targets, strict=True):
            with torch.enable_grad():
                leaf = rep.requires_grad_()
                prediction = decoder(leaf)
                torch.autograd.grad(prediction, leaf, grad_outputs=prediction.detach() - target)
            rep.requires_grad_(False)

    return backbone, decoders_and_vjps


def timed(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def bench_case(case: Case, repetitions: int, timesteps: int) -> dict[str, float]:
    pnet = case.build()
    x = torch.randn(case.batch, 3, case.size, case.size)
    backbone, decoders = floor_parts(pnet, x)

    def run(steps: int) -> Callable[[], object]:
        def call() -> object:
            with torch.no_grad():
                return pnet(x, timesteps=steps)

        return call

    # Warm-up: every kernel once (oneDNN primitive creation, allocator growth).
    backbone()
    decoders()
    run(1)()
    samples: dict[str, list[float]] = {"backbone": [], "decoders": [], "t0": [], "tT": []}
    for _ in range(repetitions):  # interleaved, so that drifting load hits all alike
        samples["backbone"].append(timed(backbone))
        samples["decoders"].append(timed(decoders))
        samples["t0"].append(timed(run(0)))
        samples["tT"].append(timed(run(timesteps)))
    result = {key: statistics.median(values) for key, values in samples.items()}
    result["floor"] = result["backbone"] + result["decoders"]
    result["ratio_total"] = result["tT"] / ((timesteps + 1) * result["floor"])
    result["per_step"] = (result["tT"] - result["t0"]) / timesteps
    result["ratio_step"] = result["per_step"] / result["floor"]
    result["spread_tT"] = (max(samples["tT"]) - min(samples["tT"])) / result["tT"]
    return result


# ---------------------------------------------------------------------- memory
def _proc_status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset this process's RSS high-water mark (Linux >= 4.0: write 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def memory_child(timesteps: int, batch: int, size: int) -> None:
    """Run in a fresh process: print the RSS peak growth of one no_grad call, in KiB.

    The peak is the kernel's per-process high-water mark (VmHWM), reset right before the call.
    Where that is not possible, ru_maxrss is used; note that on Linux ru_maxrss carries over
    from the parent through fork and exec, so it is only meaningful when the parent is smaller.
    """
    pnet = build_resnet18(size)
    x = torch.randn(batch, 3, size, size)
    with torch.no_grad():
        pnet(x, timesteps=0)
    gc.collect()
    exact = _reset_peak_rss() and _proc_status_kib("VmHWM") is not None
    if exact:
        baseline = _proc_status_kib("VmRSS") or 0
    else:
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with torch.no_grad():
        pnet(x, timesteps=timesteps)
    elapsed = time.perf_counter() - start
    if exact:
        peak = _proc_status_kib("VmHWM") or 0
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    method = "VmHWM" if exact else "ru_maxrss"
    print(
        json.dumps(
            {"baseline_kib": baseline, "peak_kib": peak, "seconds": elapsed, "method": method}
        )
    )


def bench_memory(timesteps_list: list[int], batch: int, size: int) -> list[dict[str, float]]:
    rows = []
    for timesteps in timesteps_list:
        output = subprocess.run(
            [
                sys.executable,
                os.path.abspath(__file__),
                "--memory-child",
                f"{timesteps},{batch},{size}",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        data = json.loads(output.strip().splitlines()[-1])
        rows.append(
            {
                "T": timesteps,
                "baseline_mib": data["baseline_kib"] / 1024,
                "growth_mib": (data["peak_kib"] - data["baseline_kib"]) / 1024,
                "seconds": data["seconds"],
                "method": data["method"],
            }
        )
    return rows


# ---------------------------------------------------------------------- report
def format_report(
    cases: list[Case],
    results: dict[str, dict[str, float]],
    memory: list[dict[str, float]],
    memory_setup: str,
    timesteps: int,
    repetitions: int,
) -> str:
    lines = [
        f"Timing: median of {repetitions} interleaved repetitions after a warm-up; no_grad, "
        f"record=False; T={timesteps}.",
        "floor_step = backbone forward + every decoder's forward + VJP through every decoder.",
        "",
        "| case | backbone s | decoders+VJP s | floor_step s | T=0 s | "
        f"T={timesteps} s | per-step s | ratio_total | ratio_step | T={timesteps} spread |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for case in cases:
        r = results[case.name]
        lines.append(
            f"| ({case.name}) | {r['backbone']:.4f} | {r['decoders']:.4f} | {r['floor']:.4f} | "
            f"{r['t0']:.4f} | {r['tT']:.4f} | {r['per_step']:.4f} | {r['ratio_total']:.3f} | "
            f"{r['ratio_step']:.3f} | {100 * r['spread_tT']:.0f}% |"
        )
    lines.append("")
    for case in cases:
        lines.append(f"({case.name}) {case.description}")
    if memory:
        lines += [
            "",
            f"Peak memory, {memory_setup}, no_grad, record=False, each T in a fresh process: "
            f"peak RSS during the call ({memory[0]['method']}, reset just before it) minus the RSS "
            "after build + one T=0 pass.",
            "",
            "| T | RSS before call MiB | peak growth during call MiB | call s |",
            "| ---: | ---: | ---: | ---: |",
        ]
        for row in memory:
            lines.append(
                f"| {row['T']} | {row['baseline_mib']:.0f} | {row['growth_mib']:.0f} | "
                f"{row['seconds']:.1f} |"
            )
    return "\n".join(lines)


def environment() -> dict[str, str]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, "
        f"torch threads {torch.get_num_threads()}",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "load": "{:.2f} {:.2f} {:.2f}".format(*load),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small inputs, one repetition")
    parser.add_argument("--repetitions", type=int, default=None, help="default 3 (quick: 1)")
    parser.add_argument("--timesteps", type=int, default=10)
    parser.add_argument("--cases", default="a,b", help="comma-separated subset of a,b")
    parser.add_argument("--memory-timesteps", default="1,10,50", help="'' skips the memory run")
    parser.add_argument("--memory-size", type=int, default=None, help="default 224 (quick: 64)")
    parser.add_argument("--memory-batch", type=int, default=8)
    parser.add_argument("--readme", default=None, help="also write the results to this file")
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.memory_child:
        timesteps, batch, size = (int(v) for v in args.memory_child.split(","))
        memory_child(timesteps, batch, size)
        return 0

    repetitions = args.repetitions or (1 if args.quick else 3)
    wanted = set(args.cases.split(","))
    cases = [case for case in make_cases(args.quick) if case.name in wanted]
    env_before = environment()
    started = time.perf_counter()
    print(f"predify dynamics benchmark - {env_before['date']}")
    print(f"{env_before['machine']}; torch {env_before['torch']}; load {env_before['load']}")
    results = {}
    for case in cases:
        print(f"running ({case.name}) {case.description} ...", flush=True)
        results[case.name] = bench_case(case, repetitions, args.timesteps)
    memory: list[dict[str, float]] = []
    memory_size = args.memory_size or (64 if args.quick else 224)
    memory_setup = f"case (a) resnet18, batch {args.memory_batch}, {memory_size}x{memory_size}"
    if args.memory_timesteps:
        steps = [int(v) for v in args.memory_timesteps.split(",")]
        if args.quick:
            steps = sorted({min(s, 5) for s in steps})
        print(f"running peak memory ({memory_setup}), T = {steps} ...", flush=True)
        memory = bench_memory(steps, args.memory_batch, memory_size)
    total = time.perf_counter() - started
    env_after = environment()
    report = format_report(cases, results, memory, memory_setup, args.timesteps, repetitions)
    print()
    print(report)
    print()
    print(f"total benchmark time {total:.0f} s; load average after {env_after['load']}")
    if args.readme:
        write_readme(args.readme, report, env_before, env_after, total, args)
    return 0


def write_readme(
    path: str,
    report: str,
    before: dict[str, str],
    after: dict[str, str],
    total: float,
    args: argparse.Namespace,
) -> None:
    command = "python benchmarks/bench_dynamics.py" + (" --quick" if args.quick else "")
    text = f"""# Dynamics benchmark: per-timestep cost against the naive floor

Produced by `{command}`; the block under Results is its printed output, unedited.

- Date: {before["date"]}
- Machine: {before["machine"]}, CPU only
- Python {before["python"]}, torch {before["torch"]}, torchvision {before["torchvision"]}
- Load average (1, 5, 15 min) before: {before["load"]}; after: {after["load"]}
- Total benchmark time: {total:.0f} s

## Method

The floor for one timestep is one backbone forward pass (no_grad), every decoder's forward pass,
and one vector-Jacobian product through every decoder (`torch.autograd.grad`, decoder forward
recorded under `enable_grad`), measured in the same process, interleaved with the network's calls.
`ratio_total = time(T) / ((T + 1) * floor_step)`; `ratio_step = ((time(T) - time(0)) / T) /
floor_step`. A call with T timesteps runs the backbone T + 1 times but the decoders only T times
(the last step needs no prediction when nothing is recorded), so ratio_total can be below 1. Other
processes shared the two cores during the run (see the load average); the measurements are
interleaved so that load affects floor and network alike, and the spread column shows the
(max - min) / median of the T-step timings.

Peak memory: each T runs in a fresh process under no_grad with record=False. After the model and
the input are built and one T=0 pass ran, the kernel's RSS high-water mark is reset
(`/proc/self/clear_refs`); the growth is the high-water mark after the call (`VmHWM`) minus the
RSS before it. (`ru_maxrss` is not used: on Linux it carries over from the parent process through
fork and exec, so a child would report the benchmark's own, larger, peak; a first run of this
benchmark that used it reported a constant baseline of 2074 MiB and 0 MiB growth for that
reason.) Flat growth across T shows that memory does not grow with the number of timesteps.

## Results

```
{report}
```
"""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


if __name__ == "__main__":
    sys.exit(main())
