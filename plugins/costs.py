"""Cost formulas every quote uses: compute, memory, time, money, human time, per-query cost.

Public so a third-party method quotes with the same arithmetic as the built-in ones. The facts come
from tunewise's ESTIMATION.md (Kaplan/Chinchilla 6·N·D, Korthikanti et al. activation memory, the
LoRA and QLoRA papers, NVIDIA datasheets); every function says what it assumes, and
:func:`training_quote` writes those assumptions into the :class:`~tunewise.plugins.types.Quote`.

Units: FLOPs, bytes and seconds inside; quotes show GB (10^9 bytes), hours and US dollars.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from tunewise.plugins.errors import TunewiseError
from tunewise.plugins.parallelism import default_strategy, state_fractions
from tunewise.plugins.types import Hardware, Quote

GB = 1e9
BF16_BYTES = 2
ADAM_STATE_BYTES = 12
"""fp32 master weights (4) + Adam first and second moments (4 + 4) per trainable parameter."""
NF4_BYTES = 0.55
"""QLoRA base weights: 4-bit NormalFloat + double-quantised constants (QLoRA paper: ≈0.5–0.55 B/param)."""
LOGIT_BYTES = 10
"""Per token per vocabulary entry in training: bf16 logits (2) + fp32 upcast for the loss (4) + its grad (4)."""
GPU_CONTEXT_GB = 0.75
"""CUDA context and allocator slack per GPU (ESTIMATION.md: 0.5–1 GB)."""
CPU_RUNTIME_GB = 0.5
"""Python, torch and tokenizer libraries resident in a CPU training process (calibrated by the probe)."""
QLORA_TIME_FACTOR = 1.25
"""De-quantising NF4 weights on the fly adds 10–30 % step time (ESTIMATION.md; torchtune RTX 4090:
LoRA 3,083 vs QLoRA 2,413 tok/s = 1.28×)."""

MFU_SMALL_RUN = 0.30
MFU_LARGE_RUN = 0.40
SMALL_RUN_TOKENS = 1e8
LARGE_RUN_TOKENS = 1e10
"""Default MFU grows from 30 % for fine-tuning-sized runs (short padded examples, small batches,
evaluation pauses) to 40 % for pretraining-sized ones (packed sequences, large batches): public
large runs sit at 35–50 %, small-batch fine-tuning at 20–35 % (ESTIMATION.md, MosaicML llm-foundry)."""
PREFILL_MFU = 0.40
"""Prompt processing at inference is one large batched matmul per layer: compute-bound."""
SERVING_BATCH = 16
"""Concurrent sequences a server decodes together (weights are read once per step for all)."""
ROLLOUT_BATCH = 64
"""Sequences generated together in an RL rollout (e.g. 8 prompts × 8 samples for GRPO)."""

ASPECT_RATIO = 128
"""hidden size / layers in GPT-3 and Llama-style models (4096/32, 5120/40, 12288/96)."""
HEAD_DIM = 128
DERIVED_VOCAB = 128_000
"""Vocabulary assumed for a model known only by its size (Llama 3: 128,256; Qwen 2.5: 151,936)."""

TrainKind = Literal["full", "lora", "dpo", "forward"]


class QuoteInputError(TunewiseError, ValueError):
    """A figure a quote starts from (or arrives at) is not a finite number in range; the message names it."""


def _finite(name: str, value: float, *, positive: bool = False) -> float:
    """``value`` as a float when finite and ≥ 0 (> 0 with ``positive``); else :class:`QuoteInputError`."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise QuoteInputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        raise QuoteInputError(f"{name} must be a finite number {'> 0' if positive else '≥ 0'}, got {value!r}")
    return number


def _check_figures(method: str, **figures: float) -> None:
    """Refuse a quote whose arithmetic left the floating-point range (inputs far beyond any real run)."""
    broken = [name for name, value in figures.items() if not math.isfinite(value)]
    if broken:
        raise QuoteInputError(f"{method}: the quote's {', '.join(broken)} overflowed; the model size, token count "
                              "or hardware figures are beyond what can be quoted")


# -- model shape ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelShape:
    """What the formulas need to know about a decoder-only transformer."""

    params: float
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tied_embeddings: bool = False
    context: int = 8192
    source: str = ""
    """Where the figures come from: ``config.json at …`` or ``derived from params_b=…``."""

    @property
    def head_dim(self) -> int:
        return max(1, self.hidden // max(1, self.heads))

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def embedding_params(self) -> float:
        return float(self.vocab * self.hidden * (1 if self.tied_embeddings else 2))

    @property
    def matmul_params(self) -> float:
        """Parameters that take part in a matmul per token: all but an untied input embedding table."""
        return self.params - (0 if self.tied_embeddings else self.vocab * self.hidden)

    @property
    def linear_params(self) -> float:
        """Decoder linear weights (what QLoRA quantises: embeddings and the output head stay bf16)."""
        return max(0.0, self.params - self.embedding_params)


def shape_from_params(params_b: float) -> ModelShape:
    """A Llama-style shape for a model known only by its size.

    Derivation: a decoder layer holds ≈12·h² parameters (4h² attention + 8h² SwiGLU MLP) and Llama /
    GPT-3 models keep h ≈ 128·L, so N ≈ 12·h³/128 gives h; 128-dim heads, at most 8 key/value heads
    (grouped-query attention), a 128k vocabulary with untied embeddings (capped at 30 % of N for small
    models), and L from the non-embedding remainder. For Llama-2-7B this gives h=4224, L=28 (real:
    4096, 32); good to a few percent in FLOPs and memory, which scale with N.
    """
    n = _finite("params_b", params_b, positive=True) * 1e9
    hidden = max(64, round((n * ASPECT_RATIO / 12) ** (1 / 3) / 64) * 64)
    embed = min(2 * DERIVED_VOCAB * hidden, 0.3 * n)
    vocab = int(embed / (2 * hidden))
    layers = max(1, round((n - embed) / (12 * hidden * hidden)))
    heads = max(1, hidden // HEAD_DIM)
    return ModelShape(
        params=n, layers=layers, hidden=hidden, heads=heads, kv_heads=min(heads, 8),
        intermediate=int(hidden * 8 / 3), vocab=vocab, tied_embeddings=False, context=8192,
        source=f"derived from params_b={params_b:g} (h≈(N·128/12)^(1/3), L from 12·h² per layer)",
    )


def shape_from_config(cfg: Mapping[str, Any], params: float | None = None, source: str = "") -> ModelShape:
    """The shape from a Hugging Face ``config.json`` (Llama, Mistral, Qwen, GPT-2 style keys)."""
    hidden = int(cfg.get("hidden_size") or cfg.get("n_embd") or cfg.get("d_model") or 0)
    layers = int(cfg.get("num_hidden_layers") or cfg.get("n_layer") or cfg.get("num_layers") or 0)
    heads = int(cfg.get("num_attention_heads") or cfg.get("n_head") or 1)
    if not hidden or not layers:
        raise ValueError(f"config {source or ''} lacks hidden_size / num_hidden_layers")
    kv_heads = int(cfg.get("num_key_value_heads") or heads)
    head_dim = int(cfg.get("head_dim") or hidden // heads)
    intermediate = int(cfg.get("intermediate_size") or cfg.get("n_inner") or 4 * hidden)
    vocab = int(cfg.get("vocab_size") or 0)
    tied = bool(cfg.get("tie_word_embeddings", "n_embd" in cfg))
    if params is None:
        attn = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2
        mlp = 3 * hidden * intermediate
        params = layers * (attn + mlp + 2 * hidden) + vocab * hidden * (1 if tied else 2) + hidden
    context = int(cfg.get("max_position_embeddings") or cfg.get("n_positions") or 2048)
    # Heads are counted as hidden / head_dim so that kv_dim stays right when head_dim is explicit.
    return ModelShape(
        params=float(params), layers=layers, hidden=hidden, heads=max(1, hidden // head_dim),
        kv_heads=kv_heads, intermediate=intermediate, vocab=vocab, tied_embeddings=tied,
        context=context, source=source or "config.json",
    )


def resolve_shape(name: str | None, params_b: float) -> ModelShape:
    """The shape of a named local model (its config.json and safetensors headers) or from ``params_b``.

    ``name`` None means "a model of ``params_b`` billion parameters". A name that is not on disk falls
    back to ``params_b`` and says so in ``source``; nothing is loaded or downloaded.
    """
    if not name:
        return shape_from_params(params_b)
    from tunewise.plugins.errors import ModelNotFoundError
    from tunewise.plugins.model_files import read_model_config
    from tunewise.plugins.models import _safetensors_parameter_count, resolve_model

    try:
        ref = resolve_model(name, prepare=False)
    except ModelNotFoundError:
        derived = shape_from_params(params_b)
        return replace(derived, source=f"model {name!r} not found locally; {derived.source}")
    cfg = read_model_config(ref.path)  # bounded, strict, shape fields in range (a corrupt one is named)
    counted, _ = _safetensors_parameter_count(ref.path)
    return shape_from_config(cfg, counted or None, source=f"config.json at {ref.path}")


# -- compute -----------------------------------------------------------------------------------------


def attention_flops_per_token(shape: ModelShape, seq_len: int) -> float:
    """Forward attention-score FLOPs per token, 4·L·h·s (QKᵀ and AV; PaLM's convention, no causal halving)."""
    return 4.0 * shape.layers * shape.hidden * seq_len


def flops_per_token(shape: ModelShape, seq_len: int, kind: TrainKind = "full", recompute: bool = False) -> float:
    """FLOPs per processed token.

    - ``full`` (full fine-tune, continual pretraining, reward model): 6·N + 12·L·h·s (forward 2N,
      backward 4N; attention likewise ×3); recompute adds one more forward (≈8·N);
    - ``lora``: 4·N + 12·L·h·s: frozen weights need activation gradients (2N) but no weight gradients;
      adapter FLOPs are negligible; attention is still differentiated;
    - ``dpo``: the policy's fwd+bwd (6N) plus the frozen reference model's forward (2N): 8·N;
    - ``forward``: 2·N + 4·L·h·s (inference, reference and reward scoring).
    """
    n = shape.matmul_params
    attn = attention_flops_per_token(shape, seq_len)
    weights = {"full": 6 * n, "lora": 4 * n, "dpo": 8 * n, "forward": 2 * n}[kind]
    scores = {"full": 3 * attn, "lora": 3 * attn, "dpo": 4 * attn, "forward": attn}[kind]
    if recompute and kind != "forward":
        weights += 2 * n
        scores += attn
    return weights + scores


def default_mfu(tokens: float) -> float:
    """The MFU assumed for a training run of ``tokens`` (see :data:`MFU_SMALL_RUN`), log-interpolated.

    Cost still grows with tokens: d(log cost)/d(log D) = 1 - log(0.40/0.30)/log(100) ≈ 0.94 > 0.
    """
    if tokens <= SMALL_RUN_TOKENS:
        return MFU_SMALL_RUN
    if tokens >= LARGE_RUN_TOKENS:
        return MFU_LARGE_RUN
    frac = math.log(tokens / SMALL_RUN_TOKENS) / math.log(LARGE_RUN_TOKENS / SMALL_RUN_TOKENS)
    return MFU_SMALL_RUN + frac * (MFU_LARGE_RUN - MFU_SMALL_RUN)


def compute_seconds(flops: float, hardware: Hardware, gpus: int, mfu: float) -> float:
    """Wall seconds for ``flops`` on ``gpus`` devices at ``mfu`` (linear scaling across devices assumed)."""
    return flops / (max(1, gpus) * hardware.peak_tflops * 1e12 * mfu)


def decode_seconds(shape: ModelShape, hardware: Hardware, tokens: float, batch: int, mfu: float = PREFILL_MFU) -> float:
    """Device-seconds to generate ``tokens`` with ``batch`` sequences decoded together.

    Each decode step reads all bf16 weights once (memory-bound: 2·N bytes / bandwidth) and does
    2·N FLOPs per sequence; a step takes whichever is slower. Unknown bandwidth: compute at 5 % MFU.
    """
    steps = tokens / max(1, batch)
    compute = 2 * shape.params * batch / (hardware.peak_tflops * 1e12 * mfu)
    if hardware.memory_bandwidth_gbps > 0:
        memory = BF16_BYTES * shape.params / (hardware.memory_bandwidth_gbps * GB)
    else:
        memory = 2 * shape.params * batch / (hardware.peak_tflops * 1e12 * 0.05)
    return steps * max(compute, memory)


def usd(gpu_hours: float, hardware: Hardware) -> tuple[float, float]:
    """Low and high dollars for ``gpu_hours`` from the catalogue's price range."""
    return gpu_hours * hardware.usd_per_hour_low, gpu_hours * hardware.usd_per_hour_high


# -- memory ------------------------------------------------------------------------------------------


def activation_bytes(shape: ModelShape, seq_len: int, micro_batch: int, *, recompute: bool = False,
                     flash_attention: bool = True, value_bytes: int = BF16_BYTES) -> float:
    """Activation memory kept for the backward pass (Korthikanti et al. 2022, 16-bit activations).

    Per layer s·b·h·(34 + 5·a·s/h) bytes; fused/flash attention (PyTorch SDPA, the default in
    transformers) does not store the a·s² score matrices, leaving 34·s·b·h. Full recompute keeps
    only each layer's input (2·s·b·h) plus one layer being recomputed. The loss adds the logits,
    s·b·V·10 bytes (:data:`LOGIT_BYTES`), which dominate for small models with big vocabularies.
    ``value_bytes`` 4 (an fp32 run) doubles the 16-bit layer figures.
    """
    s, b, h = seq_len, micro_batch, shape.hidden
    per_layer = 34.0 * s * b * h
    if not flash_attention:
        per_layer += 5.0 * shape.heads * s * s * b
    kept = 2.0 * s * b * h * shape.layers + per_layer if recompute else per_layer * shape.layers
    return kept * value_bytes / BF16_BYTES + s * b * shape.vocab * LOGIT_BYTES


def kv_cache_bytes(shape: ModelShape, seq_len: int, batch: int) -> float:
    """bf16 keys and values: 2 (K, V) · L · kv_dim · s · b · 2 bytes (kv_dim < h with grouped-query attention)."""
    return 2.0 * shape.layers * shape.kv_dim * seq_len * batch * BF16_BYTES


def lora_trainable_params(shape: ModelShape, rank: int) -> float:
    """Adapter parameters with rank ``rank`` on every linear layer: r·(in + out) per adapted matrix."""
    attn = rank * (shape.hidden + shape.hidden) * 2 + rank * (shape.hidden + shape.kv_dim) * 2
    mlp = rank * (shape.hidden + shape.intermediate) * 3
    return float(shape.layers * (attn + mlp))


@dataclass(frozen=True)
class TrainSetup:
    """The training settings memory and time depend on."""

    seq_len: int = field(default=2048, metadata={"help": "tokens per training sequence"})
    micro_batch: int = field(default=1, metadata={"help": "sequences per device per step"})
    gpus: int = field(default=1, metadata={"help": "devices training together (data parallel)"})
    recompute: bool = field(default=False, metadata={"help": "activation (gradient) checkpointing"})
    flash_attention: bool = field(default=True, metadata={"help": "fused attention that stores no score matrix"})
    precision: str = field(default="bf16", metadata={
        "help": "bf16 (16-bit compute over fp32 master weights) or fp32 (CPUs without AMX/AVX512-BF16 train in "
                "fp32: a frozen base and the activations take 4 bytes per value instead of 2)"})
    lora_rank: int = field(default=16, metadata={"help": "LoRA rank on every linear layer"})
    quantized_base: bool = field(default=False, metadata={"help": "QLoRA: 4-bit NF4 frozen base"})
    shard_states: bool = field(default=True, metadata={"help": "ZeRO-3 / FSDP: shard weights, grads and "
                                                                "optimizer states across GPUs when gpus > 1"})
    strategy: str | None = field(default=None, metadata={
        "help": "data-parallel strategy when gpus > 1 (tunewise.plugins.parallelism): ddp, fsdp, deepspeed_zero2 "
                "or deepspeed_zero3; None: the default a run uses (fsdp for full training, ddp for LoRA), or "
                "ddp when shard_states is false"})


def data_parallel_strategy(setup: TrainSetup, kind: TrainKind) -> str:
    """The strategy a quote assumes for ``setup``: its own, else the run's default for ``kind``."""
    if setup.strategy:
        return setup.strategy
    return default_strategy(kind) if setup.shard_states else "ddp"


def runtime_overhead_gb(hardware: Hardware) -> float:
    return CPU_RUNTIME_GB if hardware.kind == "cpu" else GPU_CONTEXT_GB


def training_memory(shape: ModelShape, setup: TrainSetup, hardware: Hardware, kind: TrainKind = "full",
                    extra_frozen_params: float = 0.0) -> dict[str, float]:
    """Peak memory per device in GB, by part: weights, gradients, optimizer, activations, overhead.

    - ``full``: bf16 weights 2 + grads 2 + fp32 master and Adam 12 = 16 B/param; ZeRO-3/FSDP divides
      them by the GPU count (``shard_states``); activations are per device and not sharded;
    - ``lora``: frozen base 2 B/param (QLoRA: NF4 on the linear layers, bf16 embeddings) + 16 B per
      adapter parameter; activations as for full training (the backward still runs through every layer);
    - ``dpo``: full training of the policy on chosen + rejected (twice the sequences) + a frozen bf16
      reference model.

    ``extra_frozen_params`` adds frozen bf16 models held at the same time (RLHF reference / reward models).
    """
    share = state_fractions(data_parallel_strategy(setup, kind), setup.gpus)
    sequences = setup.micro_batch * (2 if kind == "dpo" else 1)
    parts: dict[str, float] = {}
    if kind == "lora":
        trainable = lora_trainable_params(shape, setup.lora_rank)
        if setup.quantized_base:
            base = NF4_BYTES * shape.linear_params + BF16_BYTES * shape.embedding_params
        else:
            base = (4 if setup.precision == "fp32" else BF16_BYTES) * shape.params
        parts["weights"] = (base + BF16_BYTES * trainable) * share.weights
        parts["gradients"] = BF16_BYTES * trainable * share.gradients
        parts["optimizer"] = ADAM_STATE_BYTES * trainable * share.optimizer
    else:
        parts["weights"] = BF16_BYTES * shape.params * share.weights
        parts["gradients"] = BF16_BYTES * shape.params * share.gradients
        parts["optimizer"] = ADAM_STATE_BYTES * shape.params * share.optimizer
        if kind == "dpo":
            parts["weights"] += BF16_BYTES * shape.params * share.weights  # the frozen reference model
    if extra_frozen_params:
        parts["weights"] += BF16_BYTES * extra_frozen_params * share.weights
    parts["activations"] = activation_bytes(shape, setup.seq_len, sequences, recompute=setup.recompute,
                                            flash_attention=setup.flash_attention,
                                            value_bytes=4 if setup.precision == "fp32" else BF16_BYTES)
    out = {k: v / GB for k, v in parts.items()}
    out["overhead"] = runtime_overhead_gb(hardware)
    return out


def inference_memory(shape: ModelShape, seq_len: int, batch: int, hardware: Hardware) -> dict[str, float]:
    """Serving memory per device in GB: bf16 weights + KV cache for ``batch`` sequences of ``seq_len``."""
    return {
        "weights": BF16_BYTES * shape.params / GB,
        "kv_cache": kv_cache_bytes(shape, seq_len, batch) / GB,
        "overhead": runtime_overhead_gb(hardware),
    }


def total_gb(parts: Mapping[str, float]) -> float:
    return float(sum(parts.values()))


# -- human time --------------------------------------------------------------------------------------

_FINETUNE_TIME = {"cost": "medium", "data_prep": "1–3 days", "training": "1–7 days",
                  "evaluation": "1–3 days", "expertise": "moderate (NLP basics)"}
HUMAN_TIME: dict[str, dict[str, str]] = {
    "full_finetune": _FINETUNE_TIME,
    "lora": _FINETUNE_TIME,
    "continual_pretraining": {"cost": "high", "data_prep": "1–12 weeks", "training": "4–24 weeks",
                              "evaluation": "2–12 weeks", "expertise": "advanced (NLP + the domain)"},
    "rlhf": {"cost": "very high", "data_prep": "feedback collection, ongoing (months)",
             "training": "continuous", "evaluation": "periodic",
             "expertise": "expert (NLP, reinforcement learning, human-in-the-loop)"},
    "rag": {"cost": "low up front, then per query", "data_prep": "hours–days (collect, clean, chunk documents)",
            "training": "none (build an index)", "evaluation": "hours–days (retrieval and answer checks)",
            "expertise": "basic (retrieval, prompt design)"},
    "in_context": {"cost": "lowest up front, then per query", "data_prep": "hours (pick a few examples)",
                   "training": "none", "evaluation": "hours", "expertise": "none–basic (prompt design)"},
}
"""Calendar time and expertise per method, from the source articles' comparison table (ESTIMATION.md)."""


# -- quotes ------------------------------------------------------------------------------------------


def _fits(parts: Mapping[str, float], hardware: Hardware, offset: float) -> bool:
    return total_gb(parts) + offset <= hardware.memory_gb


def _calibrated(hardware: Hardware, method: str) -> Mapping[str, Any]:
    """The probe calibration of ``method`` on ``hardware``, its figures checked (the store is a file on disk)."""
    cal = hardware.calibration.get(method, {}) if hardware.calibration else {}
    for key in ("mfu", "peak_tflops"):
        if cal.get(key) is not None:
            _finite(f"calibration {hardware.name}/{method} {key} (probe again to replace it)", cal[key])
    if cal.get("memory_offset_gb") is not None:
        offset = cal["memory_offset_gb"]
        if isinstance(offset, bool) or not isinstance(offset, (int, float)) or not math.isfinite(offset) \
                or abs(offset) > 1e6:
            raise QuoteInputError(f"calibration {hardware.name}/{method} memory_offset_gb must be a finite number "
                                  f"of GB, got {offset!r} (probe again to replace it)")
    return cal


def memory_fixes(shape: ModelShape, setup: TrainSetup, hardware: Hardware, kind: TrainKind,
                 offset: float = 0.0, extra_frozen_params: float = 0.0) -> list[str]:
    """What would make a training setup fit ``hardware``, each with the memory it would need."""

    def need(s: TrainSetup, k: TrainKind = kind) -> float:
        return total_gb(training_memory(shape, s, hardware, k, extra_frozen_params)) + offset

    limit = hardware.memory_gb
    fixes: list[str] = []
    if not setup.recompute:
        gb = need(replace(setup, recompute=True))
        fixes.append(f"activation recompute: {gb:.1f} GB per device" + ("" if gb <= limit else " (still too much)"))
    if setup.micro_batch > 1:
        gb = need(replace(setup, micro_batch=1))
        fixes.append(f"micro-batch 1 with gradient accumulation: {gb:.1f} GB" + ("" if gb <= limit else " (still too much)"))
    if kind in ("full", "dpo"):
        gb = need(replace(setup, recompute=True), "lora")
        fixes.append(f"LoRA instead of full training: {gb:.1f} GB" + ("" if gb <= limit else " (still too much)"))
    if not (kind == "lora" and setup.quantized_base) and kind != "forward":
        gb = need(replace(setup, recompute=True, quantized_base=True), "lora")
        fixes.append(f"QLoRA (4-bit base): {gb:.1f} GB" + ("" if gb <= limit else " (still too much)"))
    if kind != "lora" and hardware.kind == "gpu":
        for gpus in (2, 4, 8, 16, 32, 64):
            if gpus <= setup.gpus:
                continue
            gb = need(replace(setup, gpus=gpus, shard_states=True, strategy="fsdp", recompute=True))
            if gb <= limit:
                fixes.append(f"{gpus} GPUs with ZeRO-3/FSDP sharding and recompute: {gb:.1f} GB per GPU")
                break
    if setup.seq_len > 512:
        gb = need(replace(setup, seq_len=setup.seq_len // 2, recompute=True))
        fixes.append(f"sequences of {setup.seq_len // 2} tokens with recompute: {gb:.1f} GB"
                     + ("" if gb <= limit else " (still too much)"))
    return fixes


def training_quote(
    method: str,
    shape: ModelShape,
    tokens: float,
    hardware: Hardware,
    setup: TrainSetup | None = None,
    *,
    kind: TrainKind = "full",
    auto_fit: bool = True,
    mfu: float | None = None,
    time_factor: float = 1.0,
    extra_flops_per_token: float = 0.0,
    extra_frozen_params: float = 0.0,
    assumptions: Mapping[str, Any] | None = None,
) -> Quote:
    """A full quote for training ``shape`` on ``tokens`` (all epochs) with ``hardware``.

    With ``auto_fit`` the setup is adjusted the way a practitioner would when memory runs short:
    activation recompute first, then (for ``lora``) a 4-bit base; the assumptions say which was
    needed. A calibration attached to ``hardware`` for ``method`` replaces the default MFU and adds
    the measured runtime overhead to the memory figure.
    """
    setup = setup or TrainSetup()
    tokens = _finite("tokens", tokens)
    seq_len = min(setup.seq_len, shape.context) if shape.context else setup.seq_len
    setup = replace(setup, seq_len=seq_len)
    cal = _calibrated(hardware, method)
    offset = float(cal.get("memory_offset_gb", 0.0)) if cal else 0.0
    if cal and cal.get("precision"):
        # The probe saw which precision runs use here (fp32 on a CPU without fast bf16); predict that one, so
        # the measured offset is runtime overhead only and carries over to other model sizes.
        setup = replace(setup, precision=str(cal["precision"]))
    notes: dict[str, Any] = {}
    if auto_fit:
        parts = training_memory(shape, setup, hardware, kind, extra_frozen_params)
        if not _fits(parts, hardware, offset) and not setup.recompute:
            setup = replace(setup, recompute=True)
            notes["recompute_note"] = "turned on: needed to fit in memory"
        parts = training_memory(shape, setup, hardware, kind, extra_frozen_params)
        if kind == "lora" and not _fits(parts, hardware, offset) and not setup.quantized_base:
            setup = replace(setup, quantized_base=True)
            notes["variant"] = "QLoRA (4-bit base, needed to fit in memory)"
    parts = training_memory(shape, setup, hardware, kind, extra_frozen_params)
    if offset:
        parts["overhead"] += offset
    fits = total_gb(parts) <= hardware.memory_gb
    per_token = flops_per_token(shape, setup.seq_len, kind, setup.recompute) + extra_flops_per_token
    flops = per_token * tokens
    if cal and cal.get("mfu"):
        used_mfu = float(cal["mfu"])
        probed_peak = float(cal.get("peak_tflops") or 0.0)
        if probed_peak > 0 and hardware.peak_tflops > 0:
            # The MFU is relative to the peak its own probe measured; a later probe (another method)
            # re-measures and replaces a CPU's peak, so carry the measured throughput, not the ratio
            # (bench/estimate_vs_measured.py: LoRA quotes were 22 % slow after a full-finetune probe).
            used_mfu *= probed_peak / hardware.peak_tflops
        notes["calibration"] = (f"probe of {cal.get('model', 'a model')} on {hardware.name} "
                                f"{cal.get('measured_at', '')}: measured MFU {used_mfu:.3f}, "
                                f"memory overhead {offset:+.2f} GB".replace("  ", " "))
    else:
        used_mfu = mfu if mfu is not None else default_mfu(tokens)
    factor = time_factor * (QLORA_TIME_FACTOR if (kind == "lora" and setup.quantized_base) else 1.0)
    # CPU processes (tunewise run --processes N without GPUs) split one machine's cores, whose peak the
    # probe measured with all of them, and its RAM: no speed-up, N copies of the per-process memory.
    shared_host = hardware.kind == "cpu" and setup.gpus > 1
    if shared_host:
        fits = total_gb(parts) * setup.gpus <= hardware.memory_gb
    wall_s = compute_seconds(flops, hardware, 1 if shared_host else setup.gpus, used_mfu) * factor
    gpu_hours = wall_s * setup.gpus / 3600
    low, high = usd(gpu_hours, hardware)
    _check_figures(method, flops=flops, hours=wall_s, dollars=high, memory=total_gb(parts))
    fixes = () if fits else tuple(memory_fixes(shape, setup, hardware, kind, offset, extra_frozen_params))
    all_assumptions: dict[str, Any] = {
        "mfu": float(f"{used_mfu:.4g}"),
        "mfu_source": "probe calibration" if cal and cal.get("mfu") else "default for a run of this size",
        "dtype": "bf16 mixed precision, AdamW" + (", 4-bit NF4 base" if setup.quantized_base else ""),
        "seq_len": setup.seq_len,
        "micro_batch": setup.micro_batch,
        "gpus": setup.gpus,
        "recompute": setup.recompute,
        "tokens": int(tokens),
        "flops_per_token": per_token,
        "model_params": int(shape.params),
        "model_shape": shape.source,
        "hardware": f"{hardware.name}: {hardware.peak_tflops:g} TFLOP/s bf16, {hardware.memory_gb:g} GB, "
                    f"${hardware.usd_per_hour_low:g}–{hardware.usd_per_hour_high:g}/h",
        "scaling": ("CPU processes share this machine's cores and RAM: no speed-up, memory × processes"
                    if shared_host else "linear across devices" if setup.gpus > 1 else "one device"),
        **notes,
    }
    if setup.gpus > 1:
        strategy = data_parallel_strategy(setup, kind)
        all_assumptions["strategy"] = strategy
        if strategy != "ddp":
            split = "gradients and optimizer states" if strategy == "deepspeed_zero2" else \
                "weights, gradients and optimizer states"
            all_assumptions["sharding"] = f"{strategy}: {split} split across GPUs"
    if kind == "lora":
        all_assumptions["lora_rank"] = setup.lora_rank
        all_assumptions["trainable_params"] = int(lora_trainable_params(shape, setup.lora_rank))
    all_assumptions.update(assumptions or {})
    return Quote(
        method=method, flops=flops, gpu_hours=gpu_hours, wall_hours=wall_s / 3600, usd_low=low, usd_high=high,
        peak_memory_gb=round(total_gb(parts), 3), fits=fits,
        memory_breakdown_gb={k: round(v, 3) for k, v in parts.items()}, fixes=fixes,
        human_time=dict(HUMAN_TIME.get(method, {})), assumptions=all_assumptions,
    )


def stage_summary(quote: Quote) -> dict[str, Any]:
    """The headline figures of a quote, for ``Quote.stages`` and ``Quote.alternatives``."""
    return {"flops": quote.flops, "gpu_hours": quote.gpu_hours, "wall_hours": quote.wall_hours,
            "usd_low": quote.usd_low, "usd_high": quote.usd_high, "peak_memory_gb": quote.peak_memory_gb,
            "fits": quote.fits}


# -- inference ---------------------------------------------------------------------------------------


def query_device_seconds(shape: ModelShape, hardware: Hardware, prompt_tokens: float, output_tokens: float,
                         batch: int = SERVING_BATCH) -> float:
    """Device-seconds one query costs on a server decoding ``batch`` queries together.

    Prompt processing is compute-bound (2·N FLOPs per token at :data:`PREFILL_MFU`); each output
    token shares one weight read with the other sequences in the batch (:func:`decode_seconds`).
    """
    prefill = 2 * shape.params * prompt_tokens / (hardware.peak_tflops * 1e12 * PREFILL_MFU)
    return prefill + decode_seconds(shape, hardware, output_tokens, batch)


def query_usd(shape: ModelShape, hardware: Hardware, prompt_tokens: float, output_tokens: float) -> tuple[float, float]:
    """Low and high dollars per query on rented ``hardware`` (0 on your own CPU)."""
    hours = query_device_seconds(shape, hardware, prompt_tokens, output_tokens) / 3600
    return usd(hours, hardware)


def breakeven_days(upfront_usd: float, saving_per_query_usd: float, queries_per_day: float) -> float:
    """Days until a one-off cost is repaid by a per-query saving (inf when it never is)."""
    daily = saving_per_query_usd * queries_per_day
    if daily <= 0:
        return math.inf
    return max(0.0, upfront_usd) / daily


def inference_quote(
    method: str,
    shape: ModelShape,
    hardware: Hardware,
    *,
    extra_prompt_tokens: float,
    queries_per_day: float,
    base_prompt_tokens: float = 300,
    output_tokens: float = 300,
    setup_flops: float = 0.0,
    setup_mfu: float = PREFILL_MFU,
    finetune_usd: tuple[float, float] | None = None,
    assumptions: Mapping[str, Any] | None = None,
) -> Quote:
    """A quote for a method that adds ``extra_prompt_tokens`` to every query instead of training.

    Up-front cost is ``setup_flops`` (e.g. embedding documents for an index) on one device. Per query:
    the dollars of serving the longer prompt (:func:`query_usd`) and the extra over a plain prompt.
    With ``finetune_usd`` (a fine-tune's low/high cost) the break-even says after how many days at
    ``queries_per_day`` the extra per-query cost exceeds training once (absent: it never does).
    """
    extra_prompt_tokens = _finite("extra_prompt_tokens", extra_prompt_tokens)
    queries_per_day = _finite("queries_per_day", queries_per_day)
    setup_flops = _finite("setup_flops", setup_flops)
    setup_hours = compute_seconds(setup_flops, hardware, 1, setup_mfu) / 3600
    setup_low, setup_high = usd(setup_hours, hardware)
    with_low, with_high = query_usd(shape, hardware, base_prompt_tokens + extra_prompt_tokens, output_tokens)
    plain_low, plain_high = query_usd(shape, hardware, base_prompt_tokens, output_tokens)
    extra_low, extra_high = with_low - plain_low, with_high - plain_high
    extra_latency = 2 * shape.params * extra_prompt_tokens / (hardware.peak_tflops * 1e12 * PREFILL_MFU)
    per_query: dict[str, float] = {
        "extra_prompt_tokens": float(extra_prompt_tokens),
        "extra_latency_s": extra_latency,
        "usd_per_query_low": with_low,
        "usd_per_query_high": with_high,
        "extra_usd_per_query_low": extra_low,
        "extra_usd_per_query_high": extra_high,
        "extra_usd_per_day_low": extra_low * queries_per_day,
        "extra_usd_per_day_high": extra_high * queries_per_day,
        "setup_usd_low": setup_low,
        "setup_usd_high": setup_high,
    }
    notes: dict[str, Any] = {}
    if finetune_usd is not None:
        # Low with low and high with high: both scale with the same $/GPU-hour.
        for tag, ft, extra in (("low", finetune_usd[0], extra_low), ("high", finetune_usd[1], extra_high)):
            days = breakeven_days(ft, extra, queries_per_day)
            if math.isfinite(days):
                per_query[f"breakeven_days_{tag}"] = days
        if "breakeven_days_low" not in per_query:
            notes["breakeven"] = "never: the longer prompt costs nothing extra here (own hardware) or no queries"
        else:
            notes["breakeven"] = ("days of queries after which training once (LoRA) would have cost less "
                                  "than the longer prompts")
    context = base_prompt_tokens + extra_prompt_tokens + output_tokens
    _check_figures(method, setup_flops=setup_flops, dollars_per_query=with_high,
                   dollars_per_day=per_query["extra_usd_per_day_high"], context=context)
    parts = inference_memory(shape, int(context), SERVING_BATCH, hardware)
    fits = total_gb(parts) <= hardware.memory_gb
    all_assumptions: dict[str, Any] = {
        "prefill_mfu": PREFILL_MFU,
        "serving_batch": SERVING_BATCH,
        "dtype": "bf16 weights and KV cache",
        "base_prompt_tokens": base_prompt_tokens,
        "output_tokens": output_tokens,
        "queries_per_day": queries_per_day,
        "context_tokens": int(context),
        "model_params": int(shape.params),
        "model_shape": shape.source,
        "hardware": f"{hardware.name}: {hardware.peak_tflops:g} TFLOP/s bf16, {hardware.memory_gb:g} GB, "
                    f"{hardware.memory_bandwidth_gbps:g} GB/s, ${hardware.usd_per_hour_low:g}–"
                    f"{hardware.usd_per_hour_high:g}/h",
        **notes,
        **(assumptions or {}),
    }
    fixes: tuple[str, ...] = ()
    if not fits:
        weights = parts["weights"]
        fixes = (f"serve with a 4-bit quantised model: ≈{weights * NF4_BYTES / BF16_BYTES + parts['kv_cache'] + parts['overhead']:.1f} GB",
                 "serve on more GPUs with tensor parallelism", "a smaller model")
    if context > shape.context:
        fixes = (*fixes, f"the prompt ({int(context):,} tokens) exceeds the model's context of {shape.context:,}: "
                         "fewer examples or passages")
        fits = False
    return Quote(
        method=method, flops=setup_flops, gpu_hours=setup_hours, wall_hours=setup_hours, usd_low=setup_low,
        usd_high=setup_high, peak_memory_gb=round(total_gb(parts), 3), fits=fits,
        memory_breakdown_gb={k: round(v, 3) for k, v in parts.items()}, fixes=fixes,
        human_time=dict(HUMAN_TIME.get(method, {})), per_query=per_query, assumptions=all_assumptions,
    )
