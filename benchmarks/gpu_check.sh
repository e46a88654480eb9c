#!/usr/bin/env bash
# The GPU check of issue #13, for one CUDA GPU; at most 8 minutes (each stage has its own
# timeout). Run from the repository root:
#
#     bash benchmarks/gpu_check.sh            # results in $OUT (the device tool) or ./gpu-check/
#
# 1. the CUDA-marked tests (`pytest -m cuda`): every device-specific path (fp32 equal to the CPU,
#    bf16/fp16 autocast close to fp32, compile + channels-last + bf16, fp16 training with gradient
#    scaling, corruptions generated on the device, distributed evaluation on the device);
# 2. benchmarks/bench_throughput.py: images/s of PResNet18 and PVGG16 at T = 10, batch 64, in
#    fp32, bf16 and bf16 + compile, each against its own floor (backbone + decoders + error
#    gradient, same precision, same run), peak memory, and the time per image of a full
#    ImageNet-C cell (corruption on the device + network, 50,000 images) in the fastest mode.
#
# Budget (H200-class GPU, an estimate, not a measurement): tests ~1.5 min; benchmark: two compiles
# ~1-2 min each, PVGG16 fp32 T = 10 batch 64 ~3-4 s per call x 5 calls, the rest well under that.
set -u
cd "$(dirname "$0")/.."
out="${OUT:-gpu-check}"
mkdir -p "$out"
python="${PYTHON:-python}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
if ! "$python" -c "import predify, torch; assert torch.cuda.is_available()" 2>"$out/setup.txt"; then
    echo "gpu_check: predify with a CUDA torch is not importable here (see $out/setup.txt)" >&2
    exit 2
fi
status=0
{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true
    "$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
} | tee "$out/machine.txt"

timeout 150 "$python" -m pytest -m cuda -q -p no:cacheprovider -rs tests 2>&1 | tee "$out/tests.txt"
test_status=${PIPESTATUS[0]}
[ "$test_status" -eq 0 ] || status=1

timeout 300 "$python" benchmarks/bench_throughput.py --device cuda \
    --networks presnet18,pvgg16 --modes fp32,bf16,bf16+compile \
    --batch 64 --timesteps 10 --rounds 3 --cell 2>&1 | tee "$out/throughput.txt"
bench_status=${PIPESTATUS[0]}
[ "$bench_status" -eq 0 ] || status=1

echo "gpu_check: tests exit $test_status, benchmark exit $bench_status (124: timed out)" \
    | tee -a "$out/machine.txt"
exit $status
