"""``mopo-kit``: the command line. Every user error is one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

from mopo_kit import __version__
from mopo_kit.errors import MopoKitError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (plus the hint to --help), exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(EXIT_USAGE)


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def _console():
    from rich.console import Console

    return Console()


def _table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]):
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*[str(cell) for cell in row])
    return table


# ------------------------------------------------------------------------------------ commands
def cmd_plugins(args: argparse.Namespace) -> int:
    from mopo_kit.plugins import get_plugins

    plugins = get_plugins().plugins
    if args.json:
        _print_json([p.to_json() for p in plugins])
        return 0
    rows = [
        (
            p.name,
            p.version,
            "built-in" if p.builtin else (p.distribution or ""),
            "; ".join(f"{kind}: {', '.join(names)}" for kind, names in p.registers.items()) or "-",
        )
        for p in plugins
    ]
    _console().print(_table("mopo-kit plugins", ("plugin", "version", "from", "registers"), rows))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from mopo_kit.plugins import get_registry
    from mopo_kit.registry import normalize_kind

    kind = normalize_kind(args.kind)
    components = get_registry().components(kind)
    if args.json:
        _print_json(
            [
                {"name": c.name, "kind": c.kind, "plugin": c.plugin, "version": c.version, "description": c.description}
                for c in components
            ]
        )
        return 0
    rows = [(c.name, c.plugin, c.description) for c in components]
    _console().print(_table(f"{kind} components", ("name", "plugin", "description"), rows))
    return 0


def cmd_dataset_info(args: argparse.Namespace) -> int:
    from mopo_kit.data.load import load_dataset

    summary = load_dataset(args.dataset).summary()
    if args.json:
        _print_json(summary.to_json())
        return 0
    rows = [
        ("transitions", f"{summary.transitions:,}"),
        ("episodes", f"{summary.episodes:,}"),
        ("obs_dim / act_dim", f"{summary.obs_dim} / {summary.act_dim}"),
        ("batch mean return", f"{summary.return_mean:.1f}"),
        ("batch max return", f"{summary.return_max:.1f}"),
        ("terminals / timeouts", f"{summary.terminals:,} / {summary.timeouts:,}"),
    ]
    _console().print(_table(f"dataset {summary.source}", ("", "value"), rows))
    return 0


def _get_task(name: str):
    from mopo_kit.plugins import get_registry

    return get_registry().create("task", name)


def cmd_collect(args: argparse.Namespace) -> int:
    from mopo_kit.data.d4rl_io import write_d4rl_hdf5
    from mopo_kit.data.named import NamedDataset

    task = _get_task(args.task)
    spec = NamedDataset(task, args.kind, args.steps, args.seed)
    data = spec.generate()
    out = Path(args.output or f"{spec.name}.hdf5")
    checksum = write_d4rl_hdf5(data, out, metadata=spec.metadata())
    summary = data.summary()
    print(
        f"wrote {out}: {summary.transitions:,} transitions, {summary.episodes} episodes, "
        f"return mean {summary.return_mean:.1f} max {summary.return_max:.1f}, sha256 {checksum[:12]}"
    )
    return 0


def cmd_train_behavior(args: argparse.Namespace) -> int:
    from mopo_kit.data.behavior import BehaviorConfig, best_snapshot, train_behavior

    task = _get_task(args.task)
    out = Path(args.output or f"behavior-{task.name}")
    if out.exists() and any(out.iterdir()) and not args.resume:
        raise MopoKitError(f"{out}: directory exists and is not empty (use --resume to continue it)")
    config = BehaviorConfig(
        task=task.name, steps=args.steps, seed=args.seed, eval_every=args.eval_every, threads=args.threads
    )
    evals = train_behavior(task, out, config, resume=args.resume)
    if evals:
        best = best_snapshot(evals)
        print(f"{task.name}: best deterministic return {best['det_return_mean']:.1f} at step {best['step']} ({out})")
    return 0


# -------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mopo-kit", description="Model-based offline RL (MOPO) with pluggable components.")
    parser.add_argument("--version", action="version", version=f"mopo-kit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("plugins", help="installed plugins, versions, and what each registers")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("list", help="components of one kind (uncertainty, dynamics, policy, task, dataset, logger)")
    p.add_argument("kind", metavar="KIND")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("dataset", help="dataset tools")
    dsub = p.add_subparsers(dest="dataset_command", metavar="SUBCOMMAND", parser_class=_Parser, required=True)
    q = dsub.add_parser("info", help="size, dims and batch mean/max return of a dataset")
    q.add_argument("dataset", metavar="DATASET", help="registered name, D4RL-layout .hdf5 path, or minari:<id>")
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    q.set_defaults(func=cmd_dataset_info)

    p = sub.add_parser("collect", help="collect a D4RL-style dataset in the real environment")
    p.add_argument("task", metavar="TASK")
    p.add_argument("--kind", required=True, choices=["random", "medium", "mixed", "medium-expert"])
    p.add_argument("--steps", type=int, default=200_000, help="transitions to collect (D4RL: 1,000,000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", metavar="FILE", help="output .hdf5 (default: TASK-KIND.hdf5)")
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser("train-behavior", help="train a SAC behavior policy in the real environment (resumable)")
    p.add_argument("task", metavar="TASK")
    p.add_argument("--steps", type=int, default=300_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-every", type=int, default=10_000, help="snapshot + evaluation period in env steps")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("-o", "--output", metavar="DIR")
    p.add_argument("--resume", action="store_true", help="continue the run in DIR from its last checkpoint")
    p.set_defaults(func=cmd_train_behavior)
    return parser


def _format_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    return f"mopo-kit: warning: {message}\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    warnings.formatwarning = _format_warning  # one line per warning, no source echo
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except MopoKitError as exc:
        sys.stderr.write(f"mopo-kit: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("mopo-kit: interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
