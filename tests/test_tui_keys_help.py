"""F1 lists every key of every screen, one entry per line, readable at 80×24."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.binding import Binding
from tui_support import async_test, screen_text, wait_until
from tunewise.advisor.tui.app import TunewiseApp
from tunewise.advisor.tui.key_help import SCREENS, key_entries
from tunewise.advisor.tui.screens.keys_help import KeysHelp
from tunewise.plugins import manager


@pytest.fixture(autouse=True)
def builtin_plugins_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(manager, "_HOST", manager.PluginHost(load_entry_points=False, disabled=set()))
    monkeypatch.setenv("TUNEWISE_DATA_DIR", str(tmp_path / "data"))


def test_every_binding_of_every_screen_is_listed() -> None:
    import importlib

    listed = {(e.screen, e.what) for e in key_entries()}
    checked = 0
    for title, module, name in SCREENS:
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
        for binding in cls.__dict__.get("BINDINGS", []):
            if isinstance(binding, Binding) and binding.description:
                assert (title, binding.tooltip or binding.description) in listed, (title, binding)
                checked += 1
    assert checked >= 25  # the welcome keys, m, 1/2/s/u … all come from the screens themselves


@async_test
async def test_f1_at_80x24_shows_whole_entries_and_closes(tmp_path: Path) -> None:
    app = TunewiseApp(decisions_dir=tmp_path / "decisions", workdir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("f1")
        await wait_until(pilot, lambda: isinstance(app.screen, KeysHelp), "the key list")
        await pilot.pause()
        text = screen_text(app)
        for needle in ("Open answers", "ctrl+n", "Welcome"):
            assert needle in text, needle
        # every entry that is on screen is whole on one row: its key and its action together
        rows = text.splitlines()
        shown = 0
        for entry in key_entries():
            hits = [row for row in rows if f" {entry.keys} " in row and f" {entry.what} " in row]
            shown += bool(hits)
        assert shown >= 12, text
        await pilot.press("f1")
        await wait_until(pilot, lambda: not isinstance(app.screen, KeysHelp), "the key list to close")


@async_test
async def test_every_screens_footer_fits_80_columns(tmp_path: Path) -> None:
    """Each screen's shown keys plus the app's fit one 80-column footer (Textual cuts the rest off)."""
    import importlib

    app = TunewiseApp(decisions_dir=tmp_path / "decisions", workdir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app_keys = [b for b in app.BINDINGS if isinstance(b, Binding) and b.show]
        widths = {}
        for title, module, name in SCREENS[1:]:
            try:
                cls = getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError):
                continue
            own = [b for b in cls.__dict__.get("BINDINGS", []) if isinstance(b, Binding) and b.show]
            entries = [f"{app.get_key_display(b)} {b.description}" for b in own + app_keys]
            widths[title] = 1 + sum(len(e) for e in entries) + 2 * (len(entries) - 1)
        assert widths and all(w <= 80 for w in widths.values()), widths
        # and the real footer shows the last key whole (the interview had "f1 H" cut off)
        await pilot.press("n")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "InterviewScreen", "the interview")
        await pilot.pause()
        assert screen_text(app).splitlines()[-1].rstrip().endswith("f1 Help")
