"""Test kit for plugin authors: pytest fixtures and a conformance check of the ``Method`` contract.

In your plugin's ``conftest.py``::

    pytest_plugins = ["tunewise.plugins.testing"]

and a whole conformance test is then::

    from tunewise.plugins.testing import check_method

    def test_my_method_conforms(tunewise_tiny_model, tmp_path):
        check_method(MyMethod, model=str(tunewise_tiny_model), data=[str(DATA)], output_dir=tmp_path)

``check_method`` raises :class:`ConformanceError` listing every breach of the contract: identity
attributes, config dataclass with help text, ``fit`` on a spread of profiles, ``estimate`` on GPU
and CPU hardware, and (when ``data`` is given) a real ``run`` whose result and events are checked.

To test hooks through tunewise itself (ranking, hardware catalogue, data reader, ``tunewise run``),
make a host with your plugin the process-wide one for a block::

    with plugin_host(("my_plugin", my_plugin_module)) as host:
        ranking = rank(profile)          # calls your hooks like an installed plugin's
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from tunewise.plugins.events import make_event
from tunewise.plugins.types import (
    Budget,
    DataProfile,
    Fit,
    Hardware,
    HardwareChoice,
    ModelProfile,
    Plan,
    Profile,
    Quote,
    RunResult,
)

ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")

SAMPLE_HARDWARE: tuple[Hardware, ...] = (
    Hardware("A100-80GB", peak_tflops=312, memory_gb=80, usd_per_hour_low=1.2, usd_per_hour_high=2.5),
    Hardware("T4", peak_tflops=65, memory_gb=16, usd_per_hour_low=0.35, usd_per_hour_high=0.53),
    Hardware("cpu", peak_tflops=2.4, memory_gb=24, kind="cpu"),
)
"""Figures from ESTIMATION.md's catalogue, enough to exercise a quote on a big GPU, a small one and a CPU."""


def sample_profiles() -> list[Profile]:
    """Profiles that pull in different directions: facts, skills, raw text, preferences, nothing."""
    return [
        Profile(use_case="support bot over product docs", goals=("knowledge",), knowledge_changes="daily",
                needs_citations=True, data=DataProfile(documents=5000)),
        Profile(use_case="extract invoice fields as JSON", goals=("task", "format"),
                data=DataProfile(labeled_examples=20_000), model=ModelProfile(params_b=7)),
        Profile(use_case="medical language model", goals=("domain",),
                data=DataProfile(unlabeled_tokens=2_000_000_000), model=ModelProfile(params_b=8),
                hardware=HardwareChoice(gpu="H100", gpus=8), budget=Budget(usd=50_000, days=60),
                team_expertise="advanced"),
        Profile(use_case="helpful and harmless assistant", goals=("preference", "safety"),
                data=DataProfile(preference_pairs=30_000, human_raters=True), team_expertise="expert"),
        Profile(use_case="", goals=("style",), data=DataProfile(), hardware=HardwareChoice(gpu="cpu", gpus=1),
                budget=Budget(usd=0, days=1), team_expertise="none"),
    ]


class ConformanceError(AssertionError):
    """A plugin's method breaks the ``Method`` contract; the message lists every breach."""


def _check_identity(cls: type, problems: list[str]) -> None:
    for attr in ("id", "title", "summary"):
        value = getattr(cls, attr, None)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{cls.__name__}.{attr} must be a non-empty string")
    method_id = getattr(cls, "id", "")
    if isinstance(method_id, str) and not ID_PATTERN.match(method_id):
        problems.append(f"{cls.__name__}.id {method_id!r} must be lowercase letters, digits and _ (used in plans)")
    for name in ("fit", "estimate", "run"):
        if not callable(getattr(cls, name, None)):
            problems.append(f"{cls.__name__}.{name} must be a method")
    config: Any = getattr(cls, "config_class", None)
    if config is not None:
        if not dataclasses.is_dataclass(config):
            problems.append(f"{cls.__name__}.config_class must be a dataclass or None")
        else:
            config_name = getattr(config, "__name__", str(config))
            for f in dataclasses.fields(config):
                if not f.metadata.get("help"):
                    problems.append(f"{config_name}.{f.name} needs field(metadata={{'help': ...}})")
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    problems.append(f"{config_name}.{f.name} needs a default (plans may omit it)")


def _check_fit(method: Any, profiles: Iterable[Profile], problems: list[str]) -> None:
    for profile in profiles:
        where = f"fit(profile use_case={profile.use_case!r})"
        try:
            fit = method.fit(profile)
        except Exception as exc:
            problems.append(f"{where} raised {type(exc).__name__}: {exc}")
            continue
        if not isinstance(fit, Fit):
            problems.append(f"{where} returned {type(fit).__name__}, not Fit")
            continue
        if fit.method != method.id:
            problems.append(f"{where}: Fit.method is {fit.method!r}, expected {method.id!r}")
        if not (0.0 <= fit.score <= 1.0) or math.isnan(fit.score):
            problems.append(f"{where}: score {fit.score} outside 0..1")
        if not fit.reasons or not all(isinstance(r, str) and r.strip() for r in fit.reasons):
            problems.append(f"{where}: needs at least one reason (non-empty strings)")
        if not all(isinstance(b, str) and b.strip() for b in fit.blockers):
            problems.append(f"{where}: blockers must be non-empty strings")


def _check_quote(method: Any, profiles: Sequence[Profile], hardware: Iterable[Hardware], problems: list[str]) -> None:
    for hw in hardware:
        profile = profiles[1] if len(profiles) > 1 else profiles[0]
        where = f"estimate(hardware={hw.name})"
        try:
            quote = method.estimate(profile, hw)
        except Exception as exc:
            problems.append(f"{where} raised {type(exc).__name__}: {exc}")
            continue
        if not isinstance(quote, Quote):
            problems.append(f"{where} returned {type(quote).__name__}, not Quote")
            continue
        if quote.method != method.id:
            problems.append(f"{where}: Quote.method is {quote.method!r}, expected {method.id!r}")
        for name in ("flops", "gpu_hours", "wall_hours", "usd_low", "usd_high", "peak_memory_gb"):
            value = getattr(quote, name)
            if not isinstance(value, (int, float)) or value < 0 or math.isnan(value):
                problems.append(f"{where}: {name}={value!r} must be a non-negative number")
        if quote.usd_low > quote.usd_high:
            problems.append(f"{where}: usd_low {quote.usd_low} > usd_high {quote.usd_high}")
        if not isinstance(quote.fits, bool):
            problems.append(f"{where}: fits must be a bool")
        if not quote.fits and not quote.fixes:
            problems.append(f"{where}: a quote that does not fit must say what would (fixes)")
        if not quote.assumptions:
            problems.append(f"{where}: every quote must list its assumptions")


def _check_run(method: Any, plan: Plan, problems: list[str]) -> RunResult | None:
    events: list[dict[str, Any]] = []

    def sink(kind: str, **fields: Any) -> None:
        events.append(make_event(kind, **fields))  # raises on unknown kinds / missing fields

    try:
        result = method.run(plan, sink)
    except Exception as exc:
        problems.append(f"run raised {type(exc).__name__}: {exc}")
        return None
    if not isinstance(result, RunResult):
        problems.append(f"run returned {type(result).__name__}, not RunResult")
        return None
    if result.status != "completed":
        problems.append(f"run ended {result.status}: {result.message}")
    if not result.metrics_before or not result.metrics_after:
        problems.append("run must evaluate before and after (metrics_before and metrics_after)")
    for name, path in result.artifacts.items():
        if not Path(path).exists():
            problems.append(f"artifact {name!r} points at missing {path}")
    if not any(e["event"] == "eval" for e in events):
        problems.append("run emitted no eval event")
    return result


def check_method(
    cls: type,
    *,
    model: str | None = None,
    data: Sequence[str] = (),
    output_dir: str | Path | None = None,
    config: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    profiles: Sequence[Profile] | None = None,
    hardware: Iterable[Hardware] = SAMPLE_HARDWARE,
) -> RunResult | None:
    """Check ``cls`` against the Method contract; with ``data``, also run it for real.

    Returns the run's result (or None without data). Raises :class:`ConformanceError` listing all
    problems found.
    """
    problems: list[str] = []
    _check_identity(cls, problems)
    if any(not callable(getattr(cls, name, None)) for name in ("fit", "estimate", "run")):
        raise ConformanceError("\n".join(problems))
    method = cls()
    chosen = list(profiles or sample_profiles())
    _check_fit(method, chosen, problems)
    _check_quote(method, chosen, hardware, problems)
    result = None
    if data:
        plan = Plan(
            method=cls.id,  # type: ignore[attr-defined]
            model=model,
            data=tuple(data),
            config=config or {},
            training={"max_steps": 4, "seed": 0, **(training or {})},
            output_dir=str(output_dir or "runs/conformance"),
        )
        result = _check_run(method, plan, problems)
    if problems:
        raise ConformanceError(f"{cls.__name__} breaks the Method contract:\n- " + "\n- ".join(problems))
    return result


# -- a host with your plugin ----------------------------------------------------------------------


@contextlib.contextmanager
def plugin_host(*plugins: tuple[str, object], entry_points: bool = False, strict: bool = True) -> Iterator[Any]:
    """Make a host with the built-ins plus ``plugins`` (``(name, module or object)`` pairs) the one
    every part of tunewise uses (``get_host()``) inside the block; the previous host comes back after.

    ``entry_points=False`` (default) leaves out installed third-party plugins so the test sees only
    yours; ``strict`` turns any plugin failure into an error instead of a recorded warning.
    """
    from tunewise.plugins import manager

    previous = manager._HOST
    host = manager.PluginHost(strict=strict, disabled=(), load_entry_points=entry_points, extra_plugins=plugins)
    manager._HOST = host
    try:
        yield host
    finally:
        manager._HOST = previous


# -- pytest fixtures ------------------------------------------------------------------------------


def build_tiny_model(out: Path, *, layers: int = 2, hidden: int = 64, seed: int = 0) -> Path:
    """Write a Llama with random weights and the embedded model's real tokenizer and chat template.

    Built offline in about a second; small enough for CPU tests of the whole training path.
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    from tunewise.plugins.models import resolve_model

    out.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(None).path)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tunewise_tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random Llama with the embedded model's tokenizer (see :func:`build_tiny_model`)."""
    return build_tiny_model(tmp_path_factory.mktemp("tunewise-tiny-model"))


@pytest.fixture
def tunewise_host() -> Any:
    """A fresh plugin host with every installed plugin (entry points included), in strict mode."""
    from tunewise.plugins.manager import PluginHost, reset_host

    reset_host()
    return PluginHost(strict=True)


@pytest.fixture
def tunewise_profiles() -> list[Profile]:
    """The sample profiles ``check_method`` uses."""
    return sample_profiles()
