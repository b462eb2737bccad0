"""docs/plugins.md: the hook reference is generated and current; every hook is documented and tested."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from support import REPO
from tunewise.plugins import hookspec
from tunewise.plugins.hook_reference import UndocumentedHookError, hook_specs, markdown, render, replace_block
from tunewise.plugins.manager import PluginHost

DOC = REPO / "docs" / "plugins.md"
TEST_DIRS = (REPO / "tests", REPO / "examples" / "prompt_tuning_plugin" / "tests")


def test_committed_reference_is_current() -> None:
    document = DOC.read_text(encoding="utf-8")
    assert replace_block(document, render()) == document, "run: python docs/gen_hook_reference.py"


def test_check_script_fails_on_a_stale_reference(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, str(REPO / "docs" / "gen_hook_reference.py"), "--check"],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "gen_hook_reference.py").write_text((REPO / "docs" / "gen_hook_reference.py").read_text())
    stale = DOC.read_text(encoding="utf-8").replace("### tunewise_after_run", "### tunewise_after_the_run")
    (docs / "plugins.md").write_text(stale)
    result = subprocess.run([sys.executable, str(docs / "gen_hook_reference.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "stale" in result.stderr
    subprocess.run([sys.executable, str(docs / "gen_hook_reference.py")], check=True, capture_output=True)
    assert (docs / "plugins.md").read_text() == DOC.read_text(encoding="utf-8")


def test_reference_covers_every_hook_the_host_knows() -> None:
    names = [name for name, _ in hook_specs()]
    assert sorted(names) == PluginHost.hook_names()
    reference = render()
    for name in names:
        assert f"### {name}\n" in reference and f"def {name}(" in reference
    assert "first result wins" in reference.split("### tunewise_load_dataset")[1].split("###")[0]
    assert ":class:" not in reference and "``register" not in reference


def test_an_undocumented_hook_is_refused() -> None:
    specs = ModuleType("fake_hookspecs")
    exec(
        "from tunewise.plugins import hookspec\n"
        "@hookspec\n"
        "def tunewise_documented(x):\n"
        "    '''Has words.'''\n"
        "@hookspec\n"
        "def tunewise_silent(x):\n"
        "    pass\n",
        specs.__dict__,
    )
    with pytest.raises(UndocumentedHookError, match="tunewise_silent"):
        render(specs)
    assert hookspec  # the marker the fake specs use is the public one


def test_docstring_markup_becomes_markdown() -> None:
    assert markdown("Call ``register(X)`` (:class:`tunewise.plugins.Question`).") == \
        "Call `register(X)` (`tunewise.plugins.Question`)."


def _uses(hook: str, text: str) -> bool:
    """An implementation (``def hook(``) or a call (``.hook(`` or ``call("hook"`` / ``collect("hook"``)."""
    return re.search(rf"def {hook}\(|\.{hook}\(|\(\s*[\"']{hook}[\"']", text) is not None


def test_every_hook_is_implemented_or_called_by_a_test() -> None:
    this = Path(__file__).resolve()
    texts = {path: path.read_text(encoding="utf-8") for folder in TEST_DIRS for path in folder.rglob("*.py")
             if path.resolve() != this}
    untested = [name for name, _ in hook_specs() if not any(_uses(name, text) for text in texts.values())]
    assert not untested, f"hooks no test implements or calls: {', '.join(untested)}"
