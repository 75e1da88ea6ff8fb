"""The plugin system: built-ins, outside distributions, broken plugins, env-var control."""

from __future__ import annotations

import json
import warnings

import pytest

from mopo_kit import hookimpl
from mopo_kit.errors import PluginError, UnknownComponentError
from mopo_kit.plugins import PluginWarning, get_plugins, get_registry, load_plugins
from mopo_kit.testing import registered_plugin
from tests.conftest import make_plugin_dist

GOOD_PLUGIN = '''
from mopo_kit import hookimpl
from mopo_kit.uncertainty.base import ClosedFormEstimator

class Constant(ClosedFormEstimator):
    """Always one: a test estimator from an outside distribution."""
    ipm = "none"
    def __call__(self, obs, act, pred):
        return pred.mean.new_ones(pred.mean.shape[1])

@hookimpl
def register_uncertainty_estimators(register):
    register("constant_one", Constant)
'''


def test_builtins_register_through_the_same_hooks():
    registry = get_registry()
    assert registry.names("task") == ["ant", "ant-angle", "halfcheetah", "halfcheetah-jump", "hopper", "walker2d"]
    assert {"max_aleatoric", "zero"} <= set(registry.names("uncertainty"))
    plugins = {p.name: p for p in get_plugins().plugins}
    assert plugins["mopo_kit.envs.tasks"].builtin
    assert plugins["mopo_kit.envs.tasks"].registers["task"] == ["ant", "ant-angle", "halfcheetah", "halfcheetah-jump", "hopper", "walker2d"]
    # The OOD datasets extend the named ones and register themselves: neither module imports the other back.
    assert plugins["mopo_kit.data.ood"].builtin
    assert plugins["mopo_kit.data.ood"].registers["dataset"] == ["ant-angle", "halfcheetah-jump"]
    assert "hopper-mixed" in plugins["mopo_kit.data.named"].registers["dataset"]
    assert not set(plugins["mopo_kit.data.named"].registers["dataset"]) & {"ant-angle", "halfcheetah-jump"}


def test_named_datasets_import_without_the_ood_module():
    import subprocess
    import sys

    probe = "import sys, mopo_kit.data.named; print('mopo_kit.data.ood' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_installed_outside_plugin_appears_in_cli(tmp_path, run_cli):
    site = tmp_path / "site"
    make_plugin_dist(site, "mopo-kit-constant", "mopo_kit_constant", GOOD_PLUGIN, version="1.2.3", ep_name="constant")
    proc = run_cli("plugins", "--json", env={"PYTHONPATH": str(site)}, check_rc=0)
    plugins = {p["name"]: p for p in json.loads(proc.stdout)}
    assert plugins["constant"]["version"] == "1.2.3"
    assert plugins["constant"]["registers"] == {"uncertainty": ["constant_one"]}
    assert plugins["constant"]["distribution"] == "mopo-kit-constant"
    # the in-repo example plugin and the built-ins are there too
    assert "example" in plugins and "mopo_kit.envs.tasks" in plugins
    listed = json.loads(run_cli("list", "uncertainty", "--json", env={"PYTHONPATH": str(site)}, check_rc=0).stdout)
    row = next(r for r in listed if r["name"] == "constant_one")
    assert row["plugin"] == "constant"
    assert row["description"] == "Always one: a test estimator from an outside distribution."


def test_plugin_that_fails_to_import_is_one_warning(tmp_path, run_cli):
    site = tmp_path / "site"
    make_plugin_dist(site, "mopo-kit-broken", "mopo_kit_broken", "import does_not_exist_anywhere\n", ep_name="broken")
    proc = run_cli("plugins", "--json", env={"PYTHONPATH": str(site)}, check_rc=0)
    names = {p["name"] for p in json.loads(proc.stdout)}
    assert "broken" not in names and "example" in names
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "plugin 'broken'" in lines[0] and "does_not_exist_anywhere" in lines[0]
    assert "Traceback" not in proc.stderr


def test_misspelled_hook_is_caught_and_the_plugin_skipped(fresh_plugins, tmp_path, monkeypatch):
    code = "from mopo_kit import hookimpl\n\n@hookimpl\ndef register_uncertainty_estimator(register):\n    pass\n"
    make_plugin_dist(tmp_path, "mopo-kit-typo", "mopo_kit_typo", code, ep_name="typo")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(PluginWarning, match=r"plugin 'typo'.*register_uncertainty_estimator"):
        plugins = load_plugins()
    names = {p.name for p in plugins.plugins}
    assert "typo" not in names and "mopo_kit.envs.tasks" in names


def test_duplicate_component_name_names_both_plugins(tmp_path, run_cli):
    site = tmp_path / "site"
    code = (
        "from mopo_kit import hookimpl\n\n@hookimpl\ndef register_uncertainty_estimators(register):\n"
        "    register('max_aleatoric', lambda: None)\n"
    )
    make_plugin_dist(site, "mopo-kit-dup", "mopo_kit_dup", code, ep_name="dup")
    proc = run_cli("list", "uncertainty", env={"PYTHONPATH": str(site)}, check_rc=2)
    assert proc.stderr.count("\n") == 1
    assert "'max_aleatoric'" in proc.stderr
    assert "'mopo_kit.uncertainty.builtin'" in proc.stderr and "'dup'" in proc.stderr
    # disabling one of them resolves it
    run_cli("list", "uncertainty", env={"PYTHONPATH": str(site), "MOPO_KIT_DISABLE_PLUGINS": "dup"}, check_rc=0)


def test_load_and_disable_env_vars(fresh_plugins, monkeypatch):
    monkeypatch.setenv("MOPO_KIT_LOAD_PLUGINS", "")
    names = {p.name for p in load_plugins().plugins}
    assert "example" not in names and "mopo_kit.envs.tasks" in names

    monkeypatch.setenv("MOPO_KIT_LOAD_PLUGINS", "example")
    assert "example" in {p.name for p in load_plugins().plugins}

    monkeypatch.delenv("MOPO_KIT_LOAD_PLUGINS")
    monkeypatch.setenv("MOPO_KIT_DISABLE_PLUGINS", "example,mopo_kit.uncertainty.builtin")
    loaded = load_plugins()
    assert "example" not in {p.name for p in loaded.plugins}
    assert "max_aleatoric" not in loaded.registry.names("uncertainty")


def test_allow_list_naming_a_missing_plugin_warns(monkeypatch):
    monkeypatch.setenv("MOPO_KIT_LOAD_PLUGINS", "no_such_plugin")
    with pytest.warns(PluginWarning, match="no_such_plugin"):
        load_plugins()


class _RaisingPlugin:
    @hookimpl
    def register_tasks(self, register):
        register("half_registered", lambda: None)
        raise RuntimeError("boom while registering")


def test_plugin_raising_during_registration_is_skipped_whole():
    with pytest.warns(PluginWarning, match=r"plugin 'raiser'.*boom while registering"):
        with registered_plugin(_RaisingPlugin(), name="raiser") as registry:
            assert "half_registered" not in registry.names("task")
            assert "hopper" in registry.names("task")
    assert "raiser" not in {p.name for p in get_plugins().plugins}


class _TaskPlugin:
    @hookimpl
    def register_tasks(self, register):
        register("toy_task", lambda: "toy", description="a toy task")


def test_fixture_registers_for_one_test_only(mopo_kit_plugin):
    registry = mopo_kit_plugin(_TaskPlugin(), name="toy")
    component = registry.get("task", "toy_task")
    assert (component.plugin, component.description, component.create()) == ("toy", "a toy task", "toy")


def test_fixture_cleaned_up_after_previous_test():
    assert "toy_task" not in get_registry().names("task")


def test_runtime_duplicate_is_an_error():
    class Dup:
        @hookimpl
        def register_tasks(self, register):
            register("hopper", lambda: None)

    with pytest.raises(PluginError, match=r"'hopper'.*'mopo_kit.envs.tasks'.*'dup-task'"):
        with registered_plugin(Dup(), name="dup-task"):
            pass
    assert get_registry().get("task", "hopper").plugin == "mopo_kit.envs.tasks"


def test_unknown_component_suggests_close_names():
    with pytest.raises(UnknownComponentError, match=r"unknown uncertainty estimator 'max_aleatorc'.*max_aleatoric"):
        get_registry().get("uncertainty", "max_aleatorc")


def test_no_warnings_with_a_healthy_install():
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginWarning)
        load_plugins()


def test_plugin_installed_with_pip_from_outside_the_repo(tmp_path, run_cli):
    """A real ``pip install`` of a plugin project that lives outside the repository."""
    import subprocess
    import sys

    project = tmp_path / "outside-plugin"
    (project / "mopo_kit_outside").mkdir(parents=True)
    (project / "mopo_kit_outside" / "__init__.py").write_text(GOOD_PLUGIN)
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "mopo-kit-outside"\nversion = "2.0.1"\n'
        '[project.entry-points.mopo_kit]\noutside = "mopo_kit_outside"\n'
        '[tool.setuptools]\npackages = ["mopo_kit_outside"]\n'
    )
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(site), str(project)],
        check=True, capture_output=True, timeout=300,
    )
    plugins = {p["name"]: p for p in json.loads(run_cli("plugins", "--json", env={"PYTHONPATH": str(site)}, check_rc=0).stdout)}
    assert plugins["outside"]["version"] == "2.0.1"
    assert plugins["outside"]["registers"] == {"uncertainty": ["constant_one"]}
