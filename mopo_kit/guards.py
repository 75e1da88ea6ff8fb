"""Checks of component outputs on the hot path: one fused reduction when all is well.

A model step on 50,000 rows must not pay for exact counts on every call, so the fast path
reduces each tensor once (``aminmax`` for the penalty and the variances — NaN propagates through
min and max —, ``sum`` for the means — a NaN or inf anywhere makes it non-finite) and only the failure path counts the bad rows for the
message. Each check raises :class:`~mopo_kit.errors.ComponentOutputError` with one line, e.g.
``uncertainty estimator 'my_plugin' returned NaN for 7 of 50,000 rows at epoch 3``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mopo_kit.errors import ComponentOutputError


def _where(context: str) -> str:
    return f" {context}" if context else ""


def _bad_values(x: Tensor, rows: int) -> str:
    """'NaN for 7 of 50,000 rows', 'inf for ...', 'negative values for ...' (the failure path only)."""
    flat = x.reshape(rows, -1) if rows else x.reshape(0, 1)
    parts = []
    for label, mask in (("NaN", torch.isnan(flat)), ("inf", torch.isinf(flat)), ("negative values", flat < 0)):
        count = int(mask.any(dim=1).sum())
        if count:
            parts.append(f"{label} for {count:,} of {rows:,} rows")
    return ", ".join(parts)


def check_penalty(u: object, rows: int, name: str, context: str = "") -> Tensor:
    """``u`` must be a tensor of shape (rows,), finite and >= 0; returns it."""
    label = f"uncertainty estimator '{name}'"
    if not isinstance(u, Tensor):
        raise ComponentOutputError(f"{label} returned a {type(u).__name__}, expected a tensor of shape ({rows},){_where(context)}")
    if tuple(u.shape) != (rows,):
        raise ComponentOutputError(f"{label} returned shape {tuple(u.shape)}, expected ({rows},){_where(context)}")
    if rows == 0:
        return u
    low, high = torch.stack(torch.aminmax(u)).tolist()  # NaN propagates to both; one host sync
    if not (low >= 0.0 and high < math.inf):
        raise ComponentOutputError(f"{label} returned {_bad_values(u, rows)}{_where(context)}")
    return u


def check_prediction(mean: Tensor, var: Tensor, name: str, context: str = "") -> None:
    """The model's per-member means and variances (E, B, D) must be finite, variances >= 0."""
    # the mean's sum is non-finite iff some element is (or the sum overflows); NaN propagates
    # through the variances' min and max; the three numbers reach the host in one sync (a GPU
    # step pays one transfer, not three)
    total, low, high = torch.stack([mean.sum().to(var.dtype), *torch.aminmax(var)]).tolist()
    if math.isfinite(total) and low >= 0.0 and high < math.inf:
        return
    rows = int(mean.shape[1]) if mean.ndim == 3 else int(mean.shape[0])
    problems = []
    for label, x in (("mean", mean), ("variance", var)):
        per_row = x.transpose(0, 1) if x.ndim == 3 else x
        found = _bad_values(per_row, rows)
        if found:
            problems.append(f"{label} {found}")
    if problems:  # an overflowing sum of finite values is not an error
        raise ComponentOutputError(f"dynamics model '{name}' predicted {'; '.join(problems)}{_where(context)}")


__all__ = ["check_penalty", "check_prediction"]
