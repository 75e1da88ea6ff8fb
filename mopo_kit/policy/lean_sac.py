"""SB3's SAC with a leaner ``train()``: the same losses and updates, less work per step.

Differences from ``stable_baselines3.sac.SAC.train`` (tests/test_lean_sac.py checks that the
losses and every parameter after an update match SB3's to float tolerance):

* the twin critics run as one batched pass (weights kept stacked, ``baddbmm``) instead of two;
* the actor loss goes through the critics with *detached* weights: SB3 computes critic weight
  gradients there and throws them away at the next ``zero_grad``;
* the target update is one ``torch._foreach_lerp_`` (= (1−τ)·θ' + τ·θ) over the stacked tensors
  instead of a Python loop over 12 parameters;
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


class StackedCritics:
    """SB3's twin critics with their Linear weights moved into stacked (n_critics, ...) tensors.

    Every ``nn.Linear`` parameter of the critics becomes a view into one stacked tensor per
    depth, so the optimizer (which holds the original Parameter objects) updates the stacked
    storage in place. Forward passes use the stacked tensors directly — no ``torch.stack`` copy per
    call — through a leaf that shares their storage; after ``backward`` its gradient slices are
    handed to the Parameters as views. Saving, loading and ``state_dict`` work as before.
    """

    def __init__(self, q_nets: list[nn.Module]) -> None:
        self.params: list[nn.Parameter] = []
        self.weights: list[Tensor] = []  # (n, in, out): ready for baddbmm
        self.biases: list[Tensor] = []  # (n, 1, out)
        self._param_views: list[tuple[nn.Parameter, int, int]] = []  # (param, depth·2 + is_bias, critic)
        for depth, linears in enumerate(zip(*[_linears(q) for q in q_nets])):
            weight = torch.stack([lin.weight.detach() for lin in linears]).transpose(1, 2).contiguous()
            bias = torch.stack([lin.bias.detach() for lin in linears]).unsqueeze(1).contiguous()
            for i, lin in enumerate(linears):
                lin.weight.data = weight[i].t()  # (out, in) view of the stacked storage
                lin.bias.data = bias[i, 0]
                self._param_views += [(lin.weight, 2 * depth, i), (lin.bias, 2 * depth + 1, i)]
            self.weights.append(weight)
            self.biases.append(bias)
        self._leaves: list[Tensor] = []

    def tensors(self) -> list[Tensor]:
        """The stacked tensors (weights and biases by depth), e.g. for the Polyak update."""
        return [t for pair in zip(self.weights, self.biases) for t in pair]

    def q_values(self, obs: Tensor, act: Tensor, mode: str) -> Tensor:
        """Q (n_critics, B, 1). ``mode``: "grad" (gradients to the weights, for the critic loss),
        "input" (gradients to ``act`` only, for the actor loss) or "none"."""
        if mode == "grad":
            self._leaves = [t.detach().requires_grad_() for t in self.tensors()]
            tensors = self._leaves
        else:
            tensors = self.tensors()
        weights, biases = tensors[0::2], tensors[1::2]
        x = torch.cat([obs, act], dim=1)
        n = weights[0].shape[0]
        last = len(weights) - 1
        h: Tensor = x
        for depth, (weight, bias) in enumerate(zip(weights, biases)):
            if depth == 0:
                hidden = weight.shape[2]
                flat = weight.transpose(0, 1).reshape(weight.shape[1], n * hidden)
                h = torch.addmm(bias.reshape(1, n * hidden), x, flat).view(x.shape[0], n, hidden).transpose(0, 1)
            else:
                h = torch.baddbmm(bias, h, weight)
            if depth < last:
                h = torch.relu_(h)  # in place: the GEMM backward does not need its output
        return h

    def publish_grads(self) -> None:
        """Hand the stacked gradients of the last "grad" pass to the Parameters (as views)."""
        grads = [leaf.grad for leaf in self._leaves]
        for param, slot, critic in self._param_views:
            grad = grads[slot][critic]
            param.grad = grad.t() if slot % 2 == 0 else grad[0]


class LeanSAC(SAC):
    """SB3 SAC whose ``train()`` computes SB3's exact update with fewer passes (see module doc)."""

    def _excluded_save_params(self) -> list[str]:
        # the stacked critic views are rebuilt on the first train() after loading
        return [*super()._excluded_save_params(), "_stacked", "_stacked_target"]

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        if self.use_sde or getattr(self.replay_buffer, "n_steps", 1) != 1 or self.target_update_interval != 1:
            return super().train(gradient_steps, batch_size)  # features the lean path does not cover
        self.policy.set_training_mode(True)
        optimizers = [self.actor.optimizer, self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers += [self.ent_coef_optimizer]
        self._update_learning_rate(optimizers)

        actor, critic = self.actor, self.critic
        if not hasattr(self, "_stacked"):
            self._stacked = StackedCritics(list(critic.q_networks))
            self._stacked_target = StackedCritics(list(self.critic_target.q_networks))
            if self.ent_coef_optimizer is not None and not self.ent_coef_optimizer.defaults.get("fused"):
                # SB3 builds α's Adam without the policy's optimizer_kwargs; same update, fused
                state = self.ent_coef_optimizer.state_dict()
                self.ent_coef_optimizer = type(self.ent_coef_optimizer)([self.log_ent_coef], **{**self.ent_coef_optimizer.defaults, "fused": True, "foreach": None})
                self.ent_coef_optimizer.load_state_dict(state)
        stacked, stacked_target = self._stacked, self._stacked_target
        features, target_features = critic.features_extractor, self.critic_target.features_extractor
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
                next_q = stacked_target.q_values(target_features(data.next_observations), next_actions, "none")
                next_q = next_q.min(dim=0).values - ent_coef * next_log_prob.reshape(-1, 1)
                target_q = data.rewards + (1 - data.dones) * self.gamma * next_q

            current_q = stacked.q_values(features(data.observations), data.actions, "grad")
            critic_loss = 0.5 * (current_q - target_q).square().mean(dim=(1, 2)).sum()
            critic.optimizer.zero_grad()
            critic_loss.backward()
            stacked.publish_grads()
            critic.optimizer.step()
            logs["critic_loss"].append(critic_loss.detach())

            q_pi = stacked.q_values(features(data.observations), actions_pi, "input")
            actor_loss = (ent_coef * log_prob - q_pi.min(dim=0).values).mean()
            actor.optimizer.zero_grad()
            actor_loss.backward()
            actor.optimizer.step()
            logs["actor_loss"].append(actor_loss.detach())

            with torch.no_grad():
                torch._foreach_lerp_(stacked_target.tensors(), stacked.tensors(), self.tau)

        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        for key, values in logs.items():
            if values:
                self.logger.record(f"train/{key}", float(torch.stack(values).mean()))
