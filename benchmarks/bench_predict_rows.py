"""A model step that runs only each row's sampled member, against every member's forward.

Why this exists: without a penalty that reads the ensemble (MBPO: ``zero``, or λ = 0) a rollout
needs from the model only the one Gaussian each row samples s' from, yet it used to run all 7
members (``GaussianEnsemble.predict``); ``ModelStep.samples_only`` now runs the sampled member
alone (``GaussianEnsemble.predict_rows``). This measures, on a fitted model and its dataset, both
paths through the *same* ``ModelStep`` (the old one forced by patching ``samples_only``):

* ``steps``: one model step of rollout-sized batches (50,000 start states, and sizes a rollout
  reaches after terminations, not whole vector blocks), median of interleaved repeats, and
  whether every field of the step's result — next state, reward, penalty, termination — is
  equal to the bit;
* ``run``: a short MBPO run (``zero`` penalty, MOPO's other settings, h = 5 as on hopper and
  halfcheetah) from the same seed both ways: seconds per epoch, and whether the policy's and
  critics' weights, the model pool and every evaluation are equal to the bit at the end.

The campaign's runs compute at one thread (``--threads 1``), where the two paths are equal to the
bit; ``--threads`` measures another count.

    python benchmarks/bench_predict_rows.py --dynamics-dir DIR --dataset walker2d-mixed --save
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_result  # noqa: E402

from mopo_kit import MOPO, MOPOConfig, load_dataset  # noqa: E402
from mopo_kit.dynamics.gaussian_ensemble import GaussianEnsemble  # noqa: E402
from mopo_kit.dynamics.storage import dynamics_checksum  # noqa: E402
from mopo_kit.envs.model_env import ModelStep  # noqa: E402
from mopo_kit.envs.tasks import get_task  # noqa: E402
from mopo_kit.uncertainty.builtin import Zero  # noqa: E402


@contextmanager
def every_member() -> Iterator[None]:
    """The path before ``samples_only``: every member's forward, then the sampled row."""
    saved = ModelStep.samples_only
    ModelStep.samples_only = property(lambda self: False)  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        ModelStep.samples_only = saved  # type: ignore[method-assign]


def step_results_equal(a: Any, b: Any) -> bool:
    return all(torch.equal(getattr(a, f), getattr(b, f)) for f in ("next_obs", "reward", "raw_reward", "penalty", "terminated"))


def measure_steps(model: GaussianEnsemble, data: Any, task: Any, sizes: list[int], repeats: int) -> list[dict[str, Any]]:
    rows = []
    obs_all = torch.from_numpy(data.observations)
    act_all = torch.from_numpy(data.actions)
    for n in sizes:
        index = torch.randint(len(obs_all), (n,), generator=torch.Generator().manual_seed(n))
        obs, act = obs_all[index], act_all[index]
        lean, full = ModelStep(model, Zero(), 1.0, task.termination_fn), ModelStep(model, Zero(), 1.0, task.termination_fn)
        times: dict[str, list[float]] = {"samples_only": [], "every_member": []}
        equal = True
        for _ in range(repeats):  # interleaved, each pair from the same generator state
            lean.generator.manual_seed(7)
            full.generator.manual_seed(7)
            start = time.perf_counter()
            a = lean(obs, act)
            times["samples_only"].append(time.perf_counter() - start)
            with every_member():
                start = time.perf_counter()
                b = full(obs, act)
                times["every_member"].append(time.perf_counter() - start)
            equal = equal and step_results_equal(a, b)
        median = {k: statistics.median(v) for k, v in times.items()}
        rows.append({"rows": n, "every_member_s": round(median["every_member"], 4), "samples_only_s": round(median["samples_only"], 4),
                     "speedup": round(median["every_member"] / median["samples_only"], 2), "equal_to_the_bit": equal})
        print(rows[-1], flush=True)
    return rows


def run_once(config: MOPOConfig, data: Any, lean: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        mopo = MOPO(config, dataset=data)
        start = time.perf_counter()
        if lean:
            result = mopo.fit(Path(tmp) / "run")
        else:
            with every_member():
                result = mopo.fit(Path(tmp) / "run")
        seconds = time.perf_counter() - start
    sac = mopo.policy.sac
    buf = mopo.policy.buffer
    return {
        "seconds": seconds,
        "returns": [h.get("return_mean") for h in result.history],
        "weights": {k: v.clone() for k, v in sac.policy.state_dict().items()},
        "pool": buf.rows.clone(),  # real and model rows, packed
    }


def _positive_int(text: str) -> int:
    """argparse type: a count of rows, threads or repeats (0 or less would fail only after the model loads)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dynamics-dir", required=True, help="a fitted model (dynamics.pt + dynamics.json)")
    parser.add_argument("--dataset", required=True, help="the named dataset the model was fitted on (its start states)")
    parser.add_argument("--threads", type=_positive_int, default=1)
    parser.add_argument("--repeats", type=_positive_int, default=5)
    parser.add_argument("--sizes", type=_positive_int, nargs="+", default=[50_000, 43_217, 9_999, 1_000], help="rows of the model steps compared")
    parser.add_argument("--epochs", type=int, default=3, help="of the run comparison (0: skip it)")
    parser.add_argument("--horizon", type=int, default=5)
    parser.add_argument("--save", action="store_true", help="write benchmarks/results/predict_rows_<cpu>_<dataset>[_<N>threads].json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset(args.dataset)
    model = GaussianEnsemble.load(args.dynamics_dir)
    task = get_task(args.dataset.split("-")[0])
    steps = measure_steps(model, data, task, args.sizes, args.repeats)
    run: dict[str, Any] = {}
    if args.epochs:
        config = MOPOConfig(dataset=args.dataset, uncertainty="zero", horizon=args.horizon, epochs=args.epochs, eval_every=args.epochs,
                            eval_episodes=2, dynamics_dir=str(Path(args.dynamics_dir).resolve()), device="cpu", precision="fp32", seed=0)
        lean = run_once(config, data, lean=True)
        full = run_once(config, data, lean=False)
        run = {
            "epochs": args.epochs, "horizon": args.horizon, "steps_per_epoch": config.steps_per_epoch,
            "every_member_s_per_epoch": round(full["seconds"] / args.epochs, 2),
            "samples_only_s_per_epoch": round(lean["seconds"] / args.epochs, 2),
            "speedup": round(full["seconds"] / lean["seconds"], 2),
            "returns": {"every_member": full["returns"], "samples_only": lean["returns"]},
            "weights_equal_to_the_bit": all(torch.equal(full["weights"][k], lean["weights"][k]) for k in full["weights"]),
            "pool_equal_to_the_bit": torch.equal(full["pool"], lean["pool"]),
        }
        print(run, flush=True)
    cpu = "".join(c if c.isalnum() else "-" for c in machine()["cpu"]).strip("-") or "cpu"
    threads = "" if args.threads == 1 else f"_{args.threads}threads"
    write_result(f"predict_rows_{cpu}_{args.dataset}{threads}", {"dataset": args.dataset, "dynamics_dir": str(args.dynamics_dir),
                                        "dynamics_sha256": dynamics_checksum(Path(args.dynamics_dir)), "threads": args.threads, "steps": steps, "run": run},
                 " ".join(["python", *sys.argv]), args.save)


if __name__ == "__main__":
    main()
