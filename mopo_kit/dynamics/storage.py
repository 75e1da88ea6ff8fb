"""Save and reload a fitted dynamics model of *any* registered type.

A model directory holds what the model's own ``save(directory)`` writes plus ``component.json``
naming its registered type (and the plugin and version that provided it). Reloading looks that
type up in the registry and calls the class's ``load(directory)``, so a plugin's model can be
reused by ``--dynamics DIR``, ``dynamics_dir``, sweeps, resumed runs and ``evaluate`` exactly like
the built-in ensemble. Directories written before ``component.json`` existed are
``gaussian_ensemble`` models (their ``dynamics.json`` says so).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mopo_kit.errors import MopoKitError
from mopo_kit.fileio import atomic_write_bytes

COMPONENT_FILE = "component.json"
LEGACY_FILE = "dynamics.json"  # GaussianEnsemble's own metadata


def is_dynamics_dir(directory: str | Path) -> bool:
    directory = Path(directory)
    return (directory / COMPONENT_FILE).exists() or (directory / LEGACY_FILE).exists()


def save_dynamics(model: Any, directory: str | Path, name: str) -> None:
    """``model.save(directory)``, then record which registered type it is."""
    from mopo_kit.plugins import get_registry

    directory = Path(directory)
    if not callable(getattr(model, "save", None)):
        raise MopoKitError(f"dynamics model '{name}' has no save(directory): it cannot be stored in {directory}")
    model.save(directory)
    component = get_registry().get("dynamics", name)
    payload = {"type": name, "plugin": component.plugin, "version": component.version}
    atomic_write_bytes(directory / COMPONENT_FILE, json.dumps(payload, indent=2).encode())


#: files of a model directory that describe its fit rather than hold the model (timings, versions)
_NOT_THE_MODEL = {COMPONENT_FILE, "fit_report.json", ".lock"}


def dynamics_checksum(directory: str | Path) -> str:
    """SHA-256 over what a model's ``save`` wrote (file names and bytes), not its fit report or versions.

    Why: a run moved without its model (``mopo-kit pack``, the campaigns' carried runs) continues
    on a model fitted again on the other machine; a fit is deterministic on the same build, but
    another torch build or CPU may give other weights, and a run must not continue on another
    model without a word. The run records this at its start (``resolved.dynamics_sha256``).
    """
    import hashlib

    directory = Path(directory)
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.name not in _NOT_THE_MODEL):
        digest.update(f"{path.relative_to(directory).as_posix()}|".encode())
        _digest_file(digest, path)
    return digest.hexdigest()


def _digest_file(digest: Any, path: Path) -> None:
    """A torch file by its tensors (``torch.save`` writes a fresh serialization id into every
    file, so equal weights give other bytes), any other file by its bytes."""
    import torch

    if path.suffix in (".pt", ".pth"):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 — not a plain tensor file: its bytes speak for it
            state = None
        if isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values()):
            for key in sorted(state):
                value = state[key].contiguous()
                digest.update(f"{key}|{value.dtype}|{tuple(value.shape)}|".encode())
                digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b"")
            return
    digest.update(path.read_bytes())


def write_fit_report(directory: str | Path, report: Any, data: Any, device: Any = None) -> None:
    """``fit_report.json`` beside a stored model: data, epochs, why it stopped, holdout MSE, history.

    It names the data by its array checksum (the same as a D4RL file's ``sha256``) and the device
    that fitted it, so a model fitted on another machine (e.g. a GPU, then used by CPU runs) is
    shown to be fitted on exactly the data the runs read.
    """
    from dataclasses import asdict

    from mopo_kit.data.d4rl_io import arrays_checksum

    payload: dict[str, Any] = {"dataset": data.source, "transitions": len(data), "dataset_sha256": arrays_checksum(data.arrays())}
    if device is not None:
        payload["device"] = _device_name(device)
    payload.update(asdict(report))
    atomic_write_bytes(Path(directory) / "fit_report.json", json.dumps(payload, indent=2).encode())


def fit_and_save(
    model: Any,
    data: Any,
    name: str,
    target: str | Path | None,
    *,
    checkpoint: str | Path | None = None,
    device: Any = None,
    callback: Any = None,
) -> Any:
    """Fit ``model`` on ``data``, save it with its fit report to ``target``; return the report.

    A model whose ``fit`` takes a ``checkpoint`` keyword (the built-in ensemble does) writes its
    training state to that file after every epoch and continues from it when a killed fit is
    run again; the file goes once the model is saved. Plugins' models without the keyword are
    fitted as before, from scratch each time.
    """
    from mopo_kit.device import accepts_keyword

    resumable = checkpoint is not None and accepts_keyword(model.fit, "checkpoint")
    report = model.fit(data, callback=callback, **({"checkpoint": Path(checkpoint)} if resumable else {}))
    if target is not None:
        save_dynamics(model, target, name)
        write_fit_report(target, report, data, device=device)
    if resumable:
        Path(checkpoint).unlink(missing_ok=True)
    return report


def _device_name(device: Any) -> str:
    """``cpu`` or e.g. ``cuda:0 (NVIDIA H100 80GB HBM3)``."""
    import torch

    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return f"cuda:{device.index or 0} ({torch.cuda.get_device_name(device)})"
    return str(device)


def stored_type(directory: str | Path) -> str:
    """The registered type of the model stored in ``directory``."""
    directory = Path(directory)
    for name in (COMPONENT_FILE, LEGACY_FILE):
        path = directory / name
        if path.exists():
            try:
                return str(json.loads(path.read_text()).get("type", "gaussian_ensemble"))
            except (json.JSONDecodeError, AttributeError, UnicodeDecodeError) as exc:
                raise MopoKitError(f"{path}: unreadable, corrupt or truncated ({exc})") from None
    raise MopoKitError(f"{directory}: not a dynamics model directory ({COMPONENT_FILE} missing)")


def load_dynamics(
    directory: str | Path,
    dims: tuple[int, int] | None = None,
    data_name: str = "the data",
    device: Any = None,
) -> Any:
    """Reload a model saved by :func:`save_dynamics` (or an older ``gaussian_ensemble`` directory).

    With ``dims`` = (obs_dim, act_dim) of the data it will be used on, a model from another task
    is one line here instead of a shape error deep inside the first rollout. With ``device``, a
    model whose ``load`` takes a ``device`` keyword is loaded onto it (older plugins' ``load``
    without one keep working; the model then computes where it loads itself).
    """
    from mopo_kit.device import accepts_keyword
    from mopo_kit.plugins import get_registry

    directory = Path(directory)
    name = stored_type(directory)
    component = get_registry().get("dynamics", name)
    loader = getattr(component.factory, "load", None)
    if not callable(loader):
        raise MopoKitError(
            f"{directory}: dynamics model '{name}' (plugin '{component.plugin}') has no load(directory) "
            "classmethod, so a saved one cannot be reused"
        )
    model = loader(directory, device=device) if device is not None and accepts_keyword(loader) else loader(directory)
    model_dims = (getattr(model, "obs_dim", None), getattr(model, "act_dim", None))
    if dims is not None and None not in model_dims and tuple(model_dims) != tuple(dims):
        raise MopoKitError(
            f"{directory}: the dynamics model has obs/act dims {model_dims}, {data_name} has {tuple(dims)} "
            "(a model from another task?)"
        )
    return model


__all__ = ["COMPONENT_FILE", "is_dynamics_dir", "dynamics_checksum", "save_dynamics", "write_fit_report", "fit_and_save", "stored_type", "load_dynamics"]
