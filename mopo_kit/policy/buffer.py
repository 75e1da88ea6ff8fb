"""The replay mix of MOPO: real transitions (5 %) and model rollouts (95 %) in one SB3 buffer.

Injected into SB3's SAC through ``replay_buffer_class``; SB3's ``train()`` calls :meth:`sample`
as with any buffer. Storage is torch tensors: rollouts write 50,000 rows per model step in one
slice assignment and sampling is one ``randint`` + gather, with no NumPy round trip.

Device: SB3 hands the buffer its ``device``; the rows and the sampling generator live there, so
a batch never leaves the GPU. :meth:`pool_state` returns CPU tensors, so a checkpoint written on
one device loads on any other.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from torch import Tensor

from mopo_kit.data.dataset import TransitionDataset


def _scale_actions(actions: np.ndarray, space: spaces.Box) -> np.ndarray:
    """Env units -> [-1, 1], the space SB3's SAC trains in (``policy.scale_action``)."""
    low, high = space.low.astype(np.float32), space.high.astype(np.float32)
    return 2.0 * (actions - low) / (high - low) - 1.0


class MixedReplayBuffer(ReplayBuffer):
    """Batches of ``real_ratio`` dataset transitions and the rest from a FIFO pool of model rollouts.

    ``real_ratio`` 0.05 with batch 256 gives MOPO's 12 real + 244 model rows
    (``int(256·0.05)``). Until the pool holds anything, batches are all real.
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: torch.device | str = "cpu",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        *,
        real_data: TransitionDataset,
        real_ratio: float = 0.05,
        model_capacity: int = 1_250_000,
        seed: int = 0,
    ) -> None:
        super().__init__(1, observation_space, action_space, device=device, n_envs=1)  # SB3's own arrays unused
        if not 0.0 <= real_ratio <= 1.0:
            raise ValueError("real_ratio must be in [0, 1]")
        self.real_ratio = float(real_ratio)
        self.device = torch.device(self.device)  # SB3 resolved "auto"
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        assert isinstance(action_space, spaces.Box)
        obs_dim, act_dim = real_data.obs_dim, real_data.act_dim
        # one packed row per transition, columns [obs | act | rew | next_obs | done]: a batch is
        # one gather, and real rows (first) and model rows (after them) share the same storage
        self._columns = {"obs": (0, obs_dim), "act": (obs_dim, obs_dim + act_dim), "rew": (obs_dim + act_dim, obs_dim + act_dim + 1)}
        self._columns["next"] = (obs_dim + act_dim + 1, 2 * obs_dim + act_dim + 1)
        self._columns["done"] = (2 * obs_dim + act_dim + 1, 2 * obs_dim + act_dim + 2)
        width = 2 * obs_dim + act_dim + 2
        self.n_real = len(real_data)
        self.capacity = int(model_capacity)
        self.rows = torch.empty(self.n_real + self.capacity, width, device=self.device)
        real = {
            "obs": torch.from_numpy(real_data.observations),
            "act": torch.from_numpy(_scale_actions(real_data.actions, action_space)),
            "rew": torch.from_numpy(real_data.rewards).unsqueeze(1),
            "next": torch.from_numpy(real_data.next_observations),
            "done": torch.from_numpy(real_data.terminals.astype(np.float32)).unsqueeze(1),
        }
        for key, (lo, hi) in self._columns.items():
            self.rows[: self.n_real, lo:hi] = real[key]
        self.model_size = 0
        self.model_ptr = 0

    # ---------------------------------------------------------------------------- writing
    def add_model(self, obs: Tensor, act: Tensor, rew: Tensor, next_obs: Tensor, done: Tensor) -> None:
        """Append a batch of model transitions (FIFO: the oldest rows are overwritten)."""
        n = obs.shape[0]
        if n > self.capacity:  # keep the newest rows only
            obs, act, rew, next_obs, done = (t[-self.capacity :] for t in (obs, act, rew, next_obs, done))
            n = self.capacity
        values = {"obs": obs, "act": act, "rew": rew.reshape(n, 1), "next": next_obs, "done": done.reshape(n, 1).float()}
        first = min(n, self.capacity - self.model_ptr)
        base = self.n_real + self.model_ptr
        for key, (lo, hi) in self._columns.items():
            self.rows[base : base + first, lo:hi] = values[key][:first]
            if first < n:
                self.rows[self.n_real : self.n_real + n - first, lo:hi] = values[key][first:]
        self.model_ptr = (self.model_ptr + n) % self.capacity
        self.model_size = min(self.model_size + n, self.capacity)

    def add(self, *args: Any, **kwargs: Any) -> None:  # pragma: no cover - SB3 collection is not used
        raise NotImplementedError("MixedReplayBuffer is filled by model rollouts (add_model), not env steps")

    def size(self) -> int:
        return self.model_size + self.n_real

    # ---------------------------------------------------------------------------- reading
    def _split(self, rows: Tensor) -> ReplayBufferSamples:
        c = self._columns
        return ReplayBufferSamples(
            rows[:, c["obs"][0] : c["obs"][1]],
            rows[:, c["act"][0] : c["act"][1]],
            rows[:, c["next"][0] : c["next"][1]],
            rows[:, c["done"][0] : c["done"][1]],
            rows[:, c["rew"][0] : c["rew"][1]],
        )

    def sample(self, batch_size: int, env: Any = None) -> ReplayBufferSamples:
        return self.rows_at(self.sample_indices(batch_size, 1)[0])

    def sample_indices(self, batch_size: int, steps: int) -> Tensor:
        """Row indices of ``steps`` batches, (steps, batch_size), drawn on the buffer's device.

        Each row holds the real rows first, then the model rows (the pool does not change between
        two rollouts, so a whole ``train()`` call's batches can be drawn at once). With
        ``steps=1`` the draws are exactly :meth:`sample`'s.
        """
        n_real = batch_size if self.model_size == 0 else int(batch_size * self.real_ratio)
        n_model = batch_size - n_real
        idx = torch.randint(self.n_real, (steps, n_real), generator=self.generator, device=self.device)
        if n_model:
            model_idx = torch.randint(self.model_size, (steps, n_model), generator=self.generator, device=self.device).add_(self.n_real)
            idx = torch.cat([idx, model_idx], dim=1)
        return idx

    def rows_at(self, idx: Tensor) -> ReplayBufferSamples:
        """The batch at row indices ``idx`` (a gather from fixed storage: CUDA-graph safe)."""
        return self._split(self.rows[idx])

    # ------------------------------------------------------------------------ checkpointing
    def pool_state(self) -> dict[str, Tensor]:
        """The filled part of the model pool *as laid out in memory*, and the write pointer.

        The sampler draws physical row indices, so a resumed run continues the uninterrupted
        run's trajectory only if the rows come back in the same places: reordering a wrapped
        pool "oldest first" (as checkpoints before format 2 did) sends every later draw to
        other transitions.
        """
        pool = self.rows[self.n_real : self.n_real + self.model_size]
        state = {key: pool[:, lo:hi].cpu().contiguous() for key, (lo, hi) in self._columns.items()}
        state["ptr"] = torch.tensor(self.model_ptr)
        return state

    def load_pool_state(self, state: dict[str, Tensor]) -> None:
        self.model_size, self.model_ptr = 0, 0
        if state["obs"].shape[0]:
            self.add_model(state["obs"], state["act"], state["rew"], state["next"], state["done"])
        if "ptr" in state:  # format 2: physical layout; older checkpoints were saved oldest first
            self.model_ptr = int(state["ptr"]) % self.capacity
