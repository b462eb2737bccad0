"""The app's first screen appears without importing torch or the other heavy libraries."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "transformers", "trl", "peft", "datasets", "sentence_transformers", "faiss", "plotext")

PROBE = """
import asyncio, json, sys
from tunewise.advisor.tui.app import TunewiseApp

async def main():
    app = TunewiseApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = type(app.screen).__name__
    print(json.dumps({"screen": screen, "heavy": sorted(m for m in %r if m in sys.modules)}))

asyncio.run(main())
"""


def test_first_screen_imports_nothing_heavy(tmp_path) -> None:  # type: ignore[no-untyped-def]
    proc = subprocess.run([sys.executable, "-c", PROBE % (HEAVY,)], capture_output=True, text=True, check=True,
                          env={"TUNEWISE_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"})
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {"screen": "WelcomeScreen", "heavy": []}


def test_tui_command_help_is_light() -> None:
    code = ("import sys, runpy; sys.argv = ['tunewise', 'tui', '--help']\n"
            "try:\n    runpy.run_module('tunewise.advisor.cli', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            f"print(sorted(m for m in {(*HEAVY, 'textual')!r} if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "--answers FILE" in proc.stdout and "--run DIR" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_app_options_work_without_the_tui_command(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`tunewise --answers FILE` is `tunewise tui --answers FILE`; a missing file is a one-line error."""
    from support import run_cli

    proc = run_cli("--answers", str(tmp_path / "missing.yaml"))
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"tunewise tui: error: --answers {tmp_path / 'missing.yaml'}: file not found"
