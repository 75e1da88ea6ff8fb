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
* losses are summed on the device and turned into logged numbers once per ``train()`` call;
* on CUDA the whole update is captured once in a CUDA graph and replayed (see :class:`LeanSAC`;
  ``tests/test_cuda.py`` checks graphed = eager updates);
* optionally (``compute_dtype`` bfloat16, ``--precision bf16``) the actor's and critics' hidden
  GEMMs run in bf16 with float32 weights, gradients, Adam, heads and Q-values
  (``tests/test_lean_sac.py`` checks it stays close to the float32 update).

The SB3 SAC object, its policy, optimizers, saving and loading are untouched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from stable_baselines3 import SAC
from stable_baselines3.sac.policies import LOG_STD_MAX, LOG_STD_MIN
from torch import Tensor, nn

from mopo_kit.stop import stop_requested

_LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))


def _dist_params_lowp(actor: nn.Module, obs: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """SB3's ``Actor.get_action_dist_params`` with the hidden layers' GEMMs in ``dtype`` (bf16).

    The weights stay float32 Parameters: each is cast once per forward inside the autograd graph,
    so its gradient arrives in float32 for the optimizer. The mean and log-std heads run in
    float32 on the float32 copy of the last hidden activation — the action, its log-probability
    and everything downstream carry float32 precision.
    """
    h = actor.extract_features(obs, actor.features_extractor).to(dtype)
    for layer in actor.latent_pi:
        h = F.linear(h, layer.weight.to(dtype), layer.bias.to(dtype)) if isinstance(layer, nn.Linear) else layer(h)
    h = h.float()
    return actor.mu(h), torch.clamp(actor.log_std(h), LOG_STD_MIN, LOG_STD_MAX)


def action_log_prob(actor: nn.Module, obs: Tensor, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """SB3's ``Actor.action_log_prob`` for the squashed Gaussian, without torch.distributions.

    The same operations in the same order, and the same single ``normal_()`` draw as
    ``Normal.rsample``, so results match SB3 exactly; what goes away is the distribution
    objects' construction and argument validation on every call. ``dtype`` bfloat16 runs the
    hidden layers in bf16 (``mopo_kit.precision``); the heads and the sample stay float32.
    """
    if dtype == torch.float32:
        mean, log_std, _ = actor.get_action_dist_params(obs)
    else:
        mean, log_std = _dist_params_lowp(actor, obs, dtype)
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

    def q_values(self, obs: Tensor, act: Tensor, mode: str, dtype: torch.dtype = torch.float32) -> Tensor:
        """Q (n_critics, B, 1). ``mode``: "grad" (gradients to the weights, for the critic loss),
        "input" (gradients to ``act`` only, for the actor loss) or "none". ``dtype`` bfloat16 runs
        the hidden layers' GEMMs in bf16 (weights cast once per pass, in the autograd graph, so
        gradients reach the float32 weights in float32); the last layer and Q stay float32."""
        if mode == "grad":
            self._leaves = [t.detach().requires_grad_() for t in self.tensors()]
            tensors = self._leaves
        else:
            tensors = self.tensors()
        weights, biases = tensors[0::2], tensors[1::2]
        x = torch.cat([obs, act], dim=1)
        n = weights[0].shape[0]
        last = len(weights) - 1
        if dtype != torch.float32:
            x = x.to(dtype)
            weights = [w.to(dtype) if depth < last else w for depth, w in enumerate(weights)]
            biases = [b.to(dtype) if depth < last else b for depth, b in enumerate(biases)]
        h: Tensor = x
        for depth, (weight, bias) in enumerate(zip(weights, biases)):
            if depth == last and h.dtype != weight.dtype:
                h = h.to(weight.dtype)
            if depth == 0 and dtype != torch.float32:  # one batched GEMM: the output comes out (n, B, hidden), contiguous
                h = torch.baddbmm(bias, h.expand(n, *h.shape), weight)
            elif depth == 0:
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


@dataclass
class _GraphState:
    """A captured update: the graph, its static inputs/outputs and what it was captured with."""

    graph: torch.cuda.CUDAGraph
    idx: Tensor  # (batch,) row indices read by the graph; each replay's batch is copied in first
    sums: Tensor  # (4,) running sums of the logged values, added to by every replay
    batch_size: int
    lrs: tuple[float, ...]  # the learning rates baked into the captured optimizer steps


class LeanSAC(SAC):
    """SB3 SAC whose ``train()`` computes SB3's exact update with fewer passes (see module doc).

    On CUDA (``use_cuda_graph``, default True) the whole update — batch gather, the three losses,
    backward passes, fused-Adam steps and the Polyak update — is captured once in a CUDA graph
    and replayed: a 256×256 SAC update is ~100 small kernels, and launching them one by one from
    Python costs more than running them. The batches of a ``train()`` call are drawn at once on
    the device (:meth:`MixedReplayBuffer.sample_indices`); the noise comes from the default CUDA
    generator as in eager mode (graph replays advance it like eager kernels do). Needs the
    :class:`MixedReplayBuffer`; anything else runs eagerly.
    """

    use_cuda_graph: bool = True
    #: the hidden layers' GEMM dtype (``mopo_kit.precision``): float32, or bfloat16 for ``bf16``;
    #: parameters, Adam state, losses, Q-values, TD targets and the heads stay float32
    compute_dtype: torch.dtype = torch.float32
    WARMUP_STEPS = 3  # eager steps on a side stream before capture (cuBLAS handles, Adam state)

    def _excluded_save_params(self) -> list[str]:
        # the stacked critic views and the captured graph are rebuilt on the first train() after loading
        return [*super()._excluded_save_params(), "_stacked", "_stacked_target", "_graph_state", "compute_dtype"]

    def _optimizers(self) -> list[torch.optim.Optimizer]:
        optimizers = [self.actor.optimizer, self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers.append(self.ent_coef_optimizer)
        return optimizers

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        if self.use_sde or getattr(self.replay_buffer, "n_steps", 1) != 1 or self.target_update_interval != 1:
            return super().train(gradient_steps, batch_size)  # features the lean path does not cover
        self.policy.set_training_mode(True)
        self._update_learning_rate(self._optimizers())
        if not hasattr(self, "_stacked"):
            self._stacked = StackedCritics(list(self.critic.q_networks))
            self._stacked_target = StackedCritics(list(self.critic_target.q_networks))
            if self.ent_coef_optimizer is not None and not self.ent_coef_optimizer.defaults.get("fused"):
                # SB3 builds α's Adam without the policy's optimizer_kwargs; same update, fused
                state = self.ent_coef_optimizer.state_dict()
                self.ent_coef_optimizer = type(self.ent_coef_optimizer)([self.log_ent_coef], **{**self.ent_coef_optimizer.defaults, "fused": True, "foreach": None})
                self.ent_coef_optimizer.load_state_dict(state)
        done = gradient_steps
        if self._graphable():  # a whole call is well under a second there: it always finishes
            sums = self._train_graphed(gradient_steps, batch_size)
        else:
            self._set_capturable(False)
            sums = torch.zeros(4, device=self.device)
            for step in range(gradient_steps):
                # graceful stop (mopo_kit.stop): after the current update, never before the first
                # one, so that a call always follows the rollout that preceded it (a resume must not
                # find a rollout whose updates never ran and roll out again)
                if step > 0 and stop_requested() is not None:
                    done = step
                    break
                sums += self._update(self.replay_buffer.sample(batch_size, env=self._vec_normalize_env))  # type: ignore[union-attr]
        #: updates the last call made: fewer than asked only when a stop was requested
        self.last_train_steps = done
        self._n_updates += done
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        means = (sums / max(done, 1)).tolist()  # the one host sync of the call
        for key, value in zip(("ent_coef", "actor_loss", "critic_loss", "ent_coef_loss"), means):
            if key != "ent_coef_loss" or self.ent_coef_optimizer is not None:
                self.logger.record(f"train/{key}", value)

    # ------------------------------------------------------------------------- one update
    def _update(self, data: Any) -> Tensor:
        """One SAC update from a batch; returns (ent_coef, actor_loss, critic_loss, ent_coef_loss)."""
        actor, critic, stacked, stacked_target = self.actor, self.critic, self._stacked, self._stacked_target
        dtype = self.compute_dtype
        features, target_features = critic.features_extractor, self.critic_target.features_extractor
        actions_pi, log_prob = action_log_prob(actor, data.observations, dtype)
        log_prob = log_prob.reshape(-1, 1)

        if self.ent_coef_optimizer is not None and self.log_ent_coef is not None:
            ent_coef = torch.exp(self.log_ent_coef.detach())
            ent_coef_loss = -(self.log_ent_coef * (log_prob + self.target_entropy).detach()).mean()
            self.ent_coef_optimizer.zero_grad()
            ent_coef_loss.backward()
            self.ent_coef_optimizer.step()
        else:
            ent_coef = self.ent_coef_tensor
            ent_coef_loss = torch.zeros((), device=log_prob.device)

        with torch.no_grad():
            next_actions, next_log_prob = action_log_prob(actor, data.next_observations, dtype)
            next_q = stacked_target.q_values(target_features(data.next_observations), next_actions, "none", dtype)
            next_q = next_q.min(dim=0).values - ent_coef * next_log_prob.reshape(-1, 1)
            target_q = data.rewards + (1 - data.dones) * self.gamma * next_q

        current_q = stacked.q_values(features(data.observations), data.actions, "grad", dtype)
        critic_loss = 0.5 * (current_q - target_q).square().mean(dim=(1, 2)).sum()
        critic.optimizer.zero_grad()
        critic_loss.backward()
        stacked.publish_grads()
        critic.optimizer.step()

        q_pi = stacked.q_values(features(data.observations), actions_pi, "input", dtype)
        actor_loss = (ent_coef * log_prob - q_pi.min(dim=0).values).mean()
        actor.optimizer.zero_grad()
        actor_loss.backward()
        actor.optimizer.step()

        with torch.no_grad():
            torch._foreach_lerp_(stacked_target.tensors(), stacked.tensors(), self.tau)
            return torch.stack([ent_coef.detach().reshape(()), actor_loss.detach(), critic_loss.detach(), ent_coef_loss.detach()])

    # ------------------------------------------------------------------------- CUDA graph
    def _graphable(self) -> bool:
        from mopo_kit.policy.buffer import MixedReplayBuffer

        return bool(self.use_cuda_graph) and self.device.type == "cuda" and isinstance(self.replay_buffer, MixedReplayBuffer)

    def _set_capturable(self, flag: bool) -> None:
        """Adam's ``capturable`` (step counts read on the device): required inside a graph; off on
        the eager path so that a checkpoint from a graphed CUDA run steps on a CPU as before."""
        for optimizer in self._optimizers():
            for group in optimizer.param_groups:
                group["capturable"] = flag

    def _train_graphed(self, gradient_steps: int, batch_size: int) -> Tensor:
        buffer = self.replay_buffer
        draws = buffer.sample_indices(batch_size, gradient_steps)  # type: ignore[union-attr]
        lrs = tuple(float(g["lr"]) for o in self._optimizers() for g in o.param_groups)
        state: _GraphState | None = getattr(self, "_graph_state", None)
        if state is not None and (state.batch_size != batch_size or state.lrs != lrs):
            state = self._graph_state = None  # a new batch size or learning rate: capture again
        first = 0
        if state is None:
            self._set_capturable(True)
            warmup = min(self.WARMUP_STEPS, gradient_steps)
            sums = torch.zeros(4, device=self.device)
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for i in range(warmup):
                    sums += self._update(buffer.rows_at(draws[i]))  # type: ignore[union-attr]
            torch.cuda.current_stream(self.device).wait_stream(side)
            first = warmup
            if first == gradient_steps:
                return sums
            static_idx = draws[first].clone()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):  # records the update into ``sums``; runs nothing yet
                sums.add_(self._update(buffer.rows_at(static_idx)))  # type: ignore[union-attr]
            state = self._graph_state = _GraphState(graph, static_idx, sums, batch_size, lrs)
        else:
            state.sums.zero_()
        for i in range(first, gradient_steps):
            state.idx.copy_(draws[i])
            state.graph.replay()
        return state.sums.clone()
