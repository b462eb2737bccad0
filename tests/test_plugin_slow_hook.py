"""A slow plugin hook is reported as ``slow`` (with its time) and its result still counts."""

from __future__ import annotations

import time

from tunewise.plugins import Hardware, hookimpl
from tunewise.plugins.manager import SLOW_HOOK_SECONDS, PluginHost

SLOW_GPU = Hardware("slow-gpu", peak_tflops=100.0, memory_gb=24.0)


class _SlowHardware:
    """A plugin whose hardware hook takes longer than the host's limit."""

    @hookimpl
    def tunewise_register_hardware(self, register):  # type: ignore[no-untyped-def]
        time.sleep(SLOW_HOOK_SECONDS + 0.2)
        register(SLOW_GPU)


def test_slow_hook_is_reported_and_isolated() -> None:
    host = PluginHost(load_entry_points=False, builtins=(), extra_plugins=[("slowpoke", _SlowHardware())])
    assert host.collect("tunewise_register_hardware") == [("slowpoke", SLOW_GPU)]  # the result still counts
    slow = [f for f in host.failures if f.stage == "slow"]
    assert len(slow) == 1 and slow[0].plugin == "slowpoke" and "limit" in slow[0].error
