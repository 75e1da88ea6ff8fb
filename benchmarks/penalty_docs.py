"""docs/penalties.md's generated blocks (tuning, report, against MBPO, across cells, offline selection,
bandit) and the per-cell plots in docs/img/, all rendered from table.json (``penalty_table.py``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_stats import file_safe  # noqa: E402
from common import ROOT  # noqa: E402
from penalty_design import ESTIMATORS, PAPER_MOPO, REPORT_SEEDS, TUNING_SEED  # noqa: E402

DOC = ROOT / "docs" / "penalties.md"
DOC_MARKER = "<!-- begin generated: penalty_study.py tuning -->"
IMG = ROOT / "docs" / "img"
BANDIT_NS = (1, 3, 5, 10, 20, 50)


def tuning_markdown(table: dict[str, Any]) -> str:
    """The docs table of tuning runs (seed 3), from table.json: one row per cell × estimator × κ."""
    lines = [
        "| cell | estimator | κ | λ | last-5 mean | final (20 episodes) | η̂ | ε | η̂ − λ·ε | picked |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cell, estimators in table["tuning"].items():
        for name, runs in estimators.items():
            pick = table["selected"].get(cell, {}).get(name)
            for run in runs:
                lines.append(
                    f"| {cell} | `{name}` | {run['kappa']:g} | {run['lam']:.3g} | {run['return_last5']:.0f} | {run['final_mean']:.0f} | "
                    f"{run['eta_hat']:.2f} | {run['epsilon']:.2f} | {run['bound']:.2f} | {'**yes**' if pick == run['kappa'] else ''} |"
                )
    done = sum(len(runs) for estimators in table["tuning"].values() for runs in estimators.values())
    total = sum(len(entry["grid"]) * len(ESTIMATORS) for entry in table["kappa_paper"].values())
    lines.append("")
    lines.append(f"{done} of {total} tuning runs published for the cells whose κ grid is fixed; report runs: "
                 f"{sum(v['return_last']['n'] for cell in table['report'].values() for v in cell.values())}.")
    return "\n".join(lines)


def _ms(entry: dict[str, Any] | None) -> str:
    return "–" if not entry or entry["mean"] is None else f"{entry['mean']:.0f} ± {entry['std']:.0f}" + (f" (n={entry['n']})" if entry["n"] != len(REPORT_SEEDS) else "")


def report_markdown(table: dict[str, Any]) -> str:
    """The report table: per cell, each method at its selected κ (seeds 0-2) and MOPO at the paper's λ from the tables."""
    lines = [
        "| cell | method | κ | λ per seed | last evaluation | last-5 mean | final (20 episodes) |",
        "|---|---|---|---|---|---|---|",
    ]
    for cell in table["kappa_paper"]:
        for method, row in table["report"].get(cell, {}).items():
            lines.append(f"| {cell} | `{method}` | {row['kappa']:g} | {', '.join(f'{lam:.3g}' for lam in row['lam'])} | "
                         f"{_ms(row['return_last'])} | {_ms(row['return_last5'])} | {_ms(row['final_mean'])} |")
        ours = table.get("paper_kappa", {}).get(cell)
        if ours:
            lines.append(f"| {cell} | `max_aleatoric` at κ_paper (study's models) | {ours['kappa']:g} | {', '.join(f'{lam:.3g}' for lam in ours['lam'])} | "
                         f"{_ms(ours['return_last'])} | {_ms(ours['return_last5'])} | {_ms(ours['final_mean'])} |")
        paper = table.get("paper_mopo", {}).get(cell)
        if paper:
            lines.append(f"| {cell} | MOPO at the paper's λ (table's runs) | {table['kappa_paper'][cell]['kappa_paper']:.2g} | {paper['lam']:g} | "
                         f"{_ms(paper['return_last'])} | {_ms(paper['return_last5'])} | – |")
    runs = sum(v["return_last"]["n"] for cell in table["report"].values() for v in cell.values())
    lines += ["", f"{runs} report runs published (of {len(REPORT_SEEDS) * (len(ESTIMATORS) + 1)} per cell). "
              "mean ± std over seeds 0-2; n = seeds published so far where fewer."]
    return "\n".join(lines)


def _delta(entry: dict[str, Any]) -> str:
    ci = entry["ci"]
    return f"{entry['delta']:+.0f}" + (f" [{ci[0]:+.0f}, {ci[1]:+.0f}]" if ci else "")


def versus_markdown(table: dict[str, Any]) -> str:
    """Each estimator at its selected κ against MBPO: the difference of the means with its Welch 95 %
    interval, the probability that a run of the estimator beats a run of MBPO, and seed for seed on
    the same shared model (paired interval, seeds won)."""
    lines = [
        "| cell | estimator | κ | seeds (estimator / MBPO) | Δ last-5 mean [95 % CI] | P(beats MBPO), last-5 | same model, seed for seed: Δ last-5 [paired 95 % CI], seeds ahead "
        "| Δ final, 20 episodes [95 % CI] | P(beats MBPO), final |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for cell, estimators in table.get("versus_mbpo", {}).items():
        for name, row in estimators.items():
            last5, final, pair = row["return_last5"], row["final_mean"], row.get("paired_last5")
            label = {PAPER_MOPO: "MOPO at the paper's λ (table's runs, own model fits)", "paper_kappa": "`max_aleatoric` at κ_paper (study's models)"}.get(name, f"`{name}`")
            same = f"{_delta(pair)}, {pair['wins']:g} of {pair['n']}" if pair else "–"
            lines.append(f"| {cell} | {label} | {row['kappa']:.2g} | {last5['n_a']} / {last5['n_b']} | {_delta(last5)} | {last5['prob_improvement']:.2f} | {same} | "
                         + (f"{_delta(final)} | {final['prob_improvement']:.2f} |" if final else "– | – |"))
    return "\n".join(lines)


def across_markdown(table: dict[str, Any]) -> str:
    """Per estimator, P(beats MBPO) averaged over the cells whose report is complete, with its interval."""
    lines = [
        "| estimator | cells (complete report) | P(beats MBPO), last-5 [95 % CI] | P(beats MBPO), final 20 episodes [95 % CI] |",
        "|---|---|---|---|",
    ]
    show = lambda e: f"{e['prob_improvement']:.2f} [{e['ci'][0]:.2f}, {e['ci'][1]:.2f}]"  # noqa: E731
    for name, row in table.get("across_cells", {}).items():
        lines.append(f"| `{name}` | {', '.join(row['cells'])} | {show(row['return_last5'])} | {show(row['final_mean'])} |")
    if len(lines) == 2:
        lines.append("| – | no cell has all report seeds of an estimator and MBPO yet | – | – |")
    return "\n".join(lines)


def on_policy_markdown(table: dict[str, Any]) -> str:
    """Per cell and estimator: does u rank the model's error on the states the policies reach — its
    own report policies, and MBPO's (the same states for every estimator)?"""
    lines = [
        "| cell | estimator | policies (seeds) | ρ(u, error) | error > c95·u, per seed | error: policy ÷ data | u: policy ÷ data |",
        "|---|---|---|---|---|---|---|",
    ]
    labels = {"own": "its own at the selected κ", "paper_kappa": "`max_aleatoric` at κ_paper", "mbpo": "MBPO's"}
    show = lambda e: "–" if e["mean"] is None else f"{e['mean']:.2f} ± {e['std']:.2f}"  # noqa: E731
    for cell, estimators in table.get("on_policy", {}).items():
        for name, groups in estimators.items():
            for group in ("own", "paper_kappa", "mbpo"):
                if group in groups:
                    row = groups[group]
                    violations = ", ".join("–" if v is None else f"{v:.0%}" for v in row["violations"])
                    lines.append(f"| {cell} | `{name}` | {labels[group]} ({', '.join(map(str, row['seeds']))}) | {show(row['spearman'])} | "
                                 f"{violations} | {show(row['error_ratio'])} | {show(row['u_ratio'])} |")
    if len(lines) == 2:
        lines.append("| – | no on-policy check yet (`python benchmarks/penalty_on_policy.py`) | – | – | – | – | – |")
    return "\n".join(lines)


def _kappas_in(table: dict[str, Any], cell: str, name: str) -> str:
    """`` (2 of 3 κ)`` while an estimator's tuning is incomplete: a rank over two policies is ±1 by
    construction, so a partial row must say so; empty once every κ of the grid is in."""
    have, grid = len(table["tuning"][cell][name]), len(table["kappa_paper"][cell]["grid"])
    return "" if have >= grid else f" ({have} of {grid} κ)"


def offline_markdown(table: dict[str, Any]) -> str:
    """Per cell and estimator: does an offline number order the three κ policies as their real returns do?"""
    lines = [
        "| cell | estimator | ρ(η̂) | ρ(−ε) | ρ(η̂ − λ·ε) | picks the best κ: η̂ / −ε / η̂ − λ·ε | regret of η̂ − λ·ε's pick |",
        "|---|---|---|---|---|---|---|",
    ]
    yes = lambda flag: "yes" if flag else "no"  # noqa: E731
    for cell, estimators in table["offline_selection"].items():
        for name, row in estimators.items():
            rho = [row[stat]["spearman"] for stat in ("eta_hat", "epsilon", "bound")]
            lines.append(f"| {cell} | `{name}`{_kappas_in(table, cell, name)} | " + " | ".join("–" if r is None else f"{r:+.2f}" for r in rho)
                         + f" | {' / '.join(yes(row[stat]['picks_best']) for stat in ('eta_hat', 'epsilon', 'bound'))} | {row['bound']['regret']:.0f} |")
    return "\n".join(lines)


def bandit_markdown(table: dict[str, Any]) -> str:
    """The expected real return of UCB1's pick after n real episodes, beside the best κ's."""
    lines = [
        "| cell | estimator | best κ's return | " + " | ".join(f"n = {n}" for n in BANDIT_NS) + " |",
        "|---|---|---|" + "---|" * len(BANDIT_NS),
    ]
    for cell, estimators in table["bandit"].items():
        for name, row in estimators.items():
            curve = row["expected_return_of_pick"]
            lines.append(f"| {cell} | `{name}`{_kappas_in(table, cell, name)} | {max(row['true_values']):.0f} | " + " | ".join(f"{curve[n - 1]:.0f}" for n in BANDIT_NS if n <= len(curve)) + " |")
    return "\n".join(lines)


def plots_markdown(table: dict[str, Any]) -> str:
    """The per-cell plots that :func:`plot_cells` draws, one image per cell with tuning runs."""
    return "\n\n".join(f"![{cell}](img/penalties_{file_safe(cell)}.png)" for cell in table["tuning"])


def shared_models_markdown(table: dict[str, Any]) -> str:
    """One line per cell: how many model fits its runs stand on, per seed (1 everywhere = comparable)."""
    check = table.get("shared_models") or {"fits_per_seed": {}, "consistent": True}
    lines = [f"* {cell}: " + ", ".join(f"seed {seed} {'one fit' if n == 1 else f'**{n} fits**'}" for seed, n in seeds.items())
             for cell, seeds in check["fits_per_seed"].items()]
    verdict = ("Every seed's runs stand on one model fit (seed 3's on the fit κ_paper was computed from): estimators and κ are compared on the same model."
               if check["consistent"] else "**A seed's runs stand on more than one model fit**: its comparisons mix a model difference in (see above).")
    return "\n".join([*lines, "", verdict])


#: the other generated blocks of docs/penalties.md: marker → what writes its body from table.json
DOC_BLOCKS = {
    "<!-- begin generated: penalty_study.py plots -->": plots_markdown,
    "<!-- begin generated: penalty_study.py report -->": report_markdown,
    "<!-- begin generated: penalty_study.py versus mbpo -->": versus_markdown,
    "<!-- begin generated: penalty_study.py across cells -->": across_markdown,
    "<!-- begin generated: penalty_study.py on policy -->": on_policy_markdown,
    "<!-- begin generated: penalty_study.py offline selection -->": offline_markdown,
    "<!-- begin generated: penalty_study.py bandit -->": bandit_markdown,
    "<!-- begin generated: penalty_study.py shared models -->": shared_models_markdown,
}


def plot_cells(table: dict[str, Any]) -> list[Path]:
    """docs/img/penalties_<cell>.png: real return against κ per estimator (tuning seed; MBPO and the
    paper-λ MOPO as lines), and the bandit's expected pick against real episodes spent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    IMG.mkdir(parents=True, exist_ok=True)
    paths = []
    colors = {name: f"C{i}" for i, name in enumerate(ESTIMATORS)}
    for cell, estimators in table["tuning"].items():
        fig, (left, right) = plt.subplots(1, 2, figsize=(12.5, 3.8), gridspec_kw={"wspace": 0.9})
        for name, runs in estimators.items():
            kappas = [r["kappa"] for r in runs]
            left.plot(kappas, [r["return_last5"] for r in runs], "o-", color=colors[name], label=f"{name} (last-5 mean)")
            left.plot(kappas, [r["final_mean"] for r in runs], "x--", color=colors[name], alpha=0.6, label=f"{name} (final, 20 ep.)")
        mbpo = table["report"].get(cell, {}).get("mbpo")
        if mbpo:
            left.axhline(mbpo["return_last5"]["mean"], color="k", linewidth=1, label=f"MBPO κ = 0 (seeds {', '.join(map(str, mbpo['seeds']))}, last-5)")
        paper = table.get("paper_mopo", {}).get(cell)
        if paper:
            left.axhline(paper["return_last5"]["mean"], color="grey", linestyle=":", label="MOPO, paper's λ (table, seeds 0-2, last-5)")
        left.axvline(table["kappa_paper"][cell]["kappa_paper"], color="grey", linewidth=0.6)
        grid_kappas = table["kappa_paper"][cell]["grid"]
        left.set(xscale="log", title=f"{cell}: tuning seed {TUNING_SEED}", xlabel="κ (λ · mean u / mean |r| on the data); thin line: κ_paper", ylabel="real return")
        left.set_xticks(grid_kappas, [f"{k:g}" for k in grid_kappas])
        left.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        left.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
        for name, row in table["bandit"].get(cell, {}).items():
            curve = row["expected_return_of_pick"]
            right.plot(range(1, len(curve) + 1), curve, color=colors[name], label=name)
            right.axhline(max(row["true_values"]), color=colors[name], linestyle=":", linewidth=0.8)
        right.set(title="UCB1 over the three κ policies", xlabel="real episodes spent", ylabel="expected real return of the pick")
        if table["bandit"].get(cell):
            right.legend(fontsize=6)
        else:
            right.text(0.5, 0.5, "after two κ runs of an estimator", ha="center", transform=right.transAxes)
        path = IMG / f"penalties_{file_safe(cell)}.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    return paths


def write_docs(table: dict[str, Any]) -> None:
    from generated_blocks import replace_generated_block

    where = str(DOC.relative_to(ROOT))
    text = replace_generated_block(DOC.read_text(), DOC_MARKER, tuning_markdown(table), where=where)
    for marker, render in DOC_BLOCKS.items():
        text = replace_generated_block(text, marker, render(table), where=where)
    DOC.write_text(text)
    plot_cells(table)

