"""DPO: the policy learns from the preference pairs directly (trl's DPOTrainer), no reward model.

The loss ``-log σ(β·[(log π(y_w) − log π_ref(y_w)) − (log π(y_l) − log π_ref(y_l))])`` raises the
preferred answer's likelihood relative to the reference more than the rejected one's; ``β``
(``config.beta``, default 0.1) sets how far the policy may drift. Cheaper than GRPO/RLOO: no
sampling, no reward model, one forward pass of the reference per pair. After training, DPO's own
held-out figure is its implicit-reward accuracy: how often ``β·log π/π_ref`` ranks the held-out
preferred answer above the rejected one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunewise.methods.rlhf.config import RlhfConfig
from tunewise.methods.rlhf.policy import lora_config, policy_learning_rate, save_policy
from tunewise.methods.rlhf.preferences import PreferencePair
from tunewise.methods.rlhf.stages import (
    Stage,
    StageLog,
    make_callbacks,
    run_trainer,
    seed_new_weights,
    trainer_kwargs,
)

WATCHED = ("rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected")


def train_dpo(stage: Stage, config: RlhfConfig, policy_path: Path, tokenizer: Any,
              train_pairs: Sequence[PreferencePair], held_pairs: Sequence[PreferencePair],
              max_length: int) -> dict[str, Any]:
    """Train the policy with DPO; saves it to ``stage.model_dir``; returns held-out implicit-reward metrics."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    settings = stage.settings
    learning_rate = policy_learning_rate(config, settings.learning_rate)
    args = DPOConfig(
        **trainer_kwargs(stage, learning_rate=learning_rate, batch_size=settings.batch_size,
                         grad_accum=settings.grad_accum, max_steps=settings.max_steps, epochs=settings.epochs),
        model_init_kwargs={"dtype": "float32"}, beta=config.kl_beta, max_length=max_length,
        per_device_eval_batch_size=settings.batch_size,
    )
    log = StageLog()
    callbacks = make_callbacks(stage, log, WATCHED)
    seed_new_weights(stage)
    trainer = DPOTrainer(model=str(policy_path), args=args,
                         train_dataset=Dataset.from_list([p.as_trl() for p in train_pairs]),
                         processing_class=tokenizer, peft_config=lora_config(config) if config.lora else None,
                         callbacks=callbacks)
    stage.log(f"{len(train_pairs)} pairs, beta {config.kl_beta:g}, lr {learning_rate:g}"
              + (", LoRA" if config.lora else ""))
    run_trainer(stage, trainer, callbacks)
    held: dict[str, float] = {}
    if held_pairs:
        metrics = trainer.evaluate(eval_dataset=Dataset.from_list([p.as_trl() for p in held_pairs]))
        held = {"dpo_implicit_accuracy": float(metrics.get("eval_rewards/accuracies", float("nan"))),
                "dpo_implicit_margin": float(metrics.get("eval_rewards/margins", float("nan")))}
    save_policy(trainer, tokenizer, stage.model_dir)
    return {"pairs": len(train_pairs), "steps": log.steps, "train_seconds": round(log.train_seconds, 2),
            "learning_rate": learning_rate, "beta": config.kl_beta, "held_out": held, "history": log.history}
