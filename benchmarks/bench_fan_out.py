"""The gradient-scaling constant C of PVGG16's decoders: the sliced probe against a full one.

``predify.fan_out.decoder_fan_out`` measures C on a copy of the decoder whose first convolution
reads input channel 0 only (the impulse is there alone). The full probe it replaced ran the whole
decoder in float64 on a 512-channel impulse map. Both run here side by side on the decoders of
the original's ``examples/PVGG16/pvgg16_config.toml`` at 224 x 224 (representations of 64 x 224,
128 x 112, 256 x 56, 512 x 28, 512 x 14), and must give the same counts.

    python benchmarks/bench_fan_out.py [--repetitions 3]
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from torch import nn

from predify.fan_out import decoder_fan_out
from predify.parsing import parse_predictor

PREDICTORS = [
    ("ConvTranspose2d(64, 3, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))", (64, 224, 224)),
    (
        "Sequential(ConvTranspose2d(128, 64, kernel_size=(10, 10), stride=(2, 2), "
        "padding=(4, 4)), ReLU(inplace=True))",
        (128, 112, 112),
    ),
    (
        "Sequential(ConvTranspose2d(256, 128, kernel_size=(14, 14), stride=(2, 2), "
        "padding=(6, 6)), ReLU(inplace=True))",
        (256, 56, 56),
    ),
    (
        "Sequential(ConvTranspose2d(512, 256, kernel_size=(14, 14), stride=(2, 2), "
        "padding=(6, 6)), ReLU(inplace=True))",
        (512, 28, 28),
    ),
    (
        "Sequential(ConvTranspose2d(512, 512, kernel_size=(14, 14), stride=(2, 2), "
        "padding=(6, 6)), ReLU(inplace=True))",
        (512, 14, 14),
    ),
]


def full_probe_fan_out(decoder: nn.Module, rep_shape: tuple[int, ...]) -> int:
    """The probe before the change: the whole decoder, all input channels, float64."""
    probe = copy.deepcopy(decoder).to(dtype=torch.float64).eval()
    with torch.no_grad():
        for name, parameter in probe.named_parameters():
            parameter.fill_(0.0 if name.endswith("bias") else 1.0)
        impulse = torch.zeros(1, *rep_shape, dtype=torch.float64)
        impulse[(0, 0, *(size // 2 for size in rep_shape[1:]))] = 1.0
        response = probe(impulse) - probe(torch.zeros_like(impulse))
    return int((response != 0).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    decoders = [(parse_predictor(text, "bench"), shape) for text, shape in PREDICTORS]
    print("| decoder | C | full probe s | sliced probe s | ratio |")
    print("| --- | ---: | ---: | ---: | ---: |")
    totals = [0.0, 0.0]
    for index, (decoder, shape) in enumerate(decoders, 1):
        full_times, sliced_times = [], []
        for _ in range(args.repetitions):
            start = time.perf_counter()
            full = full_probe_fan_out(decoder, shape)
            full_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            sliced = decoder_fan_out(decoder, shape)
            sliced_times.append(time.perf_counter() - start)
            assert full == sliced, (index, full, sliced)
        full_s, sliced_s = min(full_times), min(sliced_times)
        totals[0] += full_s
        totals[1] += sliced_s
        ratio = sliced_s / full_s
        print(f"| pcoder{index} | {sliced} | {full_s:.3f} | {sliced_s:.4f} | {ratio:.3f} |")
    print(f"| all five | | {totals[0]:.3f} | {totals[1]:.4f} | {totals[1] / totals[0]:.3f} |")


if __name__ == "__main__":
    main()
