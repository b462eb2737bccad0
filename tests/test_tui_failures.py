"""Failures never take the app down: broken plugins are shown, a failing worker opens a dialog."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
from tui_support import async_test, screen_text, wait_until
from tunewise.advisor.tui.app import TunewiseApp
from tunewise.plugins import hookimpl, manager


def _broken_plugin() -> types.SimpleNamespace:
    @hookimpl
    def tunewise_register_methods(register):  # type: ignore[no-untyped-def]
        raise RuntimeError("the plugin's registry exploded")

    return types.SimpleNamespace(tunewise_register_methods=tunewise_register_methods)


@async_test
async def test_plugin_failures_are_shown_and_the_app_works(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    host = manager.PluginHost(load_entry_points=False, disabled=set(), strict=False,
                              extra_plugins=[("exploding", _broken_plugin())])
    monkeypatch.setattr(manager, "_HOST", host)
    app = TunewiseApp(decisions_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        await wait_until(pilot, lambda: "plugin problem" in str(app.screen.query_one("#welcome-methods").render()),
                         "the welcome screen listing plugin problems")
        assert any("exploding" in failure and "registry exploded" in failure for failure in app.plugin_failures)
        shown = str(app.screen.query_one("#welcome-methods").render())
        assert "6 methods" in shown and "1 plugin problem(s), skipped: plugin 'exploding'" in shown
        await pilot.press("n")
        assert type(app.screen).__name__ == "InterviewScreen"


@async_test
async def test_a_failing_audit_opens_a_dialog_and_the_consultation_goes_on(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(manager, "_HOST", manager.PluginHost(load_entry_points=False, disabled=set()))
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    answers = tmp_path / "answers.yaml"
    answers.write_text(f"use_case: x\ngoals: [task]\ndata: {{path: {empty}, labeled_examples: 500}}\n")
    app = TunewiseApp(answers=answers, decisions_dir=tmp_path / "decisions")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        for _ in range(10):
            if type(app.screen).__name__ in ("AuditScreen", "ErrorDialog"):
                break
            await pilot.press("ctrl+n")
            await app.workers.wait_for_complete()
            await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert type(app.screen).__name__ == "ErrorDialog"
        assert "auditing the data failed" in screen_text(app)
        await pilot.press("escape")
        assert type(app.screen).__name__ == "AuditScreen"
        assert "The audit failed" in str(app.screen.query_one("#audit-head").render())
        await pilot.press("ctrl+n")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert type(app.screen).__name__ == "RecommendationsScreen"
        assert app.consultation is not None and app.consultation.ranking is not None
        assert app.consultation.ranking.profile.data.labeled_examples == 500
