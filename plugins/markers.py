"""The pluggy markers of the ``tunewise`` project name."""

from __future__ import annotations

import pluggy

PROJECT_NAME = "tunewise"
"""pluggy project name; also the entry-point group third-party plugins publish under."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
