#!/usr/bin/env bash
# The device checks owed a GPU session (issue 11), as one short script:
#   1. the CUDA tests (pytest -m cuda): CPU and CUDA runs agree;
#   2. bench_epoch.py --device cuda: MOPO epoch, 50k×5 rollout, LeanSAC vs stock SB3 SAC.train on
#      the same GPU (both sides of the comparison run there);
#   3. bench_dynamics.py --device cuda --quick: ensemble training step, 50k prediction, estimators;
#   4. bench_collect.py with `nproc` workers: CPU-side collection speed on the host's cores.
# Results go to $OUT (the GPU runner's output folder; default benchmarks/results/device) with the
# GPU's name in each file name. A failing step is recorded in $OUT/device_check_status.txt and the
# next step still runs; the script exits non-zero if any step failed.
# Usage: OUT=/some/dir bash benchmarks/device_check.sh [STEP...]   (from the repository root)
#   STEP: pytest-cuda bench-epoch bench-dynamics bench-collect (default: all four; each has its own
#   timeout, together at most 5.5 minutes, typically 3-4).
set -euo pipefail

cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python
OUT="${OUT:-benchmarks/results/device}"
mkdir -p "$OUT"
LOGS="${LOGS:-$OUT}"  # step logs (device_session.sh keeps them apart: $OUT returns at most 8 files)
mkdir -p "$LOGS"
STATUS="$OUT/device_check_status.txt"
echo "--- device_check $(date -u +%FT%TZ): ${*:-all steps}" >> "$STATUS"

GPU="$("$PY" -c 'import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no-gpu")' 2>/dev/null || echo unknown)"
TAG="$(printf '%s' "$GPU" | tr -cs 'A-Za-z0-9' '-' | sed 's/^-*//; s/-*$//')"
echo "gpu: $GPU (tag $TAG); cores: $(nproc)" | tee -a "$STATUS"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/nvidia-smi-$TAG.csv" 2>/dev/null || true

failed=0
step() {  # step NAME TIMEOUT_S COMMAND...: run, log to $OUT/NAME-$TAG.log, record the exit status
    local name="$1" limit="$2"
    shift 2
    local start rc=0
    start=$(date +%s)
    timeout "$limit" "$@" > "$LOGS/$name-$TAG.log" 2>&1 || rc=$?
    echo "$name: rc=$rc ($(( $(date +%s) - start )) s)" | tee -a "$STATUS"
    [ "$rc" -eq 0 ] || failed=1
    tail -n 5 "$LOGS/$name-$TAG.log" || true
}

export MOPO_KIT_QUIET=1
WANT="${*:-pytest-cuda bench-epoch bench-dynamics bench-collect}"
wanted() { case " $WANT " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
wanted pytest-cuda && step pytest-cuda 120 "$PY" -m pytest -m cuda -q tests/test_cuda.py
wanted bench-epoch && step bench-epoch 150 "$PY" benchmarks/bench_epoch.py --device cuda --quick --threads "$(nproc)" --out "$OUT/epoch-$TAG.json"
wanted bench-dynamics && step bench-dynamics 100 "$PY" benchmarks/bench_dynamics.py --device cuda --quick --threads "$(nproc)" --out "$OUT/dynamics-$TAG.json"
wanted bench-collect && step bench-collect 60 "$PY" benchmarks/bench_collect.py halfcheetah hopper --steps 20000 --workers "$(nproc)" --out "$OUT/collect-$(nproc)cores-$TAG.json"

echo "done: failed=$failed" | tee -a "$STATUS"
exit "$failed"
