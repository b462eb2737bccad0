"""``tunewise --help`` and ``--version`` must not import heavy libraries (start-up goal 0.3 s)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "trl", "peft", "datasets", "textual", "sentence_transformers", "faiss")

PROBE = """
import json, runpy, sys
sys.argv = ["tunewise", *json.loads(sys.argv[1])]
try:
    runpy.run_module("tunewise.advisor.cli", run_name="__main__")
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["plugins", "--format", "json"]])
def test_cli_start_imports_nothing_heavy(args: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), json.dumps(args)], capture_output=True, text=True, check=True
    )
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert loaded == [], f"`tunewise {' '.join(args)}` imported {loaded}"


def test_core_packages_import_light() -> None:
    code = (
        "import sys, tunewise.plugins, tunewise.plugins.manager, tunewise.plugins.models, tunewise.advisor.cli;"
        "from tunewise.plugins.manager import get_host; get_host().methods;"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"
