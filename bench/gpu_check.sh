#!/usr/bin/env bash
# The first GPU measurement, one script for a lent GPU machine (about 6 min on one H100):
#   1. bench.train_speed: the real train_segmentation.py on the 128-px BigBiGAN config (filled weights,
#      --z a seeded [1000, 120] matrix), batch 95: samples/s, peak GPU memory, the projected 12,000
#      steps, in fp32 and bf16 (eager: train_segmentation.py has no compiled mode);
#   2. bench.original_speed: the original implementation's loop on the same inputs and card;
#   3. python -m bench.run on CUDA;
#   4. bench.compile_speed: the demo's U-Net step and generator pair compiled against eager.
#
#   bash bench/gpu_check.sh ORIGINAL_CHECKOUT          # a checkout of anvoynov/BigGANsAreWatching
#   TINY=1 bash bench/gpu_check.sh ORIGINAL_CHECKOUT   # the same at tiny sizes, to check it on a CPU
#
# Results go to ${OUT:-results}/gpu_check/ (each step's output in a .txt file).
set -euo pipefail
cd "$(dirname "$0")/.."
original=${1:?give a checkout of anvoynov/BigGANsAreWatching}
out=${OUT:-results}/gpu_check
mkdir -p "$out"
if [ "${TINY:-0}" = 1 ]; then
    ours=(--tiny --steps 4 --warmup 1); theirs=(--steps 1 2 --batch_size 2 --cpu); bench=(--quick); compiled=(--steps 2)
else
    ours=(--steps 40 --warmup 10); theirs=(--steps 10 40 --batch_size 95); bench=(); compiled=(--steps 100)
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "no nvidia-smi"; } | tee "$out/device.txt"
timeout 210 python3 -m bench.train_speed --out "$out/ours" "${ours[@]}" | tee "$out/train_speed.txt"
timeout 170 python3 -m bench.original_speed --repo "$original" --inputs "$out/inputs_128" \
    --out "$out/original" "${theirs[@]}" | tee "$out/original_speed.txt"
timeout 120 python3 -m bench.run "${bench[@]}" | tee "$out/bench_run.txt"
timeout 80 python3 -m bench.compile_speed "${compiled[@]}" | tee "$out/compile_speed.txt"
