"""Where the time of ``predify demo`` goes, and what running seeds in parallel processes buys.

Runs the demo with the same settings once with every seed in this process one after the other
(``workers=0``) and once with the default worker count (one process per seed on this machine),
or only one of the two (``--runs``). Prints, per run, the wall time, the CPU time of this
process and all its descendants (the fork server's workers included), each stage's CPU seconds
per seed (every seed runs single-threaded, so CPU seconds are the work, whatever the
neighbours do), and the load average, with the wall time the run would take on two free cores
(CPU seconds / 2 plus the serial part: the report and plots after the seeds). With both runs,
the per-seed numbers must be identical (checked here too).

``python benchmarks/bench_demo.py [--seeds 5] [--quick] [--runs both|processes|in-process]
[--out /tmp/bench-demo]``
"""

from __future__ import annotations

import argparse
import json
import multiprocessing.forkserver
import os
import resource
import time
from dataclasses import replace
from pathlib import Path

from predify.demo import FULL, QUICK, DemoReport, run_demo
from predify.demo.seeds import STAGES, best_worker_count


def _forkserver_cpu() -> float:
    """CPU seconds of the fork server and of its finished workers (Linux; 0 elsewhere): the
    workers are its children, not ours, so ``RUSAGE_CHILDREN`` misses them."""
    pid = getattr(multiprocessing.forkserver._forkserver, "_forkserver_pid", None)
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    # utime, stime, cutime, cstime: fields 14-17 of proc(5), counted after the command name.
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    reaped = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    return reaped + _forkserver_cpu()


def _stage_rows(report: DemoReport) -> list[str]:
    """Each seed's CPU seconds per stage, and their sum over seeds."""
    rows = []
    totals = dict.fromkeys(STAGES, 0.0)
    for summary in report.per_seed:
        seed, timing = summary.seed, summary.timing_seconds
        cpu = [timing.get(f"{stage}_cpu", float("nan")) for stage in STAGES]
        for stage, value in zip(STAGES, cpu, strict=True):
            totals[stage] += value
        cells = " | ".join(f"{value:.1f}" for value in cpu)
        rows.append(f"| seed {seed} | {cells} | {sum(cpu):.1f} |")
    cells = " | ".join(f"{totals[stage]:.1f}" for stage in STAGES)
    rows.append(f"| all seeds | {cells} | {sum(totals.values()):.1f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=FULL.seeds)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", choices=("both", "processes", "in-process"), default="both")
    parser.add_argument("--out", default="/tmp/bench-demo")
    args = parser.parse_args()
    base = replace(QUICK if args.quick else FULL, seeds=args.seeds, device="cpu", progress=False)
    cores = os.cpu_count() or 1
    print(f"cores {cores}; load average before {os.getloadavg()}")
    runs = [("in process", 0), ("processes", None)]
    if args.runs != "both":
        runs = [run for run in runs if run[0].replace(" ", "-") == args.runs]
    rows = []
    reports = {}
    for label, workers in runs:
        cpu, wall = _cpu_seconds(), time.perf_counter()
        report = run_demo(Path(args.out) / label.replace(" ", "-"), replace(base, workers=workers))
        wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
        reports[label] = report
        serial = report.timing_seconds["report_and_plots"]
        print(
            f"\n{label} ({report.run.workers} workers): wall {wall:.0f} s, CPU {cpu:.0f} s "
            f"(this process and its descendants), load average after {os.getloadavg()}; "
            f"on 2 free cores about {cpu / 2 + serial:.0f} s (CPU / 2 + {serial:.0f} s of "
            "report and plots)"
        )
        print("| CPU s | " + " | ".join(STAGES) + " | sum |")
        print("|---|" + "---|" * (len(STAGES) + 1))
        print("\n".join(_stage_rows(report)))
        rows.append((label, wall))
    print(f"\nseeds {args.seeds}, default workers {best_worker_count(args.seeds, cores)}")
    if len(reports) == 2:
        print(f"wall time, processes / in process: {rows[1][1] / rows[0][1]:.2f}")
        print(f"per-seed numbers identical in both runs: {_identical(reports)}")


def _identical(reports: dict[str, DemoReport]) -> bool:
    # Timings differ by nature: compare everything else (in report.json's per-seed layout).
    per_seed = {}
    for label, report in reports.items():
        per_seed[label] = report.to_json()["per_seed"]
        for seed in per_seed[label].values():
            seed.pop("timing_seconds")
            for level in seed["tuning"].values():
                level.pop("seconds")
    first, second = per_seed.values()
    return json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


if __name__ == "__main__":
    main()
