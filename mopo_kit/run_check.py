"""Check a run directory's files before resuming it: one line naming a corrupt or truncated file.

Checkpoints are written atomically, so a damaged one comes from outside (a full disk, a partial
copy, an edit); resuming from it would fail deep inside SB3 or torch with a traceback. Before any
work the resume path reads every JSON file of the run and checks every ``.zip`` / ``.pt`` archive
of its checkpoint (torch and SB3 both write zip archives) with its CRCs — generic, so it holds
for any policy optimizer's checkpoint files.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from mopo_kit.errors import MopoKitError

ARCHIVE_SUFFIXES = (".zip", ".pt")


def _check_json(path: Path) -> None:
    try:
        json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MopoKitError(f"{path}: corrupt or truncated JSON ({exc}); the run cannot resume from it") from None


def _check_archive(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise MopoKitError(f"{path}: corrupt or truncated checkpoint file ({exc}); the run cannot resume from it") from None
    if bad is not None:
        raise MopoKitError(f"{path}: corrupt checkpoint file (member '{bad}' fails its CRC); the run cannot resume from it")


def check_run_dir(run: Path) -> None:
    """Raise one line if ``run``'s config or last checkpoint cannot be read back."""
    if not (run / "config.json").exists():
        raise MopoKitError(f"{run}: not a run directory (config.json missing)")
    _check_json(run / "config.json")
    checkpoint = run / "checkpoint"
    if not checkpoint.is_dir():
        return  # killed before its first checkpoint: resuming starts over
    for path in sorted(checkpoint.rglob("*")):
        if path.suffix == ".json":
            _check_json(path)
        elif path.suffix in ARCHIVE_SUFFIXES:
            _check_archive(path)


__all__ = ["check_run_dir"]
