"""SB3's SAC with a leaner ``train()``: the same losses and updates, less work per step.

Differences from ``stable_baselines3.sac.SAC.train`` (tests/test_lean_sac.py checks that the
losses and every parameter after an update match SB3's to float tolerance):

* the twin critics run as one batched pass (weights stacked, ``baddbmm``) instead of two;
* the actor loss goes through the critics with *detached* weights: SB3 computes critic weight
  gradients there and throws them away at the next ``zero_grad``;
* the target update is one ``torch._foreach_lerp_`` (= (1−τ)·θ' + τ·θ) instead of a Python loop;
* the squashed-Gaussian sample and log-probability are computed without torch.distributions
  objects (same operations, same random draw);
* losses are kept as tensors and turned into logged numbers once per ``train()`` call.

The SB3 SAC object, its policy, optimizers, saving and loading are untouched.
"""

from __future__ import annotations

import math

import torch
from stable_baselines3 import SAC
from torch import Tensor, nn


_LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))


def action_log_prob(actor: nn.Module, obs: Tensor) -> tuple[Tensor, Tensor]:
    """SB3's ``Actor.action_log_prob`` for the squashed Gaussian, without torch.distributions.

    The same operations in the same order, and the same single ``normal_()`` draw as
    ``Normal.rsample``, so results match SB3 exactly; what goes away is the distribution
    objects' construction and argument validation on every call.
    """
    mean, log_std, _ = actor.get_action_dist_params(obs)
    std = torch.ones_like(mean) * log_std.exp()
    eps = torch.empty(mean.shape, dtype=mean.dtype, device=mean.device).normal_()
    gaussian = mean + eps * std
    actions = torch.tanh(gaussian)
    log_prob = (-((gaussian - mean) ** 2) / (2 * std**2) - std.log() - _LOG_SQRT_2PI).sum(dim=1)
    log_prob = log_prob - torch.sum(torch.log(1 - actions**2 + 1e-6), dim=1)
    return actions, log_prob


def _linears(q_net: nn.Module) -> list[nn.Linear]:
    return [m for m in q_net.modules() if isinstance(m, nn.Linear)]


def twin_q(q_nets: list[nn.Module], obs: Tensor, act: Tensor, detach: bool = False) -> Tensor:
    """Q-values (n_critics, B, 1) of SB3 ReLU MLP critics, all critics in one batched pass."""
    layers = list(zip(*[_linears(q) for q in q_nets]))  # per depth: the critics' Linear layers
    x = torch.cat([obs, act], dim=1)
    n = len(q_nets)
    h: Tensor | None = None
    for depth, linears in enumerate(layers):
        weight = torch.stack([lin.weight for lin in linears])  # (n, out, in)
        bias = torch.stack([lin.bias for lin in linears]).unsqueeze(1)  # (n, 1, out)
        if detach:
            weight, bias = weight.detach(), bias.detach()
        if depth == 0:
            out_features = weight.shape[1]
            h = torch.addmm(bias.reshape(1, -1), x, weight.reshape(n * out_features, -1).t())
            h = h.view(x.shape[0], n, out_features).transpose(0, 1)
        else:
            h = torch.baddbmm(bias, h, weight.transpose(1, 2))
        if depth < len(layers) - 1:
            h = torch.relu(h)
    return h


class LeanSAC(SAC):
    """SB3 SAC whose ``train()`` computes SB3's exact update with fewer passes (see module doc)."""

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        if self.use_sde or getattr(self.replay_buffer, "n_steps", 1) != 1 or self.target_update_interval != 1:
            return super().train(gradient_steps, batch_size)  # features the lean path does not cover
        self.policy.set_training_mode(True)
        optimizers = [self.actor.optimizer, self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers += [self.ent_coef_optimizer]
        self._update_learning_rate(optimizers)

        actor, critic, critic_target = self.actor, self.critic, self.critic_target
        q_nets, target_nets = list(critic.q_networks), list(critic_target.q_networks)
        critic_params = list(critic.parameters())
        target_params = list(critic_target.parameters())
        logs: dict[str, list[Tensor]] = {"ent_coef": [], "actor_loss": [], "critic_loss": [], "ent_coef_loss": []}

        for _ in range(gradient_steps):
            data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            actions_pi, log_prob = action_log_prob(actor, data.observations)
            log_prob = log_prob.reshape(-1, 1)

            if self.ent_coef_optimizer is not None and self.log_ent_coef is not None:
                ent_coef = torch.exp(self.log_ent_coef.detach())
                ent_coef_loss = -(self.log_ent_coef * (log_prob + self.target_entropy).detach()).mean()
                self.ent_coef_optimizer.zero_grad()
                ent_coef_loss.backward()
                self.ent_coef_optimizer.step()
                logs["ent_coef_loss"].append(ent_coef_loss.detach())
            else:
                ent_coef = self.ent_coef_tensor
            logs["ent_coef"].append(ent_coef.detach().reshape(()))

            with torch.no_grad():
                next_actions, next_log_prob = action_log_prob(actor, data.next_observations)
                next_q = twin_q(target_nets, critic_target.features_extractor(data.next_observations), next_actions)
                next_q = next_q.min(dim=0).values - ent_coef * next_log_prob.reshape(-1, 1)
                target_q = data.rewards + (1 - data.dones) * self.gamma * next_q

            current_q = twin_q(q_nets, critic.features_extractor(data.observations), data.actions)
            critic_loss = 0.5 * (current_q - target_q).square().mean(dim=(1, 2)).sum()
            critic.optimizer.zero_grad()
            critic_loss.backward()
            critic.optimizer.step()
            logs["critic_loss"].append(critic_loss.detach())

            q_pi = twin_q(q_nets, critic.features_extractor(data.observations), actions_pi, detach=True)
            actor_loss = (ent_coef * log_prob - q_pi.min(dim=0).values).mean()
            actor.optimizer.zero_grad()
            actor_loss.backward()
            actor.optimizer.step()
            logs["actor_loss"].append(actor_loss.detach())

            with torch.no_grad():
                torch._foreach_lerp_(target_params, critic_params, self.tau)

        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        for key, values in logs.items():
            if values:
                self.logger.record(f"train/{key}", float(torch.stack(values).mean()))
