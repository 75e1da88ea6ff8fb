"""Progress: rich bars on a terminal, plain timed lines in logs (nohup, schedulers, CI), or nothing.

On a terminal a live bar; when stderr is not a terminal, plain lines on stderr — the bar's text,
done/total, elapsed time, rate and ETA — at most one every :data:`LINE_EVERY` seconds as work
advances, and at least one every :data:`HEARTBEAT_EVERY` seconds while it does not (a long model
epoch), the way SB3 and Lightning log to files. ``MOPO_KIT_QUIET=1`` (``--quiet``) silences both.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

QUIET_ENV = "MOPO_KIT_QUIET"
#: seconds between progress lines when work advances faster than that (``MOPO_KIT_PROGRESS_SECONDS``)
LINE_EVERY = float(os.environ.get("MOPO_KIT_PROGRESS_SECONDS", 30.0))
#: the longest silence in a log: a line (the last known state) even when nothing advanced
HEARTBEAT_EVERY = 60.0


class _NullTask:
    def advance(self, amount: float = 1) -> None:
        pass

    def update(self, **fields: object) -> None:
        pass


class _RichTask:
    def __init__(self, progress: Progress, task_id: int) -> None:
        self._progress, self._id = progress, task_id

    def advance(self, amount: float = 1) -> None:
        self._progress.advance(self._id, amount)

    def update(self, **fields: object) -> None:
        self._progress.update(self._id, **fields)  # type: ignore[arg-type]


class _LineTask:
    """Progress as plain lines on stderr, throttled (:data:`LINE_EVERY`) with a heartbeat thread."""

    def __init__(self, description: str, total: float | None) -> None:
        self.description, self.total, self.completed = description, total, 0.0
        self.baseline = 0.0  # work done before this process started (a resumed run's epochs)
        self._advanced = False
        self.start = self.last_line = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._heartbeat, name="mopo-kit-progress", daemon=True)
        self._thread.start()

    def advance(self, amount: float = 1) -> None:
        with self._lock:
            self.completed += amount
            self._advanced = True
        self._maybe_print(LINE_EVERY)

    def update(self, **fields: object) -> None:
        with self._lock:
            if "description" in fields:
                self.description = str(fields["description"])
            if "completed" in fields:
                self.completed = float(fields["completed"])  # type: ignore[arg-type]
                if not self._advanced:
                    self.baseline = self.completed

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        parts = [f"{self.completed:g}" + (f"/{self.total:g} ({100 * self.completed / self.total:.0f} %)" if self.total else ""), f"{_clock(elapsed)} elapsed"]
        done = self.completed - self.baseline
        if done > 0 and elapsed > 0:
            parts.append(f"{done / elapsed * 60:.3g}/min")
            if self.total:
                parts.append(f"ETA {_clock((self.total - self.completed) * elapsed / done)}")
        return f"[mopo-kit] {self.description}: " + ", ".join(parts)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)
        if self.completed > self.baseline:
            self._print()

    def _maybe_print(self, every: float) -> None:
        if time.monotonic() - self.last_line >= every:
            self._print()

    def _print(self) -> None:
        with self._lock:
            self.last_line = time.monotonic()
            text = self.line()
        print(text, file=sys.stderr, flush=True)

    def _heartbeat(self) -> None:
        while not self._stop.wait(5.0):
            self._maybe_print(HEARTBEAT_EVERY)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def progress_enabled() -> bool:
    return not os.environ.get(QUIET_ENV) and sys.stderr.isatty()


def progress_lines_enabled() -> bool:
    """Plain progress lines: stderr is not a terminal and nobody asked for quiet."""
    return not os.environ.get(QUIET_ENV) and not sys.stderr.isatty()


@contextmanager
def progress_bar(description: str, total: float | None, *, lines: bool = True) -> Iterator[_RichTask | _NullTask | _LineTask]:
    """A rich progress bar on a terminal; timed plain lines in a log (unless ``lines=False``: the
    caller prints its own); a no-op object when quiet."""
    if not progress_enabled():
        if lines and progress_lines_enabled():
            task = _LineTask(description, total)
            try:
                yield task
            finally:
                task.close()
        else:
            yield _NullTask()
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    with progress:
        task_id = progress.add_task(description, total=total)
        yield _RichTask(progress, task_id)
