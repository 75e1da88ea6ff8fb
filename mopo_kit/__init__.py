"""mopo_kit: model-based offline RL (MOPO) with swappable, plugin-provided components."""

from __future__ import annotations

__version__ = "0.1.0"

from mopo_kit.hookspecs import hookimpl  # noqa: E402  (plugins write ``from mopo_kit import hookimpl``)

__all__ = ["__version__", "hookimpl"]
