#!/usr/bin/env bash
# One call on the lent GPU machine (the library's `device` tool): set up, then the checks or runs.
#
#   bash benchmarks/device_session.sh check          # device_check.sh + an end-to-end `mopo-kit train --device cuda`
#   bash benchmarks/device_session.sh steps STEP...  # only these steps of device_check.sh
#   bash benchmarks/device_session.sh runs [TABLE.py] ARGS...   # a campaign's runs with --device cuda, results packed into $OUT
#   bash benchmarks/device_session.sh runs-detached WAIT_S [TABLE.py] ARGS...  # the same, outliving the call
#   bash benchmarks/device_session.sh collect WAIT_S            # next call: wait for the detached runs, pack
#   bash benchmarks/device_session.sh continue ARCHIVE...       # runs moved with `mopo-kit pack` continue on the GPU, come back packed
#   DATASETS="..." bash benchmarks/device_session.sh models "TABLE.py ARGS"...  # fit campaign models on the GPU
#   bash benchmarks/device_session.sh stash [join DIR] [MODE ...]  # data carried in parts (device_parts.sh)
#
# That machine has Python 3.12 with torch (CUDA), numpy, gpytorch, pluggy, h5py, scipy and
# matplotlib, but not MuJoCo, gymnasium or SB3, and no network: those travel as wheels in .whl/
# (made here with `pip download --no-deps ... --python-version 3.12`, see docs/performance.md) and
# are installed with --no-deps into /tmp/site (mujoco-core, gymnasium, farama-notifications,
# stable-baselines3, glfw; NOT pyopengl: that machine has no libEGL, and with pyopengl present
# `import mujoco` dies in OpenGL.EGL with an AttributeError that mujoco does not catch, while a
# missing OpenGL package is an ImportError it does); mopo_kit and its plugins are installed editable
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

# Data larger than one call carries comes in parts (benchmarks/device_parts.sh made them here):
# `stash` moves this call's part out of the tree to /tmp, before the next call's tree replaces it;
# `join DIR` unpacks all parts into DIR and names each HDF5 file's sha256, to compare with the
# CPU machine's. Either may precede any other mode in the same call.
parts_dir="${CARRY_PARTS_DIR:-/tmp/carry-parts}"
while [ "${1:-}" = stash ] || [ "${1:-}" = join ]; do
    parts_mode=1
    if [ "$1" = stash ]; then
        mkdir -p "$parts_dir"
        for part in .carry_part*/part-*; do [ -f "$part" ] && mv "$part" "$parts_dir/"; done
        echo "stash: $(ls "$parts_dir" | tr '\n' ' ')"
        shift
    else
        [ -n "${2:-}" ] || { echo "join: name the folder to unpack into (join DIR)" >&2; exit 2; }
        dest="$2"
        mkdir -p "$dest"
        cat "$parts_dir"/part-* | tar x -C "$dest" 2> /dev/null || { echo "join: the parts in $parts_dir ($(ls "$parts_dir" 2> /dev/null | tr '\n' ' ')) do not make a whole archive (is a part missing?)"; exit 3; }
        rm -rf "$parts_dir"
        python3 - "$dest" <<'PY'
import pathlib, sys
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.hdf5")):
    import h5py
    print("join:", path.name, h5py.File(path, "r").attrs.get("sha256"))
PY
        shift 2
    fi
done
[ -n "${parts_mode:-}" ] && [ $# -eq 0 ] && exit 0  # only parts handled in this call
export PYTHONUNBUFFERED=1 MOPO_KIT_QUIET=1 MUJOCO_GL="${MUJOCO_GL:-egl}"
if [ -d .whl ]; then
    [ -f /tmp/site/.installed ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
# a second call in the same command (e.g. `steps ...; models ...`) skips the installs
[ -f /tmp/site/.installed ] || python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . -e plugins/mopo-kit-gp -e plugins/mopo-kit-example > "$LOGS/install.log" 2>&1 || { tail -5 "$LOGS/install.log"; exit 3; }
mkdir -p /tmp/site && touch /tmp/site/.installed
export PYTHON=python3
python3 -c 'import torch, mujoco, gymnasium, stable_baselines3, mopo_kit; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'

# NVIDIA's multi-process service (MPS=0 turns it off): several trials' small kernels share the
# GPU's SMs side by side instead of taking turns; measured on the H200 (bench_gpu_share.py,
# docs/performance.md) 8 trials at once ran 3.5x one trial's rate, time-sliced 1.0x. If the
# daemon or a first CUDA call fails, it is stopped again and the trials time-slice.
if [ "${MPS:-1}" = 1 ] && command -v nvidia-cuda-mps-control > /dev/null; then
    if pgrep -f nvidia-cuda-mps-control > /dev/null; then
        echo "mps: on (already running: the daemon outlives a call while the machine is held)"
    elif nvidia-cuda-mps-control -d && timeout 60 python3 -c 'import torch; assert (torch.ones(4, device="cuda") * 2).sum().item() == 8'; then
        echo "mps: on"
    else
        echo quit | nvidia-cuda-mps-control 2> /dev/null
        echo "mps: off (the check failed)"
    fi
fi

pack_runs() {  # pack_runs TREE: its published runs, the models fitted here, every trial's metrics
    tar czf "$OUT/published.tgz" -C "$1" $(cd "$1" && ls benchmarks/results/d4rl/*.json benchmarks/results/ood/*.json docs/img/*.png 2> /dev/null)
    # also of runs cut off by a limit; with each trial's config and final policy (300 KB), so
    # that, unpacked into /tmp/sweeps on the CPU machine (the paths the configs name), `mopo-kit
    # evaluate TRIAL --on-policy N` runs there
    if [ -d /tmp/sweeps ]; then
        (cd /tmp/sweeps && tar czf "$OUT/models.tgz" */dynamics 2> /dev/null)
        (cd /tmp/sweeps && tar czf "$OUT/trials.tgz" $(ls -d */trials/*/metrics.jsonl */trials/*/config.json */trials/*/policy.pt 2> /dev/null))
    fi
    ls -la "$OUT"
}

wait_detached() {  # wait_detached SECONDS: until the detached campaign ends or the time is up
    local pid deadline=$(( $(date +%s) + $1 ))
    pid="$(cat /tmp/detached.pid)"
    while kill -0 "$pid" 2> /dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 5; done
    if kill -0 "$pid" 2> /dev/null; then echo "detached runs: still running"; else echo "detached runs: ended"; fi
    grep -h "published\|failed" "$LOGS/runs.log" | tail -n 30
}

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
    # finished runs are published one by one as they end; whatever finished comes back.
    #   bash benchmarks/device_session.sh runs [TABLE.py] ARGS...   (default d4rl_table.py)
    # With the campaign's models carried (e.g. `--sweep-dir .carry/sweeps/d4rl`, the dynamics/
    # folders copied from the CPU machine's sweep) the trials fit nothing and only run.
    table=d4rl_table.py
    case "${1:-}" in *.py) table="$1"; shift ;; esac
    limit="${RUN_LIMIT_S:-400}"
    timeout -s INT "$limit" python3 "benchmarks/$table" --device cuda "$@" > "$LOGS/runs.log" 2>&1
    echo "runs: rc=$? after at most $limit s"
    tail -n 20 "$LOGS/runs.log"
    pack_runs .
    ;;
runs-detached)
    # Runs longer than one call (10 min): the campaign starts in its own process session, from a
    # copy of the tree in /tmp/detached (a later call re-sends the working tree and would remove
    # the runs it published), and outlives this call while the machine is held; this call waits
    # WAIT_S seconds and returns what finished. `collect` in the next call, sent within the
    # kind's warm window (30 s), waits for the rest.
    #   RUN_LIMIT_S=1400 bash benchmarks/device_session.sh runs-detached WAIT_S [TABLE.py] ARGS...
    wait_s="$1"
    shift
    table=d4rl_table.py
    case "${1:-}" in *.py) table="$1"; shift ;; esac
    rm -rf /tmp/detached && cp -a . /tmp/detached
    case "${MOPO_KIT_DATA:-}" in "$PWD"/*) export MOPO_KIT_DATA="/tmp/detached/${MOPO_KIT_DATA#"$PWD"/}" ;; esac  # carried data: the copy's
    (cd /tmp/detached && PYTHONPATH="/tmp/detached${PYTHONPATH:+:$PYTHONPATH}" setsid nohup timeout -s INT "${RUN_LIMIT_S:-1400}" \
        python3 "benchmarks/$table" --device cuda "$@" > "$LOGS/runs.log" 2>&1 < /dev/null &
        echo $! > /tmp/detached.pid)
    wait_detached "$wait_s"
    pack_runs /tmp/detached
    ;;
collect)
    #   bash benchmarks/device_session.sh collect WAIT_S   (after runs-detached, on the same machine)
    [ -d /tmp/detached ] || { echo "collect: no runs-detached campaign on this machine (a fresh one?)"; exit 2; }
    wait_detached "${1:-400}"
    pack_runs /tmp/detached
    ;;
continue)
    # Runs moved here with `mopo-kit pack` (carried in the tree, e.g. .carry/moved/*.tar.gz)
    # continue on the GPU side by side until RUN_LIMIT_S, when SIGTERM stops each gracefully
    # (checkpoint written); each comes back packed without its pool as $OUT/<run>.tar.gz, to unpack
    # over the CPU machine's copy (a campaign's trials: `d4rl_table.py --unpack ARCHIVE... --sweep-dir
    # SWEEP`, then rerun the campaign, which continues them on its own device; a lone run: `tar -xzf`
    # and `train --resume RUN --device cpu`); the move is recorded in its config.json. The campaign's
    # side packs them with `--pack-started DIR`. At most 7 runs a call ($OUT returns
    # 8 files; logs.tgz is one).
    #   RUN_LIMIT_S=480 bash benchmarks/device_session.sh continue .carry/moved/*.tar.gz
    # That machine has no W&B: a run logging to it continues this leg without (recorded in its
    # config.json `logger_gaps`; metrics.jsonl stays complete) and logs again once back.
    # Their datasets are not packed: each named one is generated here once, before the runs
    # start (in parallel, DATA_LIMIT_S), rather than by every run of it at once. This machine's
    # torch build regenerates the mixed sets with other floats, and a resume on other data stops
    # with one line (resolved.dataset_sha256): carry the CPU machine's files (`stash` ... `join
    # .data_carry`, benchmarks/device_parts.sh) and set MOPO_KIT_DATA=$PWD/.data_carry, so that
    # they are found here and nothing is generated.
    mkdir -p /tmp/moved
    for archive in "$@"; do tar xzf "$archive" -C /tmp/moved; done
    for name in $(python3 -c 'import glob, json, os
names = {json.load(open(p))["config"]["dataset"] for p in glob.glob("/tmp/moved/*/config.json")}
print(" ".join(sorted(n for n in names if not os.path.exists(n))))'); do
        MOPO_KIT_COLLECT_WORKERS=4 timeout "${DATA_LIMIT_S:-240}" python3 -m mopo_kit dataset info "$name" > "$LOGS/data-$name.log" 2>&1 &
    done
    wait
    for archive in "$@"; do
        name=$(tar tzf "$archive" | head -n 1 | cut -d/ -f1)
        without=()
        if ! python3 -c 'import wandb' 2> /dev/null && python3 -c 'import json, sys
sys.exit(0 if any(l["type"] == "wandb" for l in json.load(open(sys.argv[1]))["config"]["loggers"]) else 1)' "/tmp/moved/$name/config.json"; then
            without=(--without-logger wandb)
        fi
        timeout -s TERM -k 90 "${RUN_LIMIT_S:-480}" python3 -m mopo_kit train --resume "/tmp/moved/$name" --device "${DEVICE:-cuda}" "${without[@]}" > "$LOGS/continue-$name.log" 2>&1 &
    done
    wait
    for run in /tmp/moved/*/; do
        name=$(basename "$run")
        echo "== $name"; tail -n 3 "$LOGS/continue-$name.log"
        python3 -m mopo_kit pack "$run" "$OUT/$name.tar.gz"
    done
    ;;
models)
    # Fit campaigns' shared dynamics models on the GPU (`--models-only`); CPU runs then use them.
    #   DATASETS="name ..." bash benchmarks/device_session.sh models "d4rl_table.py ARGS" "ood_table.py ARGS" ...
    # The datasets are generated first (2 collection workers each, in parallel) and their array
    # checksums listed, to compare with the CPU machine's; then every campaign command runs at once
    # with --models-only --device cuda into /tmp/sweeps/<table>; the fitted models come back in
    # tarballs of at most ~15 MB ($OUT returns at most 8 files of 16 MiB).
    start=$(date +%s)
    for name in ${DATASETS:-}; do
        MOPO_KIT_COLLECT_WORKERS=2 timeout "${DATA_LIMIT_S:-240}" python3 -m mopo_kit dataset info "$name" > "$LOGS/data-$name.log" 2>&1 &
    done
    wait
    echo "datasets: $(( $(date +%s) - start )) s" | tee -a "$OUT/models_status.txt"
    python3 -c 'import glob, os, h5py
for p in sorted(glob.glob(os.path.expanduser("~/.cache/mopo_kit/datasets/*.hdf5"))):
    print(os.path.basename(p), h5py.File(p, "r").attrs.get("sha256"))' | tee -a "$OUT/models_status.txt"
    start=$(date +%s)
    for command in "$@"; do
        table="${command%%.py*}"
        timeout -s INT "${FIT_LIMIT_S:-300}" python3 benchmarks/$command --models-only --device "${DEVICE:-cuda}" --threads 1 --sweep-dir "/tmp/sweeps/$table" >> "$LOGS/models-$table.log" 2>&1 &
    done
    wait
    echo "models: $(( $(date +%s) - start )) s" | tee -a "$OUT/models_status.txt"
    grep -h "ready\|failed" "$LOGS"/models-*.log | tee -a "$OUT/models_status.txt"
    python3 - "$OUT" <<'PY'
import os, subprocess, sys
from pathlib import Path
out, packs, size = Path(sys.argv[1]), [[]], 0
models = sorted(p for p in Path("/tmp/sweeps").glob("*/dynamics/*") if (p / "dynamics.pt").exists())
for model in models:
    bytes_ = sum(f.stat().st_size for f in model.iterdir())
    if packs[-1] and size + bytes_ > 15_000_000:
        packs.append([]); size = 0
    packs[-1].append(model); size += bytes_
for i, pack in enumerate(p for p in packs if p):
    subprocess.run(["tar", "czf", str(out / f"models-{i}.tgz"), "-C", "/tmp/sweeps", *[str(m.relative_to("/tmp/sweeps")) for m in pack]], check=True)
    print(f"models-{i}.tgz:", " ".join(m.parent.parent.name + "/" + m.name for m in pack))
PY
    ;;
*)
    echo "usage: bash benchmarks/device_session.sh check | steps STEP... | runs [TABLE.py] ARGS... | runs-detached WAIT_S [TABLE.py] ARGS... | collect WAIT_S | continue ARCHIVE... | models \"TABLE.py ARGS\"..." >&2
    exit 2
    ;;
esac
