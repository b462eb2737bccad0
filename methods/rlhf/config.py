"""Settings of an RLHF / DPO plan (the ``config:`` block of a plan whose method is ``rlhf``).

Three algorithms share one config:

- ``grpo`` and ``rloo``: full RLHF. An optional SFT stage, a reward model trained on the preference
  pairs (trl's RewardTrainer), then policy optimisation against that reward with a KL penalty to the
  reference model (trl's GRPOTrainer / RLOOTrainer).
- ``dpo``: Direct Preference Optimisation on the same pairs (trl's DPOTrainer); no reward model is
  needed to train, one is trained only to judge the result when ``dpo_reward_judge`` is on.

PPO is not offered: trl 1.16 (the version tunewise runs on) has no PPOTrainer. trl moved it to
``trl.experimental.ppo`` and then deleted it (huggingface/trl#7020: unmaintained, and the only
trainer still on pre-tokenised inputs). GRPO and RLOO optimise the same KL-regularised reward
without PPO's learned value model: the baseline of each completion comes from the other completions
of the same prompt, so there is one fewer model to hold in memory and train.

The shared ``training:`` block (seed, precision, device, batch size, save/logging cadence, held-out
fraction) is :class:`~tunewise.methods._hf.settings.TrainingSettings`; ``training.max_steps`` /
``epochs`` / ``learning_rate`` drive the main stage (policy optimisation or DPO). The SFT and
reward-model stages have their own step counts and learning rates here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from tunewise.methods._hf.settings import TrainingSettings

Algorithm = Literal["grpo", "rloo", "dpo"]
ALGORITHMS = ("grpo", "rloo", "dpo")

PPO_NOTE = (
    "PPO is not offered: trl 1.16 has no PPOTrainer (moved to trl.experimental, then removed in "
    "huggingface/trl#7020). GRPO and RLOO stand in: they optimise the same KL-regularised reward but take "
    "the baseline from the other samples of the same prompt instead of a learned value model, so one fewer "
    "model is held and trained."
)
"""Why there is no PPO (shown in the CLI help, the docs and the report)."""

DEFAULT_BETA = {"grpo": 0.04, "rloo": 0.05, "dpo": 0.1}
"""KL coefficient per algorithm when ``beta`` is not set (GRPO/RLOO: penalty weight; DPO: temperature)."""

DEFAULT_POLICY_LR = {("grpo", False): 1e-5, ("rloo", False): 1e-5, ("dpo", False): 5e-6,
                     ("grpo", True): 1e-4, ("rloo", True): 1e-4, ("dpo", True): 5e-5}
"""Learning rate of the main stage by (algorithm, LoRA) when ``training.learning_rate`` is not set."""

POLICY_LR_RANGE = {("grpo", False): (1e-6, 5e-5), ("rloo", False): (1e-6, 5e-5), ("dpo", False): (5e-7, 5e-5),
                   ("grpo", True): (1e-5, 1e-3), ("rloo", True): (1e-5, 1e-3), ("dpo", True): (5e-6, 1e-3)}
"""Learning rates recipes use for the main stage by (algorithm, LoRA), the high end for small models; the
bake-off names the rate when a run outside this range is not better."""


@dataclass(frozen=True)
class RlhfConfig:
    """How to run RLHF (reward model + GRPO/RLOO) or DPO from preference pairs.

    Fields marked ``"path"`` name files: plan loading confines them like ``data:`` and the run opens
    them through :meth:`~tunewise.plugins.types.Plan.config_path`.
    """

    training_settings: ClassVar[type] = TrainingSettings
    """The class of the plan's ``training:`` block (read by plan validation)."""

    algorithm: Algorithm = field(
        default="grpo",
        metadata={"help": "grpo or rloo: train a reward model, then optimise the policy against it with a KL "
                          "penalty; dpo: optimise the policy on the pairs directly (cheaper, no reward model "
                          "needed). PPO is not offered: trl 1.16 removed its PPOTrainer; GRPO/RLOO need no "
                          "value model"},
    )
    beta: float | None = field(
        default=None,
        metadata={"help": "KL coefficient to the reference model: GRPO/RLOO penalty weight (default 0.04 / "
                          "0.05), DPO temperature (default 0.1). Higher keeps the policy closer to the reference"},
    )
    prompts: str | None = field(
        default=None,
        metadata={"help": "prompts for policy optimisation (jsonl/json with 'prompt', or .txt one per line); "
                          "relative to the plan's folder. None: the prompts of the training pairs", "path": "read"},
    )
    eval_prompts: str | None = field(
        default=None,
        metadata={"help": "held-out prompts for the win rate, mean reward and KL; None: the prompts of the "
                          "held-out pairs", "path": "read"},
    )
    # -- SFT stage ---------------------------------------------------------------------------------
    sft: bool = field(
        default=False,
        metadata={"help": "run supervised fine-tuning first (the articles' step 1); the policy and its KL "
                          "reference then start from the SFT model"},
    )
    sft_data: str | None = field(
        default=None,
        metadata={"help": "supervised data for the SFT stage (messages, instruction or prompt/completion "
                          "rows); None: the chosen answers of the training pairs", "path": "read"},
    )
    sft_max_steps: int = field(default=20, metadata={"help": "optimizer steps of the SFT stage"})
    sft_learning_rate: float = field(default=2e-5, metadata={"help": "peak learning rate of the SFT stage"})
    # -- reward model --------------------------------------------------------------------------------
    reward_model_path: str | None = field(
        default=None,
        metadata={"help": "an already trained reward model (a folder with a one-label sequence classifier); "
                          "skips training one. None: train it on the pairs", "path": "read"},
    )
    reward_epochs: int = field(default=1, metadata={"help": "passes over the training pairs for the reward model"})
    reward_max_steps: int | None = field(
        default=None, metadata={"help": "optimizer steps of the reward model; overrides reward_epochs"}
    )
    reward_learning_rate: float | None = field(
        default=None, metadata={"help": "peak learning rate of the reward model (default 5e-5, or 2e-4 with LoRA)"}
    )
    reward_batch_size: int | None = field(
        default=None, metadata={"help": "pairs per reward-model batch (default training.batch_size)"}
    )
    reward_lora: bool = field(
        default=False, metadata={"help": "train the reward model as LoRA adapters plus its score head"}
    )
    reward_num_layers: int = field(
        default=0,
        metadata={"help": "build the reward model from only the bottom N transformer blocks of the base (0 = all): "
                          "a smaller, faster judge for training, policy optimisation and evaluation"},
    )
    reward_top_layers: int = field(
        default=0,
        metadata={"help": "train only the top N transformer blocks (plus the score head) of the reward model; "
                          "0 = all. Backpropagation then stops there: much cheaper on a CPU"},
    )
    dpo_reward_judge: bool = field(
        default=True,
        metadata={"help": "dpo: also train a reward model on the training pairs (or use reward_model_path) to "
                          "judge the bake-off: the base's and the tuned policy's answers to held-out prompts; off: "
                          "the bake-off compares their log-probability margins on held-out preference pairs"},
    )
    # -- policy ------------------------------------------------------------------------------------
    lora: bool = field(
        default=False,
        metadata={"help": "train the policy as LoRA adapters; the reference is then the base with adapters "
                          "disabled (no second model in memory)"},
    )
    lora_r: int = field(default=16, metadata={"help": "adapter rank (policy and reward model)"})
    lora_alpha: int = field(default=32, metadata={"help": "adapter scaling numerator (update scaled by alpha / r)"})
    lora_dropout: float = field(default=0.05, metadata={"help": "dropout on the adapter input during training"})
    num_generations: int = field(
        default=4, metadata={"help": "grpo/rloo: completions sampled per prompt (the group the baseline comes from)"}
    )
    prompts_per_step: int = field(
        default=2, metadata={"help": "grpo/rloo: prompts per optimizer step (each gets num_generations samples)"}
    )
    max_new_tokens: int = field(
        default=64, metadata={"help": "longest completion sampled in policy optimisation and in evaluation"}
    )
    temperature: float = field(
        default=1.0, metadata={"help": "grpo/rloo sampling temperature during training (evaluation samples at 1.0)"}
    )
    max_length: int | None = field(
        default=None,
        metadata={"help": "longest prompt+answer in tokens for reward-model and DPO training (longer pairs are "
                          "truncated or dropped, counted in a warning); None: training.seq_len"},
    )
    # -- evaluation --------------------------------------------------------------------------------
    eval_max_prompts: int | None = field(
        default=None,
        metadata={"help": "held-out prompts the base and the tuned policy answer for the bake-off; None: all of "
                          "them (about 60 give a win-rate interval of ±0.12)"},
    )
    eval_samples_per_prompt: int = field(
        default=1, metadata={"help": "answers sampled per held-out prompt from the tuned policy to estimate its KL "
                                     "to the reference (more: a steadier estimate)"}
    )
    report_samples: int = field(default=6, metadata={"help": "side-by-side answers shown in report.md"})

    def problems(self) -> list[tuple[str, str]]:
        """(field, what is wrong) for each bad value; plans report them with the YAML line."""
        out: list[tuple[str, str]] = []

        def whole(name: str, minimum: int, allow_none: bool = False) -> None:
            value = getattr(self, name)
            if value is None and allow_none:
                return
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                out.append((name, f"must be a whole number >= {minimum}, got {value!r}"))

        def rate(name: str, allow_none: bool = False) -> None:
            value = getattr(self, name)
            if value is None and allow_none:
                return
            if not isinstance(value, (int, float)) or not 0 < float(value) < 1:
                out.append((name, f"must be between 0 and 1, got {value!r}"))

        if self.algorithm not in ALGORITHMS:
            hint = " (" + PPO_NOTE + ")" if str(self.algorithm).lower() == "ppo" else ""
            out.append(("algorithm", f"must be one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}{hint}"))
        if self.beta is not None and (not isinstance(self.beta, (int, float)) or self.beta < 0):
            out.append(("beta", f"must be a number >= 0, got {self.beta!r}"))
        whole("sft_max_steps", 1)
        rate("sft_learning_rate")
        whole("reward_epochs", 1)
        whole("reward_max_steps", 1, allow_none=True)
        rate("reward_learning_rate", allow_none=True)
        whole("reward_batch_size", 1, allow_none=True)
        whole("reward_num_layers", 0)
        whole("reward_top_layers", 0)
        if self.reward_num_layers and self.reward_top_layers > self.reward_num_layers:
            out.append(("reward_top_layers", f"is {self.reward_top_layers} but the reward model keeps only "
                                             f"reward_num_layers = {self.reward_num_layers} blocks"))
        whole("lora_r", 1)
        whole("lora_alpha", 1)
        if not isinstance(self.lora_dropout, (int, float)) or not 0 <= self.lora_dropout < 1:
            out.append(("lora_dropout", f"must be in [0, 1), got {self.lora_dropout!r}"))
        whole("num_generations", 2)
        whole("prompts_per_step", 1)
        whole("max_new_tokens", 1)
        if not isinstance(self.temperature, (int, float)) or self.temperature <= 0:
            out.append(("temperature", f"must be > 0, got {self.temperature!r}"))
        whole("max_length", 16, allow_none=True)
        whole("eval_max_prompts", 1, allow_none=True)
        whole("eval_samples_per_prompt", 1)
        whole("report_samples", 0)
        if not self.sft and self.sft_data is not None:
            out.append(("sft_data", "is set but sft is false; set sft: true to run the SFT stage"))
        return out

    @property
    def needs_reward_model(self) -> bool:
        """Whether the run needs a reward model (to train against, or to judge DPO)."""
        return self.algorithm != "dpo" or self.dpo_reward_judge

    @property
    def kl_beta(self) -> float:
        return float(self.beta) if self.beta is not None else DEFAULT_BETA.get(self.algorithm, 0.05)
