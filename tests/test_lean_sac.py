"""The lean SAC train step computes SB3's update; the mixed buffer mixes as MOPO does."""

from __future__ import annotations

import numpy as np
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.logger import configure

from mopo_kit.data.collect import collect_transitions, uniform_random_policy
from mopo_kit.envs.tasks import HOPPER
from mopo_kit.policy.buffer import MixedReplayBuffer
from mopo_kit.policy.lean_sac import LeanSAC, action_log_prob
from mopo_kit.testing_models import linear_system_dataset


def _sac(cls, data, env):
    model = cls(
        "MlpPolicy", env, buffer_size=1, learning_starts=0, target_entropy=-3.0, seed=0, device="cpu",
        replay_buffer_class=MixedReplayBuffer, replay_buffer_kwargs={"real_data": data, "seed": 0},
        policy_kwargs={"net_arch": [64, 64]},
    )
    model.set_logger(configure(None, []))
    return model


def test_lean_train_equals_sb3_train():
    data = collect_transitions(HOPPER, uniform_random_policy(3), 600, seed=0, num_envs=4)
    env = HOPPER.make_env()
    sb3, lean = _sac(SAC, data, env), _sac(LeanSAC, data, env)
    lean.policy.load_state_dict(sb3.policy.state_dict())
    # model rows in the pool so that batches mix real and model data
    for model in (sb3, lean):
        rng = torch.Generator().manual_seed(3)
        model.replay_buffer.add_model(torch.randn(500, 11, generator=rng), torch.rand(500, 3, generator=rng) * 2 - 1,
                                      torch.randn(500, generator=rng), torch.randn(500, 11, generator=rng), torch.rand(500, generator=rng) < 0.1)
        model.replay_buffer.generator.manual_seed(1)
    torch.manual_seed(7)
    sb3.train(gradient_steps=5, batch_size=64)
    torch.manual_seed(7)
    lean.train(gradient_steps=5, batch_size=64)
    for (name, a), (_, b) in zip(sb3.policy.named_parameters(), lean.policy.named_parameters()):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), name
    for (name, a), (_, b) in zip(sb3.critic_target.named_parameters(), lean.critic_target.named_parameters()):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7), name
    assert torch.allclose(sb3.log_ent_coef, lean.log_ent_coef, atol=1e-7)
    for key in ("train/actor_loss", "train/critic_loss", "train/ent_coef"):
        assert np.isclose(sb3.logger.name_to_value[key], lean.logger.name_to_value[key], rtol=1e-5), key


def test_action_log_prob_matches_sb3():
    env = HOPPER.make_env()
    model = _sac(SAC, collect_transitions(HOPPER, uniform_random_policy(3), 100, seed=0, num_envs=2), env)
    obs = torch.randn(32, 11)
    torch.manual_seed(0)
    a1, l1 = model.actor.action_log_prob(obs)
    torch.manual_seed(0)
    a2, l2 = action_log_prob(model.actor, obs)
    assert torch.equal(a1, a2) and torch.allclose(l1, l2, atol=1e-6)


def test_mixed_buffer_real_ratio_and_fifo():
    data = linear_system_dataset(n=400, obs_dim=2, act_dim=1)
    from gymnasium import spaces

    box = lambda n: spaces.Box(-1, 1, (n,), np.float32)  # noqa: E731
    buffer = MixedReplayBuffer(1, box(2), box(1), real_data=data, real_ratio=0.05, model_capacity=100)
    only_real = buffer.sample(256)
    assert only_real.observations.shape == (256, 2)  # empty pool: all real
    marker = torch.full((150, 2), 1000.0)
    marker[:50] = -1000.0  # the oldest 50 rows are overwritten by FIFO (capacity 100)
    buffer.add_model(marker, torch.zeros(150, 1), torch.ones(150), marker, torch.zeros(150, dtype=torch.bool))
    assert buffer.model_size == 100
    batch = buffer.sample(256)
    from_model = (batch.observations[:, 0] == 1000.0).sum().item()
    assert from_model == 256 - int(256 * 0.05)  # 244 model rows, 12 real
    assert not (batch.observations[:, 0] == -1000.0).any()
    state = buffer.pool_state()
    assert state["obs"].shape[0] == 100 and (state["obs"][:, 0] == 1000.0).all()


def test_a_train_calls_batches_are_drawn_at_once_with_the_mix_per_row():
    from gymnasium import spaces

    data = linear_system_dataset(n=300, seed=0)
    box = lambda n: spaces.Box(-1, 1, (n,), np.float32)  # noqa: E731
    buffer = MixedReplayBuffer(1, box(data.obs_dim), box(data.act_dim), real_data=data, seed=0)
    assert (buffer.sample_indices(64, 5) < 300).all(), "an empty pool: every row real"
    buffer.add_model(*(torch.zeros(100, d) for d in (data.obs_dim, data.act_dim)), torch.zeros(100), torch.zeros(100, data.obs_dim), torch.zeros(100, dtype=torch.bool))
    idx = buffer.sample_indices(256, 7)
    assert idx.shape == (7, 256) and (idx[:, :12] < 300).all() and ((idx[:, 12:] >= 300) & (idx[:, 12:] < 400)).all()
    buffer.generator.manual_seed(5)
    one = buffer.sample_indices(256, 1)[0]
    buffer.generator.manual_seed(5)
    assert torch.equal(buffer.sample(256).observations, buffer.rows_at(one).observations), "sample() is one draw of sample_indices"


def test_bf16_update_is_close_to_float32_and_keeps_float32_state():
    """``compute_dtype`` bf16 (``--precision bf16``): the hidden GEMMs in bfloat16, everything kept float32."""
    data = collect_transitions(HOPPER, uniform_random_policy(3), 600, seed=0, num_envs=4)
    env = HOPPER.make_env()
    ref, low = _sac(LeanSAC, data, env), _sac(LeanSAC, data, env)
    low.policy.load_state_dict(ref.policy.state_dict())
    low.compute_dtype = torch.bfloat16
    for model in (ref, low):
        model.replay_buffer.generator.manual_seed(1)
    torch.manual_seed(7)
    ref.train(gradient_steps=5, batch_size=64)
    torch.manual_seed(7)
    low.train(gradient_steps=5, batch_size=64)
    moved = changed = 0.0
    for (name, a), (_, b) in zip(ref.policy.named_parameters(), low.policy.named_parameters()):
        assert b.dtype == torch.float32 and (b.grad is None or b.grad.dtype == torch.float32), name
        moved += (a - b).abs().sum().item()
    for (_, a), (_, start) in zip(ref.policy.named_parameters(), _sac(LeanSAC, data, env).policy.named_parameters()):
        changed += (a - start).abs().sum().item()
    assert 0 < moved < 0.02 * changed, "bf16 ran (weights differ) and the 5 updates moved them about as float32's did"
    for optimizer in (low.actor.optimizer, low.critic.optimizer):
        for state in optimizer.state.values():
            assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())
    for key in ("train/actor_loss", "train/critic_loss", "train/ent_coef"):
        assert np.isclose(ref.logger.name_to_value[key], low.logger.name_to_value[key], rtol=0.03), key
