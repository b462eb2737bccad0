"""The plugin host: built-ins, real entry-point plugins, isolation, disable list, strict mode."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from support import run_cli, write_distribution
from tunewise.plugins import hookspecs
from tunewise.plugins.errors import DuplicateMethodError, PluginError
from tunewise.plugins.manager import DEFAULT_PLUGINS, PluginHost

BUILTIN_IDS = {"rag", "in_context", "full_finetune", "lora", "continual_pretraining", "rlhf"}

GOOD_PLUGIN = textwrap.dedent('''
    from tunewise.plugins import Fit, hookimpl

    class Echo:
        id = "echo"
        title = "Echo"
        summary = "Repeats the prompt."
        config_class = None
        def fit(self, profile):
            return Fit(self.id, 0.1, ("echo only repeats",))
        def estimate(self, profile, hardware):
            raise RuntimeError("no quote")
        def run(self, plan, events):
            raise RuntimeError("no run")

    @hookimpl
    def tunewise_register_methods(register):
        register(Echo)
''')


def _site(tmp_path: Path, **plugins: str) -> Path:
    """One distribution per plugin: name -> module source."""
    site = tmp_path / "site"
    for name, source in plugins.items():
        write_distribution(site, f"tw-{name}", {f"tw_{name}": source}, {name: f"tw_{name}"})
    return site


def _plugins_json(site: Path, *extra: str, env: dict[str, str] | None = None) -> dict:
    proc = run_cli(*extra, "plugins", "--format", "json", env={"PYTHONPATH": str(site), **(env or {})})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_builtins_register_all_six_methods() -> None:
    host = PluginHost(load_entry_points=False)
    assert set(host.methods) == BUILTIN_IDS
    assert not host.failures
    assert all(info.builtin for info in host.plugins())


def test_every_builtin_uses_the_public_hook() -> None:
    host = PluginHost(load_entry_points=False)
    for info in host.plugins():
        public_hook = "tunewise_register_hardware" if info.name == "default_hardware" else "tunewise_register_methods"
        assert public_hook in info.hooks
    assert len(host.plugins()) == len(DEFAULT_PLUGINS)


def test_real_entry_point_plugin_is_listed(tmp_path: Path) -> None:
    data = _plugins_json(_site(tmp_path, echo=GOOD_PLUGIN))
    assert set(data["methods"]) == BUILTIN_IDS | {"echo"}
    echo = next(p for p in data["plugins"] if p["name"] == "echo")
    assert echo["package"] == "tw-echo" and echo["version"] == "1.0" and echo["methods"] == ["echo"]
    assert not data["failures"]


def test_broken_plugins_are_reported_and_skipped(tmp_path: Path) -> None:
    site = _site(
        tmp_path,
        echo=GOOD_PLUGIN,
        badimport="import does_not_exist_anywhere\n",
        raiser=textwrap.dedent('''
            from tunewise.plugins import hookimpl
            @hookimpl
            def tunewise_register_methods(register):
                raise ValueError("boom")
        '''),
        badsig=textwrap.dedent('''
            from tunewise.plugins import hookimpl
            @hookimpl
            def tunewise_register_methods(register, nonsense):
                pass
        '''),
        unknownhook=textwrap.dedent('''
            from tunewise.plugins import hookimpl
            @hookimpl
            def tunewise_no_such_hook():
                pass
        '''),
        dup=GOOD_PLUGIN.replace('title = "Echo"', 'title = "Echo again"'),
    )
    data = _plugins_json(site)
    assert set(data["methods"]) == BUILTIN_IDS | {"echo"}
    stages = {f["plugin"]: f for f in data["failures"]}
    assert stages["badimport"]["stage"] == "import" and "does_not_exist_anywhere" in stages["badimport"]["error"]
    assert stages["badimport"]["package"] == "tw-badimport"
    assert stages["raiser"]["stage"] == "hook" and "boom" in stages["raiser"]["error"]
    assert stages["badsig"]["stage"] == "signature" and "nonsense" in stages["badsig"]["error"]
    assert stages["unknownhook"]["stage"] == "signature" and "tunewise_no_such_hook" in stages["unknownhook"]["error"]
    dup = stages["dup"] if "dup" in stages else stages["echo"]
    assert dup["stage"] == "duplicate" and "tw-echo" in dup["error"] and "tw-dup" in dup["error"]


def test_disable_list_skips_named_plugins(tmp_path: Path) -> None:
    data = _plugins_json(_site(tmp_path, echo=GOOD_PLUGIN), env={"TUNEWISE_DISABLE_PLUGINS": "echo,rlhf"})
    assert "echo" not in data["methods"] and "rlhf" not in data["methods"]
    assert data["disabled"] == ["echo", "rlhf"]


def test_strict_mode_turns_failure_into_error(tmp_path: Path) -> None:
    site = _site(tmp_path, badimport="raise ImportError('nope')\n")
    proc = run_cli("--strict-plugins", "plugins", env={"PYTHONPATH": str(site)})
    assert proc.returncode == 1
    assert "badimport" in proc.stderr and "nope" in proc.stderr and "Traceback" not in proc.stderr


def test_duplicate_in_strict_mode_raises() -> None:
    import types

    from tunewise.methods.lora import LoraMethod
    from tunewise.plugins import hookimpl

    clone = types.ModuleType("clone")

    @hookimpl
    def tunewise_register_methods(register):  # type: ignore[no-untyped-def]
        register(LoraMethod)

    clone.tunewise_register_methods = tunewise_register_methods  # type: ignore[attr-defined]
    host = PluginHost(strict=True, load_entry_points=False, extra_plugins=[("clone", clone)])
    with pytest.raises(DuplicateMethodError, match="lora"):
        _ = host.methods


def test_unknown_method_lists_known_ids() -> None:
    host = PluginHost(load_entry_points=False)
    with pytest.raises(PluginError, match=r"registered methods: .*lora"):
        host.method("nope")


def test_every_hookspec_is_documented() -> None:
    for name in PluginHost.hook_names():
        doc = getattr(hookspecs, name).__doc__ or ""
        assert len(doc.strip()) > 40, f"{name} needs a docstring saying when it is called and what to return"
