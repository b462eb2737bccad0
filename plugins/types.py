"""Value types that methods, the advisor and plugins exchange.

They are plain frozen dataclasses (no torch) so every layer can build and compare them cheaply.
``to_dict`` gives the JSON form used by ``--format json`` and the decision log.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

GOALS = ("knowledge", "task", "style", "format", "language", "domain", "safety", "preference")
"""What the user wants the adapted model to gain (see the answers file in README)."""

KNOWLEDGE_CHANGES = ("never", "yearly", "monthly", "weekly", "daily", "hourly", "realtime")
"""How often the facts the model needs change, slowest first (``realtime``: as they happen)."""
EXPERTISE_LEVELS = ("none", "basic", "moderate", "advanced", "expert")


def to_jsonable(value: Any) -> Any:
    """Dataclasses, tuples and mappings turned into JSON-ready dicts and lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


@dataclass(frozen=True)
class DataProfile:
    """What data the user has, in counts (an audited path overrides the numbers)."""

    documents: int = 0
    unlabeled_tokens: int = 0
    labeled_examples: int = 0
    preference_pairs: int = 0
    human_raters: bool = False
    path: str | None = None
    avg_tokens_per_example: float | None = None
    """Mean tokens per labeled example / preference record (set by the audit; None = assume a typical size)."""
    document_tokens: int | None = None
    """Tokens in the reference documents (set by the audit; None = estimate from ``documents``)."""


@dataclass(frozen=True)
class ModelProfile:
    """The base model: a name/path (None = the embedded default) and its size in billions."""

    name: str | None = None
    params_b: float = 7.0


@dataclass(frozen=True)
class HardwareChoice:
    """Which accelerator from the catalogue and how many of them."""

    gpu: str = "A100-80GB"
    gpus: int = 1


@dataclass(frozen=True)
class Budget:
    usd: float = 1000.0
    days: float = 14.0


@dataclass(frozen=True)
class Profile:
    """The validated interview answers; what every method's ``fit`` and ``estimate`` read."""

    use_case: str = ""
    goals: tuple[str, ...] = ("task",)
    knowledge_changes: str = "never"
    needs_citations: bool = False
    data: DataProfile = field(default_factory=DataProfile)
    model: ModelProfile = field(default_factory=ModelProfile)
    hardware: HardwareChoice = field(default_factory=HardwareChoice)
    budget: Budget = field(default_factory=Budget)
    team_expertise: str = "moderate"
    queries_per_day: int = 1000
    latency_sensitive: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Answers to plugin-contributed questions, keyed by question id."""
    training_tokens: int | None = None
    """Tokens a training run processes in all (all epochs); None = derived from the data counts."""
    seq_len: int | None = None
    """Training sequence length; None = the method's default (capped by the model's context)."""

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)


@dataclass(frozen=True)
class Question:
    """One interview question (built-in or contributed by a plugin via ``register_questions``)."""

    id: str
    text: str
    help: str = ""
    type: Literal["text", "int", "float", "bool", "choice", "multi", "path"] = "text"
    default: Any = None
    choices: tuple[str, ...] = ()
    topic: str = "extra"
    minimum: float | None = None
    ask_if: Callable[[Mapping[str, Any]], bool] | None = None
    """Given the answers so far, whether to ask; None means always."""


@dataclass(frozen=True)
class Hardware:
    """An accelerator in the catalogue: dense bf16 peak, memory and the usual price range."""

    name: str
    peak_tflops: float
    memory_gb: float
    usd_per_hour_low: float = 0.0
    usd_per_hour_high: float = 0.0
    aliases: tuple[str, ...] = ()
    source: str = ""
    kind: Literal["gpu", "cpu"] = "gpu"
    memory_bandwidth_gbps: float = 0.0
    """Memory bandwidth in GB/s (bounds token generation speed); 0 = unknown."""
    calibration: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Probe measurements on this hardware by method id (``mfu``, ``memory_offset_gb``, ``measured_at`` …);
    the advisor attaches them from its calibration store and quotes use them instead of defaults."""


@dataclass(frozen=True)
class Fit:
    """How well a method suits a profile, in words the user recognises."""

    method: str
    score: float
    """0 (does not apply) .. 1 (exactly what the answers call for)."""
    reasons: tuple[str, ...] = ()
    """Why it fits or not, quoting the user's own answers."""
    blockers: tuple[str, ...] = ()
    """What rules it out until changed (e.g. no preference data)."""

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)


@dataclass(frozen=True)
class Quote:
    """What a method costs for a profile on given hardware; every figure names its assumptions."""

    method: str
    flops: float
    gpu_hours: float
    wall_hours: float
    usd_low: float
    usd_high: float
    peak_memory_gb: float
    fits: bool
    memory_breakdown_gb: Mapping[str, float] = field(default_factory=dict)
    fixes: tuple[str, ...] = ()
    """What would make it fit when it does not (LoRA, QLoRA, recompute, more GPUs …)."""
    human_time: Mapping[str, str] = field(default_factory=dict)
    """Data prep / training / evaluation calendar time and expertise, from the articles' table."""
    per_query: Mapping[str, float] = field(default_factory=dict)
    """For inference-time methods: extra tokens and dollars per query, setup cost, break-even."""
    assumptions: Mapping[str, Any] = field(default_factory=dict)
    stages: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Per-stage figures of a multi-stage method (e.g. RLHF: sft, reward_model, grpo)."""
    alternatives: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Cheaper or different variants quoted alongside (e.g. RLHF's DPO), same keys as the quote."""

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)


@dataclass(frozen=True)
class Plan:
    """A runnable plan (the YAML file ``tunewise run`` reads)."""

    method: str
    model: str | None = None
    data: tuple[str, ...] = ()
    config: Mapping[str, Any] = field(default_factory=dict)
    """The method's own settings (its ``config_class`` fields)."""
    training: Mapping[str, Any] = field(default_factory=dict)
    """Shared training settings: epochs/max_steps, batch, seq_len, lr, precision, seed …"""
    output_dir: str = "runs/latest"
    source: str | None = None
    """The plan file it was read from, for messages."""
    resume: bool = False
    """Continue from the last complete checkpoint in ``output_dir`` (``tunewise run --resume``)."""
    force: bool = False
    """Resume despite a checkpoint/plan mismatch, or start over in a folder holding an earlier run."""
    distributed: Mapping[str, Any] = field(default_factory=dict)
    """Multi-process training (:class:`tunewise.plugins.parallelism.DistributedSettings` fields)."""

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)

    def config_path(self, value: str, field: str = "", *, kind: str = "read") -> Path:
        """Where a path from the method config leads; the one way method code should open such a path.

        ``~`` is expanded; a relative ``kind="read"`` path is taken beside the plan file when it exists there,
        else (and a relative ``kind="write"`` path always) in the working directory. Outside the plan's folder
        and the working directory it is refused (:class:`~tunewise.plugins.trust.UntrustedArtifactError`,
        naming ``config.<field>``) unless the user ran with ``--allow-outside-paths``: a plan from someone
        else must not pick the user's files, even through a setting plan loading did not know was a path.
        """
        from tunewise.plugins.trust import confine_plan_path

        return confine_plan_path(value, self.source, field=field, kind=kind)


@dataclass(frozen=True)
class RunResult:
    """How a run ended and what it produced."""

    method: str
    status: Literal["completed", "failed", "cancelled", "stopped"]
    """``stopped``: a guardrail (budget, disk space) ended the run after its last checkpoint; ``--resume``
    continues once the limit is raised or space freed."""
    metrics_before: Mapping[str, float] = field(default_factory=dict)
    metrics_after: Mapping[str, float] = field(default_factory=dict)
    artifacts: Mapping[str, str] = field(default_factory=dict)
    report: str | None = None
    message: str = ""
    output_dir: str = ""
    steps: int = 0
    """Optimizer steps done (training methods)."""
    peak_memory_gb: float = 0.0
    wall_s: float = 0.0
    bakeoff: Mapping[str, Any] | None = None
    """Base vs result on the held-out split (:meth:`tunewise.plugins.bakeoff.BakeOff.to_dict`), None when
    the run could not compare them (and ``message`` says why)."""

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)


EventSink = Callable[..., None]
"""``events(kind, **fields)``: where a run reports progress, loss, eval, checkpoint and error events."""
