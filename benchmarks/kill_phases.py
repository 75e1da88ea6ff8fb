"""Run ``mopo-kit`` with phase markers, for the kill test: which phase is the process in right now?

    python benchmarks/kill_phases.py PHASE_FILE train DATA --config CFG -o RUN

The real CLI (``mopo_kit.cli.main``) runs unchanged; only the entry and exit of six functions are
wrapped to write the current phase into PHASE_FILE (one ``pwrite`` of a fixed-width record, so a
reader never sees half a name): ``fit`` (dynamics fitting), ``rollout`` (model rollouts),
``sac`` (gradient steps), ``eval`` (episodes in the real environment), ``checkpoint`` (checkpoint
writing) and ``bound`` (the final model bound). Between them the phase is ``other``. The kill
test reads this file to aim its SIGKILLs at every phase and to record where each one landed.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from typing import Any, Callable

PHASES = ("fit", "rollout", "sac", "eval", "checkpoint", "bound")
RECORD = 48


def _install(phase_file: str) -> None:
    import mopo_kit.mopo as mopo
    from mopo_kit.dynamics.gaussian_ensemble import GaussianEnsemble
    from mopo_kit.policy.lean_sac import LeanSAC
    from mopo_kit.policy.sac import SB3SAC

    fd = os.open(phase_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    counts = dict.fromkeys(PHASES, 0)

    def mark(phase: str) -> None:
        record = f"{phase} {counts.get(phase, 0)} {time.time():.3f}".ljust(RECORD - 1) + "\n"
        os.pwrite(fd, record.encode(), 0)

    def wrap(owner: Any, name: str, phase: str) -> None:
        original: Callable[..., Any] = getattr(owner, name)

        @functools.wraps(original)
        def marked(*args: Any, **kwargs: Any) -> Any:
            counts[phase] += 1
            mark(phase)
            try:
                return original(*args, **kwargs)
            finally:
                mark("other")

        setattr(owner, name, marked)

    wrap(GaussianEnsemble, "fit", "fit")
    wrap(SB3SAC, "rollout", "rollout")
    wrap(LeanSAC, "train", "sac")
    wrap(mopo, "evaluate_in_env", "eval")
    wrap(mopo.MOPO, "_checkpoint", "checkpoint")
    wrap(mopo, "model_bound", "bound")
    mark("other")


def read_phase(phase_file: str) -> tuple[str, int]:
    """The phase the marked process is in and how many times it has entered it."""
    try:
        with open(phase_file, "rb") as handle:
            fields = handle.read(RECORD).decode(errors="replace").split()
    except OSError:
        return "start", 0
    if len(fields) < 2:
        return "start", 0
    return fields[0], int(fields[1]) if fields[1].isdigit() else 0


if __name__ == "__main__":
    _install(sys.argv[1])
    from mopo_kit.cli import main

    raise SystemExit(main(sys.argv[2:]))
