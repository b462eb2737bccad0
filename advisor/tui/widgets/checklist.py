"""A SelectionList whose boxes carry a mark, so chosen and not chosen differ by more than colour."""

from __future__ import annotations

from typing import TypeVar

from rich.segment import Segment
from textual.strip import Strip
from textual.widgets import SelectionList
from textual.widgets.option_list import OptionDoesNotExist

T = TypeVar("T")

CHECKED = "✓"
UNCHECKED = " "


class Checklist(SelectionList[T]):
    """Textual's SelectionList draws the same ``X`` in every box and tells states apart by colour only,
    which a monochrome terminal or a colour-blind user cannot see: draw ✓ for chosen, blank otherwise."""

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        try:
            option = self.get_option_at_index(self.scroll_offset.y + y)
        except OptionDoesNotExist:
            return strip
        segments = list(strip)
        if len(segments) < 3:
            return strip
        mark = CHECKED if option.value in self._selected else UNCHECKED
        segments[1] = Segment(mark, segments[1].style, segments[1].control)
        return Strip(segments, strip.cell_length)
