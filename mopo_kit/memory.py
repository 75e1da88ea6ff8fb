"""Memory checked before any work: a setting that cannot fit is one line, not a late allocator crash.

A component that allocates in proportion to the config (the SAC optimizer's model pool:
rollout batch × horizon × retained rollouts rows) may say so with a ``memory_estimate`` function
on its factory; :func:`check_fits` compares the sum with what the device has free and names the
largest item and the options that shrink it.
"""

from __future__ import annotations

import os
from typing import Mapping

import torch

from mopo_kit.errors import MopoKitError

GB = 1024**3


def available_bytes(device: torch.device) -> int | None:
    """Free memory where ``device``'s tensors live: CUDA's free bytes, else the host's available RAM.

    Host: ``MemAvailable`` of ``/proc/meminfo`` (what Linux can hand out without swapping), else
    free physical pages; None where neither can be read (the check is then skipped).
    """
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(items: Mapping[str, int], device: torch.device, hints: Mapping[str, str], *, available: int | None = None) -> None:
    """Raise one line when the items' total exceeds the free memory on ``device``.

    ``items``: what needs how many bytes (e.g. {"model pool": ...}); ``hints``: item → which
    options lower it. ``available`` overrides the measurement (tests).
    """
    free = available_bytes(device) if available is None else available
    total = sum(items.values())
    if free is None or total <= free:
        return
    largest = max(items, key=items.__getitem__)
    parts = ", ".join(f"{name} {size / GB:.1f} GB" for name, size in sorted(items.items(), key=lambda kv: -kv[1]) if size >= GB / 20)
    hint = f"; lower {hints[largest]}" if largest in hints else ""
    raise MopoKitError(f"this setting needs {total / GB:.1f} GB on {device} ({parts}) but {free / GB:.1f} GB is available{hint}")
