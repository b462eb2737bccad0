"""Fast typing with real key events: a burst of keys, backspaces included, gives exactly the typed text."""

from __future__ import annotations

from pathlib import Path

from textual import events
from textual.app import App, ComposeResult
from textual.widgets import Input
from tui_support import async_test, screen_text, wait_until
from tunewise.advisor.tui.app import TunewiseApp
from tunewise.advisor.tui.screens.plan import PlanScreen
from tunewise.advisor.tui.widgets.ordered_input import OrderedInput

_NAMES = {"/": "slash", ".": "full_stop", "_": "underscore"}
TYPED = [*"data/support_xq", "backspace", "backspace", *"intents.jsonl", "left", "left", "backspace", "o"]
"""A typo, two backspaces, more text, then two cursor moves, a backspace and the deleted letter again."""
EXPECTED = "data/support_intents.jsonl"


def _burst(app: App[None], keys: list[str]) -> None:
    """Queue every key at once, as a terminal delivers them while the app is busy."""
    for key in keys:
        character = key if len(key) == 1 else None
        app.post_message(events.Key(_NAMES.get(key, key), character))


class _OneInput(App[None]):
    def __init__(self, cls: type[Input]) -> None:
        super().__init__()
        self.cls = cls

    def compose(self) -> ComposeResult:
        yield self.cls(id="field")


@async_test
async def test_a_burst_of_keys_keeps_its_order_in_an_ordered_input() -> None:
    # Textual's own Input gives 'data/support_xqintents.jso' for this burst (its backspace runs only
    # after the key's round trip through the app's binding check, behind the characters typed later).
    app = _OneInput(OrderedInput)
    async with app.run_test() as pilot:
        field = app.query_one("#field", Input)
        field.focus()
        await pilot.pause()
        _burst(app, TYPED)
        await wait_until(pilot, lambda: field.value == EXPECTED, repr(EXPECTED), timeout=30)
        await pilot.pause()
        assert field.value == EXPECTED


@async_test
async def test_the_plan_screens_validated_data_field_keeps_every_key(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "support_intents.jsonl").write_text('{"prompt": "a", "completion": "b"}\n')
    app = TunewiseApp(decisions_dir=tmp_path / "decisions", workdir=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        app.push_screen(PlanScreen("lora"))
        field = await wait_until(pilot, lambda: app.screen.query_one("#q-plan-data"), "the plan's data field")
        box = field.query_one(Input)
        box.focus()
        for _ in range(3):
            box.value = ""
            await pilot.pause()
            _burst(app, TYPED)
            await wait_until(pilot, lambda: box.value == EXPECTED and field.error is None,
                             "the typed path with no error", timeout=30)


@async_test
async def test_a_long_validation_message_wraps_instead_of_being_cut() -> None:
    from tunewise.advisor.tui.widgets.question_field import QuestionField
    from tunewise.plugins.types import Question

    message = ("'wisdom' is not one of task, knowledge, style, safety, preference, latency, cost, privacy, "
               "compliance, multilingual")

    def refuse(question: Question, raw: object) -> object:
        raise ValueError(message)

    import tunewise.advisor.tui.app as app_module

    class _Form(App[None]):
        CSS_PATH = str(Path(app_module.__file__).with_name("app.tcss"))  # the app's own styles

        def compose(self) -> ComposeResult:
            yield QuestionField(Question(id="goals", text="What should improve?", type="text"), check=refuse)

    app = _Form()
    async with app.run_test(size=(80, 24)) as pilot:
        field = app.query_one(QuestionField)
        field.query_one(Input).focus()
        await pilot.press("w")
        await wait_until(pilot, lambda: field.error == message, "the validation message")
        await pilot.pause()
        flat = " ".join(screen_text(app).split())
        assert "compliance, multilingual" in flat, flat


@async_test
async def test_ctrl_e_opens_the_training_settings_at_their_first_field(tmp_path: Path) -> None:
    from textual.widgets import Collapsible

    app = TunewiseApp(decisions_dir=tmp_path / "decisions", workdir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.push_screen(PlanScreen("lora"))
        section = await wait_until(pilot, lambda: app.screen.query_one("#plan-training", Collapsible),
                                   "the training settings")
        assert section.collapsed
        await pilot.press("ctrl+e")
        await wait_until(pilot, lambda: not section.collapsed and app.focused is not None
                         and section in app.focused.ancestors, "the first training field focused")
        await pilot.press("ctrl+e")
        await wait_until(pilot, lambda: section.collapsed, "the settings closed again")
