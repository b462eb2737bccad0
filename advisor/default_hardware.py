"""Built-in plugin: registers the catalogue in ``data/hardware.yaml`` through the public hook."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tunewise.plugins import hookimpl


@hookimpl
def tunewise_register_hardware(register: Callable[[Any], None]) -> None:
    from tunewise.advisor.hardware import load_catalogue_file

    for hardware in load_catalogue_file():
        register(hardware)
