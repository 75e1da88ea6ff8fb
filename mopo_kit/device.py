"""One ``device`` setting for every component: parse it, check it, resolve it to a ``torch.device``.

Why one module: the config, the CLI and every component must agree on what "auto" means and
must refuse ``cuda`` on a machine without CUDA *before* any work — not after a dataset was
generated and the first tensor hits ``.to("cuda")`` with a multi-line driver traceback.

Accepted specs: ``"auto"`` (CUDA when ``torch.cuda.is_available()``, else CPU), ``"cpu"``,
``"cuda"`` and ``"cuda:N"``. A ``torch.device`` is accepted too.
"""

from __future__ import annotations

import argparse
import inspect
import re
import warnings
from typing import Any, Callable, Mapping

import torch

from mopo_kit.errors import MopoKitError

_SPEC = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
SPECS_HELP = "'auto', 'cpu', 'cuda' or 'cuda:N'"


def check_device_spec(spec: Any, key: str = "device", where: str = "config key") -> str:
    """``spec`` as a normalized string, or one line naming the key and the accepted values.

    Only the *form* is checked here (cheap, no CUDA query); :func:`resolve_device` checks that
    the device exists.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    if not isinstance(spec, str) or not _SPEC.match(spec.strip().lower()):
        raise MopoKitError(f"{where} '{key}' must be {SPECS_HELP}, got {spec!r}")
    return spec.strip().lower()


def _cuda_unavailable(flag: str, text: str) -> MopoKitError:
    build = f"torch {torch.__version__}, " + (f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build")
    return MopoKitError(f"{flag} {text}: CUDA is not available on this machine ({build}); use cpu or auto")


def resolve_device(spec: Any = "auto", *, flag: str = "--device") -> torch.device:
    """The ``torch.device`` for ``spec``; CUDA asked for but absent is one :class:`MopoKitError` line.

    ``flag`` names the setting in that line (``--device cuda: CUDA is not available ...``).
    Only ``torch.cuda.is_available()`` / ``device_count()`` are queried: no CUDA context is
    created, so worker processes forked afterwards can still use CUDA.
    """
    if isinstance(spec, torch.device) and spec.type not in ("cpu", "cuda"):
        return spec  # e.g. "meta" in tests: taken as given
    text = check_device_spec(spec)
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(text)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise _cuda_unavailable(flag, text)
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise MopoKitError(f"{flag} {text}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
    return device


def device_option(text: str) -> str:
    """argparse ``type=`` for ``--device``: a bad form is argparse's one-line error (exit 2)."""
    try:
        return check_device_spec(text)
    except MopoKitError:
        raise argparse.ArgumentTypeError(f"must be {SPECS_HELP}, got {text!r}") from None


def add_device_argument(parser: argparse.ArgumentParser, default: str | None = "auto", help_extra: str = "") -> None:
    """The same ``--device`` option on every command that computes."""
    said = help_extra if default is None else f"{default}{'; ' + help_extra if help_extra else ''}"
    parser.add_argument("--device", type=device_option, default=default, help=f"torch device: {SPECS_HELP} (default: {said})")


def accepts_keyword(factory: Callable[..., Any], name: str = "device") -> bool:
    """True when ``factory`` (a class or function) takes ``name`` as an explicit keyword.

    ``**params`` does not count: an older plugin that forwards its params to a dataclass would
    fail on an unknown ``device`` key, and it must keep working.
    """
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # builtins, C extensions: no signature to read
        return False
    param = parameters.get(name)
    return param is not None and param.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def with_device(factory: Callable[..., Any], params: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """``params`` plus ``device`` when ``factory`` names a ``device`` keyword; an explicit param wins."""
    if "device" in params or not accepts_keyword(factory, "device"):
        return dict(params)
    return {**params, "device": str(device)}


def device_of(obj: Any, default: torch.device | None = None) -> torch.device:
    """Where a component computes: its ``device`` attribute, else its first parameter's device."""
    device = getattr(obj, "device", None)
    if isinstance(device, (str, torch.device)):
        return torch.device(device)
    for attr in ("net", "model", "policy"):
        module = getattr(obj, attr, None)
        if isinstance(module, torch.nn.Module):
            for param in module.parameters():
                return param.device
    return default if default is not None else torch.device("cpu")


def generator_on(device: torch.device | str, seed: int) -> torch.Generator:
    """A seeded ``torch.Generator`` on ``device`` (a CPU generator cannot feed CUDA sampling)."""
    return torch.Generator(device=torch.device(device)).manual_seed(seed)


def restore_generator(generator: torch.Generator, state: torch.Tensor, what: str) -> bool:
    """Set ``generator``'s state; a state saved on another device type keeps the current stream.

    CPU (Mersenne twister) and CUDA (Philox) states differ in size, so a checkpoint written on
    one continues on the other with its own stream: the weights, pool and step count are exact,
    the random draws from then on are not. Returns whether the state was restored.
    """
    try:
        generator.set_state(state.cpu())
        return True
    except RuntimeError:
        warnings.warn(f"{what}: random state saved on another device type; continuing with a fresh stream (exact resume needs the same device)")
        return False


__all__ = [
    "SPECS_HELP",
    "check_device_spec",
    "resolve_device",
    "device_option",
    "add_device_argument",
    "accepts_keyword",
    "with_device",
    "device_of",
    "generator_on",
    "restore_generator",
]
