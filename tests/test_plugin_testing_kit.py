"""The author kit's conformance check catches contract breaches and passes conforming methods."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from tunewise.plugins.testing import ConformanceError, check_method
from tunewise.plugins.types import Fit, Quote


@dataclass
class GoodConfig:
    depth: int = field(default=3, metadata={"help": "how deep"})


class Broken:
    id = "Bad Id"
    title = ""
    summary = "x"
    config_class = None

    def fit(self, profile):  # type: ignore[no-untyped-def]
        return None

    def estimate(self, profile, hardware):  # type: ignore[no-untyped-def]
        return None

    def run(self, plan, events):  # type: ignore[no-untyped-def]
        return None


class Sloppy:
    id = "sloppy"
    title = "Sloppy"
    summary = "Returns the wrong things."

    @dataclass
    class config_class:
        depth: int = 3

    def fit(self, profile):  # type: ignore[no-untyped-def]
        return Fit("other", 1.5, ())

    def estimate(self, profile, hardware):  # type: ignore[no-untyped-def]
        return Quote("sloppy", flops=-1, gpu_hours=1, wall_hours=1, usd_low=5, usd_high=1,
                     peak_memory_gb=1, fits=False)

    def run(self, plan, events):  # type: ignore[no-untyped-def]
        raise RuntimeError("never")


class Tidy:
    id = "tidy"
    title = "Tidy"
    summary = "Conforms without running."
    config_class = GoodConfig

    def fit(self, profile):  # type: ignore[no-untyped-def]
        return Fit(self.id, 0.2, (f"you said {profile.use_case!r}",))

    def estimate(self, profile, hardware):  # type: ignore[no-untyped-def]
        return Quote(self.id, flops=1e15, gpu_hours=1.0, wall_hours=1.0, usd_low=1.0, usd_high=2.0,
                     peak_memory_gb=3.0, fits=True, assumptions={"mfu": 0.3})

    def run(self, plan, events):  # type: ignore[no-untyped-def]
        raise RuntimeError("not exercised without data")


def test_identity_breaches_are_listed() -> None:
    with pytest.raises(ConformanceError) as err:
        check_method(Broken)
    text = str(err.value)
    assert "id 'Bad Id'" in text and "title" in text


def test_fit_and_quote_breaches_are_listed() -> None:
    with pytest.raises(ConformanceError) as err:
        check_method(Sloppy)
    text = str(err.value)
    for expected in ("needs field(metadata", "Fit.method is 'other'", "score 1.5 outside", "at least one reason",
                     "flops=-1", "usd_low 5", "must say what would"):
        assert expected in text, expected


def test_conforming_method_passes() -> None:
    assert check_method(Tidy) is None


def test_plugin_host_is_the_process_host_inside_the_block_only() -> None:
    from tunewise.plugins import hookimpl
    from tunewise.plugins.manager import get_host
    from tunewise.plugins.testing import plugin_host

    class Plugin:
        @hookimpl
        def tunewise_register_methods(self, register):  # type: ignore[no-untyped-def]
            register(Tidy)

    before = get_host()
    with plugin_host(("tidy", Plugin())) as host:
        assert get_host() is host and "tidy" in host.methods and "lora" in host.methods
    assert get_host() is before and "tidy" not in before.methods
