"""Peak memory and images per second of ``predify evaluate`` against the number of images.

Writes N synthetic 256 x 256 JPEGs (evaluated at 224 x 224; 10 class folders, smooth random
pixels) into a temporary image folder and a run directory of a small network, then, for each N,
evaluates the run on that folder in a fresh process (``evaluate_run`` with ``--data folder:...``,
the clean cell and one corruption at severity 1; no attacks, no analysis, no bootstrap): the
process's peak RSS (``VmHWM``, the kernel's high-water mark, over the whole process: import,
model, data, sweep) and images per second (2 cells x N images / wall time of the call).

The floor, measured in the same process right before and after the evaluation: the same network
(``PixelSpaceNet``, same precision, ``inference_mode``) on batches of the same shape already in
memory, no data loading; images/s of the floor is taken over ``--floor-batches`` batches before
and as many after (the mean of the two rates), so load from other processes hits both alike.

The network (``--network``): the zoo's smallest, ``pshallow`` (ShallowCNN 16/32/64, its three
pcoders) at 224 x 224, or torchvision's ResNet-18 with predify's automatic decoders at its
default modules (``maxpool``, ``layer1..4``); 10 classes, untrained, T = ``--timesteps``.

To measure another predify (e.g. the code before streaming), run the script with that code
first on ``PYTHONPATH``; only API common to both is used (``workers`` only where it exists).

Usage: ``python benchmarks/bench_eval_memory.py --sizes 1000,4000,8000 [--timesteps 2]
[--batch 32] [--workers 1] [--label after]``
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIDE = 224
CLASSES = 10


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def write_images(root: Path, count: int) -> None:
    """``count`` smooth random 256 x 256 JPEGs (quality 90) over 10 class folders: the
    evaluation transform (short side to 256, centre crop 224) then only crops."""
    from PIL import Image

    rng = np.random.default_rng(0)
    # Smooth random images (a 28 x 28 field upsampled): JPEG sizes like photographs, not noise.
    for index in range(count):
        folder = root / f"class{index % CLASSES}"
        folder.mkdir(parents=True, exist_ok=True)
        small = rng.integers(0, 256, size=(28, 28, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((256, 256), Image.BILINEAR)
        image.save(folder / f"{index:05d}.jpg", quality=90)


def write_run(path: Path, timesteps: int, network: str) -> None:
    import torch
    import torchvision

    import predify
    from predify.runtime.runs import RunInfo, save_run

    torch.manual_seed(0)
    if network == "shallow":
        from predify.models import pshallow

        info = RunInfo(
            backbone={"name": "shallow_cnn", "kwargs": {"in_channels": 3, "num_classes": CLASSES}},
            data={"spec": "folder"},
            num_classes=CLASSES,
        )
        save_run(path, pshallow(image_size=SIDE, num_classes=CLASSES, timesteps=timesteps), info)
        return
    backbone = torchvision.models.resnet18(weights=None, num_classes=CLASSES)
    config = dataclasses.replace(
        predify.auto_config(backbone, (3, SIDE, SIDE), None), timesteps=timesteps
    )
    pnet = predify.predify(backbone, config)
    info = RunInfo(
        backbone={"name": "torchvision:resnet18", "kwargs": {"num_classes": CLASSES}},
        data={"spec": "folder"},
        num_classes=CLASSES,
    )
    save_run(path, pnet, info)


def predify_root() -> str:
    import predify

    return str(Path(predify.__file__).parent)


def floor_rate(model: object, batch: int, batches: int, timesteps: int) -> float:
    """Images/s of the network alone on in-memory batches of ``batch`` images."""
    import torch

    images = torch.rand(batch, 3, SIDE, SIDE)
    with torch.inference_mode():
        model(images, timesteps=timesteps)  # type: ignore[operator]  (warm-up)
        start = time.perf_counter()
        for _ in range(batches):
            model(images, timesteps=timesteps)  # type: ignore[operator]
        return batch * batches / (time.perf_counter() - start)


def child(args: argparse.Namespace) -> None:
    """One measurement in this (fresh) process; prints one JSON line."""
    import torch

    from predify.evaluate.api import EvaluateSettings, evaluate_run
    from predify.evaluate.pixel_space import PixelSpaceNet
    from predify.runtime.runs import load_run

    torch.manual_seed(0)
    model = PixelSpaceNet(load_run(args.run).pnet).eval()
    before = floor_rate(model, args.batch, args.floor_batches, args.timesteps)
    del model
    options = {
        "out": None, "data": f"folder:{args.images}",
        "corruptions": [args.corruptions],
        "severities": [1], "timesteps": args.timesteps, "attacks": (), "analysis": False,
        "max_images": args.count, "batch_size": args.batch, "bootstrap": 0, "plots": False,
        "progress": False, "device": "cpu",
    }  # fmt: skip
    if "workers" in {item.name for item in dataclasses.fields(EvaluateSettings)}:
        options["workers"] = args.workers
    start = time.perf_counter()
    report = evaluate_run(args.run, EvaluateSettings(**options))  # type: ignore[arg-type]
    wall = time.perf_counter() - start
    peak = _status_kib("VmHWM") / 1024
    model = PixelSpaceNet(load_run(args.run).pnet).eval()
    after = floor_rate(model, args.batch, args.floor_batches, args.timesteps)
    assert report.corruption is not None and report.corruption.num_images == args.count
    rate = 2 * args.count / wall
    floor = (before + after) / 2
    print(json.dumps({"images": args.count, "peak_mib": round(peak), "wall_s": round(wall, 1),
                      "images_per_s": round(rate, 2), "floor_images_per_s": round(floor, 2),
                      "ratio": round(rate / floor, 3)}))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,4000,8000")
    parser.add_argument("--timesteps", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--floor-batches", type=int, default=4)
    parser.add_argument("--label", default="")
    parser.add_argument("--network", choices=("shallow", "resnet18"), default="shallow")
    parser.add_argument("--corruptions", default="gaussian_noise", help="one corruption's name")
    parser.add_argument("--folder", help="reuse this image folder + run (made if missing)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--images", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    sizes = [int(size) for size in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-eval-memory-") as temporary:
        base = Path(args.folder) if args.folder else Path(temporary)
        # run.json's format changed with #17: each predify writes the run it reads.
        tag = hashlib.sha256(str(Path(predify_root())).encode()).hexdigest()[:8]
        images, run = base / "images", base / f"run-{args.network}-t{args.timesteps}-{tag}"
        if not images.is_dir() or len(list(images.rglob("*.jpg"))) < max(sizes):
            write_images(images, max(sizes))
        if not run.is_dir():
            write_run(run, args.timesteps, args.network)
        import torch

        import predify

        print(f"# {args.label} predify from {Path(predify.__file__).parent}; torch "
              f"{torch.__version__}, {torch.get_num_threads()} threads; load "
              f"{os.getloadavg()[0]:.1f}; {args.network}, T = {args.timesteps}, "
              f"batch {args.batch}, workers {args.workers}; "
              f"clean + {args.corruptions}-1")  # fmt: skip
        print("| images | peak RSS MiB | wall s | images/s | floor images/s | ratio |")
        print("|---:|---:|---:|---:|---:|---:|")
        for size in sizes:
            command = [sys.executable, __file__, "--child", "--run", str(run), "--images",
                       str(images), "--count", str(size), "--timesteps", str(args.timesteps),
                       "--batch", str(args.batch), "--workers", str(args.workers),
                       "--floor-batches", str(args.floor_batches),
                       "--corruptions", args.corruptions]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(f"| {size} | failed: {done.stderr.strip().splitlines()[-1:]} |")
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"| {row['images']} | {row['peak_mib']} | {row['wall_s']} | "
                  f"{row['images_per_s']} | {row['floor_images_per_s']} | {row['ratio']} |",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
