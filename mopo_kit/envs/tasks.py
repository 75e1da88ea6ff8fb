"""Tasks: a MuJoCo environment, its rollout termination function and its D4RL reference scores.

Registered through ``register_tasks`` like any plugin's tasks. Reference min/max are D4RL's
(``d4rl/infos.py``); on Gymnasium v5 environments normalized scores are *not* strictly comparable
with published D4RL (gym v2) numbers — see docs/datasets.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import gymnasium as gym
import mujoco

from mopo_kit.envs import termination as term
from mopo_kit.envs.ood import AngleReward, JumpReward
from mopo_kit.hookspecs import hookimpl

_log = logging.getLogger("mopo_kit.mujoco")
#: MuJoCo 4 warns on every HalfCheetah load that the XML's ``settotalmass`` is deprecated; the
#: message goes to stderr and MUJOCO_LOG.TXT in the working directory and would break the CLI's
#: one-line output. It is a note for gymnasium's model file, not for users.
_KNOWN_NOISE = ("compiler attribute 'settotalmass' is deprecated",)


def _route_mujoco_warnings() -> None:
    """Send MuJoCo's C-level warnings to Python logging, dropping the known deprecation note."""
    if mujoco.get_mju_user_warning() is not None:
        return  # the user (or an earlier call) installed a handler: keep it

    def handler(message: str) -> None:
        if not message.startswith(_KNOWN_NOISE):
            _log.warning("%s", message)

    mujoco.set_mju_user_warning(handler)


@dataclass(frozen=True)
class Task:
    """A control task: how to make its real environment and how model rollouts end."""

    name: str
    env_id: str
    obs_dim: int
    act_dim: int
    termination_fn: term.TerminationFn
    ref_min_score: float | None = None
    ref_max_score: float | None = None
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    max_episode_steps: int = 1000
    description: str = ""
    #: Wraps the Gymnasium env to give the task its own reward (and termination), e.g.
    #: :class:`~mopo_kit.envs.ood.JumpReward`; ``None`` keeps the env's. A class or a module-level
    #: function, so the task still pickles into collection workers.
    wrapper: Callable[[gym.Env], gym.Env] | None = None

    def make_env(self, **overrides: Any) -> gym.Env:
        """A fresh real environment (time limit included)."""
        kwargs = {**self.env_kwargs, **overrides}
        _route_mujoco_warnings()
        env = gym.make(self.env_id, max_episode_steps=self.max_episode_steps, **kwargs)
        return env if self.wrapper is None else self.wrapper(env)

    @property
    def reward_fn(self) -> Callable[..., float] | None:
        """The per-step reward the wrapper computes (a pure function of the simulator state), if any."""
        return getattr(self.wrapper, "reward_fn", None)

    def normalized_score(self, episode_return: float) -> float:
        """D4RL-normalized score: 100 · (return − ref_min) / (ref_max − ref_min)."""
        if self.ref_min_score is None or self.ref_max_score is None:
            raise ValueError(f"task '{self.name}' has no reference scores")
        span = self.ref_max_score - self.ref_min_score
        return 100.0 * (episode_return - self.ref_min_score) / span


HALFCHEETAH = Task(
    name="halfcheetah",
    env_id="HalfCheetah-v5",
    obs_dim=17,
    act_dim=6,
    termination_fn=term.never_done,
    ref_min_score=-280.178953,
    ref_max_score=12135.0,
    description="HalfCheetah-v5, run forward; model rollouts never terminate",
)
HOPPER = Task(
    name="hopper",
    env_id="Hopper-v5",
    obs_dim=11,
    act_dim=3,
    termination_fn=term.hopper_done,
    ref_min_score=-20.272305,
    ref_max_score=3234.3,
    description="Hopper-v5, hop forward; terminates when unhealthy (|s'|<100 check fixed)",
)
WALKER2D = Task(
    name="walker2d",
    env_id="Walker2d-v5",
    obs_dim=17,
    act_dim=6,
    termination_fn=term.walker2d_done,
    ref_min_score=1.629008,
    ref_max_score=4592.3,
    description="Walker2d-v5, walk forward; terminates unless 0.8<z<2 and |angle|<1",
)
ANT = Task(
    name="ant",
    env_id="Ant-v5",
    obs_dim=27,
    act_dim=8,
    termination_fn=term.ant_done,
    ref_min_score=-325.6,
    ref_max_score=3879.7,
    env_kwargs={"include_cfrc_ext_in_observation": False},
    description="Ant-v5 with the 27-dim observation (no contact forces), as MOPO's ant code",
)

BUILTIN_TASKS: tuple[Task, ...] = (HALFCHEETAH, HOPPER, WALKER2D, ANT)

# MOPO's out-of-distribution tasks (paper §5.2, docs/ood.md). No normalized-score references: the
# paper reports raw returns for them and D4RL has none.
HALFCHEETAH_JUMP = Task(
    name="halfcheetah-jump",
    env_id="HalfCheetah-v5",
    obs_dim=17,
    act_dim=6,
    termination_fn=term.halfcheetah_jump_done,
    wrapper=JumpReward,
    description="HalfCheetah-v5 rewarded for jumping: -0.1|a|^2 + min(v_x, 3) + 15(z - z_init); never terminates",
)
ANT_ANGLE = Task(
    name="ant-angle",
    env_id="Ant-v5",
    obs_dim=27,
    act_dim=8,
    termination_fn=term.ant_angle_done,
    env_kwargs={"include_cfrc_ext_in_observation": False},
    wrapper=AngleReward,
    description="Ant-v5 (27-dim obs) rewarded for running at 30 degrees: v.(cos30, sin30) - 0.5|a|^2 - contact + 1",
)

#: Tasks whose datasets relabel another task's replay buffer (they have no random/medium/... sets).
OOD_TASKS: tuple[Task, ...] = (HALFCHEETAH_JUMP, ANT_ANGLE)


def get_task(name: str) -> Task:
    """The registered task ``name`` (built-in or a plugin's); unknown names raise one clear line."""
    from mopo_kit.plugins import get_registry

    return get_registry().create("task", name)


def _task_factory(task: Task):
    def factory() -> Task:
        return task

    factory.__doc__ = task.description
    return factory


@hookimpl
def register_tasks(register) -> None:
    for task in BUILTIN_TASKS + OOD_TASKS:
        register(task.name, _task_factory(task), description=task.description)
