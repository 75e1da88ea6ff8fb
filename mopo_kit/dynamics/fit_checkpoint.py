"""A dynamics fit that survives a kill: the whole training state, written after every epoch.

A shared model of a campaign takes 15–50 minutes on one CPU thread, longer than what is left of
a session more often than not; without this, a fit killed at epoch 59 of 60 starts over. The
file holds everything the next epoch depends on — weights, Adam's moments, the minibatch RNG,
every member's best snapshot and holdout error, the patience counter, the history and the time
spent — so a resumed fit continues bit for bit where the killed one stopped (on the same device
and thread count) and ends with the uninterrupted fit's weights, elites and report.

The file also records what it is a fit *of* (the data's checksum and dims, the model's settings):
resuming a checkpoint of other data or settings would silently produce a model nobody asked for,
so it is refused in one line naming the file and what differs.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, Mapping

import torch

from mopo_kit.errors import MopoKitError
from mopo_kit.fileio import atomic_write_bytes

#: Bumped when the layout changes; a file of another version is refused by name.
CHECKPOINT_VERSION = 1


def fit_identity(data: Any, settings: Mapping[str, Any]) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: the data's checksum and dims, the fit's settings."""
    from mopo_kit.data.d4rl_io import arrays_checksum

    return {
        "dataset_sha256": arrays_checksum(data.arrays()),
        "transitions": len(data),
        "obs_dim": int(data.obs_dim),
        "act_dim": int(data.act_dim),
        "settings": {key: list(value) if isinstance(value, tuple) else value for key, value in settings.items()},
    }


def save_fit_state(path: str | Path, identity: Mapping[str, Any], state: Mapping[str, Any]) -> None:
    """Write ``state`` (tensors moved to the CPU) with ``identity`` atomically to ``path``."""
    buffer = io.BytesIO()
    torch.save({"version": CHECKPOINT_VERSION, "identity": dict(identity), "state": _to_cpu(state)}, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())


def load_fit_state(path: str | Path, identity: Mapping[str, Any], device: torch.device) -> dict[str, Any] | None:
    """The state saved at ``path`` (tensors on ``device``), ``None`` if there is none.

    A damaged file, another version, or a fit of other data or settings is one line naming the
    file; it is left where it is (deleting it is the user's call: it may be all that is left of
    hours of fitting).
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
        version, saved, state = payload["version"], payload["identity"], payload["state"]
    except (KeyError, TypeError, RuntimeError, EOFError, ValueError, AttributeError, pickle.UnpicklingError) as exc:
        reason = " ".join(str(exc).split())[:160]
        raise MopoKitError(
            f"{path}: unreadable dynamics fit checkpoint, corrupt or truncated ({type(exc).__name__}: {reason}); "
            "delete it to fit from scratch"
        ) from None
    if version != CHECKPOINT_VERSION:
        raise MopoKitError(
            f"{path}: dynamics fit checkpoint version {version}, this mopo_kit resumes version {CHECKPOINT_VERSION}; "
            "delete it to fit from scratch"
        )
    differs = _differences(saved, identity)
    if differs:
        raise MopoKitError(f"{path}: a checkpoint of a fit with other {differs}; delete it to fit from scratch")
    return state


def saved_epoch(path: str | Path) -> int | None:
    """The last epoch a checkpoint holds (for progress reports), ``None`` when absent or unreadable."""
    try:
        return int(torch.load(Path(path), map_location="cpu", weights_only=True)["state"]["epoch"])
    except Exception:  # a progress report must not fail on a damaged file
        return None


def _differences(saved: Mapping[str, Any], wanted: Mapping[str, Any]) -> str:
    """'data (sha256 1a2b… vs 3c4d…)' or 'settings (lr: 0.001 vs 0.0003)', '' when they match."""
    if saved.get("dataset_sha256") != wanted.get("dataset_sha256"):
        return f"data (sha256 {str(saved.get('dataset_sha256'))[:12]}… vs {str(wanted.get('dataset_sha256'))[:12]}…)"
    for key in ("transitions", "obs_dim", "act_dim"):
        if saved.get(key) != wanted.get(key):
            return f"data ({key} {saved.get(key)} vs {wanted.get(key)})"
    old, new = saved.get("settings", {}), wanted.get("settings", {})
    changed = [f"{key}: {old.get(key)!r} vs {new.get(key)!r}" for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]
    return f"settings ({', '.join(changed)})" if changed else ""


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, Mapping):
        return {key: _to_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(item) for item in value)
    return value


__all__ = ["CHECKPOINT_VERSION", "fit_identity", "save_fit_state", "load_fit_state", "saved_epoch"]
