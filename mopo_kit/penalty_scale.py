"""One penalty strength for every estimator: κ, the penalty on the dataset as a fraction of its reward.

λ means nothing across estimators: ``max_aleatoric`` (a norm of standard deviations in raw units)
and ``total_variation`` (a number in [0, 1]) differ by orders of magnitude on the same model, so
"λ = 1 for both" compares two penalties of unrelated size. κ fixes the size instead::

    κ = λ · mean u(s, a) ÷ mean |r|        (both means over the dataset's own transitions)

i.e. the penalty that λ·u would subtract on the data, as a fraction of the data's reward. At the
same κ every estimator takes the same *average* bite out of the reward where the data is; they
differ only in *where* they put it (how fast u grows away from the data), which is the question
a penalty comparison asks. The rule is computed once per run from the run's own model and data
(:func:`penalty_scale`) and turned into λ = κ · mean |r| ÷ mean u before training; the run
records κ, λ and both means.

Why the dataset's transitions and not the model's rollouts: they exist before any policy does
(the rule cannot depend on the policy it is tuning), every estimator sees the same points, and
the number is deterministic. Why mean |r|: it gives κ a unit a reader can picture (κ = 0.1: the
penalty costs a tenth of the reward on the data) and makes κ comparable across tasks whose reward
scales differ; |r| rather than r so that tasks with negative rewards (halfcheetah-random) still
get a positive scale.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from mopo_kit.errors import MopoKitError

#: Rows per batched prediction: the model step's own rollout batch, which every device handles.
BATCH_ROWS = 50_000


@dataclass(frozen=True)
class PenaltyScale:
    """The two means that turn κ into λ for one estimator on one model and dataset."""

    estimator: str
    mean_penalty: float  # mean u(s, a) over the dataset's transitions
    mean_abs_reward: float  # mean |r| over the same transitions
    transitions: int

    def lam_for(self, kappa: float) -> float:
        """λ such that λ · mean u = κ · mean |r|; κ = 0 is λ = 0 (MBPO) for every estimator."""
        if kappa == 0.0:
            return 0.0
        if self.mean_penalty <= 0.0:
            raise MopoKitError(
                f"kappa={kappa}: estimator '{self.estimator}' is 0 on every transition of the dataset, so no λ gives it that size (use kappa 0, or lam)"
            )
        if self.mean_abs_reward <= 0.0:
            raise MopoKitError(f"kappa={kappa}: the dataset's rewards are all 0, so κ (a fraction of |r|) has no scale; give lam instead")
        return kappa * self.mean_abs_reward / self.mean_penalty

    def kappa_of(self, lam: float) -> float:
        """The κ that a given λ amounts to (e.g. the paper's λ for ``max_aleatoric``)."""
        return lam * self.mean_penalty / self.mean_abs_reward if self.mean_abs_reward > 0.0 else float("nan")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@torch.inference_mode()
def penalty_scale(data: Any, dynamics: Any, estimator: Any, *, name: str | None = None, device: torch.device | str = "cpu") -> PenaltyScale:
    """Mean u(s, a) and mean |r| over every transition of ``data``, in batches of :data:`BATCH_ROWS`.

    Uses only the protocols (``dynamics.predict``, ``estimator(obs, act, pred)``), so it works for
    any model and plugin estimator; u is accumulated in float64 so the mean does not depend on
    the batch split beyond float32 rounding of each u.
    """
    total = torch.zeros((), dtype=torch.float64, device=device)
    rows = len(data)
    for start in range(0, rows, BATCH_ROWS):
        obs = torch.as_tensor(data.observations[start : start + BATCH_ROWS], dtype=torch.float32, device=device)
        act = torch.as_tensor(data.actions[start : start + BATCH_ROWS], dtype=torch.float32, device=device)
        u = estimator(obs, act, dynamics.predict(obs, act))
        total += u.to(device=total.device, dtype=torch.float64).sum()
    mean_abs_reward = float(np.abs(np.asarray(data.rewards, dtype=np.float64)).mean()) if rows else 0.0
    return PenaltyScale(
        estimator=name or type(estimator).__name__,
        mean_penalty=float(total) / max(rows, 1),
        mean_abs_reward=mean_abs_reward,
        transitions=rows,
    )
