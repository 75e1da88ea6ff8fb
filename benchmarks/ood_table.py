"""The paper's out-of-distribution table: halfcheetah-jump and ant-angle, MOPO vs an IPM vs MBPO.

    python benchmarks/ood_table.py                        # 3 methods × 2 tasks × 3 seeds, 100k steps
    python benchmarks/ood_table.py --stage 0              # the choice of h and λ, on seed 3 only
    python benchmarks/ood_table.py --cell ant-angle       # one task
    python benchmarks/ood_table.py --table --markdown     # rebuild table.json, plots; print the docs table
    python benchmarks/ood_table.py --write-docs           # ... and regenerate the tables in docs/ood.md

MOPO = ``max_aleatoric``, the IPM = ``wasserstein``, MBPO = ``zero``, all at one (h, λ) per task.
Neither the paper nor the released code publishes h and λ for these tasks; the default here is
h = 5, λ = 1 — halfcheetah-mixed's setting, the closest published case (these datasets are whole
replay buffers, like mixed) — and stage 0 checks it on seed 3, which no reported run uses.
Mechanics: ``benchmarks/campaign.py``; results ``benchmarks/results/ood/``; docs ``docs/ood.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from campaign import Campaign, Stage  # noqa: E402
from common import ROOT, one_line_errors  # noqa: E402

CELLS = ("halfcheetah-jump", "ant-angle")
HORIZON, LAM = 5, 1.0

OOD = Campaign(
    name="ood-table",
    results=ROOT / "benchmarks" / "results" / "ood",
    # stage 0 checks the setting with MOPO on seed 3, which no reported run uses; stage 1 reports
    stages={0: Stage(CELLS, 100_000, seeds=(3,), methods=("mopo",)), 1: Stage(CELLS, 100_000, label="halfcheetah-jump and ant-angle")},
    default_stage=1,
    methods={"mopo": "max_aleatoric", "wasserstein": "wasserstein", "mbpo": "zero"},
    # the talk's Table 2 (raw returns); the paper's text gives MOPO 2,530.9 ± 137 on ant-angle
    paper={
        "halfcheetah-jump": {"mopo": 4016.6, "mbpo": 2971.4, "batch_mean": -1022.6},
        "ant-angle": {"mopo": 2256.0, "mbpo": 13.6, "batch_mean": 866.7},
    },
    fixed={"lam": [LAM], "horizon": [HORIZON]},
    plot_prefix="ood_",
    script="ood_table.py",
    docs=(("docs/ood.md", "table"), ("docs/ood.md", "progress"), ("docs/ood.md", "models"), ("README.md", "progress"), ("README.md", "summary")),
)

if __name__ == "__main__":
    raise SystemExit(one_line_errors("ood_table.py", OOD.main, description=__doc__.split("\n\n")[0]))
