#!/usr/bin/env bash
# One call on the lent GPU machine (the library's `device` tool): set up, then the checks or runs.
#
#   bash benchmarks/device_session.sh check          # device_check.sh + an end-to-end `mopo-kit train --device cuda`
#   bash benchmarks/device_session.sh steps STEP...  # only these steps of device_check.sh
#   bash benchmarks/device_session.sh runs ARGS...   # d4rl_table.py ARGS --device cuda, results packed into $OUT
#
# That machine has Python 3.12 with torch (CUDA), numpy, gpytorch, pluggy, h5py, scipy and
# matplotlib, but not MuJoCo, gymnasium or SB3, and no network: those travel as wheels in .whl/
# (made here with `pip download --no-deps ... --python-version 3.12`, see docs/performance.md) and
# are installed with --no-deps into /tmp/site; mopo_kit and its plugins are installed editable
# without dependencies, so their entry points exist. The working tree arrives without .git, so the
# caller passes the commit as MOPO_KIT_COMMIT for the result files.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/results/device}"
mkdir -p "$OUT"
export LOGS=/tmp/device-logs
mkdir -p "$LOGS"
pack_logs() { tar czf "$OUT/logs.tgz" -C "$LOGS" . 2>/dev/null; }
trap pack_logs EXIT
export PYTHONUNBUFFERED=1 MOPO_KIT_QUIET=1 MUJOCO_GL="${MUJOCO_GL:-egl}"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . -e plugins/mopo-kit-gp -e plugins/mopo-kit-example > "$LOGS/install.log" 2>&1 || { tail -5 "$LOGS/install.log"; exit 3; }
export PYTHON=python3
python3 -c 'import torch, mujoco, gymnasium, stable_baselines3, mopo_kit; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'

mode="${1:-check}"
shift || true
case "$mode" in
check)
    bash benchmarks/device_check.sh pytest-cuda bench-epoch bench-dynamics
    rc=$?
    # end to end on the GPU: collect a dataset, fit MOPO's ensemble (capped), 5 epochs of MOPO
    # at full size (50k × h rollouts, 1,000 updates per epoch) with a 10-episode evaluation each
    start=$(date +%s)
    printf '{"dynamics": {"type": "gaussian_ensemble", "params": {"max_epochs": 20}}, "eval_every": 1, "checkpoint_every": 5}\n' > /tmp/e2e.json
    timeout 100 python3 -m mopo_kit collect hopper --kind random --steps 50000 -o /tmp/hopper-random-50k.hdf5 > "$LOGS/e2e.log" 2>&1 &&
        timeout 200 python3 -m mopo_kit train /tmp/hopper-random-50k.hdf5 --device cuda --config /tmp/e2e.json --steps 5000 --eval-episodes 10 -o /tmp/e2e-run >> "$LOGS/e2e.log" 2>&1
    e2e=$?
    echo "e2e train --device cuda: rc=$e2e ($(( $(date +%s) - start )) s)" | tee -a "$OUT/device_check_status.txt"
    tail -n 15 "$LOGS/e2e.log"
    [ -f /tmp/e2e-run/metrics.jsonl ] && cp /tmp/e2e-run/metrics.jsonl "$OUT/e2e-metrics.jsonl"
    OUT="$OUT" bash benchmarks/device_check.sh bench-collect > /dev/null 2>&1 || rc=1
    cat "$OUT/device_check_status.txt"
    exit $(( rc | e2e ))
    ;;
steps)
    bash benchmarks/device_check.sh "$@"
    ;;
runs)
    # finished runs are published one by one as they end; whatever finished comes back
    limit="${RUN_LIMIT_S:-400}"
    timeout -s INT "$limit" python3 benchmarks/d4rl_table.py --device cuda "$@" > "$LOGS/runs.log" 2>&1
    echo "runs: rc=$? after at most $limit s"
    tail -n 20 "$LOGS/runs.log"
    tar czf "$OUT/published.tgz" benchmarks/results/d4rl/*.json docs/img/*.png 2>/dev/null
    ls -la "$OUT"
    ;;
*)
    echo "usage: bash benchmarks/device_session.sh check | runs D4RL_TABLE_ARGS..." >&2
    exit 2
    ;;
esac
