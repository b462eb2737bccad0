"""The F1 key list, built from the screens' own bindings so it can never omit or misname a key."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass

from textual.binding import Binding

SCREENS: tuple[tuple[str, str, str], ...] = (
    ("Everywhere", "tunewise.advisor.tui.app", "TunewiseApp"),
    ("Welcome", "tunewise.advisor.tui.screens.welcome", "WelcomeScreen"),
    ("Interview", "tunewise.advisor.tui.screens.interview", "InterviewScreen"),
    ("Data audit", "tunewise.advisor.tui.screens.audit", "AuditScreen"),
    ("Recommendations", "tunewise.advisor.tui.screens.recommendations", "RecommendationsScreen"),
    ("Plan", "tunewise.advisor.tui.screens.plan", "PlanScreen"),
    ("Run", "tunewise.advisor.tui.screens.run", "RunScreen"),
    ("Results", "tunewise.advisor.tui.screens.results", "ResultsScreen"),
    ("Try it", "tunewise.advisor.tui.screens.try_it", "TryItScreen"),
    ("Ask", "tunewise.advisor.tui.screens.ask", "AskScreen"),
    ("Preferences", "tunewise.advisor.tui.screens.preferences", "PreferencesScreen"),
)
"""(title, module, class) of every place with keys, in the order a user meets them. A screen whose
module is missing (an optional one) is left out rather than failing the help."""

NAMES = {"escape": "esc", "enter": "enter", "space": "space", "up": "↑", "down": "↓", "left": "←",
         "right": "→", "tab": "tab", "shift+tab": "shift+tab"}


@dataclass(frozen=True)
class KeyEntry:
    screen: str
    keys: str
    """Every key of the binding, e.g. ``1 / a``."""
    what: str


def key_text(key: str) -> str:
    """``ctrl+n`` stays, ``escape`` reads ``esc``; several keys join with `` / ``."""
    return " / ".join(NAMES.get(k.strip(), k.strip()) for k in key.split(","))


def entries_for(title: str, bindings: Iterable[object]) -> list[KeyEntry]:
    out: list[KeyEntry] = []
    for binding in bindings:
        if isinstance(binding, Binding):
            key, what = binding.key, binding.tooltip or binding.description or binding.action
        elif isinstance(binding, tuple) and len(binding) >= 2:
            key, what = str(binding[0]), str(binding[2] if len(binding) > 2 else binding[1])
        else:
            continue
        if not what:
            continue
        out.append(KeyEntry(title, key_text(key), what))
    return out


def key_entries() -> list[KeyEntry]:
    """Every binding of every screen (shown in its footer or not), in :data:`SCREENS` order."""
    out: list[KeyEntry] = []
    for title, module_name, class_name in SCREENS:
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError):
            continue
        own = cls.__dict__.get("BINDINGS", [])
        out += entries_for(title, own)
    out += [KeyEntry("Everywhere", "tab / shift+tab", "next / previous field"),
            KeyEntry("Everywhere", "mouse", "click anything; scroll with the wheel")]
    return out
