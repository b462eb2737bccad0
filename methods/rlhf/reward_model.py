"""Stage 2 of RLHF: a reward model trained on the preference pairs, and scoring with it.

The reward model is the policy's base turned into a sequence classifier with one output
(``AutoModelForSequenceClassification``, ``num_labels=1``; its score head starts random), trained
with trl's RewardTrainer on the pairwise loss ``-log σ(r(chosen) - r(rejected))``. Options: LoRA
adapters (merged into the saved model), or training only the top N blocks so backpropagation stops
early (cheap on a CPU).

:class:`RewardScorer` renders prompt + answer with the chat template exactly as the trainers do
(template text, tokenised without extra special tokens, right-padded), so the scores it gives in
evaluation are the ones the policy was optimised against.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunewise.methods._hf.device import Placement
from tunewise.methods.rlhf.config import RlhfConfig
from tunewise.methods.rlhf.preferences import PreferencePair, Turns
from tunewise.methods.rlhf.stages import (
    Stage,
    StageLog,
    make_callbacks,
    run_trainer,
    seed_new_weights,
    trainer_kwargs,
)
from tunewise.plugins.errors import MethodNotRunnable

DEFAULT_LR = 5e-5
DEFAULT_LORA_LR = 2e-4
WATCHED = ("accuracy", "margin", "mean_reward")


def decoder_layers(model: Any) -> Any:
    """The list of transformer blocks of a Hugging Face model (``layers``, ``h`` or ``blocks``)."""
    import torch

    base = getattr(model, "base_model", model)
    for name in ("layers", "h", "blocks"):
        found = getattr(base, name, None)
        if isinstance(found, torch.nn.ModuleList):
            return found
    for _name, module in base.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) > 1:
            return module
    raise MethodNotRunnable(f"cannot find the transformer blocks of {type(model).__name__} to train only the top "
                            "layers; set reward_top_layers: 0")


def load_classifier(path: Path, tokenizer: Any, dtype: str = "float32") -> Any:
    """A one-output sequence classifier from a causal LM or reward model folder (local files only)."""
    import torch
    from transformers import AutoModelForSequenceClassification
    from trl.trainer.reward_trainer import suppress_seqcls_warning
    from tunewise.plugins.trust import check_model_folder

    # The causal LM's head is dropped and the score head is new: expected, so not warned about.
    with suppress_seqcls_warning():
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=1, dtype=getattr(torch, dtype), use_safetensors=True,
            trust_remote_code=check_model_folder(path, need_weights=True),
        )
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


def keep_bottom_layers(model: Any, count: int) -> int:
    """Drop all but the bottom ``count`` transformer blocks (in place); returns how many there were."""
    import torch

    layers = decoder_layers(model)
    total = len(layers)
    if count >= total:
        return total
    kept = torch.nn.ModuleList(list(layers)[:count])
    base = getattr(model, "base_model", model)
    for name, module in base.named_children():
        if module is layers:
            setattr(base, name, kept)
            break
    config = model.config
    config.num_hidden_layers = count
    if isinstance(getattr(config, "layer_types", None), list):
        config.layer_types = config.layer_types[:count]
    return total


def _freeze_below_top(model: Any, top: int) -> int:
    """Freeze everything but the top ``top`` blocks, the final norm and the score head; blocks kept."""
    layers = decoder_layers(model)
    top = min(top, len(layers))
    keep = {id(p) for layer in list(layers)[len(layers) - top:] for p in layer.parameters()}
    for name, param in model.named_parameters():
        head = name.startswith("score") or (".norm." in f".{name}" and "layers." not in name)
        param.requires_grad = id(param) in keep or head
    return len(layers)


def train_reward_model(stage: Stage, config: RlhfConfig, base_path: Path, tokenizer: Any,
                       train_pairs: Sequence[PreferencePair], max_length: int) -> dict[str, Any]:
    """Train (or resume) the reward model; saves it to ``stage.model_dir`` and returns a summary."""
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    settings = stage.settings
    learning_rate = config.reward_learning_rate or (DEFAULT_LORA_LR if config.reward_lora else DEFAULT_LR)
    seed_new_weights(stage)  # the new score head's initial weights: the same in every process
    model = load_classifier(base_path, tokenizer)
    if config.reward_num_layers:
        total = keep_bottom_layers(model, config.reward_num_layers)
        stage.log(f"reward model built from the bottom {min(config.reward_num_layers, total)} of {total} blocks")
    peft_config = None
    if config.reward_lora:
        from peft import LoraConfig

        layers = len(decoder_layers(model))
        top = range(layers - config.reward_top_layers, layers) if config.reward_top_layers else None
        peft_config = LoraConfig(task_type="SEQ_CLS", r=config.lora_r, lora_alpha=config.lora_alpha,
                                 lora_dropout=config.lora_dropout, target_modules="all-linear",
                                 layers_to_transform=list(top) if top else None)
    elif config.reward_top_layers:
        total = _freeze_below_top(model, config.reward_top_layers)
        stage.log(f"training the top {min(config.reward_top_layers, total)} of {total} blocks and the score head")
    batch = config.reward_batch_size or settings.batch_size
    args = RewardConfig(
        **trainer_kwargs(stage, learning_rate=learning_rate, batch_size=batch, grad_accum=settings.grad_accum,
                         max_steps=config.reward_max_steps, epochs=config.reward_epochs),
        max_length=max_length, disable_dropout=True, center_rewards_coefficient=0.01,
    )
    dataset = Dataset.from_list([p.as_trl() for p in train_pairs])
    log = StageLog()
    callbacks = make_callbacks(stage, log, WATCHED)
    trainer = RewardTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                            peft_config=peft_config, callbacks=callbacks)
    prepared: Any = trainer.train_dataset
    kept = len(prepared)
    if kept < len(dataset):
        stage.log(f"{len(dataset) - kept} of {len(dataset)} pairs are longer than max_length {max_length} tokens "
                  "and were left out", level="warning")
    if kept == 0:
        raise MethodNotRunnable(f"every training pair is longer than max_length {max_length}; raise "
                                "config.max_length or training.seq_len")
    trainer_model: Any = trainer.model
    trainable = sum(p.numel() for p in trainer_model.parameters() if p.requires_grad)
    stage.log(f"{kept} pairs, {trainable:,} trainable parameters, lr {learning_rate:g}")
    run_trainer(stage, trainer, callbacks)
    trained: Any = trainer.model
    if config.reward_lora:
        trained = trained.merge_and_unload()
    save_classifier(trained, tokenizer, stage.model_dir)
    return {"pairs": kept, "steps": log.steps, "train_seconds": round(log.train_seconds, 2),
            "learning_rate": learning_rate, "history": log.history}


def save_classifier(model: Any, tokenizer: Any, folder: Path) -> Path:
    from tunewise.methods._hf.saving import save_atomically

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)

    return save_atomically(folder, write)


class RewardScorer:
    """Scores answers with a trained reward model, rendering them as the trainers do."""

    def __init__(self, path: Path, placement: Placement, batch_size: int = 8, max_length: int | None = None) -> None:
        from tunewise.plugins.models import load_tokenizer

        self.path = Path(path)
        self.placement = placement
        self.batch_size = batch_size
        self.max_length = max_length
        self.tokenizer = load_tokenizer(str(self.path))
        self.model = load_classifier(self.path, self.tokenizer).to(placement.device).eval()

    def render(self, prompt: Turns, answer: str) -> str:
        text = self.tokenizer.apply_chat_template([*prompt, {"role": "assistant", "content": answer}],
                                                  tokenize=False)
        return str(text)

    def score(self, prompts: Sequence[Turns], answers: Sequence[str]) -> list[float]:
        """One reward per (prompt, answer)."""
        import torch
        from tunewise.methods._hf.device import autocast

        texts = [self.render(p, a) for p, a in zip(prompts, answers, strict=True)]
        scores: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            chunk = texts[start:start + self.batch_size]
            encoded = self.tokenizer(chunk, return_tensors="pt", padding=True, padding_side="right",
                                     add_special_tokens=False, truncation=self.max_length is not None,
                                     max_length=self.max_length)
            encoded = {k: v.to(self.placement.device) for k, v in encoded.items()}
            with torch.no_grad(), autocast(self.placement):
                logits = self.model(**encoded).logits[:, 0]
            scores += [float(x) for x in logits.float().cpu()]
        return scores

    def pairwise_accuracy(self, pairs: Sequence[PreferencePair]) -> dict[str, float]:
        """Share of pairs where the preferred answer scores higher, and the mean margin."""
        if not pairs:
            return {}
        prompts = [p.prompt_turns for p in pairs]
        chosen = self.score(prompts, [p.chosen for p in pairs])
        rejected = self.score(prompts, [p.rejected for p in pairs])
        wins = sum(1.0 if c > r else 0.5 if c == r else 0.0 for c, r in zip(chosen, rejected, strict=True))
        return {"reward_accuracy": wins / len(pairs),
                "reward_margin": sum(c - r for c, r in zip(chosen, rejected, strict=True)) / len(pairs),
                "held_out_pairs": float(len(pairs))}
