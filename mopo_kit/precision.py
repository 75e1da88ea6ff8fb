"""Numeric precision of the hot matrix products: ``fp32``, ``bf16`` or ``auto``.

Many CPUs have bfloat16 matrix units (Intel AMX-BF16, AVX512-BF16 on Intel and AMD Zen 4) whose
GEMMs run several times the float32 rate. ``bf16`` runs the hidden layers in bfloat16 where the
matrix work is: the dynamics ensemble's during model rollouts (weights cast once per weight
update, not per call) and the SAC actor's and twin critics' during updates (float32 weights cast
once per pass inside the autograd graph, so gradients and Adam stay float32). The heads (mean and
log-variance; action mean and log-std; the critics' last layer, hence Q-values and TD targets),
the penalty and everything accumulated stay float32. The dynamics fit has its own switch
(``EnsembleConfig.fit_precision``, ``train-dynamics --precision``).
``auto`` picks bf16 where the CPU has those units and float32 elsewhere (CUDA included, until it
is measured there) — and, for the model, only where every penalty it computes is
``bf16_tolerant`` (:func:`model_precision`). The default is ``auto`` since the quality checks of
``bf16`` — the penalty (``benchmarks/bench_precision.py``) and SAC's learning
(``benchmarks/precision_check.py``) — are committed (docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import torch

from mopo_kit.errors import MopoKitError

PRECISIONS = ("fp32", "bf16", "auto")
#: what a run, the demo and the reporting commands use when no precision is given; one place, so
#: the switch to ``auto`` (issue 33 item 6: after the bf16 learning check is committed) is one line
DEFAULT_PRECISION = "auto"
#: /proc/cpuinfo flags of bfloat16 matrix units
BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def check_precision(value: object, where: str = "config key 'precision'") -> str:
    if value not in PRECISIONS:
        raise MopoKitError(f"{where} must be one of {', '.join(PRECISIONS)}, got {value!r}")
    return str(value)


@lru_cache(maxsize=1)
def cpu_bf16_units() -> tuple[str, ...]:
    """The CPU's bfloat16 matrix features (e.g. ``("avx512_bf16",)``); empty where none or unknown."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return tuple(flag for flag in BF16_FLAGS if flag in flags)
    except OSError:
        pass
    return ()


def resolve_precision(spec: str, device: torch.device) -> str:
    """``fp32`` or ``bf16`` for a run on ``device``."""
    check_precision(spec)
    if spec != "auto":
        return spec
    return "bf16" if device.type == "cpu" and cpu_bf16_units() else "fp32"


def compute_dtype(precision: str) -> torch.dtype:
    return torch.bfloat16 if precision == "bf16" else torch.float32


def bf16_tolerant(estimator: object) -> bool:
    """Whether an estimator (object or factory) declares its u unchanged by a bf16 model forward.

    A class attribute ``bf16_tolerant = True`` is that declaration, made where it was measured
    (``benchmarks/bench_precision.py``: within 1 % median and 5 % p99 of float32 on the models
    measured, docs/performance.md). Anything that does not say so — the disagreement-based
    estimators, a plugin's — is taken as not tolerant.
    """
    return getattr(estimator, "bf16_tolerant", False) is True


def model_precision(spec: str, device: torch.device, estimators: Iterable[object]) -> str:
    """The dynamics model's precision for a run (or a report) that computes these estimators' u.

    As :func:`resolve_precision`, except that ``auto`` keeps the model float32 unless every
    estimator is :func:`bf16_tolerant`: ``wasserstein`` and ``mmd`` measure the members'
    disagreement, a small difference that bf16 rounding moves by 1.3–2.6 % (median) on the five
    models measured (docs/performance.md). An explicit
    ``bf16`` is taken as asked.
    """
    resolved = resolve_precision(spec, device)
    if spec == "auto" and resolved == "bf16" and not all(bf16_tolerant(e) for e in estimators):
        return "fp32"
    return resolved
