"""D4RL's dataset recipes as collection segments (reference sheet §6).

* ``random``: uniform actions.
* ``medium``: the medium policy (about a third of the expert's return), actions sampled.
* ``medium-expert``: half medium rollouts, half expert rollouts (D4RL concatenates the two).
* ``mixed`` (D4RL's medium-replay): the replay buffer of SAC trained up to medium. The buffer
  itself was not stored (tens of MB per task); it is *regenerated* from the training run's
  snapshots: the first ``learning_starts`` steps with uniform actions, as SAC's warm-up was, then
  each shipped snapshot for the stretch of training it stands for. The default size is that
  buffer's length (the training steps to medium).
* the out-of-distribution datasets (``halfcheetah-jump``, ``ant-angle``, docs/ood.md): the whole
  replay buffer of the expert's SAC run, regenerated the same way from that run's snapshots.
"""

from __future__ import annotations

from mopo_kit.data.collect import PolicySource, Segment
from mopo_kit.data.shipped import BehaviorRun, ShippedPolicy, TaskPolicies

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


def _training_segments(
    learning_starts: int, snapshots: tuple[ShippedPolicy, ...], end_step: int, steps: int, role: str, what: str
) -> list[Segment]:
    """SAC's replay buffer of training steps [0, end_step) as segments, scaled to ``steps`` in all.

    The first ``learning_starts`` steps are uniform actions (SAC's warm-up); snapshot i stands
    for training steps [step_i, step_{i+1}) (the first from the warm-up's end), the last one up
    to ``end_step``. Scaling keeps the proportions (largest remainder), so ``--steps`` can ask for
    a bigger or smaller buffer with the same mix of policies.
    """
    snapshot_steps = [p.step for p in snapshots]
    order = [learning_starts] + snapshot_steps + [end_step]
    if not snapshot_steps or any(b <= a for a, b in zip(order[1:-1], order[2:])) or order[1] < order[0]:
        raise ValueError(
            f"{what} are not in training order (warm-up {learning_starts}, snapshots {snapshot_steps}, end {end_step})"
        )
    bounds = [0, learning_starts] + snapshot_steps[1:] + [end_step]
    sources = [PolicySource(label="uniform random actions (SAC warm-up)")]
    sources += [_source(p, role) for p in snapshots]
    lengths = [hi - lo for lo, hi in zip(bounds[:-1], bounds[1:])]
    total = sum(lengths)
    exact = [steps * n / total for n in lengths]
    sizes = [int(x) for x in exact]
    for i in sorted(range(len(exact)), key=lambda i: sizes[i] - exact[i])[: steps - sum(sizes)]:
        sizes[i] += 1
    return [Segment(src, n) for src, n in zip(sources, sizes) if n > 0]


def replay_segments(policies: TaskPolicies, steps: int) -> list[Segment]:
    """The replay buffer up to medium (``mixed``): the replay snapshots, the last up to the medium step."""
    what = f"replay snapshots of '{policies.task}' (medium at {policies.replay_steps})"
    return _training_segments(policies.learning_starts, policies.replay, policies.replay_steps, steps, "replay snapshot", what)


def run_segments(run: BehaviorRun, steps: int | None = None) -> list[Segment]:
    """The *whole* replay buffer of a SAC run up to its expert (the out-of-distribution datasets,
    MOPO §5.2), regenerated from the run's snapshots; ``steps`` defaults to the run's length."""
    what = f"run snapshots of '{run.task}' (expert at {run.end_step})"
    return _training_segments(run.learning_starts, run.snapshots, run.end_step, steps or run.end_step, "run snapshot", what)


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


__all__ = ["KINDS", "D4RL_STEPS", "DEFAULT_STEPS", "default_steps", "dataset_segments", "replay_segments", "run_segments"]
