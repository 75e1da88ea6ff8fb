"""What plugin authors import in their tests.

* :func:`registered_plugin` — a context manager that adds a plugin object for the duration of a
  block; the pytest fixture ``mopo_kit_plugin`` (auto-loaded through the ``pytest11`` entry
  point) does the same for one test::

      def test_my_estimator_is_listed(mopo_kit_plugin):
          registry = mopo_kit_plugin(MyPlugin(), name="my-plugin")
          assert "my_penalty" in registry.names("uncertainty")

* :func:`check_uncertainty_estimator` — the contract every u(s, a) must meet: shape (B,),
  finite, >= 0, dtype and device preserved, deterministic under a seed. It raises
  ``AssertionError`` with a message saying which clause failed.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch

from mopo_kit.plugins import get_registry, register_plugin, unregister_plugin
from mopo_kit.registry import Registry
from mopo_kit.types import EnsemblePrediction


@contextmanager
def registered_plugin(obj: object, name: str, version: str = "0+test") -> Iterator[Registry]:
    """Register ``obj`` as plugin ``name`` inside the block; yields the updated registry."""
    register_plugin(obj, name=name, version=version)
    try:
        yield get_registry()
    finally:
        unregister_plugin(name)


def _prediction(batch: int, obs_dim: int, dtype: torch.dtype, device: str, seed: int) -> EnsemblePrediction:
    gen = torch.Generator().manual_seed(seed)
    return EnsemblePrediction.random(
        members=7, batch=batch, out_dim=obs_dim + 1, elites=5, dtype=dtype, device=device, generator=gen
    )


def check_uncertainty_estimator(
    estimator: Any,
    *,
    obs_dim: int = 5,
    act_dim: int = 2,
    batch: int = 64,
    seed: int = 0,
    devices: tuple[str, ...] | None = None,
) -> None:
    """Assert the estimator contract on synthetic ensemble predictions (float32 and float64).

    Estimators that need fitting must be fitted before the call (closed-form ones need nothing).
    """
    name = getattr(estimator, "__name__", type(estimator).__name__)
    assert isinstance(getattr(estimator, "ipm", None), str), f"{name}: missing string attribute 'ipm'"
    devices = devices or (("cpu", "cuda") if torch.cuda.is_available() else ("cpu",))
    for device in devices:
        for dtype in (torch.float32, torch.float64):
            gen = torch.Generator().manual_seed(seed + 1)
            obs = torch.randn(batch, obs_dim, generator=gen, dtype=dtype).to(device)
            act = torch.rand(batch, act_dim, generator=gen, dtype=dtype).to(device) * 2 - 1
            pred = _prediction(batch, obs_dim, dtype, device, seed)
            torch.manual_seed(seed)
            u = estimator(obs, act, pred)
            where = f"{name} ({dtype}, {device})"
            assert isinstance(u, torch.Tensor), f"{where}: returned {type(u).__name__}, expected a Tensor"
            assert tuple(u.shape) == (batch,), f"{where}: output shape {tuple(u.shape)}, expected ({batch},)"
            assert u.dtype == dtype, f"{where}: output dtype {u.dtype}, expected {dtype}"
            assert u.device.type == torch.device(device).type, f"{where}: output on {u.device}, expected {device}"
            assert torch.isfinite(u).all(), f"{where}: output has non-finite values"
            assert (u >= 0).all(), f"{where}: output has negative values (min {u.min().item():.3g})"
            torch.manual_seed(seed)
            again = estimator(obs, act, pred)
            assert torch.equal(u, again), f"{where}: not deterministic under torch.manual_seed({seed})"


def make_toy_penalized_env(seed: int = 0, horizon: int = 5, lam: float = 1.0):
    """A small :class:`~mopo_kit.envs.model_env.PenalizedModelEnv` on a tiny fitted model.

    The model is a 5-member, 2×32 ensemble fitted for a few epochs on a 3-dim linear system with
    2-dim actions (a second or two), penalized with ``max_aleatoric``; episodes never terminate
    and are truncated at ``horizon``.
    """
    from mopo_kit.envs.model_env import ModelStep, PenalizedModelEnv
    from mopo_kit.testing_models import linear_system_dataset, tiny_ensemble
    from mopo_kit.uncertainty.builtin import MaxAleatoric

    data = linear_system_dataset(n=600, seed=seed)
    model = tiny_ensemble(max_epochs=3, seed=seed)
    model.fit(data)
    never = lambda obs, act, next_obs: torch.zeros(obs.shape[0], dtype=torch.bool)  # noqa: E731
    step = ModelStep(model, MaxAleatoric(), lam, never, torch.Generator().manual_seed(seed))
    return PenalizedModelEnv(step, data, horizon)


try:  # the fixture exists only where pytest does
    import pytest

    @pytest.fixture
    def mopo_kit_plugin() -> Iterator[Callable[..., Registry]]:
        """Register plugin objects for one test: ``mopo_kit_plugin(obj, name=...)`` -> registry."""
        names: list[str] = []

        def register(obj: object, name: str, version: str = "0+test") -> Registry:
            register_plugin(obj, name=name, version=version)
            names.append(name)
            return get_registry()

        yield register
        for name in reversed(names):
            unregister_plugin(name)

except ImportError:  # pragma: no cover
    pass
