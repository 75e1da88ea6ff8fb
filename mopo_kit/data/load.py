"""Turn what a user typed as DATASET into a :class:`TransitionDataset`.

DATASET is a registered name (``halfcheetah-random``), a path to a D4RL-layout ``.hdf5`` file, or
``minari:<dataset id>``.
"""

from __future__ import annotations

from pathlib import Path

from mopo_kit.data.d4rl_io import read_d4rl_hdf5
from mopo_kit.data.dataset import TransitionDataset
from mopo_kit.data.minari_io import PREFIX as MINARI_PREFIX
from mopo_kit.data.minari_io import read_minari
from mopo_kit.errors import UnknownComponentError
from mopo_kit.registry import Registry

HDF5_SUFFIXES = (".hdf5", ".h5", ".hdf")


def load_dataset(spec: str, registry: Registry | None = None, **params: object) -> TransitionDataset:
    """Load a dataset by registered name, file path or ``minari:<id>``.

    ``params`` go to a registered dataset's factory (e.g. ``steps=20_000`` for a smaller
    generated dataset).
    """
    if spec.startswith(MINARI_PREFIX):
        return read_minari(spec)
    path = Path(spec)
    if path.suffix.lower() in HDF5_SUFFIXES or path.exists():
        return read_d4rl_hdf5(path)
    if registry is None:
        from mopo_kit.plugins import get_registry

        registry = get_registry()
    if ("dataset", spec) in registry:
        return registry.create("dataset", spec, **params)
    try:
        registry.get("dataset", spec)
    except UnknownComponentError as exc:
        raise UnknownComponentError(
            f"{exc}; DATASET may also be a D4RL-layout .hdf5 path or minari:<dataset id>"
        ) from None
    raise AssertionError("unreachable")
