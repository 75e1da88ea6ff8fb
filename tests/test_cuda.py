"""CPU and CUDA agree: the same short runs on both devices (``pytest -m cuda``; skipped without CUDA).

Tolerances, and why:
* model predictions from the same weights: 1e-4 absolute/relative (float32 GEMMs summed in a
  different order; TF32 is off — torch's default for float32 matmuls);
* SAC from the same weights, batches and noise, after 5 updates: losses within rel 1e-3 and
  parameters within 1e-4 (Adam divides by sqrt(v), which amplifies rounding in tiny gradients);
* LeanSAC's CUDA-graph update against its eager update on the same GPU, from the same weights,
  batches and noise, after 30 updates: rel 1e-4 (the graph's Adam is ``capturable``: same math,
  step count read on the device);
* a whole MOPO epoch: shapes and finiteness only (the random streams differ by design: CUDA
  Philox vs CPU Mersenne twister).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mopo_kit.device import generator_on
from mopo_kit.dynamics.gaussian_ensemble import GaussianEnsemble
from mopo_kit.envs.model_env import ModelStep, PenalizedModelEnv, StartStates
from mopo_kit.policy import lean_sac
from mopo_kit.policy.sac import SB3SAC
from mopo_kit.testing_models import linear_system_dataset, tiny_ensemble
from mopo_kit.uncertainty.builtin import BUILTIN_ESTIMATORS, MaxAleatoric

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

CUDA = torch.device("cuda")
CPU = torch.device("cpu")


def _never(obs, act, next_obs):
    return torch.zeros(obs.shape[0], dtype=torch.bool, device=obs.device)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    data = linear_system_dataset(n=2000, seed=0)
    model = tiny_ensemble(max_epochs=3)
    model.fit(data)
    directory = tmp_path_factory.mktemp("model")
    model.save(directory)
    return data, model, directory


def test_predictions_agree_from_the_same_weights(fitted):
    data, cpu_model, directory = fitted
    gpu_model = GaussianEnsemble.load(directory, device="cuda")
    assert next(gpu_model.net.parameters()).is_cuda and gpu_model.elites.is_cuda
    obs, act = torch.from_numpy(data.observations), torch.from_numpy(data.actions)
    a = cpu_model.predict(obs, act)
    b = gpu_model.predict(obs, act)  # CPU inputs: moved once by predict
    assert b.mean.is_cuda and b.mean.shape == a.mean.shape
    torch.testing.assert_close(b.mean.cpu(), a.mean, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(b.var.cpu(), a.var, rtol=1e-4, atol=1e-4)
    for name, factory in BUILTIN_ESTIMATORS.items():
        u_cpu, u_gpu = factory()(obs, act, a), factory()(obs.to(CUDA), act.to(CUDA), b)
        assert u_gpu.is_cuda, name
        torch.testing.assert_close(u_gpu.cpu(), u_cpu, rtol=1e-3, atol=1e-4, msg=name)


def test_each_rows_sampled_member_alone_agrees_on_both_devices(fitted):
    data, cpu_model, directory = fitted
    gpu_model = GaussianEnsemble.load(directory, device="cuda")
    obs, act = torch.from_numpy(data.observations), torch.from_numpy(data.actions)
    members = cpu_model.elites[torch.randint(len(cpu_model.elites), (len(obs),), generator=torch.Generator().manual_seed(0))]
    mean, var = gpu_model.predict_rows(obs, act, members)  # CPU inputs and members: moved once
    assert mean.is_cuda and mean.shape == (len(obs), obs.shape[1] + 1)
    cpu_mean, cpu_var = cpu_model.predict_rows(obs, act, members)
    torch.testing.assert_close(mean.cpu(), cpu_mean, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(var.cpu(), cpu_var, rtol=1e-4, atol=1e-4)

def test_fit_on_cuda_is_finite_and_close_to_cpu():
    data = linear_system_dataset(n=1500, seed=1)
    cpu_model, gpu_model = tiny_ensemble(max_epochs=3), tiny_ensemble(max_epochs=3).to("cuda")  # same initial weights
    r_cpu, r_gpu = cpu_model.fit(data), gpu_model.fit(data)  # same seed: same bootstrap and batches
    assert r_gpu.epochs == r_cpu.epochs and np.all(np.isfinite(r_gpu.holdout_mse))
    np.testing.assert_allclose(r_gpu.holdout_mse, r_cpu.holdout_mse, rtol=5e-2)


def test_model_mdp_and_rollout_stay_on_cuda(fitted, tmp_path):
    data, _, directory = fitted
    model = GaussianEnsemble.load(directory, device="cuda")
    step = ModelStep(model, MaxAleatoric(), 1.0, _never, generator_on(CUDA, 1))
    starts = StartStates(data, generator_on(CUDA, 2))
    result = step(starts.sample(5000), torch.rand(5000, 2, device=CUDA) * 2 - 1)
    for t in (result.next_obs, result.reward, result.raw_reward, result.penalty, result.terminated):
        assert t.is_cuda and bool(torch.isfinite(t.float()).all())
    env = PenalizedModelEnv(step, data, horizon=3)
    obs, _ = env.reset(seed=0)
    next_obs, reward, *_ = env.step(np.zeros(2, np.float32))
    assert isinstance(obs, np.ndarray) and isinstance(next_obs, np.ndarray) and np.isfinite(reward)


def _sac(data, model, device, cuda_graph=True):
    step = ModelStep(model, MaxAleatoric(), 1.0, _never, generator_on(device, 1))
    starts = StartStates(data, generator_on(device, 2))
    env = PenalizedModelEnv(step, data, 3)
    sac = SB3SAC(device=str(device), net_arch=[64, 64], batch_size=64, rollout_batch_size=200, rollout_freq=1000, seed=0, cuda_graph=cuda_graph)
    sac.setup(env, step, starts, data, 3)
    return sac


def test_sac_updates_agree_from_the_same_weights_batches_and_noise(fitted, monkeypatch):
    data, cpu_model, directory = fitted
    gpu_model = GaussianEnsemble.load(directory, device="cuda")
    cpu, gpu = _sac(data, cpu_model, CPU), _sac(data, gpu_model, CUDA, cuda_graph=False)  # eager: batches patched in
    gpu.sac.policy.load_state_dict(cpu.sac.policy.state_dict())
    assert gpu.buffer.rows.is_cuda and gpu.buffer.generator.device.type == "cuda"
    # the same batches (drawn on the CPU, moved) and the same Gaussian noise on both devices
    batches = [cpu.buffer.sample(64) for _ in range(5)]
    noise = torch.Generator().manual_seed(0)

    def log_prob_with_cpu_noise(actor, obs):
        """lean_sac.action_log_prob with its normal_() draw taken from a CPU generator."""
        mean, log_std, _ = actor.get_action_dist_params(obs)
        eps = torch.randn(mean.shape, generator=noise)
        std = torch.ones_like(mean) * log_std.exp()
        gaussian = mean + eps.to(mean.device) * std
        actions = torch.tanh(gaussian)
        log_prob = (-((gaussian - mean) ** 2) / (2 * std**2) - std.log() - lean_sac._LOG_SQRT_2PI).sum(dim=1)
        return actions, log_prob - torch.sum(torch.log(1 - actions**2 + 1e-6), dim=1)

    results = {}
    for label, opt in (("cpu", cpu), ("cuda", gpu)):
        noise.manual_seed(0)
        queue = list(batches)
        device = opt.sac.device
        monkeypatch.setattr(opt.buffer, "sample", lambda n, env=None, q=queue, d=device: type(q[0])(*(None if t is None else t.to(d) for t in q.pop(0))))
        monkeypatch.setattr(lean_sac, "action_log_prob", log_prob_with_cpu_noise)
        opt.sac.train(gradient_steps=5, batch_size=64)
        results[label] = {k: opt.sac.logger.name_to_value[f"train/{k}"] for k in ("actor_loss", "critic_loss", "ent_coef")}
    for key in results["cpu"]:
        assert np.isclose(results["cuda"][key], results["cpu"][key], rtol=1e-3, atol=1e-4), (key, results)
    for (name, a), (_, b) in zip(cpu.sac.policy.named_parameters(), gpu.sac.policy.named_parameters()):
        torch.testing.assert_close(b.detach().cpu(), a.detach(), rtol=1e-4, atol=1e-4, msg=name)


@pytest.mark.parametrize("cuda_graph", [False, True], ids=["eager", "graph"])
def test_lean_sac_does_no_host_work_per_update(fitted, cuda_graph):
    """CPU tensors made by a train() call do not grow with its steps: one copy of the logged means.

    0-dim CPU tensors (Python scalars lifted as kernel arguments: no transfer, no sync) are not
    counted."""
    from torch.utils._python_dispatch import TorchDispatchMode

    data, _, directory = fitted
    gpu = _sac(data, GaussianEnsemble.load(directory, device="cuda"), CUDA, cuda_graph=cuda_graph)
    gpu.learn(1)  # rollout + first update (builds the stacked critics)
    gpu.sac.train(gradient_steps=8, batch_size=64)  # graph: warm-up and capture happen here

    class Record(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.seen: list[str] = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(t, torch.Tensor) and t.device.type == "cpu" and t.dim() > 0:
                    self.seen.append(str(func))
            return out

    counts = {}
    for steps in (3, 30):
        with Record() as record:
            gpu.sac.train(gradient_steps=steps, batch_size=64)
        counts[steps] = record.seen
    assert len(counts[30]) == len(counts[3]) <= 1, counts


def test_cuda_graph_updates_equal_eager_updates(fitted, monkeypatch):
    """The captured update is the eager update: same batches, same CUDA noise, same parameters."""
    data, _, directory = fitted
    eager = _sac(data, GaussianEnsemble.load(directory, device="cuda"), CUDA, cuda_graph=False)
    graphed = _sac(data, GaussianEnsemble.load(directory, device="cuda"), CUDA, cuda_graph=True)
    for opt in (eager, graphed):
        opt.rollout()  # batches mix real and model rows
    graphed.sac.policy.load_state_dict(eager.sac.policy.state_dict())
    graphed.buffer.rows.copy_(eager.buffer.rows)
    calls = [eager.buffer.sample_indices(64, 20), eager.buffer.sample_indices(64, 10)]
    queue = [idx for block in calls for idx in block]
    monkeypatch.setattr(eager.buffer, "sample", lambda n, env=None: eager.buffer.rows_at(queue.pop(0)))
    blocks = list(calls)
    monkeypatch.setattr(graphed.buffer, "sample_indices", lambda n, steps: blocks.pop(0))
    logged = {}
    for label, opt in (("eager", eager), ("graph", graphed)):
        torch.cuda.manual_seed(123)
        opt.sac.train(gradient_steps=20, batch_size=64)  # graph: 3 warm-up steps, capture, 17 replays
        opt.sac.train(gradient_steps=10, batch_size=64)  # graph: replays only
        logged[label] = {k: opt.sac.logger.name_to_value[f"train/{k}"] for k in ("actor_loss", "critic_loss", "ent_coef", "ent_coef_loss")}
    assert graphed.sac._graph_state is not None and not queue and not blocks
    for key, value in logged["eager"].items():
        assert np.isclose(logged["graph"][key], value, rtol=1e-4, atol=1e-6), (key, logged)
    for (name, a), (_, b) in zip(eager.sac.policy.named_parameters(), graphed.sac.policy.named_parameters()):
        torch.testing.assert_close(b.detach(), a.detach(), rtol=1e-4, atol=1e-5, msg=name)
    for (name, a), (_, b) in zip(eager.sac.critic_target.named_parameters(), graphed.sac.critic_target.named_parameters()):
        torch.testing.assert_close(b.detach(), a.detach(), rtol=1e-4, atol=1e-5, msg=name)
    assert torch.allclose(graphed.sac.log_ent_coef, eager.sac.log_ent_coef, atol=1e-6)


def test_checkpoint_saved_on_cuda_resumes_on_cpu(fitted, tmp_path):
    data, cpu_model, directory = fitted
    gpu = _sac(data, GaussianEnsemble.load(directory, device="cuda"), CUDA)
    gpu.learn(10)
    gpu.save(tmp_path / "ckpt")
    cpu = _sac(data, cpu_model, CPU)
    with pytest.warns(UserWarning, match="another device type"):  # the RNG streams cannot cross
        cpu.load(tmp_path / "ckpt")
    for (name, a), (_, b) in zip(gpu.sac.policy.state_dict().items(), cpu.sac.policy.state_dict().items()):
        assert not b.is_cuda and torch.equal(a.cpu(), b), name
    obs = data.observations[:8]
    np.testing.assert_allclose(cpu.predict(obs), gpu.predict(obs), rtol=1e-4, atol=1e-5)
    metrics = cpu.learn(5)  # Adam state from a graphed CUDA run steps eagerly on the CPU
    assert np.isfinite(metrics["critic_loss"]) and gpu.sac._graph_state is not None



def test_a_fit_killed_on_cuda_resumes_there_to_the_uninterrupted_weights(tmp_path):
    """The fit checkpoint holds the CPU minibatch RNG and device tensors (map_location)."""

    def kill_at_3(stats):
        if stats.epoch == 3:
            raise KeyboardInterrupt

    data = linear_system_dataset(n=1500, seed=3)
    straight = tiny_ensemble(max_epochs=6).to(CUDA)
    straight.fit(data)
    with pytest.raises(KeyboardInterrupt):
        tiny_ensemble(max_epochs=6).to(CUDA).fit(data, callback=kill_at_3, checkpoint=tmp_path / "fit.pt")
    resumed = tiny_ensemble(max_epochs=6).to(CUDA)
    report = resumed.fit(data, checkpoint=tmp_path / "fit.pt")
    assert [h.epoch for h in report.history] == list(range(1, 7))
    assert resumed.elites.tolist() == straight.elites.tolist()
    for a, b in zip(resumed.net.state_dict().values(), straight.net.state_dict().values()):
        assert a.is_cuda
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)

def test_gp_plugin_follows_its_inputs_device(fitted):
    gp_module = pytest.importorskip("mopo_kit_gp")
    data, _, directory = fitted
    model = GaussianEnsemble.load(directory, device="cuda")
    est = gp_module.GPError(iterations=20, max_fit_points=500)
    est.fit(data, model)
    obs, act = torch.from_numpy(data.observations[:100]), torch.from_numpy(data.actions[:100])
    pred = model.predict(obs, act)
    u = est(obs.to(CUDA), act.to(CUDA), pred)
    assert u.is_cuda and bool(torch.isfinite(u).all()) and bool((u >= 0).all())


def test_a_short_mopo_run_on_cuda_matches_the_cpu_run_in_kind(tmp_path):
    """The same short config on both devices: same metrics, all finite, resumable on the CPU."""
    import json

    from mopo_kit.config import MOPOConfig
    from mopo_kit.data.collect import collect_transitions, uniform_random_policy
    from mopo_kit.data.d4rl_io import write_d4rl_hdf5
    from mopo_kit.envs.tasks import HOPPER
    from mopo_kit.experiments.run_evaluation import evaluate_run
    from mopo_kit.mopo import MOPO
    from tests.test_mopo import TINY

    path = tmp_path / "hopper-random-small.hdf5"
    write_d4rl_hdf5(collect_transitions(HOPPER, uniform_random_policy(3), 1500, seed=0, num_envs=4), path, metadata={"task": "hopper", "kind": "random"})
    results = {}
    for device in ("cpu", "cuda"):
        config = MOPOConfig(dataset=str(path), device=device, **{**TINY, "epochs": 2})
        mopo = MOPO(config)
        results[device] = mopo.fit(tmp_path / device)
        assert mopo.model_step.device.type == device and mopo.policy.buffer.rows.device.type == device
    a, b = results["cpu"], results["cuda"]
    assert a.gradient_steps == b.gradient_steps and set(a.bound) == set(b.bound)
    assert [sorted(r) for r in a.history] == [sorted(r) for r in b.history]
    assert all(np.isfinite(v) for r in b.history for v in r.values() if isinstance(v, float))
    # the CUDA run's files are read on the CPU: evaluation, and the dynamics weights
    report = evaluate_run(tmp_path / "cuda", episodes=1, device="cpu")
    assert np.isfinite(report["real"]["return_mean"]) and np.isfinite(report["bound"]["bound"])
    on_gpu = evaluate_run(tmp_path / "cuda", episodes=1, device="cuda", on_policy_steps=200)["on_policy"]
    assert on_gpu["transitions"] == 200 and np.isfinite(on_gpu["error_mean_policy"]) and 0 <= on_gpu["bound_violations"] <= 1
    saved = json.loads((tmp_path / "cuda" / "config.json").read_text())
    assert saved["config"]["device"] == "cuda"
    with pytest.warns(UserWarning, match="another device type"):
        MOPO.resume(tmp_path / "cuda", epochs=3, device="cpu")
