"""User-facing errors.

Every problem caused by the user's input (a file, a key, a name, a plugin) is raised as a
:class:`MopoKitError` whose message is one line naming the culprit. The CLI prints that line and
exits with status 2; library callers can catch it like any other exception.
"""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """An exception as one line (its message's first line, else its type): for failure lists that
    name many runs at once, where a traceback per run would bury the names."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class MopoKitError(Exception):
    """A problem with the user's input, reported as one line (the CLI exits with status 2)."""


class DatasetError(MopoKitError):
    """A dataset file or array is missing, malformed or inconsistent."""


class PluginError(MopoKitError):
    """A plugin is broken, or two plugins claim the same component name."""


class UnknownComponentError(MopoKitError):
    """A component name (dataset, task, estimator, ...) is not registered."""


class ComponentOutputError(MopoKitError):
    """A component returned values that break its contract (NaN, inf, negative, wrong shape).

    Raised before the values are used or stored, so nothing downstream — the replay pool, a
    checkpoint, a report — ever holds them; the message names the component and how many rows.
    """
