"""``sb3_sac``: Stable-Baselines3 SAC on MOPO's replay mix and rollout schedule.

Defaults are the original MOPO's (reference sheet §3): 256×256 ReLU actor and twin critics,
lr 3e-4 (actor, critics, α), batch 256, γ 0.99, τ 0.005, learned α from 1.0, target entropy −3
for every task; real_ratio 0.05; every 1,000 gradient steps a rollout of h steps from 50,000
dataset start states with the current *stochastic* policy; the model pool keeps the last 5
rollouts (5 · h · 50,000 rows, FIFO).

The rollout is batched end to end: one actor forward, one model step and one buffer slice write
per horizon step for all 50,000 rows; terminated rows drop out.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.logger import Logger

from mopo_kit.data.dataset import TransitionDataset
from mopo_kit.stop import stop_requested
from mopo_kit.device import check_device_spec, resolve_device, restore_generator
from mopo_kit.envs.model_env import ModelStep, PenalizedModelEnv, StartStates
from mopo_kit.errors import MopoKitError
from mopo_kit.fileio import atomic_write_bytes
from mopo_kit.hookspecs import hookimpl
from mopo_kit.policy.buffer import MixedReplayBuffer
from mopo_kit.policy.lean_sac import LeanSAC
from mopo_kit.precision import compute_dtype
from mopo_kit.validation import FINITE, FRACTION, POSITIVE, POSITIVE_INT, SEED, Range, check_fields, require


@dataclass
class SACConfig:
    """SB3 SAC + MOPO schedule settings (defaults: the original MOPO code)."""

    learning_rate: float = 3e-4
    batch_size: int = 256
    gamma: float = 0.99
    tau: float = 0.005
    target_entropy: float = -3.0
    ent_coef: str | float = "auto"  # learned α from 1.0, as MOPO; "auto_0.1" starts it at 0.1
    net_arch: list[int] = field(default_factory=lambda: [256, 256])
    real_ratio: float = 0.05
    rollout_batch_size: int = 50_000
    rollout_freq: int = 1000
    retain_rollouts: int = 5
    lean_train: bool = True
    fused_adam: bool = True
    cuda_graph: bool = True  # on CUDA, capture LeanSAC's update in a CUDA graph (see lean_sac.py)
    seed: int = 0
    device: str = "auto"  # SB3's device: "auto", "cpu", "cuda", "cuda:N" (MOPO passes its config's)

    def __post_init__(self) -> None:
        """Reject a bad number when the optimizer is built, before any rollout or update."""
        where = "sb3_sac param"
        check_fields(self, SAC_RANGES, where=where)
        if isinstance(self.ent_coef, str):
            if self.ent_coef != "auto" and not (self.ent_coef.startswith("auto_") and POSITIVE.accepts(_float_or_none(self.ent_coef[5:]))):
                raise MopoKitError(f"{where} 'ent_coef' must be 'auto', 'auto_<initial α > 0>' or a finite number > 0, got {self.ent_coef!r}")
        else:
            self.ent_coef = require(self.ent_coef, "ent_coef", POSITIVE, where=where)
        if isinstance(self.net_arch, (str, bytes)) or not isinstance(self.net_arch, (list, tuple)):
            raise MopoKitError(f"{where} 'net_arch' must be a list of integers >= 1, got {self.net_arch!r}")
        self.net_arch = [require(width, "net_arch", POSITIVE_INT, where=where) for width in self.net_arch]
        self.device = check_device_spec(self.device, where=where)


#: What each numeric param of :class:`SACConfig` may hold.
SAC_RANGES: dict[str, Range] = {
    "learning_rate": POSITIVE,
    "batch_size": POSITIVE_INT,
    "gamma": FRACTION,
    "tau": FRACTION,
    "target_entropy": FINITE,
    "real_ratio": FRACTION,
    "rollout_batch_size": POSITIVE_INT,
    "rollout_freq": POSITIVE_INT,
    "retain_rollouts": POSITIVE_INT,
    "seed": SEED,
}


def _float_or_none(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


@dataclass
class RolloutStats:
    """What one model rollout produced."""

    transitions: int
    mean_reward: float
    mean_raw_reward: float
    mean_penalty: float
    mean_length: float


class SB3SAC:
    """SB3's SAC (lean ``train()``, same math) trained on real + model transitions (see module doc)."""

    @staticmethod
    def memory_estimate(params: dict[str, Any], *, obs_dim: int, act_dim: int, horizon: int, real_rows: int) -> tuple[dict[str, int], dict[str, str]]:
        """Bytes this optimizer allocates for a setting, before it exists (``mopo_kit.memory``).

        The replay storage is one float32 row [s, a, r, s', done] per real transition and per
        model-pool slot (rollout batch × h × retained rollouts); one rollout step holds a few
        (batch × (obs_dim + 1)) float32 tensors per ensemble member besides (counted as 16 rows).
        """
        cfg = SACConfig(**{k: v for k, v in params.items() if k != "device"})
        width = 4 * (2 * obs_dim + act_dim + 2)
        pool_rows = cfg.retain_rollouts * horizon * cfg.rollout_batch_size
        items = {
            "model pool": pool_rows * width,
            "real rows": real_rows * width,
            "rollout batch": 16 * cfg.rollout_batch_size * 4 * (obs_dim + 1) * 7,
        }
        hints = {"model pool": "--horizon, or the sb3_sac params rollout_batch_size / retain_rollouts", "rollout batch": "the sb3_sac param rollout_batch_size"}
        return items, hints

    def __init__(self, device: str | torch.device = "auto", **params: Any) -> None:
        self.config = SACConfig(device=str(device), **params)
        self.sac: LeanSAC | None = None
        self._steps = 0
        #: rollouts still owed to a model pool that a moved checkpoint left behind (see :meth:`load`)
        self.pool_refill_pending = 0
        self.last_rollout: RolloutStats | None = None

    # ------------------------------------------------------------------------------- set-up
    def setup(self, env: PenalizedModelEnv, model_step: ModelStep, starts: StartStates, real_data: TransitionDataset, horizon: int) -> None:
        cfg = self.config
        self.model_step, self.starts, self.horizon = model_step, starts, int(horizon)
        policy_kwargs: dict[str, Any] = {"net_arch": list(cfg.net_arch)}
        if cfg.fused_adam:
            policy_kwargs["optimizer_kwargs"] = {"fused": True}
        capacity = cfg.retain_rollouts * self.horizon * cfg.rollout_batch_size
        cls = LeanSAC if cfg.lean_train else SAC
        self.sac = cls(
            "MlpPolicy",
            env,
            learning_rate=cfg.learning_rate,
            buffer_size=1,
            learning_starts=0,
            batch_size=cfg.batch_size,
            tau=cfg.tau,
            gamma=cfg.gamma,
            target_entropy=cfg.target_entropy,
            ent_coef=cfg.ent_coef,
            replay_buffer_class=MixedReplayBuffer,
            replay_buffer_kwargs={"real_data": real_data, "real_ratio": cfg.real_ratio, "model_capacity": capacity, "seed": cfg.seed},
            policy_kwargs=policy_kwargs,
            seed=cfg.seed,
            device=resolve_device(cfg.device),
        )
        self.sac.set_logger(Logger(folder=None, output_formats=[]))  # SB3's configure(None, []) leaves an empty tempdir/SB3-<time> folder per run
        if isinstance(self.sac, LeanSAC):
            self.sac.use_cuda_graph = cfg.cuda_graph
        space = env.action_space
        self.device = self.sac.device
        self._act_low = torch.as_tensor(space.low, dtype=torch.float32, device=self.device)
        self._act_high = torch.as_tensor(space.high, dtype=torch.float32, device=self.device)

    def set_precision(self, precision: str) -> None:
        """``fp32`` or ``bf16`` for the SAC updates' hidden-layer GEMMs (``mopo_kit.precision``);
        parameters, Adam state, losses, Q-values and TD targets stay float32. The lean update only:
        SB3's own ``train()`` (``lean_train: false``) computes in float32."""
        assert self.sac is not None, "set_precision() after setup()"
        if isinstance(self.sac, LeanSAC):
            self.sac.compute_dtype = compute_dtype(precision)

    @property
    def buffer(self) -> MixedReplayBuffer:
        assert self.sac is not None
        return self.sac.replay_buffer  # type: ignore[return-value]

    @property
    def num_steps(self) -> int:
        return self._steps

    # ----------------------------------------------------------------------------- rollouts
    @torch.inference_mode()
    def rollout(self) -> RolloutStats:
        """h model steps from ``rollout_batch_size`` dataset start states, all rows at once."""
        assert self.sac is not None
        actor = self.sac.actor
        actor.set_training_mode(False)
        obs = self.starts.sample(self.config.rollout_batch_size).to(self.device)  # no-op: MOPO puts the starts there
        total, reward_sum, raw_sum, penalty_sum = 0, 0.0, 0.0, 0.0
        alive_steps = torch.zeros(())
        for _ in range(self.horizon):
            act = actor(obs, deterministic=False)  # in [-1, 1], SAC's own action space
            env_act = self._act_low + (act + 1.0) * 0.5 * (self._act_high - self._act_low)
            result = self.model_step(obs, env_act)
            self.buffer.add_model(obs, act, result.reward, result.next_obs, result.terminated)
            n = obs.shape[0]
            total += n
            reward_sum += float(result.reward.sum())
            raw_sum += float(result.raw_reward.sum())
            penalty_sum += float(result.penalty.sum())
            alive_steps += n
            keep = ~result.terminated
            if not bool(keep.any()):
                break
            obs = result.next_obs[keep]
        self.last_rollout = RolloutStats(
            transitions=total,
            mean_reward=reward_sum / total,
            mean_raw_reward=raw_sum / total,
            mean_penalty=penalty_sum / total,
            mean_length=total / self.config.rollout_batch_size,
        )
        return self.last_rollout

    # ----------------------------------------------------------------------------- learning
    def learn(self, steps: int) -> dict[str, float]:
        """``steps`` gradient steps, rolling out in the model every ``rollout_freq`` steps.

        Returns early, after the current update, when a graceful stop is requested
        (:mod:`mopo_kit.stop`); :attr:`num_steps` then says how far it got.
        """
        assert self.sac is not None
        cfg = self.config
        done = 0
        while self.pool_refill_pending > 0 and stop_requested() is None:  # a checkpoint without its pool
            self.rollout()
            self.pool_refill_pending -= 1
        while done < steps:
            if stop_requested() is not None:  # before a rollout: its updates could not follow it
                break
            if self._steps % cfg.rollout_freq == 0:
                self.rollout()
            chunk = min(steps - done, cfg.rollout_freq - self._steps % cfg.rollout_freq)
            self.sac.train(gradient_steps=chunk, batch_size=cfg.batch_size)
            made = getattr(self.sac, "last_train_steps", chunk)  # fewer on a graceful stop
            self._steps += made
            done += made
            if made < chunk:
                break
        values = self.sac.logger.name_to_value
        metrics = {k.split("/", 1)[1]: float(v) for k, v in values.items() if k.startswith("train/")}
        if self.last_rollout is not None:
            metrics.update({f"rollout_{k}": float(v) for k, v in asdict(self.last_rollout).items()})
        return metrics

    # ---------------------------------------------------------------------------- inference
    @torch.inference_mode()
    def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions in env units for a batch of observations."""
        assert self.sac is not None
        self.sac.actor.set_training_mode(False)
        obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.device)
        act = self.sac.actor(obs_t, deterministic=deterministic)
        return (self._act_low + (act + 1.0) * 0.5 * (self._act_high - self._act_low)).cpu().numpy()

    def actor_state_dict(self) -> dict[str, torch.Tensor]:
        assert self.sac is not None
        return self.sac.actor.state_dict()

    # ------------------------------------------------------------------------ checkpointing
    def save(self, path: Path) -> None:
        """Everything to continue training: SB3 model (+ optimizers), model pool, RNG and step count."""
        assert self.sac is not None
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tmp = path / "sac.tmp.zip"
        # not the replay buffer's kwargs: they hold the whole real dataset (17 MB of a 20 MB
        # hopper-mixed checkpoint, pickled at every checkpoint); load() passes them in again
        self.sac.save(tmp, exclude=["replay_buffer_kwargs"])
        tmp.replace(path / "sac.zip")
        extra = {
            "steps": torch.tensor(self._steps),
            "buffer_rng": self.buffer.generator.get_state(),
            "step_rng": self.model_step.generator.get_state(),
            "start_rng": self.starts.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            **{f"pool.{k}": v for k, v in self.buffer.pool_state().items()},
        }
        if self.device.type == "cuda":  # SAC's action noise draws from the CUDA default generator
            extra["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        buffer = io.BytesIO()
        torch.save(extra, buffer)
        atomic_write_bytes(path / "state.pt", buffer.getvalue())

    def load(self, path: Path) -> None:
        """Restore what :meth:`save` wrote into an optimizer already ``setup()``."""
        assert self.sac is not None
        path = Path(path)
        buffer_kwargs = {**self.sac.replay_buffer_kwargs, "model_capacity": 0}  # a throwaway: only its weights are read
        loaded = type(self.sac).load(path / "sac.zip", env=self.sac.get_env(), device=self.device, custom_objects={
            "replay_buffer_class": MixedReplayBuffer,
            "replay_buffer_kwargs": buffer_kwargs,  # replaces the dataset that checkpoints before 0.x pickled
        }, replay_buffer_kwargs=buffer_kwargs)
        self.sac.policy.load_state_dict(loaded.policy.state_dict())
        self.sac.actor.optimizer.load_state_dict(loaded.actor.optimizer.state_dict())
        self.sac.critic.optimizer.load_state_dict(loaded.critic.optimizer.state_dict())
        with torch.no_grad():
            self.sac.log_ent_coef.copy_(loaded.log_ent_coef)
        self.sac.ent_coef_optimizer.load_state_dict(loaded.ent_coef_optimizer.state_dict())
        self.sac._n_updates = loaded._n_updates
        self.sac.__dict__.pop("_graph_state", None)  # captured over the optimizer state just replaced
        # to the CPU: RNG states must be CPU byte tensors, and the pool is copied into the buffer's
        # device rows by load_pool_state (a checkpoint from a CUDA run loads on a CPU-only machine)
        extra = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
        self._steps = int(extra["steps"])
        restore_generator(self.buffer.generator, extra["buffer_rng"], "replay buffer sampler")
        restore_generator(self.model_step.generator, extra["step_rng"], "model step")
        restore_generator(self.starts.generator, extra["start_rng"], "start states")
        torch.set_rng_state(extra["torch_rng"])
        if "cuda_rng" in extra and self.device.type == "cuda":
            torch.cuda.set_rng_state(extra["cuda_rng"], self.device)
        pool = {k[5:]: v for k, v in extra.items() if k.startswith("pool.")}
        if pool:
            self.buffer.load_pool_state(pool)
        else:  # moved without its pool (mopo_kit.experiments.pack): refilled before the next update
            self.buffer.load_pool_state({"obs": torch.empty(0)})
            at_rollout = self._steps % self.config.rollout_freq == 0  # learn() rolls out there anyway
            self.pool_refill_pending = self.config.retain_rollouts - (1 if at_rollout else 0)

    def state(self) -> dict[str, Any]:
        return {"steps": self._steps, "config": asdict(self.config)}


@hookimpl
def register_policy_optimizers(register) -> None:
    register("sb3_sac", SB3SAC, description="Stable-Baselines3 SAC on MOPO's real/model replay mix and rollout schedule")
