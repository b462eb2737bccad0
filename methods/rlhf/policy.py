"""Stage 3 of RLHF: optimise the policy against the reward model (trl's GRPO or RLOO).

Each step samples ``num_generations`` answers for each of ``prompts_per_step`` prompts, scores them
with the reward model and raises the likelihood of the answers that beat their group's average
(GRPO: advantage = reward minus the group mean, scaled by its spread; RLOO: reward minus the mean of
the *other* samples). A KL penalty of weight ``beta`` keeps the policy near the reference model
(GRPO adds it to the loss, RLOO subtracts it from the reward). No value model is trained; that is
what PPO would add, and why GRPO/RLOO stand in for it (trl 1.16 has no PPOTrainer).

With ``lora`` the policy trains adapters and the reference is the same network with the adapters
switched off, so no second copy of the model is held.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunewise.methods.rlhf.config import DEFAULT_POLICY_LR, RlhfConfig
from tunewise.methods.rlhf.preferences import Prompt
from tunewise.methods.rlhf.stages import (
    Stage,
    StageLog,
    make_callbacks,
    run_trainer,
    seed_new_weights,
    trainer_kwargs,
)

WATCHED = ("reward", "reward_std", "kl", "entropy", "completions/mean_length", "completions/clipped_ratio",
           "rewards/accuracies", "rewards/margins")


def policy_learning_rate(config: RlhfConfig, settings_lr: float | None) -> float:
    return settings_lr or DEFAULT_POLICY_LR[(config.algorithm, config.lora)]


def lora_config(config: RlhfConfig) -> Any:
    from peft import LoraConfig

    return LoraConfig(task_type="CAUSAL_LM", r=config.lora_r, lora_alpha=config.lora_alpha,
                      lora_dropout=config.lora_dropout, target_modules="all-linear")


def save_policy(trainer: Any, tokenizer: Any, folder: Path) -> Path:
    """The trained policy (full weights, or only the adapter with LoRA) plus its tokenizer."""
    from tunewise.methods._hf.saving import save_atomically

    model = trainer.model
    if getattr(model, "is_gradient_checkpointing", False):
        model.gradient_checkpointing_disable()
    model.config.use_cache = True

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)

    return save_atomically(folder, write)


def train_policy(stage: Stage, config: RlhfConfig, policy_path: Path, tokenizer: Any, prompts: Sequence[Prompt],
                 reward_path: Path) -> dict[str, Any]:
    """GRPO or RLOO from ``policy_path`` against the reward model at ``reward_path``; saves the policy."""
    from datasets import Dataset
    from tunewise.methods.rlhf.reward_model import load_classifier

    settings = stage.settings
    learning_rate = policy_learning_rate(config, settings.learning_rate)
    reward_tokenizer = _tokenizer(reward_path, "right")
    reward_model = load_classifier(reward_path, reward_tokenizer).eval()
    completions_per_step = config.prompts_per_step * config.num_generations
    common = dict(
        **trainer_kwargs(stage, learning_rate=learning_rate, batch_size=completions_per_step,
                         max_steps=settings.max_steps, epochs=settings.epochs),
        model_init_kwargs={"dtype": "float32"},
        num_generations=config.num_generations,
        max_completion_length=config.max_new_tokens,
        temperature=config.temperature,
        top_k=0,
        top_p=1.0,
        beta=config.kl_beta,
        disable_dropout=True,
    )
    if config.algorithm == "rloo":
        from trl import RLOOConfig, RLOOTrainer

        args: Any = RLOOConfig(**common)
        trainer_class: Any = RLOOTrainer
    else:
        from trl import GRPOConfig, GRPOTrainer

        args = GRPOConfig(**common)
        trainer_class = GRPOTrainer
    dataset = Dataset.from_list([{"prompt": p.messages} for p in prompts])
    log = StageLog()
    callbacks = make_callbacks(stage, log, WATCHED)
    seed_new_weights(stage)
    trainer = trainer_class(
        model=str(policy_path), reward_funcs=reward_model, args=args, train_dataset=dataset,
        processing_class=_tokenizer(policy_path, "left"), reward_processing_classes=reward_tokenizer,
        peft_config=lora_config(config) if config.lora else None, callbacks=callbacks,
    )
    stage.log(f"{config.algorithm.upper()}: {len(prompts)} prompts, {config.prompts_per_step} prompts x "
              f"{config.num_generations} samples per step, beta {config.kl_beta:g}, lr {learning_rate:g}"
              + (", LoRA" if config.lora else ""))
    run_trainer(stage, trainer, callbacks)
    save_policy(trainer, tokenizer, stage.model_dir)
    return {"prompts": len(prompts), "steps": log.steps, "train_seconds": round(log.train_seconds, 2),
            "learning_rate": learning_rate, "beta": config.kl_beta, "history": log.history}


def _tokenizer(path: Path, padding_side: str) -> Any:
    from tunewise.plugins.models import load_tokenizer

    tokenizer = load_tokenizer(str(path))
    tokenizer.padding_side = padding_side
    tokenizer.truncation_side = "left"
    return tokenizer
