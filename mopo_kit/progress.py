"""Progress bars (rich) that stay quiet when output is not a terminal or when asked to."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

QUIET_ENV = "MOPO_KIT_QUIET"


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


def progress_enabled() -> bool:
    return not os.environ.get(QUIET_ENV) and sys.stderr.isatty()


@contextmanager
def progress_bar(description: str, total: float | None) -> Iterator[_RichTask | _NullTask]:
    """A rich progress bar on stderr; a no-op object when stderr is not a terminal."""
    if not progress_enabled():
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
