"""Stage 1 of RLHF (optional): supervised fine-tuning on demonstrations (trl's SFTTrainer).

The data is ``config.sft_data`` (messages, instruction or prompt/completion rows, read and
checked by tunewise's data reader) or, without it, the preferred answers of the training pairs.
Loss falls on the answers only. With ``lora`` the adapter is merged into the saved model, so the
later stages start from a plain model folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunewise.methods.rlhf.config import RlhfConfig
from tunewise.methods.rlhf.preferences import PreferencePair, sft_rows_from_pairs
from tunewise.methods.rlhf.stages import (
    Stage,
    StageLog,
    make_callbacks,
    run_trainer,
    seed_new_weights,
    trainer_kwargs,
)

SUPERVISED = ("messages", "instruction", "prompt_completion")


def sft_rows(path: str) -> tuple[list[dict[str, Any]], list[str]]:
    """trl rows (``messages``, or ``prompt`` + ``completion`` turns) of a supervised data source."""
    from tunewise.methods._hf.encoding import row_messages
    from tunewise.plugins.data import load_dataset

    loaded = load_dataset(path, expect=SUPERVISED)
    rows = []
    for row in loaded.rows:
        turns, prompt_turns = row_messages(row.data, loaded.shape)
        if prompt_turns:
            rows.append({"prompt": turns[:prompt_turns], "completion": turns[prompt_turns:]})
        else:
            rows.append({"messages": turns})
    return rows, list(loaded.files)


def train_sft(stage: Stage, config: RlhfConfig, base_path: Path, tokenizer: Any, sft_data: str | None,
              train_pairs: Sequence[PreferencePair]) -> dict[str, Any]:
    """Fine-tune ``base_path`` on demonstrations; saves the (merged) model to ``stage.model_dir``."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer
    from tunewise.methods.rlhf.policy import lora_config, save_policy

    settings = stage.settings
    if sft_data:
        rows, files = sft_rows(sft_data)
        source = ", ".join(files)
    else:
        rows, source = sft_rows_from_pairs(train_pairs), "the preferred answers of the training pairs"
    args = SFTConfig(
        **trainer_kwargs(stage, learning_rate=config.sft_learning_rate, batch_size=settings.batch_size,
                         grad_accum=settings.grad_accum, max_steps=config.sft_max_steps),
        model_init_kwargs={"dtype": "float32"}, max_length=settings.seq_len, packing=False,
    )
    log = StageLog()
    callbacks = make_callbacks(stage, log)
    seed_new_weights(stage)
    trainer = SFTTrainer(model=str(base_path), args=args, train_dataset=Dataset.from_list(rows),
                         processing_class=tokenizer, peft_config=lora_config(config) if config.lora else None,
                         callbacks=callbacks)
    stage.log(f"{len(rows)} examples from {source}, {config.sft_max_steps} steps, lr {config.sft_learning_rate:g}")
    run_trainer(stage, trainer, callbacks)
    if config.lora:
        trained: Any = trainer.model
        trainer.model = trained.merge_and_unload()
    save_policy(trainer, tokenizer, stage.model_dir)
    return {"examples": len(rows), "source": source, "steps": log.steps,
            "train_seconds": round(log.train_seconds, 2), "history": log.history}
