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
