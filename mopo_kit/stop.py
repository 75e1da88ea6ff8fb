"""Graceful stop: SIGTERM or SIGINT ends the current unit of work, writes a checkpoint, and exits.

What Slurm, Kubernetes, systemd and ``timeout`` send first is SIGTERM, with a grace period before
SIGKILL. Under :func:`graceful_stop` the first SIGTERM/SIGINT only sets a flag; the long loops
(SAC updates, model-fit epochs) look at it between units, write their checkpoint and raise
:class:`StopRequested`, which the CLI turns into one line saying how to resume and exit status 143
(SIGTERM) or 130 (SIGINT). A second signal stops at once, as without the handler.

Handlers can only be installed from the main thread; elsewhere (or nested) the context is a no-op
and the flag stays unset, so library code may always ask :func:`stop_requested`.

Worker processes (a sweep's trials, a dataset's collection shards) call :func:`die_with_parent`
first, so that no worker outlives the process that started it.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Any, Iterator

from mopo_kit.errors import MopoKitError

_requested: int | None = None  # the first signal received while a handler is installed
_installed = False


class StopRequested(MopoKitError):
    """Work stopped on a signal after writing its checkpoint; ``exit_code`` is 128 + the signal."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum

    def __reduce__(self) -> tuple[Any, ...]:  # crosses from a sweep's worker process to its parent
        return (type(self), (str(self), self.signum))


def stop_requested() -> int | None:
    """The signal number asking this process to stop, or None."""
    return _requested


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def _handle(signum: int, frame: Any) -> None:
    global _requested
    if _requested is not None:  # the second signal: stop now, as without a handler
        signal.signal(signum, signal.SIG_DFL)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        os.kill(os.getpid(), signum)
        return
    _requested = signum


@contextmanager
def graceful_stop(signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)) -> Iterator[None]:
    """Install the handlers for the block (main thread, outermost use only).

    A sweep's worker takes SIGTERM only: its parent forwards one stop to it, and a terminal's
    Ctrl-C, which reaches the whole process group, must not count as a second signal there.
    """
    global _installed, _requested
    if _installed or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _handle) for sig in signals}
    _installed, _requested = True, None
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _installed, _requested = False, None


def request_stop(signum: int = signal.SIGTERM) -> None:
    """Ask the running loops to stop as a signal would (a sweep worker told by its parent; tests)."""
    global _requested
    _requested = signum


def die_with_parent(signum: int = signal.SIGTERM, parent_pid: int | None = None) -> None:
    """In a worker process: receive ``signum`` when the parent dies (Linux), and ignore SIGINT.

    Without it a parent killed outright (SIGKILL, a second signal, ``timeout``) leaves its workers
    running on: a sweep's would write into trial directories that the rerun resumes at the same
    time, a collection's would step environments for minutes for nobody. SIGINT is ignored because
    a terminal's Ctrl-C reaches the whole process group and the parent decides what it means.
    Elsewhere than Linux only SIGINT is ignored.

    ``parent_pid`` (the pool owner's ``os.getpid()``, passed through the initializer) closes the
    race between the fork and ``prctl``: a parent that died in between has re-parented the worker to
    PID 1 or to a subreaper (a container's init, ``systemd --user``), so the worker compares with
    the pid it was started by. Without it only re-parenting to PID 1 is recognized. The pool must
    start its workers as direct children (the ``fork`` and ``spawn`` contexts; under ``forkserver``
    the parent is the server, so pass no ``parent_pid`` there).
    """
    import ctypes

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signum)  # PR_SET_PDEATHSIG
        except OSError:
            pass
        orphaned = os.getppid() != parent_pid if parent_pid is not None else os.getppid() == 1
        if orphaned:  # the parent died before prctl took effect
            os._exit(1)
