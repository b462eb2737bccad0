"""The goals checklist marks chosen boxes with ✓, so its states differ by more than colour."""

from __future__ import annotations

from textual.app import App, ComposeResult
from tui_support import async_test
from tunewise.advisor.tui.widgets.checklist import CHECKED, Checklist


class _ChecklistApp(App[None]):
    def compose(self) -> ComposeResult:
        yield Checklist[str](("task", "task", True), ("knowledge", "knowledge", False), ("style", "style", False))


@async_test
async def test_chosen_boxes_carry_a_mark_and_toggle_with_space() -> None:
    app = _ChecklistApp()
    async with app.run_test(size=(40, 8)) as pilot:
        widget = app.query_one(Checklist)
        widget.focus()
        await pilot.pause()
        lines = [widget.render_line(y).text for y in range(3)]
        assert CHECKED in lines[0] and "task" in lines[0]
        assert CHECKED not in lines[1] and CHECKED not in lines[2]
        await pilot.press("down", "space")  # choose "knowledge" with real key events
        await pilot.pause()
        assert list(widget.selected) == ["task", "knowledge"]
        assert CHECKED in widget.render_line(1).text
        await pilot.press("up", "space")
        await pilot.pause()
        assert CHECKED not in widget.render_line(0).text
