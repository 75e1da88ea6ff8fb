"""What a campaign shows: the docs' tables (results, shared models, README summary, progress) and the learning-curve plots.

:class:`CampaignDocs` is mixed into :class:`campaign.Campaign`: rendering reads the campaign's
definition (methods, stages, paper numbers, docs blocks) and its ``table.json``, never a trial
directory, so every number in the docs comes from the published runs alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from budgets import evaluation_steps, trajectories
from common import ROOT
from generated_blocks import replace_generated_block
from run_stats import TAIL_EVALS, budget_label, display_method, file_safe, runs_by_seed, same_model_fit

if TYPE_CHECKING:
    from campaign import Stage


#: marks a deeper budget's return that stands on another model fit than the budget before (``budgets_markdown``)
OTHER_FIT_MARK = "†"


def _budget_return(entry: dict[str, Any] | None) -> str:
    """One method's last return at one budget for the budgets block: "…" if not run yet, marked if on another fit."""
    if entry is None:
        return "…"
    if entry.get("same_model_fit_as_shorter") is not False:
        return f"{entry['return_last']:,.0f}"
    own = entry.get("own_return_at_shorter")
    return f"{entry['return_last']:,.0f}{OTHER_FIT_MARK}" + ("" if own is None else f" (from {own:,.0f})")


class CampaignDocs:
    """Rendering for :class:`campaign.Campaign` (its fields are declared here for the type checker only)."""

    methods: dict[str, str]
    stages: dict[int, "Stage"]
    seeds: tuple[int, ...]
    paper_label: str
    docs: tuple[tuple[str, str], ...]
    script: str
    plot_prefix: str

    def records(self) -> list[dict[str, Any]]:  # provided by Campaign
        raise NotImplementedError

    def window_steps(self) -> int:  # provided by Campaign
        raise NotImplementedError

    def models_markdown(self, table: dict[str, Any]) -> str:
        """The docs table of shared models: fit, and per method u (λ) and raw model reward per step, return."""
        methods = list(self.methods)
        names = [m.upper() if m in ("mopo", "mbpo") else m for m in methods]
        lines = [
            "| dataset | seed | steps | model: epochs (stop) | elite holdout MSE | fitted on | "
            + " | ".join(f"{n}: u (λ) / raw model reward per step → return" for n in names) + " |",
            "|---|---|---|---|---|---|" + "---|" * len(methods),
        ]
        for row in table.get("models", []):
            stop = "cap" if str(row["stop_reason"]).startswith("max_epochs") else ("early stop" if row["stop_reason"] == "early stopping" else row["stop_reason"])
            cells = []
            for m in methods:
                entry = row["methods"].get(m)
                if not entry:
                    cells.append("—")
                    continue
                penalty = "—" if entry["u"] is None else f"{entry['u']:.3g} (λ = {entry['lam']:g})"
                raw = "—" if entry["raw_model_reward"] is None else f"{entry['raw_model_reward']:.3g}"
                cells.append(f"{penalty} / {raw} → {entry['return_last']:,.0f}")
            mse = "—" if row["elite_holdout_mse"] is None else f"{row['elite_holdout_mse']:.4g}"
            lines.append(f"| {row['dataset']} | {row['seed']} | {budget_label(row['steps'])} | {row['epochs']} ({stop}) | {mse} | {row['device']} | {' | '.join(cells)} |")
        deeper = table.get("deeper_runs", [])
        if deeper:
            lines += ["", "Runs at a larger budget beside the same dataset, method and seed at a smaller one:", ""]
        for check in deeper:
            basis = check.get("fit_compared_by", "holdout MSE")
            model = f"the same model fit (equal {basis})" if check["same_model_fit"] else f"a refitted model (another {basis})"
            if check["evaluations_compared"] and check["evaluations_equal"] == check["evaluations_compared"]:
                curve = f"all {check['evaluations_compared']} evaluations up to {budget_label(check['shorter_steps'])} equal, bit for bit: the shorter run, extended"
            else:
                curve = f"{check['evaluations_equal']} of {check['evaluations_compared']} evaluations up to {budget_label(check['shorter_steps'])} equal"
                own, other = check.get(f"deeper_last{TAIL_EVALS}_at_shorter_steps"), check.get(f"last{TAIL_EVALS}_of_shorter")
                if own is not None and other is not None:
                    curve += (f"; at {budget_label(check['shorter_steps'])} its last {TAIL_EVALS} evaluations average {own:,.0f}, "
                              f"the {budget_label(check['shorter_steps'])} run's {other:,.0f}")
            lines.append(f"* {check['dataset']} {display_method(check['method'])} seed {check['seed']}, {budget_label(check['steps'])} vs {budget_label(check['shorter_steps'])}: {model}; {curve}.")
        return "\n".join(lines)

    def markdown(self, table: dict[str, Any]) -> str:
        """The docs table: one row per dataset × budget, mean ± std (seeds) per method, the paper's."""
        methods = list(self.methods)
        head = " | ".join(f"{m.upper() if m in ('mopo', 'mbpo') else m}" for m in methods)
        tail_head = " / ".join(m.upper() if m in ("mopo", "mbpo") else m for m in methods)
        lines = [
            f"| dataset | steps | {head} | {tail_head}: mean of the last {TAIL_EVALS} evaluations | batch mean / max | paper: {' / '.join(methods)} / batch mean |",
            "|---|---|" + "---|" * len(methods) + "---|---|---|",
        ]
        for row in table["rows"]:
            cells = []
            for m in methods:
                entry = row.get(m)
                setting = f" (h={entry['h']}, λ={entry['lam']})" if entry and m != "mbpo" else (f" (h={entry['h']})" if entry else "")
                if not entry:
                    cells.append("—")
                elif entry["n"] == 1:  # no spread from one seed: say so rather than print ± 0
                    cells.append(f"{entry['mean']:,.1f} (1 seed){setting}")
                else:
                    cells.append(f"{entry['mean']:,.1f} ± {entry['std']:,.1f} ({entry['n']} seeds){setting}")
            tails = " / ".join(f"{row[m][f'last{TAIL_EVALS}_evals']['mean']:,.0f}" if row.get(m) else "—" for m in methods)
            paper = row.get("paper")
            paper_text = " / ".join(f"{paper[k]:,.1f}" if k in paper else "—" for k in (*methods, "batch_mean")) if paper else "—"
            lines.append(f"| {row['dataset']} | {budget_label(row['steps'])} | {' | '.join(cells)} | {tails} | {row['batch_mean']:,.1f} / {row['batch_max']:,.1f} | {paper_text} |")
        return "\n".join(lines)

    def budgets_markdown(self, table: dict[str, Any]) -> str:
        """Seed by seed where a cell was run at several budgets: each method's last return per budget, who is ahead, how each ended.

        The deeper stages' question in the open: whether the method ahead changes with the budget
        on each seed, and whether a policy declined late (its best five evaluations well above its
        last five, with the epoch where that best window ended).
        """
        rows = table.get("across_budgets", [])
        if not rows:
            return "No cell has runs at more than one budget yet."
        methods = list(self.methods)
        names = [display_method(m) for m in methods]
        budgets = sorted({b["steps"] for row in rows for b in row["budgets"]})
        path = " → ".join(budget_label(s) for s in budgets)
        lines = [
            "| cell | seed | " + " | ".join(f"{n}: last return at {path}" for n in names)
            + f" | ahead at {path} (by last return/by last {TAIL_EVALS}; one name where both agree) | "
            + " | ".join(f"{n}: best {TAIL_EVALS} evaluations (ending at epoch) → last {TAIL_EVALS} of its deepest run" for n in names) + " |",
            "|---|---|" + "---|" * len(methods) + "---|" + "---|" * len(methods),
        ]
        for row in rows:
            at = {b["steps"]: b for b in row["budgets"]}
            returns = [" → ".join(_budget_return(at.get(s, {}).get(m)) for s in budgets) for m in methods]
            ahead = " → ".join(leaders(at[s]) if "ahead_last" in at.get(s, {}) else "…" for s in budgets)
            ends = []
            for m in methods:
                end = row["ends"].get(m)
                ends.append("—" if end is None else
                            f"{end['best_window_mean']:,.0f} ({end['best_window_end_epoch']}) → {end['last5']:,.0f} at {budget_label(end['steps'])}")
            lines.append(f"| {row['dataset']} | {row['seed']} | {' | '.join(returns)} | {ahead} | {' | '.join(ends)} |")
        if any(entry.get("same_model_fit_as_shorter") is False for row in rows for b in row["budgets"] for entry in b.values() if isinstance(entry, dict)):
            lines += ["", f"{OTHER_FIT_MARK} this run stands on another model fit than the same method's run at the budget before it (a refit, "
                          "e.g. on another machine): the two numbers come from two trajectories, not one run trained longer; (from N) is that run's own evaluation at the budget before."]
        return "\n".join(lines)

    def trajectories_markdown(self, table: dict[str, Any]) -> str:
        """Each run at the deepest budget, window by window: its mean return per window of the first
        stage's budget, the higher of a seed's methods in bold where both have the window.

        The late decline the talk credits MOPO's lead to shows here on one trajectory: a method's
        window means falling, window by window against the other method on the same model.
        """
        rows = table.get("trajectories", [])
        if not rows:
            return "No run is deep enough yet to be read in windows."
        ends = [w["end_steps"] for w in rows[0]["windows"]]
        lines = [
            "| cell | seed | method | model | " + " | ".join(f"≤ {budget_label(e)}" for e in ends) + " | episode length (window means) |",
            "|---|---|---|---|" + "---|" * len(ends) + "---|",
        ]
        by_seed: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for row in rows:
            by_seed.setdefault((row["dataset"], row["seed"]), []).append(row)
        for group in by_seed.values():
            for row in group:
                cells = []
                for index, window in enumerate(row["windows"]):
                    value = window["return_mean"]
                    others = [other["windows"][index]["return_mean"] for other in group if other is not row]
                    leads = value is not None and bool(others) and all(o is not None and value > o for o in others)
                    cells.append("—" if value is None else bold(f"{value:,.0f}", leads))
                lengths = [w["length_mean"] for w in row["windows"] if w["length_mean"] is not None]
                length = f"{min(lengths):,.0f}–{max(lengths):,.0f}" if lengths else "—"
                lines.append(f"| {row['dataset']} | {row['seed']} | {display_method(row['method'])} | {row['model'] or '—'} | {' | '.join(cells)} | {length} |")
        per_window = max(w["evaluations"] for row in rows for w in row["windows"])
        shared = all(len({row["model"] for row in group}) == 1 and group[0]["model"] for group in by_seed.values())
        lines += ["", f"Each column: the mean return of the run's evaluations in the {budget_label(ends[0])} steps ending there ({per_window} "
                      "in a whole window); bold: the higher of the seed's methods in that window. `model`: the head of the model's checksum ("
                      + ("each seed's methods on one model). " if shared else "where a seed's methods differ, they stand on two fits). ")
                      + "Episode length: the lowest and highest window mean (1,000: the policy never falls)."]
        return "\n".join(lines)

    def summary_markdown(self, table: dict[str, Any]) -> str:
        """The README's short table: each cell at its first stage's budget, the leading method in bold.

        Integers, mean ± std over seeds (the seeds column says how many each method holds), the
        mean of the last evaluations beside it, and the paper's numbers; a cell appears once every
        method has a run.
        """
        methods = list(self.methods)
        names = [display_method(m) for m in methods]
        rows = {(row["dataset"], row["steps"]): row for row in table["rows"]}
        order = [(cell, stage.steps) for _, stage in sorted(self.stages.items()) for cell in stage.cells]
        lines = [
            f"| cell | seeds | {names[0]} (last iterate) | {' | '.join(names[1:])} | {' / '.join(names)}, last {TAIL_EVALS} evaluations | "
            f"{self.paper_label}: {' / '.join(names)} |",
            "|---|---|" + "---|" * len(methods) + "---|---|",
        ]
        seen: set[str] = set()
        for cell, steps in order:
            row = rows.get((cell, steps))
            if cell in seen or row is None or any(m not in row for m in methods):
                continue
            seen.add(cell)
            entries = [row[m] for m in methods]
            counts = [e["n"] for e in entries]
            seeds = str(counts[0]) if len(set(counts)) == 1 else " / ".join(map(str, counts))
            means = [e["mean"] for e in entries]
            tails = [e[f"last{TAIL_EVALS}_evals"]["mean"] for e in entries]
            last = [bold(integer_spread(e), e["mean"] == max(means)) for e in entries]
            tail = " / ".join(bold(f"{t:,.0f}", t == max(tails)) for t in tails)
            paper = row.get("paper")
            paper_text = " / ".join(f"{paper[m]:,.0f}" if m in paper else "—" for m in methods) if paper else "—"
            lines.append(f"| {cell} | {seeds} | {' | '.join(last)} | {tail} | {paper_text} |")
        return "\n".join(lines)

    def progress(self, table: dict[str, Any]) -> list[dict[str, Any]]:
        """Per reported stage: how many of its runs are published and which are missing, by cell.

        Read from ``table`` alone (the published runs), so the docs' counts are regenerated with
        the tables and cannot go stale by hand; a stage that checks a setting on its own seeds
        (its runs are ``setting_checks``, never reported) is left out.
        """
        published = {
            (row["dataset"], budget_label(row["steps"]), method, seed)
            for row in table["rows"] for method in self.methods if method in row for seed in row[method]["seeds"]
        }
        stages = []
        for number, stage in sorted(self.stages.items()):
            if stage.seeds is not None:
                continue
            methods = list(stage.methods or self.methods)
            missing: dict[str, list[tuple[str, int]]] = {}
            for cell in stage.cells:
                for method in methods:
                    for seed in self.seeds:
                        if (cell, budget_label(stage.steps), method, seed) not in published:
                            missing.setdefault(cell, []).append((method, seed))
            total = len(stage.cells) * len(methods) * len(self.seeds)
            done = total - sum(len(runs) for runs in missing.values())
            stages.append({
                "stage": number, "label": stage.label or ", ".join(stage.cells), "steps": stage.steps,
                "published": done, "total": total, "missing": missing, "runs_per_cell": len(methods) * len(self.seeds),
            })
        return stages

    def progress_markdown(self, table: dict[str, Any]) -> str:
        """One line per reported stage: runs published of the stage's total, and what is missing."""
        lines = []
        stages = self.progress(table)
        for stage in stages:
            # one reported stage: its label names it (a "Stage 1" beside another campaign's would confuse)
            name = f"**Stage {stage['stage']}** ({stage['label']}, " if len(stages) > 1 else f"**{stage['label']}** ("
            head = f"* {name}{budget_label(stage['steps'])} steps): **{stage['published']} of {stage['total']} runs published**"
            if not stage["missing"]:
                lines.append(head + ", complete.")
                continue
            whole = [cell for cell, runs in stage["missing"].items() if len(runs) == stage["runs_per_cell"]]
            parts = [f"{cell} ({', '.join(f'{display_method(m)} seed {s}' for m, s in runs)})" for cell, runs in stage["missing"].items() if cell not in whole]
            if whole:
                parts.append(f"every run of {', '.join(whole)}")
            lines.append(head + "; missing: " + "; ".join(parts) + ".")
        return "\n".join(lines)

    def doc_blocks(self, table: dict[str, Any]) -> dict[tuple[str, str], str]:
        """(file, block) → the markdown ``--write-docs`` puts between that block's markers."""
        render = {"table": self.markdown, "models": self.models_markdown, "budgets": self.budgets_markdown, "trajectories": self.trajectories_markdown, "summary": self.summary_markdown, "progress": self.progress_markdown}
        return {(path, block): render[block](table) for path, block in self.docs}

    def write_docs(self, table: dict[str, Any]) -> list[Path]:
        """Replace every generated block of :attr:`docs` with what ``table`` gives now."""
        written = []
        for (path, block), body in self.doc_blocks(table).items():
            target = ROOT / path
            text = replace_generated_block(target.read_text(), self.block_marker(block), body, where=path)
            target.write_text(text)
            if target not in written:
                written.append(target)
        return written

    def block_marker(self, block: str) -> str:
        return f"<!-- begin generated: python benchmarks/{self.script} --write-docs ({block}) -->"

    def plot_curves(self, out_dir: Path) -> list[Path]:
        """One PNG per dataset: evaluation return over gradient steps, one line per run; below it,
        where a dataset's runs reach the deepest budget, each such run's mean return per window
        (the trajectories block's numbers): at 1M steps the per-evaluation curves are too noisy to
        show a late decline by eye, ten window means show it."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        # a setting check (a seed outside the campaign's) is not a reported run
        records = [rec for rec in self.records() if rec["seed"] in self.seeds]
        curves = curves_to_plot(records)
        windows = trajectories(records, list(self.methods), self.window_steps())
        colors = {m: f"C{i}" for i, m in enumerate(self.methods)}
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for dataset in sorted({c["dataset"] for c in curves}):
            deep = [row for row in windows if row["dataset"] == dataset]
            if deep:
                fig, (ax, below) = plt.subplots(2, 1, figsize=(8.4, 5.8), height_ratios=(3, 2), sharex=True)
                self._plot_window_means(below, deep, colors)
            else:
                fig, ax = plt.subplots(figsize=(8.4, 3.6))
            batch_mean = None
            for curve in curves:
                if curve["dataset"] != dataset:
                    continue
                rec, seed = curve["record"], curve["seed"]
                batch_mean = rec["batch_mean"]
                xs = [evaluation_steps(p) / 1000 for p in rec["curve"]]
                ys = [p["return_mean"] for p in rec["curve"]]
                faint = {"alpha": 0.35, "linewidth": 0.8} if curve["superseded"] else {"alpha": 0.85}
                ax.plot(xs, ys, color=colors.get(curve["method"], "k"), linestyle=["-", "--", ":"][seed % 3], label=curve["label"], **faint)
            if batch_mean is not None:
                ax.axhline(batch_mean, color="grey", linewidth=0.8, label="batch mean")
            # each budget a table row is read at, inside the curves' range: a deeper run's curve
            # holds the shorter budgets' rows, and the marks say where to read them
            deepest = max(c["record"]["steps"] for c in curves if c["dataset"] == dataset)
            for budget in sorted({stage.steps for stage in self.stages.values() if stage.steps < deepest}):
                ax.axvline(budget / 1000, color="grey", linestyle=":", linewidth=0.8)
                ax.annotate(budget_label(budget), (budget / 1000, 1.0), xycoords=("data", "axes fraction"), xytext=(2, -9),
                            textcoords="offset points", fontsize=7, color="grey")
            ax.set(title=file_safe(dataset), xlabel="" if deep else "SAC gradient steps (k)", ylabel="return (10 det. episodes)")
            # beside the axes, not on them: with three seeds per method and refit runs a legend
            # inside the plot covers the curves' late part, the part a deeper stage is run for
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
            fig.tight_layout()
            path = out_dir / f"{self.plot_prefix}{file_safe(dataset)}.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            paths.append(path)
        return paths


    def _plot_window_means(self, ax: Any, rows: list[dict[str, Any]], colors: dict[str, str]) -> None:
        """The deepest runs' mean return per window, one marker at each window's end (the trajectories block)."""
        for row in rows:
            points = [(w["end_steps"] / 1000, w["return_mean"]) for w in row["windows"] if w["return_mean"] is not None]
            ax.plot([x for x, _ in points], [y for _, y in points], color=colors.get(row["method"], "k"), linestyle=["-", "--", ":"][row["seed"] % 3],
                    marker="o", markersize=3, label=f"{row['method']} seed {row['seed']}")
        ax.set(xlabel="SAC gradient steps (k)", ylabel=f"mean per {budget_label(self.window_steps())} window")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def curves_to_plot(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The learning curves a dataset's plot draws: per (dataset, method, seed) its deepest run, plus
    each shorter run that no deeper run drawn retraces (another model fit).

    A deeper run on the same fit is the shorter run extended (``deeper_run_checks``), so its curve
    contains the shorter one; on a refitted model it is another trajectory, and drawing only it
    would leave the table's shorter-budget number without its curve. Such runs are labeled with
    their budget and marked ``superseded`` (drawn faint). A 100k run that a 300k run on its fit
    extended is inside that 300k curve, so it is not drawn again under a 1M run on a third fit.
    """
    curves = []
    for (dataset, method, seed), runs in runs_by_seed(records).items():
        deepest = runs[-1]
        drawn, others = [deepest], []
        for run in reversed(runs[:-1]):
            if not any(same_model_fit(run, deeper) for deeper in drawn):
                others.append(run)
                drawn.append(run)
        refit = " (refit)" if others else ""
        curves.append({"dataset": dataset, "method": method, "seed": seed, "record": deepest, "superseded": False,
                       "label": f"{method} seed {seed}{refit}"})
        curves += [{"dataset": dataset, "method": method, "seed": seed, "record": r, "superseded": True,
                    "label": f"{method} seed {seed}, {budget_label(r['steps'])} run (other fit)"} for r in others]
    return curves


def leaders(budget: dict[str, Any]) -> str:
    """Who is ahead at one budget: one name where last return and last-5 mean agree, else both (``MOPO/MBPO``)."""
    by_last, by_tail = display_method(budget["ahead_last"]), display_method(budget["ahead_last5"])
    return by_last if by_last == by_tail else f"{by_last}/{by_tail}"


def integer_spread(entry: dict[str, Any]) -> str:
    return f"{entry['mean']:,.0f}" if entry["n"] == 1 else f"{entry['mean']:,.0f} ± {entry['std']:,.0f}"


def bold(text: str, bold: bool) -> str:
    return f"**{text}**" if bold else text
