"""Where the time of ``predify demo`` goes, and what running seeds in parallel processes buys.

Runs the demo twice with the same settings, side by side in one invocation: once with every seed
in this process one after the other (``workers=0``), once with the default worker count (one
process per seed on this machine). Prints, per run, the wall time, the CPU time of this process
and its children, each stage's share (seconds summed over seeds; every seed runs
single-threaded), and the ratio of the two wall times. The per-seed numbers of both runs must be
identical (checked here too).

``python benchmarks/bench_demo.py [--seeds 3] [--quick] [--out /tmp/bench-demo]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from dataclasses import replace
from pathlib import Path

from predify.demo import FULL, QUICK, run_demo
from predify.demo.seeds import STAGES, best_worker_count


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=FULL.seeds)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default="/tmp/bench-demo")
    args = parser.parse_args()
    base = replace(QUICK if args.quick else FULL, seeds=args.seeds, device="cpu", progress=False)
    cores = os.cpu_count() or 1
    print(f"cores {cores}; load average before {os.getloadavg()}")
    rows = []
    walls = []
    reports = {}
    for label, workers in (("in process", 0), ("processes", None)):
        cpu, wall = _cpu_seconds(), time.perf_counter()
        report = run_demo(Path(args.out) / label.replace(" ", "-"), replace(base, workers=workers))
        wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
        reports[label] = report
        walls.append(wall)
        timing = report.timing_seconds
        staged = sum(timing[stage] for stage in STAGES)
        shares = " | ".join(
            f"{timing[stage]:.0f} ({100 * timing[stage] / staged:.0f}%)" for stage in STAGES
        )
        used = report.run.workers
        rows.append(f"| {label} ({used} workers) | {wall:.0f} | {cpu:.0f} | {shares} |")
        # CPU seconds per stage (summed over seeds): on a shared machine the wall time of a
        # stage mostly measures the neighbours.
        cpu_shares = ", ".join(
            f"{stage} {timing.get(stage + '_cpu', float('nan')):.0f}"
            for stage in (*STAGES, "evaluation_paper")
        )
        rows.append(f"|   CPU s per stage: {cpu_shares} | | | |")
    # Timings differ by nature: compare everything else (in report.json's per-seed layout).
    per_seed = {}
    for label, report in reports.items():
        per_seed[label] = report.to_json()["per_seed"]
        for seed in per_seed[label].values():
            seed.pop("timing_seconds")
            for level in seed["tuning"].values():
                level.pop("seconds")
    identical = json.dumps(per_seed["in process"], sort_keys=True) == json.dumps(
        per_seed["processes"], sort_keys=True
    )
    print(f"seeds {args.seeds}, default workers {best_worker_count(args.seeds, cores)}")
    print("| run | wall s | CPU s | " + " | ".join(f"{s} s (share)" for s in STAGES) + " |")
    print("|---|---|---|" + "---|" * len(STAGES))
    print("\n".join(rows))
    print(f"wall time, processes / in process: {walls[1] / walls[0]:.2f}")
    print(f"per-seed numbers identical in both runs: {identical}")
    print(f"load average after {os.getloadavg()}")


if __name__ == "__main__":
    main()
