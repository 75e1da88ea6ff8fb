"""Collect D4RL-style transition datasets from the real environment.

Many environments are stepped in lockstep so the policy runs batched; every episode's rows are
written contiguously (the D4RL layout), with ``terminals`` for true terminations and ``timeouts``
for the 1,000-step limit (and for the one episode per env cut when the step budget is reached).
Everything random comes from ``seed``, so the same seed regenerates the same dataset.

A dataset is a list of :class:`Segment` s (which policy acts for how many steps: ``mixed`` has
one per training stage). :func:`collect_segments` cuts each segment into a fixed number of
shards and runs the shards in worker processes: a shard is a whole lockstep collection with its
own seed, so there is no per-step inter-process traffic (per-step pipes were measured slower
than one process on 2 cores), and since the shards depend only on the segment — never on how
many processes run them — the same seed gives the same file for any number of workers. Across
machines, ``random`` datasets (no actor) came out byte for byte the same on two measured machines;
datasets a behavior actor collects did not (torch 2.13 on AMD EPYC vs torch 2.11 on Xeon: last-bit
differences in the actor's matrix products grow through the MuJoCo dynamics), so a model fitted
elsewhere names its data's checksum (``fit_report.json``).

``device`` places the behavior actor. The default is the CPU, not "auto": a GPU's matrix
products round differently, which changes sampled actions and so the file, and a 256×256 actor
on 16 environments gains nothing from a GPU. With a CUDA device, workers are spawned, not forked.

A graceful stop (:mod:`mopo_kit.stop`: the first SIGTERM/SIGINT of ``train``, ``sweep`` or a
campaign script) ends a collection within a few lockstep rounds, in every worker: a dataset is
written only whole, so there is nothing to checkpoint, and waiting for the rest of a 1M-step
collection would hold the stop for minutes. The next run generates the dataset again.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import pickle
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from mopo_kit.data.dataset import TransitionDataset
from mopo_kit.envs.tasks import Task
from mopo_kit.progress import QUIET_ENV, progress_bar
from mopo_kit.stop import StopRequested, die_with_parent, signal_name, stop_requested

#: Maps a batch of observations (n, obs_dim) and a NumPy generator to actions in [-1, 1].
BatchPolicy = Callable[[np.ndarray, np.random.Generator], np.ndarray]

#: Lockstep rounds between two looks at the stop flag (a round is one step of up to 16 envs).
STOP_CHECK_ROUNDS = 32

#: In a collection worker process: set by the parent when it was asked to stop (see _init_worker).
_worker_stop: "multiprocessing.synchronize.Event | None" = None


def _stop_signal() -> int | None:
    """The signal asking this collection to stop: this process's flag, or (in a worker) the parent's."""
    if (signum := stop_requested()) is not None:
        return signum
    return int(signal.SIGTERM) if _worker_stop is not None and _worker_stop.is_set() else None


def _stopped(signum: int, description: str) -> StopRequested:
    return StopRequested(f"stopped by {signal_name(signum)} while collecting {description}; nothing was written, the next run collects it again", signum)


def uniform_random_policy(act_dim: int) -> BatchPolicy:
    """D4RL's 'random': actions uniform in [-1, 1] (``env.action_space.sample()``)."""

    def policy(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(-1.0, 1.0, size=(obs.shape[0], act_dim)).astype(np.float32)

    return policy


def actor_policy(actor, seed: int, deterministic: bool = False) -> BatchPolicy:
    """A behavior actor (see :mod:`mopo_kit.data.actor`) as a batched policy; D4RL samples actions."""
    import torch

    generator = torch.Generator().manual_seed(seed)

    def policy(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return actor.act_numpy(obs, deterministic=deterministic, generator=generator)

    return policy


class _EpisodeBuffer:
    """Rows of one env's current episode, preallocated to the time limit."""

    def __init__(self, task: Task) -> None:
        cap = task.max_episode_steps
        self.obs = np.empty((cap, task.obs_dim), np.float32)
        self.next_obs = np.empty((cap, task.obs_dim), np.float32)
        self.act = np.empty((cap, task.act_dim), np.float32)
        self.rew = np.empty(cap, np.float32)
        self.term = np.zeros(cap, bool)
        self.trunc = np.zeros(cap, bool)
        self.size = 0

    def take(self) -> dict[str, np.ndarray]:
        """The episode so far (its last row marked a timeout when the budget cut it); then empty."""
        n = self.size
        out = {
            "observations": self.obs[:n].copy(),
            "next_observations": self.next_obs[:n].copy(),
            "actions": self.act[:n].copy(),
            "rewards": self.rew[:n].copy(),
            "terminals": self.term[:n].copy(),
            "timeouts": self.trunc[:n].copy(),
        }
        if n and not (out["terminals"][-1] or out["timeouts"][-1]):
            out["timeouts"][-1] = True  # cut by the step budget: a truncation, not a termination
        self.size = 0
        return out


def collect_transitions(
    task: Task,
    policy: BatchPolicy,
    steps: int,
    seed: int,
    num_envs: int = 16,
    description: str = "collect",
) -> TransitionDataset:
    """Run ``policy`` in up to ``num_envs`` real environments until ``steps`` transitions are stored.

    Every environment step is stored: an env starts a new episode only while the episodes in
    flight, at their longest, still fit the budget (otherwise it retires), so episodes are whole
    except the last one, cut by the budget and marked as a timeout. Nothing is stepped and
    thrown away (discarding unfinished episodes wasted up to half the steps of a 10k shard on Ant).
    """
    if steps <= 0:
        raise ValueError("steps must be positive")
    rng = np.random.default_rng(seed)
    longest = task.max_episode_steps
    envs = [task.make_env() for _ in range(max(1, min(num_envs, -(-steps // longest))))]
    space = envs[0].action_space
    low, high = space.low.astype(np.float32), space.high.astype(np.float32)
    buffers = [_EpisodeBuffer(task) for _ in envs]
    obs = np.stack([env.reset(seed=int(rng.integers(2**31)))[0] for env in envs]).astype(np.float32)
    running = list(range(len(envs)))
    episodes: list[dict[str, np.ndarray]] = []
    stored = taken = 0
    try:
        with progress_bar(description, total=steps) as bar:
            rounds = 0
            while taken < steps:
                rounds += 1
                if rounds % STOP_CHECK_ROUNDS == 0 and (signum := _stop_signal()) is not None:
                    raise _stopped(signum, description)
                active = running[: steps - taken]  # the last round may need fewer envs
                actions = np.clip(policy(obs[active], rng), -1.0, 1.0).astype(np.float32)
                env_actions = low + (actions + 1.0) * 0.5 * (high - low)
                finished = []
                for row, i in enumerate(active):
                    next_obs, reward, terminated, truncated, _ = envs[i].step(env_actions[row])
                    buf = buffers[i]
                    k = buf.size
                    buf.obs[k], buf.act[k], buf.rew[k] = obs[i], env_actions[row], reward
                    buf.next_obs[k] = next_obs
                    buf.term[k], buf.trunc[k] = terminated, truncated and not terminated
                    buf.size = k + 1
                    obs[i] = next_obs
                    if terminated or truncated:
                        finished.append(i)
                taken += len(active)
                for i in finished:
                    episode = buffers[i].take()
                    stored += episode["rewards"].size
                    bar.advance(episode["rewards"].size)
                    episodes.append(episode)
                    others = len(running) - 1
                    if stored + others * longest < steps:  # a whole new episode still fits
                        obs[i] = envs[i].reset(seed=int(rng.integers(2**31)))[0]
                    else:
                        running.remove(i)
            for i in running:  # the budget is reached: cut what is in flight, as a timeout
                if buffers[i].size:
                    episodes.append(buffers[i].take())
    finally:
        for env in envs:
            env.close()
    arrays = {key: np.concatenate([ep[key] for ep in episodes]) for key in episodes[0]}
    return TransitionDataset.from_arrays(**arrays, source=f"{task.name} ({description})")


@dataclass(frozen=True)
class PolicySource:
    """What acts in a segment: uniform random actions, or a saved actor with sampled actions.

    Only a file name travels to worker processes; each builds its own policy from it.
    """

    actor_file: str | None = None
    label: str = "uniform random actions"

    def build(self, task: Task, seed: int, device: str = "cpu") -> BatchPolicy:
        if self.actor_file is None:
            return uniform_random_policy(task.act_dim)
        from mopo_kit.data.actor import load_actor

        actor, _ = load_actor(Path(self.actor_file), device)
        return actor_policy(actor, seed)


@dataclass(frozen=True)
class Segment:
    """``steps`` transitions collected with ``policy``."""

    policy: PolicySource
    steps: int


#: Shards per segment: at most this many, and none shorter than four episode time limits.
MAX_SHARDS = 4
#: Env for the number of collection worker processes (default: the CPU cores, at most the shards).
WORKERS_ENV = "MOPO_KIT_COLLECT_WORKERS"


def shard_sizes(task: Task, steps: int) -> list[int]:
    """How a segment of ``steps`` is split; depends on the task and ``steps`` alone."""
    count = max(1, min(MAX_SHARDS, steps // (4 * task.max_episode_steps)))
    base, extra = divmod(steps, count)
    return [base + (1 if i < extra else 0) for i in range(count)]


def _shard_seed(seed: int, segment: int, shard: int) -> int:
    return int(np.random.SeedSequence([seed, segment, shard]).generate_state(1)[0])


def _collect_shard(task: Task, source: PolicySource, steps: int, seed: int, num_envs: int, device: str = "cpu") -> TransitionDataset:
    return collect_transitions(task, source.build(task, seed, device), steps, seed, num_envs=num_envs, description="shard")


def _shard_result(future: concurrent.futures.Future, description: str, poll: float = 0.5) -> TransitionDataset:
    """Wait for one shard, looking at this process's stop flag every ``poll`` seconds."""
    while True:
        if (signum := stop_requested()) is not None:
            raise _stopped(signum, description)
        try:
            return future.result(timeout=poll)
        except concurrent.futures.TimeoutError:
            continue
        except StopRequested as exc:  # a worker saw the stop first: say it with this process's signal
            raise _stopped(stop_requested() or exc.signum, description) from None


def _picklable(*objects: object) -> bool:
    try:
        pickle.dumps(objects)
        return True
    except Exception:  # pickling raises many types (PicklingError, AttributeError, TypeError)
        return False


def _init_worker(stop: "multiprocessing.synchronize.Event", parent_pid: int) -> None:
    """A worker process: one torch thread (the shards are the parallelism; set before any torch
    work, which keeps fork safe) and no progress bars (the parent's bar counts the shards). The
    calling process keeps its own thread count.

    It stops when the parent sets ``stop`` (a graceful stop, or an interrupt or error on the
    parent's way out), ignores SIGINT (the parent decides what a terminal's Ctrl-C means) and is
    killed when the parent dies: a shard has nothing worth finishing for nobody."""
    global _worker_stop
    import torch

    die_with_parent(signal.SIGKILL, parent_pid)
    torch.set_num_threads(1)
    os.environ[QUIET_ENV] = "1"
    _worker_stop = stop


def _worker_context(device: str = "cpu") -> multiprocessing.context.BaseContext:
    """Fork where there is one (Linux): no re-import of the user's ``__main__``, so scripts without a
    ``if __name__ == "__main__"`` guard still work, as with PyTorch's DataLoader workers. Spawn
    elsewhere, and for CUDA workers (CUDA cannot be used in a forked child of a CUDA process)."""
    methods = multiprocessing.get_all_start_methods()
    if str(device).startswith("cuda"):
        return multiprocessing.get_context("spawn")
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def default_workers() -> int:
    explicit = os.environ.get(WORKERS_ENV)
    return int(explicit) if explicit else (os.cpu_count() or 1)


def collect_segments(
    task: Task,
    segments: list[Segment],
    seed: int,
    workers: int | None = None,
    num_envs: int = 16,
    description: str = "collect",
    device: str = "cpu",
) -> TransitionDataset:
    """Collect every segment (in order) into one dataset, shards in parallel worker processes."""
    device = str(device)
    if not segments or any(seg.steps <= 0 for seg in segments):
        raise ValueError("every segment needs a positive number of steps")
    jobs = [
        (seg.policy, steps, _shard_seed(seed, i, j))
        for i, seg in enumerate(segments)
        for j, steps in enumerate(shard_sizes(task, seg.steps))
    ]
    workers = max(1, min(workers or default_workers(), len(jobs)))
    if workers > 1 and not _picklable(task, [source for source, _, _ in jobs]):
        workers = 1  # e.g. a plugin task with a lambda termination fn: same data, one process
    total = sum(steps for _, steps, _ in jobs)
    parts: list[TransitionDataset] = []
    with progress_bar(description, total=total) as bar:
        if workers == 1:
            for source, steps, shard_seed in jobs:
                try:
                    parts.append(_collect_shard(task, source, steps, shard_seed, num_envs, device))
                except StopRequested as exc:  # said for the whole collection, not the shard
                    raise _stopped(exc.signum, description) from None
                bar.advance(steps)
        else:
            context = _worker_context(device)
            stop = context.Event()
            with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(stop, os.getpid())) as pool:
                futures = [pool.submit(_collect_shard, task, src, steps, s, num_envs, device) for src, steps, s in jobs]
                try:
                    for future, (_, steps, _) in zip(futures, jobs):
                        parts.append(_shard_result(future, description))
                        bar.advance(steps)
                except BaseException:  # a stop, an interrupt or a failed shard: the workers stop too
                    stop.set()
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
    return TransitionDataset.concatenate(parts, source=f"{task.name} ({description})")
