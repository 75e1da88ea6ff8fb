"""One ``device`` setting: parsing, the CLI's one-line refusal, plumbing, portable files (all on CPU).

Files "written on CUDA" are simulated honestly: while saving, torch's storage location tag is
patched to ``cuda:0``, so the file records its tensors as CUDA tensors exactly as a CUDA run's
file does. Loading such a file without ``map_location`` fails on this machine (checked below),
so the loads that succeed prove that the load path maps to the target device.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings

import numpy as np
import pytest
import torch
import torch.serialization

from mopo_kit.config import MOPOConfig
from mopo_kit.device import accepts_keyword, check_device_spec, resolve_device, restore_generator, with_device
from mopo_kit.dynamics import gaussian_ensemble as ge
from mopo_kit.dynamics.gaussian_ensemble import GaussianEnsemble
from mopo_kit.envs.model_env import ModelStep, PenalizedModelEnv, StartStates
from mopo_kit.errors import MopoKitError
from mopo_kit.policy.sac import SB3SAC
from mopo_kit.testing_models import linear_system_dataset, tiny_ensemble
from mopo_kit.uncertainty.builtin import MaxAleatoric

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")


@contextlib.contextmanager
def saved_as_cuda():
    """Every torch.save inside records its storages on ``cuda:0`` (what a CUDA run writes)."""
    original = torch.serialization.location_tag
    torch.serialization.location_tag = lambda storage: "cuda:0"
    try:
        yield
    finally:
        torch.serialization.location_tag = original


# ----------------------------------------------------------------------------------- parsing
def test_specs_are_normalized_and_bad_ones_are_one_line():
    assert check_device_spec("CPU") == "cpu" and check_device_spec("cuda:1") == "cuda:1"
    assert check_device_spec(torch.device("cpu")) == "cpu"
    for bad in ("gpu", "cuda:", "cuda:x", "", 0, None):
        with pytest.raises(MopoKitError) as info:
            check_device_spec(bad)
        assert "\n" not in str(info.value) and "'auto', 'cpu', 'cuda' or 'cuda:N'" in str(info.value)


def test_auto_is_cuda_when_available_else_cpu():
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")


@no_cuda
def test_cuda_without_cuda_is_one_line_naming_torch():
    with pytest.raises(MopoKitError) as info:
        resolve_device("cuda")
    message = str(info.value)
    assert message.startswith("--device cuda: CUDA is not available on this machine (torch ")
    assert torch.__version__ in message and "\n" not in message


def test_config_device_default_validation_and_round_trip():
    assert MOPOConfig().device == "auto"
    assert MOPOConfig.from_dict(MOPOConfig(device="CPU").to_dict()).device == "cpu"
    with pytest.raises(MopoKitError, match="config key 'device' must be"):
        MOPOConfig(device="gpu")


# ---------------------------------------------------------------------------------------- CLI
CLI_COMMANDS = {
    "train": ["train", "hopper-random"],
    "train-dynamics": ["train-dynamics", "hopper-random", "-o", "model"],
    "calibrate": ["calibrate", "model", "--data", "hopper-random", "--ood", "hopper-medium"],
    "evaluate": ["evaluate", "run"],
    "sweep": ["sweep", "missing.toml"],
    "demo": ["demo", "-o", "demo"],
    "train-behavior": ["train-behavior", "hopper", "-o", "behavior"],
    "collect": ["collect", "hopper", "--kind", "random", "-o", "out.hdf5"],
}


@no_cuda
@pytest.mark.parametrize("command", sorted(CLI_COMMANDS))
def test_cli_device_cuda_without_cuda_is_one_line_exit_2_before_any_work(run_cli, tmp_path, command):
    proc = run_cli(*CLI_COMMANDS[command], "--device", "cuda", env={"MOPO_KIT_DATA": str(tmp_path / "data")})
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--device cuda: CUDA is not available on this machine (torch" in lines[0], proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "work was done before the device check"


def test_cli_bad_device_form_is_argparse_one_line(run_cli):
    proc = run_cli("train-dynamics", "x", "-o", "y", "--device", "gpu")
    assert proc.returncode == 2
    assert "argument --device: must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'gpu'" in proc.stderr


# --------------------------------------------------------------------------------- plumbing
def test_device_reaches_only_factories_that_name_it():
    class Old:  # an older plugin: params forwarded to a dataclass, no device keyword
        def __init__(self, **params):
            self.params = params

    class New:
        def __init__(self, scale: float = 1.0, device: str = "cpu"):
            self.device = device

    cpu = torch.device("cpu")
    assert not accepts_keyword(Old) and accepts_keyword(New) and accepts_keyword(GaussianEnsemble)
    assert with_device(Old, {"a": 1}, cpu) == {"a": 1}
    assert with_device(New, {"scale": 2.0}, cpu) == {"scale": 2.0, "device": "cpu"}
    assert with_device(New, {"device": "cuda"}, cpu) == {"device": "cuda"}  # an explicit param wins


def test_ensemble_accepts_device_param_but_does_not_store_it(tmp_path):
    GaussianEnsemble.check_params({"device": "cpu", "members": 3, "elites": 2})
    with pytest.raises(MopoKitError, match="gaussian_ensemble param 'device'"):
        GaussianEnsemble.check_params({"device": "tpu"})
    model = tiny_ensemble()
    model.save(tmp_path)
    assert "device" not in json.loads((tmp_path / "dynamics.json").read_text())["config"]


def test_model_mdp_returns_numpy_and_keeps_tensors_on_the_models_device():
    data = linear_system_dataset(n=300, seed=0)
    model = tiny_ensemble(max_epochs=1)
    model.fit(data)
    never = lambda obs, act, next_obs: torch.zeros(obs.shape[0], dtype=torch.bool)  # noqa: E731
    step = ModelStep(model, MaxAleatoric(), 1.0, never)
    assert step.device == model.device == step.generator.device
    starts = StartStates(data, device=step.device)
    assert starts.observations.device == step.device
    result = step(starts.sample(7), np.zeros((7, 2), np.float32))  # NumPy actions are moved once
    assert all(t.device == step.device for t in (result.next_obs, result.reward, result.penalty, result.terminated))
    env = PenalizedModelEnv(step, data, horizon=2)
    obs, _ = env.reset(seed=0)
    next_obs, reward, *_ = env.step(np.zeros(2, np.float32))
    assert isinstance(obs, np.ndarray) and isinstance(next_obs, np.ndarray) and isinstance(reward, float)


def test_a_generator_state_from_another_device_type_warns_and_keeps_the_stream():
    gen = torch.Generator().manual_seed(3)
    philox_like = torch.zeros(16, dtype=torch.uint8)  # a CUDA generator's state size
    with pytest.warns(UserWarning, match="saved on another device type"):
        assert restore_generator(gen, philox_like, "replay buffer sampler") is False
    same = torch.Generator().manual_seed(3)
    assert torch.equal(torch.rand(4, generator=gen), torch.rand(4, generator=same))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert restore_generator(gen, same.get_state(), "x") is True


# ------------------------------------------------------------------------------ portable files
def test_a_file_written_on_cuda_needs_map_location_here():
    """The premise of the tests below: without map_location such a file does not load on a CPU."""
    if torch.cuda.is_available():
        pytest.skip("only meaningful without CUDA")
    buffer = io.BytesIO()
    with saved_as_cuda():
        torch.save({"w": torch.ones(2)}, buffer)
    buffer.seek(0)
    with pytest.raises(RuntimeError, match="CUDA"):
        torch.load(buffer, weights_only=True)


def test_ensemble_written_on_cuda_loads_on_cpu_with_the_same_predictions(tmp_path, monkeypatch):
    data = linear_system_dataset(n=300, seed=1)
    model = tiny_ensemble(max_epochs=2)
    model.fit(data)
    with saved_as_cuda():
        model.save(tmp_path / "m")
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("map_location"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(ge.torch, "load", spy)
    loaded = GaussianEnsemble.load(tmp_path / "m", device="cpu")
    assert calls == [torch.device("cpu")]
    assert loaded.device == torch.device("cpu") and loaded.elites.device == torch.device("cpu")
    obs, act = torch.from_numpy(data.observations[:50]), torch.from_numpy(data.actions[:50])
    a, b = model.predict(obs, act), loaded.predict(obs, act)
    assert torch.equal(a.mean, b.mean) and torch.equal(a.var, b.var) and torch.equal(a.elites, b.elites)


def _sac_setup(data, model, seed=0):
    never = lambda obs, act, next_obs: torch.zeros(obs.shape[0], dtype=torch.bool)  # noqa: E731
    step = ModelStep(model, MaxAleatoric(), 1.0, never, torch.Generator().manual_seed(seed + 1))
    starts = StartStates(data, torch.Generator().manual_seed(seed + 2))
    env = PenalizedModelEnv(step, data, 3)
    sac = SB3SAC(device="cpu", net_arch=[32, 32], batch_size=32, rollout_batch_size=40, rollout_freq=10, seed=seed)
    sac.setup(env, step, starts, data, 3)
    return sac


def learned_sac():
    """A tiny model and SAC after 20 updates: (data, model, optimizer), for checkpoint tests."""
    data = linear_system_dataset(n=300, seed=2)
    model = tiny_ensemble(max_epochs=1)
    model.fit(data)
    sac = _sac_setup(data, model)
    sac.learn(20)
    return data, model, sac


def test_sac_checkpoint_written_on_cuda_resumes_on_cpu(tmp_path):
    data, model, sac = learned_sac()
    with saved_as_cuda():
        sac.save(tmp_path / "ckpt")
    fresh = _sac_setup(data, model, seed=5)
    fresh.load(tmp_path / "ckpt")
    assert fresh.num_steps == 20 and fresh.buffer.model_size == sac.buffer.model_size
    for (name, a), (_, b) in zip(sac.sac.policy.state_dict().items(), fresh.sac.policy.state_dict().items()):
        assert b.device == torch.device("cpu") and torch.equal(a, b), name
    assert torch.equal(sac.buffer.rows[: sac.buffer.n_real + sac.buffer.model_size], fresh.buffer.rows[: fresh.buffer.n_real + fresh.buffer.model_size])
    obs = data.observations[:5]
    assert np.array_equal(sac.predict(obs), fresh.predict(obs))
