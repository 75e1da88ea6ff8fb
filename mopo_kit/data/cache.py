"""Where generated datasets are cached (``MOPO_KIT_DATA``, default ``~/.cache/mopo_kit/datasets``)."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "MOPO_KIT_DATA"


def data_dir() -> Path:
    """The dataset cache directory (created on demand by writers, not here)."""
    explicit = os.environ.get(DATA_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mopo_kit" / "datasets"
