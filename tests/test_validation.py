"""Every config value is checked when it is built: one line naming key, value and range, no work done."""

from __future__ import annotations

import math
import time

import pytest

from mopo_kit.config import CONFIG_RANGES, MOPOConfig
from mopo_kit.data.cache import DATA_ENV
from mopo_kit.dynamics.gaussian_ensemble import EnsembleConfig, GaussianEnsemble
from mopo_kit.errors import MopoKitError
from mopo_kit.plugins import get_registry
from mopo_kit.policy.sac import SACConfig
from mopo_kit.uncertainty.builtin import MMD
from mopo_kit.validation import FRACTION, NON_NEGATIVE, POSITIVE, POSITIVE_INT, Range, require


# ------------------------------------------------------------------------------- the helper
@pytest.mark.parametrize(
    "allowed,text",
    [
        (POSITIVE_INT, "an integer >= 1"),
        (NON_NEGATIVE, "a finite number >= 0"),
        (POSITIVE, "a finite number > 0"),
        (FRACTION, "a number in [0, 1]"),
        (Range(integer=True, low=0, high=10, high_open=True), "an integer in [0, 10)"),
    ],
)
def test_ranges_describe_themselves(allowed, text):
    assert allowed.describe() == text


@pytest.mark.parametrize("value", [True, False, 2.0, 1.5, "3", None, float("nan"), 0, -1])
def test_integers_reject_bools_floats_strings_and_out_of_range(value):
    with pytest.raises(MopoKitError, match=r"^config key 'k' must be an integer >= 1, got "):
        require(value, "k", POSITIVE_INT)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), -0.5, True, "1"])
def test_numbers_reject_nan_inf_negatives_and_bools(value):
    with pytest.raises(MopoKitError, match=r"must be a finite number >= 0, got"):
        require(value, "lam", NON_NEGATIVE)


def test_valid_values_come_back_as_plain_numbers():
    import numpy as np

    assert require(np.int64(3), "k", POSITIVE_INT) == 3 and type(require(np.int64(3), "k", POSITIVE_INT)) is int
    assert require(1, "lam", NON_NEGATIVE) == 1.0 and type(require(1, "lam", NON_NEGATIVE)) is float
    assert require(None, "h", POSITIVE_INT, optional=True) is None


# --------------------------------------------------------------------------- MOPOConfig keys
BAD_CONFIG_VALUES = {
    "lam": [-1, float("nan"), float("inf"), True, "0.5"],
    "kappa": [-0.1, float("nan"), float("inf"), True, "0.5"],
    "horizon": [0, -3, 2.5, True],
    "epochs": [0, 1.0, False],
    "steps_per_epoch": [0, -1],
    "eval_every": [0],
    "eval_episodes": [0],
    "checkpoint_every": [0],
    "bound_rollouts": [0],
    "bound_horizon": [0],
    "seed": [-1, 2**32, 1.5, True],
}


def test_every_numeric_config_key_has_a_range():
    assert set(BAD_CONFIG_VALUES) == set(CONFIG_RANGES)


@pytest.mark.parametrize("key,value", [(k, v) for k, values in BAD_CONFIG_VALUES.items() for v in values])
def test_bad_config_value_is_one_line_naming_key_value_and_range(key, value):
    with pytest.raises(MopoKitError) as info:
        MOPOConfig(**{key: value})
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"config key '{key}' must be ")
    assert message.endswith(f"got {value!r}")


def test_config_file_values_are_checked_too(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("horizon = 0\n")
    with pytest.raises(MopoKitError, match="config key 'horizon' must be an integer >= 1, got 0"):
        MOPOConfig.from_file(path)


def test_good_config_is_unchanged():
    config = MOPOConfig(lam=0, horizon=1, seed=0)
    assert config.lam == 0.0 and config.horizon == 1 and config.lam is not None


# ---------------------------------------------------------------------- component params
@pytest.mark.parametrize(
    "params,needle",
    [
        ({"lr": 0}, "gaussian_ensemble param 'lr' must be a finite number > 0, got 0"),
        ({"lr": float("nan")}, "'lr' must be a finite number > 0, got nan"),
        ({"members": 0}, "'members' must be an integer >= 1, got 0"),
        ({"batch_size": 2.5}, "'batch_size' must be an integer >= 1, got 2.5"),
        ({"holdout_ratio": 1.5}, "'holdout_ratio' must be a number in [0, 1], got 1.5"),
        ({"max_epochs": 0}, "'max_epochs' must be an integer >= 1, got 0"),
        ({"max_seconds": -1.0}, "'max_seconds' must be a finite number > 0, got -1.0"),
        ({"patience": True}, "'patience' must be an integer >= 0, got True"),
        ({"weight_decays": (1e-4, -1, 0, 0, 0)}, "'weight_decays' must be a finite number >= 0, got -1"),
        ({"lrr": 1e-3}, "gaussian_ensemble: unknown param(s) lrr"),
    ],
)
def test_ensemble_params_are_checked(params, needle):
    with pytest.raises(MopoKitError) as info:
        GaussianEnsemble.check_params(params)
    assert needle in str(info.value)
    if "unknown" not in needle:
        with pytest.raises(MopoKitError):
            EnsembleConfig(**params)


@pytest.mark.parametrize(
    "params,needle",
    [
        ({"learning_rate": 0.0}, "sb3_sac param 'learning_rate' must be a finite number > 0, got 0.0"),
        ({"real_ratio": 1.5}, "'real_ratio' must be a number in [0, 1], got 1.5"),
        ({"rollout_batch_size": 0}, "'rollout_batch_size' must be an integer >= 1, got 0"),
        ({"batch_size": True}, "'batch_size' must be an integer >= 1, got True"),
        ({"gamma": float("nan")}, "'gamma' must be a number in [0, 1], got nan"),
        ({"ent_coef": "auto_-1"}, "'ent_coef' must be 'auto', 'auto_<initial α > 0>'"),
        ({"ent_coef": -0.1}, "'ent_coef' must be a finite number > 0, got -0.1"),
        ({"net_arch": [256, 0]}, "'net_arch' must be an integer >= 1, got 0"),
    ],
)
def test_sac_params_are_checked(params, needle):
    with pytest.raises(MopoKitError) as info:
        SACConfig(**params)
    assert needle in str(info.value)


def test_sac_defaults_and_auto_coefficients_pass():
    assert SACConfig().learning_rate == 3e-4
    assert SACConfig(ent_coef="auto_0.1").ent_coef == "auto_0.1"


def test_estimator_and_policy_params_are_checked_by_the_registry():
    registry = get_registry()
    with pytest.raises(MopoKitError, match="mmd param 'lengthscale' must be a finite number > 0, got -1"):
        registry.get("uncertainty", "mmd").check_params({"lengthscale": -1})
    with pytest.raises(MopoKitError, match=r"uncertainty estimator 'wasserstein': invalid params \(Wasserstein\(\) takes no arguments\)"):
        registry.get("uncertainty", "wasserstein").check_params({"scale": 2})
    with pytest.raises(MopoKitError, match="sb3_sac param 'tau' must be a number in \\[0, 1\\], got 2"):
        registry.get("policy", "sb3_sac").check_params({"tau": 2})
    assert MMD(lengthscale=2).lengthscale == 2.0


def test_mopo_checks_component_params_before_loading_any_data(tmp_path, monkeypatch):
    from mopo_kit.mopo import MOPO

    monkeypatch.setenv(DATA_ENV, str(tmp_path / "data"))
    config = MOPOConfig(dataset="hopper-random", policy={"type": "sb3_sac", "params": {"batch_size": 0}})
    start = time.perf_counter()
    with pytest.raises(MopoKitError, match="sb3_sac param 'batch_size' must be an integer >= 1, got 0"):
        MOPO(config).fit(tmp_path / "run")
    assert time.perf_counter() - start < 1.0
    assert not (tmp_path / "data").exists() and not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------------- the CLI
CLI_CASES = [
    (("train", "hopper-random", "--horizon", "0"), "argument --horizon: must be an integer >= 1, got '0'"),
    (("train", "hopper-random", "--lam", "-1"), "argument --lam: must be a finite number >= 0, got '-1'"),
    (("train", "hopper-random", "--lam", "nan"), "argument --lam: must be a finite number >= 0, got 'nan'"),
    (("train", "hopper-random", "--lam", "inf"), "argument --lam: must be a finite number >= 0, got 'inf'"),
    (("train", "hopper-random", "--horizon", "2.5"), "argument --horizon: must be an integer >= 1, got '2.5'"),
    (("train", "hopper-random", "--steps", "0"), "argument --steps: must be an integer >= 1, got '0'"),
    (("train", "hopper-random", "--eval-episodes", "0"), "argument --eval-episodes: must be an integer >= 1"),
    (("train", "hopper-random", "--seed", "-1"), "argument --seed: must be an integer in [0, 4294967295], got '-1'"),
    (("train", "hopper-random", "--threads", "0"), "argument --threads: must be an integer >= 1"),
    (("train-dynamics", "hopper-random", "-o", "m", "--max-epochs", "0"), "argument --max-epochs: must be an integer >= 1"),
    (("train-dynamics", "hopper-random", "-o", "m", "--max-seconds", "-5"), "argument --max-seconds: must be a finite number > 0"),
    (("calibrate", "m", "--data", "hopper-random", "--ood", "hopper-medium", "--max-points", "1"), "argument --max-points: must be an integer >= 2"),
    (("evaluate", "run", "--episodes", "0"), "argument --episodes: must be an integer >= 1, got '0'"),
    (("sweep", "s.toml", "--workers", "0"), "argument --workers: must be an integer >= 1"),
    (("train-behavior", "hopper", "--steps", "-10"), "argument --steps: must be an integer >= 1, got '-10'"),
    (("train-behavior", "hopper", "--eval-every", "0"), "argument --eval-every: must be an integer >= 1"),
    (("collect", "hopper", "--kind", "random", "--steps", "0"), "argument --steps: must be an integer >= 1, got '0'"),
    (("collect", "hopper", "--kind", "random", "--workers", "1.5"), "argument --workers: must be an integer >= 1, got '1.5'"),
]


def _assert_fast_one_line_exit_2(proc, seconds: float, needle: str, data_dir) -> None:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert needle in lines[0], (needle, lines[0])
    assert not data_dir.exists() or not any(data_dir.iterdir()), "no dataset may be generated"
    assert seconds < 30, seconds  # a subprocess on a loaded CI machine; the parse error itself is instant


@pytest.mark.parametrize("args,needle", CLI_CASES, ids=[" ".join(a[:1] + a[-2:]) for a, _ in CLI_CASES])
def test_cli_rejects_bad_numbers_at_once(args, needle, tmp_path, run_cli):
    data_dir = tmp_path / "data"
    start = time.perf_counter()
    proc = run_cli(*args, env={DATA_ENV: str(data_dir)})
    _assert_fast_one_line_exit_2(proc, time.perf_counter() - start, needle, data_dir)


@pytest.mark.parametrize(
    "config,needle",
    [
        ('{"epochs": true}', "config key 'epochs' must be an integer >= 1, got True"),
        ('{"lam": -0.5}', "config key 'lam' must be a finite number >= 0, got -0.5"),
        ('{"dynamics": {"type": "gaussian_ensemble", "params": {"lr": 0}}}', "gaussian_ensemble param 'lr' must be a finite number > 0, got 0"),
        ('{"uncertainty": {"type": "mmd", "params": {"lengthscale": 0}}}', "mmd param 'lengthscale' must be a finite number > 0, got 0"),
        ('{"policy": {"type": "sb3_sac", "params": {"real_ratio": 1.5}}}', "sb3_sac param 'real_ratio' must be a number in [0, 1], got 1.5"),
    ],
    ids=["config-key", "config-lam", "dynamics-param", "estimator-param", "policy-param"],
)
def test_cli_rejects_bad_config_files_before_any_work(config, needle, tmp_path, run_cli):
    data_dir = tmp_path / "data"
    (tmp_path / "c.json").write_text(config)
    start = time.perf_counter()
    proc = run_cli("train", "hopper-random", "--config", "c.json", "-o", "run", env={DATA_ENV: str(data_dir)})
    _assert_fast_one_line_exit_2(proc, time.perf_counter() - start, needle, data_dir)
    assert not (tmp_path / "run").exists()


def test_nan_is_never_a_valid_number():
    assert not any(r.accepts(math.nan) for r in (POSITIVE_INT, NON_NEGATIVE, POSITIVE, FRACTION, Range()))
