#!/usr/bin/env bash
# Real-GPU check, under 8 minutes: the CUDA tests on the device (not the simulator), the
# batched throughput benchmark with CUDA and CPU side by side, and the study's runs/s with the
# batched executor on the GPU beside the CPU (bench_study.py --backend cuda). Run from the repository root
# on a machine with an NVIDIA GPU: bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
make install
export NUMBA_ENABLE_CUDASIM=0
.venv/bin/python -c "from numba import cuda; assert cuda.is_available(), 'no CUDA GPU visible to numba'; print('GPU:', cuda.get_current_device().name.decode() if isinstance(cuda.get_current_device().name, bytes) else cuda.get_current_device().name)"
timeout 150 .venv/bin/python -m pytest -q tests/test_batch.py
cd benchmarks && timeout 240 ../.venv/bin/python bench_batch.py
# the study itself: batched executor with its batches on the GPU beside the CPU (one worker each)
timeout 150 ../.venv/bin/python bench_study.py --backend cuda
