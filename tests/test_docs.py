"""The Python snippets in README.md and docs/ run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mopo_kit.testing import registered_plugin

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"```python\n(.*?)```", re.S)


def _snippets(path: Path) -> list[str]:
    return FENCE.findall(path.read_text())


@pytest.mark.parametrize("doc", ["README.md", "docs/plugins.md"])
def test_python_snippets_run(doc, tmp_path, monkeypatch):
    monkeypatch.setenv("MOPO_KIT_DATA", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # snippets write run directories relative to the cwd
    snippets = _snippets(ROOT / doc)
    assert snippets, f"{doc} has no python snippet"
    namespace: dict[str, object] = {"__name__": "docs_snippet"}
    for code in snippets:
        exec(compile(code, f"{doc}", "exec"), namespace)
    # snippets that define tests are run too, with the fixture they ask for
    for name, func in list(namespace.items()):
        if name.startswith("test_") and callable(func):
            if "mopo_kit_plugin" in func.__code__.co_varnames[: func.__code__.co_argcount]:
                names: list[str] = []

                def fixture(obj, name, version="0+test"):
                    cm = registered_plugin(obj, name=name, version=version)
                    names.append(cm)
                    return cm.__enter__()

                try:
                    func(fixture)
                finally:
                    for cm in reversed(names):
                        cm.__exit__(None, None, None)
            else:
                func()


def test_toml_config_examples_are_valid_configs():
    import tomllib

    from mopo_kit.config import MOPOConfig

    blocks = re.findall(r"```toml\n(.*?)```", (ROOT / "docs" / "cli.md").read_text(), re.S)
    assert blocks
    for block in blocks:
        config = MOPOConfig.from_dict(tomllib.loads(block))
        assert config.uncertainty.type == "mmd" and config.uncertainty.params == {"lengthscale": 0.5}


def _campaigns():
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from d4rl_table import D4RL
    from ood_table import OOD

    return [D4RL, OOD]


@pytest.mark.parametrize("campaign", _campaigns(), ids=lambda c: c.name)
def test_published_result_tables_are_what_the_committed_runs_give(campaign):
    """table.json is recomputed from the per-run JSONs, and every generated docs table from table.json:
    a run published without regenerating them (or a hand edit of a number) fails here."""
    import json

    from generated_blocks import generated_block

    committed = json.loads((campaign.results / "table.json").read_text())
    assert committed == json.loads(json.dumps(campaign.table())), (
        f"{campaign.results / 'table.json'} is stale: run python benchmarks/{campaign.script} --write-docs"
    )
    blocks = campaign.doc_blocks(committed)
    assert blocks, "the campaign names its docs tables"
    for (path, block), body in blocks.items():
        shown = generated_block((ROOT / path).read_text(), campaign.block_marker(block))
        assert shown is not None, f"{path}: no generated block ({block})"
        assert shown == body, f"{path} ({block}) is stale: run python benchmarks/{campaign.script} --write-docs"


def test_published_on_policy_table_is_what_the_committed_json_gives():
    """docs/uncertainty.md's on-policy table is generated from benchmarks/results/on_policy/d4rl.json."""
    import json
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from generated_blocks import generated_block
    from on_policy_check import DOC, MARKER, RESULT, markdown_table

    payload = json.loads(RESULT.read_text())
    assert payload["runs"] and all(run["on_policy"]["transitions"] > 0 for run in payload["runs"])
    assert generated_block(DOC.read_text(), MARKER) == markdown_table(payload), (
        f"{DOC} is stale: run python benchmarks/on_policy_check.py --write-docs"
    )


def test_on_policy_merge_keeps_earlier_runs_replaces_a_rechecked_one_and_keeps_each_runs_provenance():
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from on_policy_check import merge_runs

    old = {"command": "check a b", "commit": "c1", "machine": {"cpu": "x"}, "runs": [{"run": "a", "v": 1}, {"run": "b", "v": 2}]}
    new = {"command": "check b c", "commit": "c2", "machine": {"cpu": "y"}, "runs": [{"run": "b", "v": 3}, {"run": "c", "v": 4}]}
    merged = merge_runs(old, new)
    assert [(run["run"], run["v"]) for run in merged["runs"]] == [("a", 1), ("b", 3), ("c", 4)]
    assert [run["provenance"]["commit"] for run in merged["runs"]] == ["c1", "c2", "c2"]
    assert merged["commit"] == "c2"
    # a second merge leaves the first check's provenance on its runs
    again = merge_runs(merged, {"command": "check d", "commit": "c3", "machine": {}, "runs": [{"run": "d", "v": 5}]})
    assert [run["provenance"]["commit"] for run in again["runs"]] == ["c1", "c2", "c2", "c3"]
    # a deeper stage's run has the shorter run's trial name: both are kept, each rechecked apart
    deeper = merge_runs(again, {"command": "check a", "commit": "c4", "machine": {}, "runs": [{"run": "a", "steps": 300_000, "v": 6}]})
    assert [(run["run"], run.get("steps"), run["v"]) for run in deeper["runs"]][0::4] == [("a", None, 1), ("a", 300_000, 6)]
    rechecked = merge_runs(deeper, {"command": "check a", "commit": "c5", "machine": {}, "runs": [{"run": "a", "steps": 300_000, "v": 7}]})
    assert [(run["run"], run.get("steps"), run["v"]) for run in rechecked["runs"] if run["run"] == "a"] == [("a", None, 1), ("a", 300_000, 7)]


def test_on_policy_table_keeps_a_deeper_runs_check_in_its_own_row():
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from on_policy_check import markdown_table

    def run(steps, ret):
        check = {"transitions": 500, "episodes": 5, "error_mean_policy": 2.0, "error_mean_data": 1.0, "u_mean_policy": 1.0, "u_mean_data": 1.0,
                 "reward_bias_policy": 0.1, "bound_violations": 0.5}
        return {"run": "hopper-mixed__max_aleatoric__s0", "dataset": "hopper-mixed", "uncertainty": "max_aleatoric", "seed": 0,
                "real": {"return_mean": ret}, "on_policy": check, **({"steps": steps} if steps else {})}

    rows = markdown_table({"runs": [run(None, 776.0), run(300_000, 185.0)]}).splitlines()[2:]
    assert rows == [
        "| hopper-mixed | MOPO | 100k | 0 | 776 | 100 | 2.00 | 1.00 | +0.100 | 50% |",
        "| hopper-mixed | MOPO | 300k | 0 | 185 | 100 | 2.00 | 1.00 | +0.100 | 50% |",
    ], "a check from before budgets were recorded is a 100k run's; the 300k one is not averaged into it"


def test_a_generated_block_is_replaced_between_its_markers_and_a_missing_one_is_one_line():
    from generated_blocks import END_MARKER, replace_generated_block

    text = f"intro\n<!-- begin x -->\n| old |\n{END_MARKER}\nafter\n"
    assert replace_generated_block(text, "<!-- begin x -->", "| new |\n| rows |") == f"intro\n<!-- begin x -->\n| new |\n| rows |\n{END_MARKER}\nafter\n"
    with pytest.raises(SystemExit, match=r"^doc.md: no generated block marker '<!-- begin y -->'$"):
        replace_generated_block(text, "<!-- begin y -->", "| new |", where="doc.md")


def test_penalty_study_table_and_docs_are_what_the_committed_runs_give():
    """benchmarks/results/penalties/table.json from its run JSONs, docs/penalties.md's tables and plots from table.json."""
    import json
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import penalty_docs as docs
    from generated_blocks import generated_block
    from penalty_design import KAPPA_FILE, RESULTS
    from penalty_table import compute_table

    frozen = json.loads(KAPPA_FILE.read_text())
    committed = json.loads((RESULTS / "table.json").read_text())
    assert committed == json.loads(json.dumps(compute_table(frozen))), "table.json is stale: run python benchmarks/penalty_study.py --write-docs"
    text = docs.DOC.read_text()
    blocks = {docs.DOC_MARKER: docs.tuning_markdown, **docs.DOC_BLOCKS}
    for marker, render in blocks.items():
        assert generated_block(text, marker) == render(committed), f"docs/penalties.md's {marker} is stale: run python benchmarks/penalty_study.py --write-docs"
    for cell in committed["tuning"]:
        assert (ROOT / "docs" / "img" / f"penalties_{cell}.png").exists(), f"no plot for {cell}: run python benchmarks/penalty_study.py --write-docs"


def test_precision_check_block_is_what_the_committed_runs_give():
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import precision_check

    assert precision_check.docs_are_current(), "docs/performance.md is stale: run python benchmarks/precision_check.py --write-docs"
