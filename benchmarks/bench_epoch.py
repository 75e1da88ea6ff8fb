"""One MOPO epoch, split into its parts, and SAC gradient steps/s against plain SB3.

Measured in one process, interleaved (A, B, A, B, ...) so both sides see the same machine state:

* ``sb3_plain_steps_per_s``: stock ``stable_baselines3.SAC.train`` with its own ``ReplayBuffer``
  filled with 100,000 halfcheetah transitions; MOPO's SAC settings (256×256, batch 256,
  target entropy −3);
* ``sac_steps_per_s``: the same SB3 SAC inside mopo_kit (lean ``train()``, fused Adam, the
  real/model replay mix);
* ``rollout_s``: one MOPO rollout, 50,000 dataset start states × h = 5 model steps with the
  current stochastic policy, penalty ``max_aleatoric``, written into the model pool;
* ``epoch_s``: ``learn(1000)`` = that rollout + 1,000 gradient steps (MOPO's epoch without the
  real-environment evaluation), and its ratio to plain SB3's 1,000 steps.

The dynamics model is an untrained MOPO-sized ensemble (7 × 4×200): speed does not depend on
its weights. ``--quick`` runs in about a minute; ``--json`` prints only the JSON object.
``--device cuda`` runs both sides on the GPU (the same GPU for the SB3 comparison); ``--out FILE``
writes the JSON there.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import sync, write_result  # noqa: E402

from mopo_kit.data.collect import collect_transitions, uniform_random_policy  # noqa: E402
from mopo_kit.dynamics.gaussian_ensemble import GaussianEnsemble  # noqa: E402
from mopo_kit.envs.model_env import ModelStep, PenalizedModelEnv, StartStates  # noqa: E402
from mopo_kit.envs.tasks import HALFCHEETAH  # noqa: E402
from mopo_kit.policy.sac import SB3SAC  # noqa: E402
from mopo_kit.uncertainty.builtin import MaxAleatoric  # noqa: E402


def plain_sb3(data, device="cpu"):
    import numpy as np
    from stable_baselines3 import SAC
    from stable_baselines3.common.logger import configure

    env = HALFCHEETAH.make_env()
    model = SAC("MlpPolicy", env, buffer_size=len(data), learning_starts=0, target_entropy=-3.0, seed=0, device=device)
    model.set_logger(configure(None, []))
    buf = model.replay_buffer
    n = len(data)
    buf.observations[:n, 0] = data.observations
    buf.next_observations[:n, 0] = data.next_observations
    buf.actions[:n, 0] = data.actions
    buf.rewards[:n, 0] = data.rewards
    buf.dones[:n, 0] = data.terminals.astype(np.float32)
    buf.pos, buf.full = 0, True
    return model


def mopo_sac(data, horizon: int, device="cpu", cuda_graph: bool = True):
    dynamics = GaussianEnsemble(HALFCHEETAH.obs_dim, HALFCHEETAH.act_dim, device=device)
    step = ModelStep(dynamics, MaxAleatoric(), 1.0, HALFCHEETAH.termination_fn)  # generator on the model's device
    starts = StartStates(data, device=dynamics.device)
    env = PenalizedModelEnv(step, data, horizon, action_space=HALFCHEETAH.make_env().action_space)
    optimizer = SB3SAC(device=str(dynamics.device), cuda_graph=cuda_graph)
    optimizer.setup(env, step, starts, data, horizon)
    return optimizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short measurement (about a minute)")
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    parser.add_argument("--save", action="store_true", help="write benchmarks/results/epoch.json")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (both SB3 and mopo_kit run there)")
    parser.add_argument("--out", help="also write the JSON to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from mopo_kit.device import resolve_device

    device = resolve_device(args.device)
    steps = 200 if args.quick else 1000
    repeats = 3 if args.quick else 5
    horizon = 5

    data = collect_transitions(HALFCHEETAH, uniform_random_policy(6), 100_000, seed=0, description="benchmark data")
    sb3 = plain_sb3(data, device)
    ours = mopo_sac(data, horizon, device)
    ours.rollout()  # fill the pool once so batches mix real and model rows
    sb3.train(20, 256)
    ours.sac.train(20, 256)  # on CUDA: warm-up and graph capture
    eager = None
    if device.type == "cuda":  # the same update without the CUDA graph, for the graph's own gain
        eager = mopo_sac(data, horizon, device, cuda_graph=False)
        eager.rollout()
        eager.sac.train(20, 256)

    sb3_times, our_times, eager_times = [], [], []
    for _ in range(repeats):
        if eager is not None:
            sync(device)
            t0 = time.perf_counter()
            eager.sac.train(steps, 256)
            sync(device)
            eager_times.append((time.perf_counter() - t0) / steps)
        sync(device)
        t0 = time.perf_counter()
        sb3.train(steps, 256)
        sync(device)
        sb3_times.append((time.perf_counter() - t0) / steps)
        t0 = time.perf_counter()
        ours.sac.train(steps, 256)
        sync(device)
        our_times.append((time.perf_counter() - t0) / steps)
    rollout_times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        ours.rollout()
        sync(device)
        rollout_times.append(time.perf_counter() - t0)
    epoch_times = []
    for _ in range(1 if args.quick else 3):
        ours._steps = 0  # start of an epoch: learn() rolls out first, then trains
        sync(device)
        t0 = time.perf_counter()
        ours.learn(1000)
        sync(device)
        epoch_times.append(time.perf_counter() - t0)

    sb3_step, our_step = statistics.median(sb3_times), statistics.median(our_times)
    rollout_s, epoch_s = statistics.median(rollout_times), statistics.median(epoch_times)
    payload = {
        "device": str(device),
        "sb3_plain_steps_per_s": 1 / sb3_step,
        "sac_steps_per_s": 1 / our_step,
        "sac_speedup_vs_sb3_plain": sb3_step / our_step,
        **({"sac_eager_steps_per_s": 1 / statistics.median(eager_times), "cuda_graph_speedup": statistics.median(eager_times) / our_step} if eager_times else {}),
        "rollout_s": rollout_s,
        "rollout_states": ours.config.rollout_batch_size,
        "rollout_horizon": horizon,
        "epoch_s": epoch_s,
        "epoch_parts_s": {"rollout": rollout_s, "sac_1000_steps": 1000 * our_step, "other": epoch_s - rollout_s - 1000 * our_step},
        "sb3_plain_1000_steps_s": 1000 * sb3_step,
        "epoch_vs_sb3_plain_1000_steps": epoch_s / (1000 * sb3_step),
        "targets": (
            {"sac_speedup_vs_sb3_plain": 3.0, "epoch_s": 2.0, "rollout_s": 0.3}  # GPU targets (docs/performance.md)
            if device.type == "cuda"
            else {"sac_speedup_vs_sb3_plain": 1.2, "epoch_vs_sb3_plain_1000_steps": 1.35}
        ),
        "steps_per_measurement": steps,
        "repeats": repeats,
    }
    command = "python benchmarks/bench_epoch.py" + (" --quick" if args.quick else "") + (" --json" if args.json else "") + (" --save" if args.save else "") + f" --device {args.device}"
    if args.json and not args.save and not args.out:
        import json

        print(json.dumps(payload))
        return
    write_result("epoch", payload, command, args.save, args.out)


if __name__ == "__main__":
    main()
