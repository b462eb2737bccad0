"""Plans as configs for LLaMA-Factory and Axolotl, for teams that run training on their own stack (no torch).

``tunewise export PLAN --to llamafactory|axolotl`` translates a plan of a built-in training method
into the other tool's YAML: the same method (full fine-tuning, LoRA / QLoRA, continual
pretraining; DPO, or the reward-model stage of RLHF), the same model, data and hyperparameters.
Settings the other tool has no equivalent for are listed in the file's header comment rather than
silently dropped.

The key names follow the tools' own argument classes (LLaMA-Factory's ``hparams`` dataclasses plus
Hugging Face ``Seq2SeqTrainingArguments``; Axolotl's pydantic ``AxolotlInputConfig`` and dataset
models); ``tests/export_schemas.json`` records them with the source commit, and the tests check
every exported key and value against it.

Data: both tools read our files in place where they can. LLaMA-Factory finds data through a
``dataset_info.json`` in ``dataset_dir``: one is written (or merged into) beside the exported config,
naming each data file by its absolute path. Rows a tool cannot read as they are (ranked
``responses`` lists, Markdown files, Axolotl's reward-model pairs) are written once more as JSON
lines in ``<config>_data/`` beside the config.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewise.plugins.errors import TunewiseError
from tunewise.plugins.types import Plan

TOOLS = ("llamafactory", "axolotl")
TOOL_NAMES = {"llamafactory": "LLaMA-Factory", "axolotl": "Axolotl"}
RUN_COMMANDS = {"llamafactory": "llamafactory-cli train {config}", "axolotl": "axolotl train {config}"}
EXPORTABLE = ("full_finetune", "lora", "continual_pretraining", "rlhf")

EMBEDDED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""The hub id of the embedded model, for when its converted copy is not on this machine."""
EMBEDDED_LLAMAFACTORY_TEMPLATE = "smollm2"
"""LLaMA-Factory's registered template for SmolLM2 (src/llamafactory/data/template.py)."""

SUPERVISED = ("messages", "instruction", "prompt_completion")
RAW_TEXT = ("text", "documents")
PREFERENCE = ("preference",)

EXPORTED_TRAINING = frozenset({
    "epochs", "max_steps", "batch_size", "grad_accum", "seq_len", "packing", "learning_rate", "lr_schedule",
    "warmup_ratio", "weight_decay", "max_grad_norm", "precision", "gradient_checkpointing", "seed",
    "eval_fraction", "eval_steps", "save_steps", "keep_checkpoints", "logging_steps", "report_to",
})
"""``training:`` keys with an equivalent in both tools; the others are named in the header when set."""
HF_SCHEDULERS = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}
"""tunewise schedule -> Hugging Face ``lr_scheduler_type`` (tunewise's constant schedule warms up first)."""


class ExportError(TunewiseError):
    """A plan that cannot be expressed in the other tool's config; the message says why and what to do."""


@dataclass(frozen=True)
class Export:
    """An exported config: the YAML mapping, extra files to write beside it, and notes for its header."""

    tool: str
    config: dict[str, Any]
    notes: tuple[str, ...] = ()
    dataset_info: dict[str, Any] = field(default_factory=dict)
    """LLaMA-Factory dataset descriptions to merge into ``dataset_info.json`` beside the config."""
    converted: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """File name (in ``<config stem>_data/``) -> rows to write as JSON lines."""


@dataclass(frozen=True)
class _Data:
    """One data source of the plan as the exporter needs it."""

    source: str
    shape: str
    files: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class _Task:
    """What the tool should train, derived from the plan's method and config."""

    kind: str
    """``sft``, ``pt``, ``dpo`` or ``rm``."""
    adapter: str | None
    """None (full weights), ``lora`` or ``qlora``."""
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ("all-linear",)
    train_on_prompt: bool = False
    beta: float | None = None
    max_length: int | None = None
    learning_rate: float = 2e-5
    epochs: float | None = None
    max_steps: int | None = None
    batch_size: int | None = None


# -- reading the plan ------------------------------------------------------------------------------


def _training(plan: Plan) -> Any:
    """The plan's training settings with the method's defaults filled in (its ``training_settings`` class)."""
    from tunewise.plugins.manager import get_host

    cls = get_host().methods.get(plan.method)
    config_class = getattr(cls, "config_class", None)
    settings_class = getattr(config_class, "training_settings", None)
    if settings_class is None:
        raise ExportError(f"method {plan.method!r} has no training settings to export")
    return settings_class(**dict(plan.training))


def _config(plan: Plan) -> Any:
    from tunewise.plugins.manager import get_host

    config_class = getattr(get_host().methods.get(plan.method), "config_class", None)
    return config_class(**dict(plan.config)) if config_class else None


def _unexported_training(plan: Plan, notes: list[str]) -> None:
    left = sorted(k for k in plan.training if k not in EXPORTED_TRAINING)
    if left:
        notes.append(f"not exported (tunewise-only): training.{', training.'.join(left)}")


def _task(plan: Plan, training: Any, notes: list[str]) -> _Task:
    """The training task the plan describes, with tunewise's default learning rates."""
    import importlib

    config = _config(plan)
    lr = training.learning_rate
    if plan.method in ("full_finetune", "continual_pretraining", "lora"):
        default_lr = importlib.import_module(f"tunewise.methods.{plan.method}.run").DEFAULT_LEARNING_RATE
        kind = "pt" if plan.method == "continual_pretraining" else "sft"
        if kind == "pt" and not config.cross_document_attention:
            notes.append("config.cross_document_attention false: LLaMA-Factory's pre-training concatenates "
                         "documents into cutoff_len blocks where later ones attend to earlier ones; Axolotl's "
                         "sample packing keeps them apart")
        if plan.method != "lora":
            if plan.method == "full_finetune" and config.loss_on == "all":
                return _Task(kind, None, train_on_prompt=True, learning_rate=lr or default_lr)
            return _Task(kind, None, learning_rate=lr or default_lr)
        if config.bias != "none":
            notes.append(f"config.bias {config.bias!r} is not exported: adapters train without biases")
        if config.merge:
            notes.append("config.merge (save base + adapter merged) is not exported: merge after training "
                         "with the tool's export command")
        return _Task(kind, "qlora" if config.quantization == "4bit" else "lora", lora_rank=config.r,
                     lora_alpha=config.alpha, lora_dropout=config.dropout,
                     lora_targets=tuple(config.target_modules), train_on_prompt=config.loss_on == "all",
                     learning_rate=lr or default_lr)
    if plan.method == "rlhf":
        from tunewise.methods.rlhf.config import DEFAULT_BETA, DEFAULT_POLICY_LR

        if config.sft:
            notes.append("config.sft: the supervised stage before preference training is not exported; export a "
                         "lora or full_finetune plan on the chosen answers for it")
        if config.algorithm == "dpo":
            return _Task("dpo", "lora" if config.lora else None, lora_rank=config.lora_r,
                         lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                         beta=config.beta if config.beta is not None else DEFAULT_BETA["dpo"],
                         max_length=config.max_length,
                         learning_rate=lr or DEFAULT_POLICY_LR[("dpo", bool(config.lora))])
        from tunewise.methods.rlhf import reward_model

        notes.append(f"algorithm {config.algorithm}: exported is the reward-model stage (pairwise, Bradley-Terry); "
                     f"the {config.algorithm.upper()} policy stage against it has no config equivalent here "
                     "(DPO trains on the same pairs without a reward model: set config.algorithm: dpo)")
        if config.reward_num_layers or config.reward_top_layers:
            notes.append("config.reward_num_layers / reward_top_layers (a truncated, partly frozen reward "
                         "model) are not exported: the whole model trains")
        if config.reward_model_path:
            raise ExportError(f"{plan.source or 'plan'}: config.reward_model_path is set, so the plan trains no "
                              "reward model and its policy stage has no config equivalent to export")
        return _Task("rm", "lora" if config.reward_lora else None, lora_rank=config.lora_r,
                     lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                     max_length=config.max_length,
                     learning_rate=config.reward_learning_rate
                     or (reward_model.DEFAULT_LORA_LR if config.reward_lora else reward_model.DEFAULT_LR),
                     epochs=float(config.reward_epochs), max_steps=config.reward_max_steps,
                     batch_size=config.reward_batch_size)
    raise ExportError(f"method {plan.method!r} cannot be exported: only training methods with an equivalent in "
                      f"LLaMA-Factory and Axolotl export ({', '.join(EXPORTABLE)})")


def _read_data(plan: Plan, task: _Task) -> list[_Data]:
    from tunewise.plugins.data import load_dataset

    expect = {"sft": SUPERVISED, "pt": RAW_TEXT, "dpo": PREFERENCE, "rm": PREFERENCE}[task.kind]
    out = []
    for source in plan.data:
        loaded = load_dataset(source, expect=expect)
        out.append(_Data(source, loaded.shape, loaded.files, tuple(r.data for r in loaded.rows)))
    if not out:
        raise ExportError(f"{plan.source or 'plan'}: no data to export")
    return out


def _model_path(plan: Plan) -> tuple[str, bool]:
    """(model path or hub id, whether it is the embedded model)."""
    from tunewise.plugins.errors import ModelNotFoundError
    from tunewise.plugins.models import is_embedded, resolve_model

    embedded = is_embedded(plan.model)
    try:
        return str(resolve_model(plan.model, prepare=False).path), embedded
    except ModelNotFoundError:
        return (EMBEDDED_HUB_ID if embedded else str(plan.model)), embedded


def _steps_estimate(rows: int, training: Any, batch_size: int, epochs: float) -> int:
    """Optimizer steps of an epoch-based run without packing: LLaMA-Factory needs warmup in steps."""
    train_rows = max(1, round(rows * (1 - training.eval_fraction)))
    return max(1, math.ceil(train_rows / (batch_size * training.grad_accum)) * math.ceil(epochs))


def _preference_rows(data: _Data) -> list[dict[str, Any]]:
    from tunewise.plugins.data import preference_pairs

    return [pair for row in data.rows for pair in preference_pairs(row)]


DS_TYPES = {".arrow": "arrow", ".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet",
            ".txt": "text"}
"""File types both tools read (LLaMA-Factory FILEEXT2TYPE, Axolotl by extension) -> datasets builder."""


@dataclass(frozen=True)
class _Placed:
    """Where a tool reads one data source: a file, a folder of same-type files, or rows to write out."""

    path: str
    shape: str
    ds_type: str | None = None
    data_files: tuple[str, ...] = ()
    rows: tuple[dict[str, Any], ...] = ()
    """Set when the rows must be written out first (``path`` is then the file name to write)."""
    hf_saved: bool = False


def _place(data: _Data, name: str, *, tool: str, force_rows: bool = False) -> _Placed:
    """How ``tool`` can read ``data``: as it is when it can, else as rows converted to JSON lines."""
    source = Path(data.source)
    ranked = data.shape == "preference" and any("responses" in row for row in data.rows)
    suffixes = {Path(f).suffix.lower() for f in data.files}
    readable = not ranked and not force_rows and len(suffixes) == 1 and next(iter(suffixes)) in DS_TYPES
    shape = "text" if data.shape == "documents" and suffixes == {".txt"} else data.shape
    if readable and source.is_file():
        return _Placed(str(source.resolve()), shape)
    if readable and source.is_dir():
        suffix = next(iter(suffixes))
        entries = [p for p in source.iterdir() if not p.name.startswith(".")]
        saved_by_datasets = (source / "state.json").is_file() or (source / "dataset_dict.json").is_file()
        if saved_by_datasets:
            if tool == "axolotl":  # Axolotl reads it with load_from_disk; LLaMA-Factory cannot
                return _Placed(str(source.resolve()), shape, hf_saved=True)
        elif all(p.is_file() and p.suffix.lower() == suffix for p in entries):
            files = tuple(str(Path(f).resolve()) for f in data.files)
            return _Placed(str(source.resolve()), shape, DS_TYPES[suffix], files)
    rows = _rows_for(data)
    return _Placed(f"{name}.jsonl", "text" if data.shape == "documents" else data.shape, rows=tuple(rows))


def _unique(name: str, taken: set[str]) -> str:
    stem, n = name, 2
    while name in taken:
        name, n = f"{stem}_{n}", n + 1
    taken.add(name)
    return name


def _dataset_name(path: str) -> str:
    stem = "".join(c if c.isalnum() else "_" for c in Path(path).stem.lower()).strip("_")
    return f"tunewise_{stem or 'data'}"


def _rows_for(data: _Data) -> list[dict[str, Any]]:
    """Rows in a shape both tools read: preference pairs as prompt/chosen/rejected, documents as text."""
    if data.shape == "preference":
        return _preference_rows(data)
    if data.shape == "documents":
        return [{"text": str(r.get("content", r.get("text", "")))} for r in data.rows]
    return [dict(r) for r in data.rows]


# -- LLaMA-Factory ----------------------------------------------------------------------------------


def _llamafactory_description(shape: str, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A ``dataset_info.json`` entry (without ``file_name``) for rows of ``shape`` (data/README.md)."""
    if shape == "messages":
        return {"formatting": "sharegpt", "columns": {"messages": "messages"},
                "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                         "assistant_tag": "assistant", "system_tag": "system"}}
    if shape == "instruction":
        return {"columns": {"prompt": "instruction", "query": "input", "response": "output"}}
    if shape == "prompt_completion":
        return {"columns": {"prompt": "prompt", "response": "completion"}}
    if shape == "preference":
        return {"ranking": True, "columns": {"prompt": "prompt", "chosen": "chosen", "rejected": "rejected"}}
    column = "content" if shape == "documents" and rows and "content" in rows[0] else "text"
    return {"columns": {"prompt": column}}


def to_llamafactory(plan: Plan) -> Export:
    notes: list[str] = []
    training = _training(plan)
    task = _task(plan, training, notes)
    _unexported_training(plan, notes)
    data = _read_data(plan, task)
    model, embedded = _model_path(plan)
    cfg: dict[str, Any] = {"model_name_or_path": model}
    if task.adapter == "qlora":
        cfg["quantization_bit"] = 4
    cfg.update({"stage": task.kind, "do_train": True,
                "finetuning_type": "lora" if task.adapter else "full"})
    if task.adapter:
        targets = ("all",) if task.lora_targets == ("all-linear",) else task.lora_targets
        cfg.update({"lora_rank": task.lora_rank, "lora_alpha": task.lora_alpha, "lora_dropout": task.lora_dropout,
                    "lora_target": ",".join(targets)})
    if task.kind == "dpo":
        cfg.update({"pref_beta": task.beta, "pref_loss": "sigmoid"})
    # data
    info: dict[str, Any] = {}
    converted: dict[str, list[dict[str, Any]]] = {}
    names: list[str] = []
    taken: set[str] = set()
    total_rows = 0
    for d in data:
        total_rows += len(d.rows)
        name = _unique(_dataset_name(d.source), taken)
        placed = _place(d, name, tool="llamafactory")
        if placed.rows:
            converted[placed.path] = list(placed.rows)
        entry = {"file_name": placed.path, **_llamafactory_description(placed.shape, placed.rows or d.rows)}
        if placed.rows:
            entry["_converted_from"] = d.source
        elif placed.ds_type == "text" or placed.path.endswith(".txt"):
            notes.append(f"{d.source}: .txt files are read line by line (one row per line)")
        info[name] = entry
        names.append(name)
    cfg["dataset"] = ",".join(names)
    if task.kind != "pt":
        if embedded:
            cfg["template"] = EMBEDDED_LLAMAFACTORY_TEMPLATE
        else:
            notes.append("template: not set, so LLaMA-Factory uses the tokenizer's own chat template "
                         "(set one of its registered templates to override)")
    cfg["cutoff_len"] = task.max_length or training.seq_len
    if task.train_on_prompt:
        cfg["train_on_prompt"] = True
    if task.kind == "sft" and training.packing:
        cfg["neat_packing"] = True  # packed, and examples do not attend to each other, as in tunewise
    if training.eval_fraction:
        cfg["val_size"] = training.eval_fraction
        if training.eval_steps:
            cfg.update({"eval_strategy": "steps", "eval_steps": training.eval_steps})
    # output and training
    batch = task.batch_size or training.batch_size
    epochs = task.epochs if task.epochs is not None else float(training.epochs)
    max_steps = task.max_steps if task.kind == "rm" else training.max_steps
    cfg.update({"output_dir": str(Path(plan.output_dir) / "llamafactory"), "logging_steps": training.logging_steps,
                "save_steps": training.save_steps, "save_total_limit": training.keep_checkpoints,
                "per_device_train_batch_size": batch, "gradient_accumulation_steps": training.grad_accum,
                "learning_rate": task.learning_rate})
    if max_steps:
        cfg["max_steps"] = max_steps
    else:
        cfg["num_train_epochs"] = epochs
    cfg["lr_scheduler_type"] = HF_SCHEDULERS[training.lr_schedule]
    if training.warmup_ratio:
        steps = max_steps or _steps_estimate(total_rows, training, batch, epochs)
        # warmup_ratio is gone from transformers 5.x; an integer warmup_steps works in every version.
        cfg["warmup_steps"] = max(1, round(training.warmup_ratio * steps))
        notes.append(f"warmup_steps {cfg['warmup_steps']} = warmup_ratio {training.warmup_ratio:g} of "
                     f"{'max_steps' if max_steps else 'about'} {steps} steps")
    cfg["weight_decay"] = training.weight_decay
    cfg["max_grad_norm"] = training.max_grad_norm
    _precision(cfg, training.precision, "llamafactory", notes)
    if not training.gradient_checkpointing:
        cfg["disable_gradient_checkpointing"] = True  # LLaMA-Factory turns it on by default; tunewise does not
    cfg["seed"] = training.seed
    if training.report_to:
        cfg["report_to"] = list(training.report_to)
    else:
        cfg["report_to"] = "none"
    return Export("llamafactory", cfg, tuple(notes), info, converted)


# -- Axolotl ---------------------------------------------------------------------------------------


def _axolotl_dataset(shape: str, path: str, rows: Sequence[Mapping[str, Any]], task: _Task) -> dict[str, Any]:
    """One ``datasets:`` entry (docs/dataset-formats, docs/rlhf.qmd, docs/reward_modelling.qmd)."""
    entry: dict[str, Any] = {"path": path}
    if task.kind == "rm":
        entry["type"] = "bradley_terry.chat_template"
    elif task.kind == "dpo":
        entry.update({"type": "chat_template.default", "field_messages": "prompt", "field_chosen": "chosen",
                      "field_rejected": "rejected"})
    elif shape == "messages":
        entry.update({"type": "chat_template", "field_messages": "messages"})
        if task.train_on_prompt:
            entry["roles_to_train"] = ["system", "user", "assistant"]
    elif shape == "instruction":
        entry["type"] = "alpaca"
    elif shape == "prompt_completion":
        entry["type"] = {"field_instruction": "prompt", "field_output": "completion", "format": "{instruction}",
                         "no_input_format": "{instruction}"}
    else:
        entry["type"] = "completion"
        column = "content" if shape == "documents" and rows and "content" in rows[0] else "text"
        if column != "text":
            entry["field"] = column
    return entry


def to_axolotl(plan: Plan) -> Export:
    notes: list[str] = []
    training = _training(plan)
    task = _task(plan, training, notes)
    _unexported_training(plan, notes)
    data = _read_data(plan, task)
    model, _embedded = _model_path(plan)
    cfg: dict[str, Any] = {"base_model": model}
    if task.kind == "rm":
        cfg.update({"model_type": "AutoModelForSequenceClassification", "num_labels": 1, "reward_model": True})
    if task.kind == "dpo":
        cfg.update({"rl": "dpo", "rl_beta": task.beta})
    if task.adapter:
        cfg["adapter"] = task.adapter
        if task.adapter == "qlora":
            cfg["load_in_4bit"] = True
        cfg.update({"lora_r": task.lora_rank, "lora_alpha": task.lora_alpha, "lora_dropout": task.lora_dropout})
        if task.lora_targets == ("all-linear",):
            cfg["lora_target_linear"] = True
        else:
            cfg["lora_target_modules"] = list(task.lora_targets)
    converted: dict[str, list[dict[str, Any]]] = {}
    datasets: list[dict[str, Any]] = []
    taken: set[str] = set()
    for d in data:
        name = _unique(_dataset_name(d.source), taken)
        placed = _place(d, name, tool="axolotl", force_rows=task.kind == "rm")
        rows = list(placed.rows)
        if task.kind == "rm":  # Bradley-Terry pairs are read from `system` and `input`
            rows = [{"system": "", "input": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]}
                    for r in rows]
        if rows:
            converted[placed.path] = rows
        entry = _axolotl_dataset(placed.shape, placed.path, rows or d.rows, task)
        if placed.data_files:
            entry.update({"ds_type": placed.ds_type, "data_files": list(placed.data_files)})
        if placed.ds_type == "text" or placed.path.endswith(".txt"):
            notes.append(f"{d.source}: .txt files are read line by line (one row per line)")
        datasets.append(entry)  # a converted file's path is completed when it is written
    cfg["datasets"] = datasets
    if training.eval_fraction:
        cfg["val_set_size"] = training.eval_fraction
        if training.eval_steps:
            cfg["eval_steps"] = training.eval_steps
    cfg["sequence_len"] = task.max_length or training.seq_len
    if task.kind in ("sft", "pt"):
        cfg["sample_packing"] = bool(training.packing)
    if task.train_on_prompt and any(d.shape != "messages" for d in data):
        cfg["train_on_inputs"] = True
    batch = task.batch_size or training.batch_size
    max_steps = task.max_steps if task.kind == "rm" else training.max_steps
    cfg.update({"output_dir": str(Path(plan.output_dir) / "axolotl"), "micro_batch_size": batch,
                "gradient_accumulation_steps": training.grad_accum})
    if max_steps:
        cfg["max_steps"] = max_steps
    else:
        cfg["num_epochs"] = task.epochs if task.epochs is not None else float(training.epochs)
    cfg.update({"learning_rate": task.learning_rate, "lr_scheduler": HF_SCHEDULERS[training.lr_schedule],
                "warmup_ratio": training.warmup_ratio, "weight_decay": training.weight_decay,
                "max_grad_norm": training.max_grad_norm})
    _precision(cfg, training.precision, "axolotl", notes)
    cfg.update({"gradient_checkpointing": bool(training.gradient_checkpointing), "seed": training.seed,
                "logging_steps": training.logging_steps, "save_steps": training.save_steps,
                "save_total_limit": training.keep_checkpoints})
    return Export("axolotl", cfg, tuple(notes), {}, converted)


def _precision(cfg: dict[str, Any], precision: str, tool: str, notes: list[str]) -> None:
    if precision == "fp16":
        cfg["fp16"] = True
    elif precision == "bf16":
        cfg["bf16"] = True
    elif precision == "auto":
        if tool == "axolotl":
            cfg["bf16"] = "auto"
        else:
            cfg["bf16"] = True
            notes.append("precision auto: bf16 (set fp16: true instead on GPUs without bf16)")
    else:
        cfg["bf16"] = False


# -- writing ---------------------------------------------------------------------------------------


def export_plan(plan: Plan, tool: str) -> Export:
    """The plan as ``tool``'s config; :class:`ExportError` when the method or data has no equivalent."""
    if tool not in TOOLS:
        raise ExportError(f"unknown tool {tool!r}; choose from {', '.join(TOOLS)}")
    if plan.method not in EXPORTABLE:
        raise ExportError(f"method {plan.method!r} cannot be exported: only training methods with an equivalent "
                          f"in LLaMA-Factory and Axolotl export ({', '.join(EXPORTABLE)})")
    return to_llamafactory(plan) if tool == "llamafactory" else to_axolotl(plan)


def render(export: Export, plan: Plan, config_path: Path) -> str:
    """The YAML text with a header saying where it came from, how to run it and what was not carried over."""
    import yaml

    lines = [f"# {TOOL_NAMES[export.tool]} config exported by tunewise from {plan.source or 'a plan'} "
             f"(method: {plan.method}).",
             f"# Run: {RUN_COMMANDS[export.tool].format(config=config_path)}"]
    if export.tool == "llamafactory":
        lines.append("# Data is described in dataset_info.json beside this file (dataset_dir).")
    lines += [f"# Note: {n}" for n in export.notes]
    return "\n".join(lines) + "\n" + yaml.safe_dump(export.config, sort_keys=False, allow_unicode=True)


def _after(mapping: dict[str, Any], key: str, new_key: str, value: Any) -> dict[str, Any]:
    """``mapping`` with ``new_key: value`` inserted right after ``key`` (YAML readers see related keys together)."""
    out: dict[str, Any] = {}
    for k, v in mapping.items():
        out[k] = v
        if k == key:
            out[new_key] = value
    out.setdefault(new_key, value)
    return out


def write(export: Export, plan: Plan, config_path: Path) -> list[Path]:
    """Write the config and its companions (``dataset_info.json``, converted data); return the paths.

    Every text is made first and written only when all of them are valid UTF-8, so a path or row
    that is not leaves no half-written export behind.
    """
    config_path = Path(os.path.abspath(config_path))  # not resolve(): a link loop is named below, not raised
    folder = config_path.parent
    texts: dict[Path, str] = {}
    data_dir = folder / f"{config_path.stem}_data"
    config = dict(export.config)
    info = {k: dict(v) for k, v in export.dataset_info.items()}
    if export.converted:
        for name, rows in export.converted.items():
            texts[data_dir / name] = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        if export.tool == "axolotl":
            config["datasets"] = [{**d, "path": str(data_dir / d["path"])} if d["path"] in export.converted else d
                                  for d in config["datasets"]]
        for entry in info.values():
            if entry.pop("_converted_from", None) is not None:
                entry["file_name"] = str(data_dir / entry["file_name"])
    if export.tool == "llamafactory":
        config = _after(config, "dataset", "dataset_dir", str(folder))
        info_path = folder / "dataset_info.json"
        merged: dict[str, Any] = {}
        if info_path.is_file():
            from tunewise.plugins.bounded_load import InputError, read_json

            try:
                merged = read_json(info_path, what="a dataset_info.json")
            except InputError as exc:
                raise ExportError(f"{info_path}: not valid JSON ({exc.problem}); move it away or fix it") from None
            if not isinstance(merged, dict):
                raise ExportError(f"{info_path}: not a JSON object of datasets; move it away or fix it")
        merged.update(info)
        texts[info_path] = json.dumps(merged, indent=2, ensure_ascii=False) + "\n"
    texts[config_path] = render(dataclasses.replace(export, config=config), plan, config_path)
    for path, text in texts.items():
        _check_utf8(path, text)
        # Opening a FIFO for writing waits for a reader forever; a folder or device is no config either.
        if os.path.lexists(path) and not path.is_file():
            raise ExportError(f"cannot write {_shown(path)}: it exists and is not a regular file; choose another --out")
    for path, text in texts.items():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ExportError(f"cannot write {_shown(path)}: {exc.strerror or exc}") from None
    return [config_path, *(path for path in texts if path != config_path)]


def _shown(path: Path) -> str:
    """A path for a message (a name with bytes that are not UTF-8 shows them escaped)."""
    return str(path).encode("utf-8", "backslashreplace").decode()


def _check_utf8(path: Path, text: str) -> None:
    """Refuse text UTF-8 cannot hold: a file name or data value with bytes that are not UTF-8
    (they reach Python as lone surrogates) would make a file the other tool cannot read."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        around = " ".join(text[max(0, exc.start - 30): exc.end + 30].encode("utf-8", "backslashreplace").decode().split())
        raise ExportError(f"cannot write {_shown(path)}: it would hold "
                          f"text that is not valid UTF-8 (…{around}…), from a file or folder name or a data row; "
                          "rename it or fix the data") from None
