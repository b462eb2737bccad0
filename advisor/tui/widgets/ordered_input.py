"""An Input that applies its editing keys in the order they were typed, even in a burst.

Textual's Input inserts a printable key as soon as it arrives, but runs its editing bindings
(backspace, delete, cursor moves) only after the key has bubbled up to the app and come back as a
binding check: several message hops later. When keys arrive faster than that (fast typing while the
app is busy validating or laying out), a backspace lands after the characters typed behind it:
``data/support_xq⌫⌫intents.jsonl`` became ``data/support_xqintents.jso``. This Input runs its own
bindings right where the key arrives, so the text is always what was typed.
"""

from __future__ import annotations

from textual import events
from textual.widgets import Input


class OrderedInput(Input):
    """:class:`textual.widgets.Input` whose own (non-priority) key bindings run in typing order."""

    async def _on_key(self, event: events.Key) -> None:
        if not event.is_printable:
            for binding in self._bindings.key_to_bindings.get(event.key, []):
                if binding.priority:  # the app already ran priority bindings before forwarding the key
                    continue
                event.stop()
                event.prevent_default()
                self._restart_blink()
                await self.run_action(binding.action)
                return
        await super()._on_key(event)
