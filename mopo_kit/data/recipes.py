"""D4RL's dataset recipes as collection segments (reference sheet §6).

* ``random``: uniform actions.
* ``medium``: the medium policy (about a third of the expert's return), actions sampled.
* ``medium-expert``: half medium rollouts, half expert rollouts (D4RL concatenates the two).
* ``mixed`` (D4RL's medium-replay): the replay buffer of SAC trained up to medium. The buffer
  itself was not stored (tens of MB per task); it is *regenerated* from the training run's
  snapshots: the first ``learning_starts`` steps with uniform actions, as SAC's warm-up was, then
  each shipped snapshot for the stretch of training it stands for. The default size is that
  buffer's length (the training steps to medium).
"""

from __future__ import annotations

from mopo_kit.data.collect import PolicySource, Segment
from mopo_kit.data.shipped import ShippedPolicy, TaskPolicies

KINDS = ("random", "medium", "mixed", "medium-expert")
#: D4RL's sizes; "mixed" (medium-replay) is a replay buffer whose size varies by task.
D4RL_STEPS: dict[str, int | None] = {"random": 1_000_000, "medium": 1_000_000, "mixed": None, "medium-expert": 2_000_000}
#: CPU defaults (scaled down from D4RL, said so in every file's metadata).
DEFAULT_STEPS: dict[str, int] = {"random": 200_000, "medium": 200_000, "medium-expert": 400_000}


def _source(policy: ShippedPolicy, role: str) -> PolicySource:
    return PolicySource(str(policy.path), f"{role} (SAC step {policy.step:,})")


def default_steps(kind: str, policies: TaskPolicies | None) -> int:
    if kind == "mixed":
        if policies is None:
            raise ValueError("'mixed' needs behavior policies")
        return policies.replay_steps
    return DEFAULT_STEPS[kind]


def replay_segments(policies: TaskPolicies, steps: int) -> list[Segment]:
    """The replay buffer up to medium as segments, scaled to ``steps`` transitions in all.

    Snapshot i stands for training steps [step_i, step_{i+1}); the last one runs to the
    medium step. Scaling keeps the proportions (largest remainder), so ``--steps`` can ask for
    a bigger or smaller buffer with the same mix of policies.
    """
    snapshot_steps = [p.step for p in policies.replay]
    order = [policies.learning_starts] + snapshot_steps + [policies.replay_steps]
    if not snapshot_steps or any(b <= a for a, b in zip(order[1:-1], order[2:])) or order[1] < order[0]:
        raise ValueError(
            f"replay snapshots of '{policies.task}' are not in training order "
            f"(warm-up {policies.learning_starts}, snapshots {snapshot_steps}, medium {policies.replay_steps})"
        )
    bounds = [0, policies.learning_starts] + snapshot_steps[1:] + [policies.replay_steps]
    sources = [PolicySource(label="uniform random actions (SAC warm-up)")]
    sources += [_source(p, "replay snapshot") for p in policies.replay]
    lengths = [hi - lo for lo, hi in zip(bounds[:-1], bounds[1:])]
    total = sum(lengths)
    exact = [steps * n / total for n in lengths]
    sizes = [int(x) for x in exact]
    for i in sorted(range(len(exact)), key=lambda i: sizes[i] - exact[i])[: steps - sum(sizes)]:
        sizes[i] += 1
    return [Segment(src, n) for src, n in zip(sources, sizes) if n > 0]


def dataset_segments(kind: str, steps: int, policies: TaskPolicies | None) -> list[Segment]:
    """What to collect for one ``<task>-<kind>`` dataset of ``steps`` transitions."""
    if kind == "random":
        return [Segment(PolicySource(), steps)]
    if policies is None:
        raise ValueError(f"kind '{kind}' needs behavior policies")
    if kind == "medium":
        return [Segment(_source(policies.medium, "medium"), steps)]
    if kind == "medium-expert":
        half = steps // 2
        return [Segment(_source(policies.medium, "medium"), half), Segment(_source(policies.expert, "expert"), steps - half)]
    if kind == "mixed":
        return replay_segments(policies, steps)
    raise ValueError(f"unknown dataset kind '{kind}' (known: {', '.join(KINDS)})")


__all__ = ["KINDS", "D4RL_STEPS", "DEFAULT_STEPS", "default_steps", "dataset_segments", "replay_segments"]
