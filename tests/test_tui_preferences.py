"""The Preferences screen drives the shared labeling session: pick, skip, undo, resume."""

from __future__ import annotations

import json
from pathlib import Path

from tui_support import async_test
from tunewise.advisor.labeling import skipped_path
from tunewise.advisor.tui.app import TunewiseApp


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def _settle(pilot) -> None:  # type: ignore[no-untyped-def]
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@async_test
async def test_pick_skip_undo_and_resume_from_the_screen(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"q{i}", "candidates": [f"a{i}", f"b{i}"]}) + "\n"
                               for i in range(3)))
    out = tmp_path / "prefs.jsonl"
    app = TunewiseApp(labeling=(prompts, out, None), decisions_dir=tmp_path / "decisions")
    async with app.run_test(size=(80, 24)) as pilot:
        await _settle(pilot)
        screen = app.screen
        assert type(screen).__name__ == "PreferencesScreen"
        assert str(screen.query_one("#pref-a-text").render()) == "a0"
        await pilot.press("2")  # B is better
        await _settle(pilot)
        assert "Prompt 2:" in str(screen.query_one("#pref-prompt").render())
        await pilot.press("s")
        await _settle(pilot)
        await pilot.press("u")  # takes back the skip: prompt 2 again
        await _settle(pilot)
        assert "Prompt 2:" in str(screen.query_one("#pref-prompt").render())
        assert _lines(skipped_path(out)) == []
        await pilot.press("a")
        await _settle(pilot)
        assert "1 to go of 3" in str(screen.query_one("#pref-head").render())
    assert [(r["prompt"], r["chosen"], r["rejected"]) for r in _lines(out)] == [("q0", "b0", "a0"), ("q1", "a1", "b1")]

    again = TunewiseApp(labeling=(prompts, out, None), decisions_dir=tmp_path / "decisions")
    async with again.run_test(size=(80, 24)) as pilot:
        await _settle(pilot)
        screen = again.screen
        assert "Prompt 3:" in str(screen.query_one("#pref-prompt").render()), "a restart resumes"
        await pilot.press("1")
        await _settle(pilot)
        assert "All prompts have a decision" in str(screen.query_one("#pref-prompt").render())
    assert len(_lines(out)) == 3
