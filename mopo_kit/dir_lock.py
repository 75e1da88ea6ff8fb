"""One writer per directory: an OS-level lock held while a process writes a run, sweep or model.

A second process that would write into the same directory (a resubmitted scheduler job, a command
started twice) gets one line naming the directory and the process holding it, before it touches
anything. The lock is ``fcntl.flock`` on a small file, so the OS releases it when its holder dies,
however it dies: a lock left by a killed process never blocks. Where ``fcntl`` does not exist
(Windows) the lock is a no-op.
"""

from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

from mopo_kit.errors import MopoKitError

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Linux/macOS
    fcntl = None  # type: ignore[assignment]


class DirectoryBusyError(MopoKitError):
    """Another live process holds the directory's lock."""


def lock_path_for(directory: Path, *, inside: bool = True) -> Path:
    """``DIR/.lock`` — or ``PARENT/.DIR.lock`` for a directory that is replaced whole when saved (a model)."""
    return directory / ".lock" if inside else directory.parent / f".{directory.name}.lock"


@contextmanager
def directory_lock(directory: Path, what: str, *, inside: bool = True) -> Iterator[None]:
    """Hold ``directory``'s lock for the block; :class:`DirectoryBusyError` at once if another process has it."""
    path = lock_path_for(Path(directory), inside=inside)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle: IO[str] = open(path, "a+")
    try:
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = _holder(handle.read())
                raise DirectoryBusyError(f"{directory}: in use by {holder}; wait for it to end or stop it (one writer per directory)") from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "what": what, "since": time.strftime("%Y-%m-%d %H:%M:%S")}))
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock; the file stays (removing it would race a new holder)


def _holder(text: str) -> str:
    try:
        info = json.loads(text)
        return f"process {info['pid']} on {info['host']} ({info['what']}, since {info['since']})"
    except (ValueError, KeyError, TypeError):
        return "another process"
