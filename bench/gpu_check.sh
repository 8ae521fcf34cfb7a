#!/usr/bin/env bash
# The GPU, proven in one short run: the GPU tests, the engine against pytorch-cka, two ResNet-50s
# on all 10,000 CIFAR-10 test images end to end and one cross-architecture pair (ViT-B/16 vs
# ResNet-50, each at 224 px), within 8.5 minutes; every figure goes to one
# JSON file (default bench/results/gpu_check.json) with a log beside it. bench/gpu_check.py says how.
#
#   bash bench/gpu_check.sh [--out FILE] [--steps a,b] [--budget S]       # on the GPU machine
#   PYTHON=.venv/bin/python bash bench/gpu_check.sh --device cpu --tiny   # the dry run on a CPU
#
# Uses $PYTHON (default python3) with the torch already installed there. Installs nothing outside a
# temporary folder, and only from bench/gpu_wheels (`make gpu-wheels`; carry bench/gpu_wheels/cp312).
set -euo pipefail
cd "$(dirname "$0")/.."
# a last guard under the GPU machine's 10-minute limit per command; the steps' own limits come first
exec timeout --kill-after=10 570 "${PYTHON:-python3}" bench/gpu_check.py "$@"
