"""The bake-off: the base and the result scored on the same held-out examples, and an honest verdict.

Given each example's score under the base model and under the result (same ids), :func:`bake_off`
counts per-example wins, ties and losses, computes the main metric before and after, a paired
bootstrap interval on the difference (seeded, so a run's report is reproducible) and one verdict
sentence, e.g. "LoRA beats the base on 52 of 60 held-out messages: accuracy 0.05 → 0.87, +0.82 [0.74,
0.90]". A result that is not better is said to be so, with the most likely reason from what the run
recorded (:func:`likely_reasons`) and the setting to change. Pure Python, no numpy or torch.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from tunewise.plugins.errors import TunewiseError
from tunewise.plugins.task_detection import first_line, match_label, normalise_label

RESAMPLES = 2000
"""Bootstrap resamples: enough for stable 2.5 % / 97.5 % quantiles (about 50 resamples lie beyond each)."""

SIGN_TEST_ALPHA = 0.05
"""Two-sided level of the exact sign test that must agree with the interval (see :func:`bake_off`)."""

OTHER = "(other)"
"""The predicted label of an answer that names none of the labels."""


class BakeOffError(TunewiseError):
    """Scores that cannot be compared: none, different example ids, or values that are not numbers."""


@dataclass(frozen=True)
class MetricSpec:
    """How a metric reads: its name in sentences, its direction and how examples add up."""

    key: str
    name: str
    higher_is_better: bool
    kind: str = "mean"
    """``mean`` of per-example scores; ``perplexity``: exp of the (weighted) mean per-example loss;
    ``win_rate``: share of examples the result wins (ties count half) against the base's 0.5."""


METRICS: dict[str, MetricSpec] = {spec.key: spec for spec in (
    MetricSpec("accuracy", "accuracy", True),
    MetricSpec("exact_match", "exact match", True),
    MetricSpec("containment", "containment", True),
    MetricSpec("rouge_l", "ROUGE-L", True),
    MetricSpec("citation_rate", "citation rate", True),
    MetricSpec("win_rate", "win rate", True, "win_rate"),
    MetricSpec("perplexity", "perplexity", False, "perplexity"),
    MetricSpec("loss", "held-out loss", False),
)}
"""Known metrics by their stable ``metrics.json`` key."""


def metric_spec(metric: str, higher_is_better: bool | None = None) -> MetricSpec:
    """The spec of a known metric, or of a new one whose direction is given."""
    known = METRICS.get(metric)
    if known is not None:
        if higher_is_better is not None and higher_is_better != known.higher_is_better:
            raise BakeOffError(f"{metric}: {'higher' if known.higher_is_better else 'lower'} is better, "
                               "not the other way round")
        return known
    if higher_is_better is None:
        raise BakeOffError(f"unknown metric {metric!r}: say whether higher is better "
                           f"(known metrics: {', '.join(METRICS)})")
    return MetricSpec(metric, metric.replace("_", " "), higher_is_better)


# -- classification details ---------------------------------------------------------------------


@dataclass(frozen=True)
class LabelCount:
    """One gold label on the held-out split: how many examples, and how many each model got right."""

    label: str
    examples: int
    base_correct: int
    result_correct: int


@dataclass(frozen=True)
class Confusion:
    """A gold → predicted pair the result got wrong, how often, and one such answer."""

    gold: str
    predicted: str
    count: int
    example: str


@dataclass(frozen=True)
class LabelBreakdown:
    """Per-label counts and the result's (and the base's) most common confusions."""

    labels: tuple[LabelCount, ...]
    confusions: tuple[Confusion, ...]
    base_confusions: tuple[Confusion, ...] = ()


def _confusions(golds: Mapping[str, str], answers: Mapping[str, str], labels: Sequence[str],
                top: int) -> tuple[Confusion, ...]:
    counts: Counter[tuple[str, str]] = Counter()
    example: dict[tuple[str, str], str] = {}
    for key in sorted(golds):
        gold = normalise_label(golds[key])
        answer = answers[key]
        if normalise_label(answer) == gold:
            continue
        pair = (gold, match_label(answer, labels) or OTHER)
        counts[pair] += 1
        example.setdefault(pair, first_line(answer).strip()[:80])
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return tuple(Confusion(g, p, c, example[(g, p)]) for (g, p), c in ranked[:top])


def label_breakdown(golds: Mapping[str, str], base_answers: Mapping[str, str],
                    result_answers: Mapping[str, str], labels: Sequence[str], top: int = 5) -> LabelBreakdown:
    """Per-label counts on the held-out split and the ``top`` most common confusions of each model."""
    _check_ids(golds, base_answers, "gold labels", "base answers")
    _check_ids(golds, result_answers, "gold labels", "result answers")
    per: dict[str, list[int]] = {}
    for key, gold_text in golds.items():
        gold = normalise_label(gold_text)
        counts = per.setdefault(gold, [0, 0, 0])
        counts[0] += 1
        counts[1] += normalise_label(base_answers[key]) == gold
        counts[2] += normalise_label(result_answers[key]) == gold
    ordered = sorted(per.items(), key=lambda item: (-item[1][0], item[0]))
    return LabelBreakdown(
        tuple(LabelCount(label, n, base, result) for label, (n, base, result) in ordered),
        _confusions(golds, result_answers, labels, top),
        _confusions(golds, base_answers, labels, top),
    )


def accuracy_scores(golds: Mapping[str, str], answers: Mapping[str, str]) -> dict[str, float]:
    """1.0 per example whose answer names its gold label (by :func:`normalise_label`), else 0.0."""
    _check_ids(golds, answers, "gold labels", "answers")
    return {k: 1.0 if normalise_label(answers[k]) == normalise_label(g) else 0.0 for k, g in golds.items()}


# -- reasons a result is not better -------------------------------------------------------------


@dataclass(frozen=True)
class RunFacts:
    """What a run saw, for explaining a result that is not better. Unknown facts stay None / empty."""

    steps: int | None = None
    """Optimizer steps run."""
    train_examples: int | None = None
    examples_per_step: float | None = None
    """Training examples per optimizer step (batch × accumulation × examples per packed sequence)."""
    eval_losses: tuple[float, ...] = ()
    """Held-out loss at each evaluation, in order."""
    learning_rate: float | None = None
    lr_range: tuple[float, float] | None = None
    """The method's usual learning-rate range (low, high)."""
    model_params: int | None = None
    stopped_by_budget: bool = False
    """The time or money budget ended training early."""
    unchanged_answers: float | None = None
    """Share of held-out answers identical to the base's."""
    truncated_fraction: float | None = None
    """Share of training examples cut by the sequence length."""
    kl: float | None = None
    """KL(tuned ‖ reference) per answer, nats (RLHF / DPO)."""
    retrieval_used: bool = False
    citation_rate: float | None = None
    retrieval_recall: float | None = None
    """Share of questions whose retrieved chunks hold the answer."""
    early_stopped: str | None = None
    """The sentence early stopping wrote when it ended training before its last step (None otherwise)."""


@dataclass(frozen=True)
class Reason:
    """A likely cause of a result that is not better, and what to change."""

    code: str
    reason: str
    setting: str | None
    """The plan key to change (``training.max_steps``, ``config.k``, ``model``), None when no one key."""
    change: str

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "reason": self.reason, "setting": self.setting, "change": self.change}


LR_FACTOR = 1.0
"""A learning rate outside the method's range by more than this factor counts as off. The ranges are
already broad rules of thumb, so any rate outside them is a plausible cause once a run has failed."""

STILL_FALLING = 0.01
"""Held-out loss is still falling when the last evaluation is the best and at least 1 % below the one
before: more training would likely help (smaller drops are evaluation noise)."""

OVERFIT_RISE = 0.05
"""Held-out loss rose when the last value is 5 % above the best: the model began memorising."""

UNCHANGED_ANSWERS = 0.9
"""Training barely changed the model when at least 90 % of held-out answers equal the base's."""

KL_UNMOVED = 0.01
"""A policy moved too little when KL to the reference is under 0.01 nats per answer (tokens differ in
about one answer in a hundred)."""

TRUNCATED = 0.2
"""The sequence length hurts when it cuts at least a fifth of the training examples."""

RETRIEVAL_RECALL = 0.5
"""Retrieval fails when it finds the answer's passage for fewer than half the questions."""

CITATION_RATE = 0.5
"""The generator ignores the passages when fewer than half its answers cite one."""

SMALL_GENERATOR = 1_000_000_000
"""Generators under 1B parameters rarely follow "answer from these passages and cite them"."""

SMALL_MODEL = 500_000_000
"""Under 500M parameters a model's capacity is a plausible cause when no training setting is."""

MIN_EVAL_EXAMPLES = 30
"""With fewer held-out examples a 95 % interval on accuracy spans about ±0.2 or more, so only a large
gain can show; more held-out examples (not more training) is the fix when the gain points the right way."""


def _steps_per_epoch(f: RunFacts) -> float | None:
    if f.train_examples and f.examples_per_step:
        return f.train_examples / f.examples_per_step
    return None


def _budget(f: RunFacts, b: BakeOff | None) -> Reason | None:
    per_epoch = _steps_per_epoch(f)
    if f.stopped_by_budget and f.steps is not None and per_epoch and f.steps < per_epoch:
        return Reason("budget_stop", f"the time budget ended training after {f.steps} steps, before one pass "
                      f"over the {f.train_examples} training examples", "training.max_hours",
                      "raise training.max_hours (or use faster hardware)")
    return None


def _too_few_steps(f: RunFacts, b: BakeOff | None) -> Reason | None:
    per_epoch = _steps_per_epoch(f)
    if f.early_stopped:  # the held-out loss ended it, not the step count: see _early_stop
        return None
    if f.steps is not None and per_epoch and f.steps < per_epoch:
        need = math.ceil(per_epoch)
        return Reason("too_few_steps", f"the run took {f.steps} steps, fewer than one pass over the "
                      f"{f.train_examples} training examples ({need} steps)", "training.max_steps",
                      f"raise training.max_steps to at least {need} (one pass), or remove it and set "
                      "training.epochs")
    return None


def _middle(low: float, high: float) -> str:
    return f"{math.sqrt(low * high):.0e}".replace("e-0", "e-")


def _lr(f: RunFacts, b: BakeOff | None) -> Reason | None:
    if f.learning_rate is None or f.lr_range is None:
        return None
    low, high = f.lr_range
    span = f"{low:g} … {high:g}"
    if f.learning_rate < low / LR_FACTOR:
        return Reason("lr_low", f"the learning rate {f.learning_rate:g} is below this method's range ({span}), "
                      "so the weights barely moved", "training.learning_rate",
                      f"set training.learning_rate to about {_middle(low, high)}")
    if f.learning_rate > high * LR_FACTOR:
        return Reason("lr_high", f"the learning rate {f.learning_rate:g} is above this method's range ({span}), "
                      "so training overshoots", "training.learning_rate",
                      f"set training.learning_rate to about {_middle(low, high)}")
    return None


def _few_eval(f: RunFacts, b: BakeOff | None) -> Reason | None:
    if b is None or b.examples >= MIN_EVAL_EXAMPLES or b.improved_on_average is not True:
        return None
    return Reason("few_eval_examples", f"only {b.examples} held-out examples: the interval is too wide to show "
                  "a gain of this size", "training.eval_fraction",
                  f"hold out at least {MIN_EVAL_EXAMPLES} examples (raise training.eval_fraction, "
                  "or add data)")


def _still_falling(f: RunFacts, b: BakeOff | None) -> Reason | None:
    losses = f.eval_losses
    if len(losses) >= 2 and losses[-1] <= min(losses) and losses[-2] - losses[-1] >= STILL_FALLING * losses[-2]:
        return Reason("loss_still_falling", f"held-out loss was still falling when training stopped "
                      f"({losses[-2]:.3g} → {losses[-1]:.3g} at the last evaluation)", "training.epochs",
                      "train longer: raise training.epochs (or training.max_steps); early stopping keeps "
                      "the best checkpoint")
    return None


def _early_stop(f: RunFacts, b: BakeOff | None) -> Reason | None:
    if not f.early_stopped:
        return None
    return Reason("early_stopped", f"early stopping ended training: {f.early_stopped}",
                  "training.early_stopping_patience",
                  "raise training.early_stopping_patience (0 turns it off) to train past a plateau, or lower "
                  "training.learning_rate so the held-out loss keeps falling")


def _overfit(f: RunFacts, b: BakeOff | None) -> Reason | None:
    losses = f.eval_losses
    if len(losses) >= 2 and losses[-1] >= (1 + OVERFIT_RISE) * min(losses):
        return Reason("overfit", f"held-out loss rose from its best {min(losses):.3g} to {losses[-1]:.3g}: the "
                      "model memorised the training examples", "training.epochs",
                      "train for fewer epochs or at a lower learning rate, or add data")
    return None


def _unmoved(f: RunFacts, b: BakeOff | None) -> Reason | None:
    if f.kl is not None and f.kl < KL_UNMOVED:
        return Reason("policy_unmoved", f"the tuned policy barely moved from the reference (KL {f.kl:.2g} nats "
                      "per answer)", "training.learning_rate",
                      "raise training.learning_rate or the steps (for DPO, a lower config.beta also lets it move)")
    return None


def _unchanged(f: RunFacts, b: BakeOff | None) -> Reason | None:
    if f.unchanged_answers is not None and f.unchanged_answers >= UNCHANGED_ANSWERS:
        return Reason("answers_unchanged", f"{f.unchanged_answers:.0%} of the held-out answers are identical to "
                      "the base's: training barely changed the model", "training.learning_rate",
                      "train more (training.epochs) or at a higher training.learning_rate")
    return None


def _truncated(f: RunFacts, b: BakeOff | None) -> Reason | None:
    if f.truncated_fraction is not None and f.truncated_fraction >= TRUNCATED:
        return Reason("truncated", f"the sequence length cut {f.truncated_fraction:.0%} of the training examples",
                      "training.seq_len", "raise training.seq_len (or shorten the examples)")
    return None


def _retrieval(f: RunFacts, b: BakeOff | None) -> Reason | None:
    if f.retrieval_used and f.retrieval_recall is not None and f.retrieval_recall < RETRIEVAL_RECALL:
        return Reason("retrieval_misses", f"retrieval found the answer's passage for only "
                      f"{f.retrieval_recall:.0%} of the questions", "config.k",
                      "retrieve more chunks (config.k) or change config.chunk_tokens; check that the "
                      "documents hold the answers")
    return None


def _citations(f: RunFacts, b: BakeOff | None) -> Reason | None:
    if not f.retrieval_used or f.citation_rate is None or f.citation_rate >= CITATION_RATE:
        return None
    if f.model_params is not None and f.model_params < SMALL_GENERATOR:
        return Reason("generator_too_small", f"the {_params(f.model_params)} generator does not use the "
                      f"retrieved passages (citation rate {f.citation_rate:.2f})", "model",
                      "use a larger instruction-tuned model (1B parameters or more) to generate answers")
    return Reason("no_citations", f"the generator rarely cites the retrieved passages (citation rate "
                  f"{f.citation_rate:.2f})", "model", "use a model that follows instructions to cite sources")


def _small_model(f: RunFacts, b: BakeOff | None) -> Reason | None:
    if f.model_params is not None and f.model_params < SMALL_MODEL:
        return Reason("model_small", f"the {_params(f.model_params)} model may be too small to learn this task "
                      "from this data", "model", "try a larger base model")
    return None


def _params(n: int) -> str:
    return f"{n / 1e9:.1f}B-parameter" if n >= 1e9 else f"{n / 1e6:.0f}M-parameter"


RULES: tuple[tuple[str, Callable[[RunFacts, BakeOff | None], Reason | None]], ...] = (
    ("budget_stop", _budget),
    ("too_few_steps", _too_few_steps),
    ("learning_rate", _lr),
    ("few_eval_examples", _few_eval),
    ("loss_still_falling", _still_falling),
    ("early_stopped", _early_stop),
    ("overfit", _overfit),
    ("policy_unmoved", _unmoved),
    ("answers_unchanged", _unchanged),
    ("truncated", _truncated),
    ("retrieval_misses", _retrieval),
    ("no_citations", _citations),
    ("model_small", _small_model),
)
"""Causes in order of likelihood: a run that never saw its data explains more than anything after it;
the size of the model is the last resort, blamed only when no setting explains the result."""


def likely_reasons(facts: RunFacts, bake: BakeOff | None = None) -> list[Reason]:
    """Every rule of :data:`RULES` that fits the run, most likely first (empty when none does)."""
    return [r for _, rule in RULES if (r := rule(facts, bake)) is not None]


# -- the bake-off -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BakeOff:
    """Base vs result on the same held-out examples."""

    metric: str
    metric_name: str
    higher_is_better: bool
    examples: int
    wins: int
    ties: int
    losses: int
    before: float
    after: float
    difference: float
    """``after - before`` (negative is better for perplexity and loss)."""
    interval: tuple[float, float]
    confidence: float
    sign_test_p: float
    """Exact two-sided sign test of wins against losses (ties dropped)."""
    significant: bool
    """The interval excludes 0 and the sign test agrees with it (see :func:`bake_off`)."""
    verdict: str
    """``better``, ``worse`` or ``not_better`` (no clear difference)."""
    sentence: str
    method: str
    unit: str
    resamples: int
    seed: int
    classification: LabelBreakdown | None = None
    reasons: tuple[Reason, ...] = field(default=())

    @property
    def improved_on_average(self) -> bool:
        """The point estimate moved the right way (whether or not significantly)."""
        return self.difference > 0 if self.higher_is_better else self.difference < 0

    @property
    def interval_key(self) -> str:
        return f"interval_{round(self.confidence * 100)}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "before": {self.metric: self.before},
            "after": {self.metric: self.after},
            "difference": self.difference,
            self.interval_key: list(self.interval),
            "significant": self.significant,
            "verdict": self.verdict,
            "sentence": self.sentence,
            "examples": self.examples,
            "wins": self.wins,
            "ties": self.ties,
            "losses": self.losses,
            "sign_test_p": self.sign_test_p,
            "method": self.method,
            "unit": self.unit,
            "resamples": self.resamples,
            "seed": self.seed,
            "reasons": [r.to_dict() for r in self.reasons],
        }
        if self.classification is not None:
            out["labels"] = [dataclasses.asdict(c) for c in self.classification.labels]
            out["confusions"] = [dataclasses.asdict(c) for c in self.classification.confusions]
            out["base_confusions"] = [dataclasses.asdict(c) for c in self.classification.base_confusions]
        return out


def merge_metrics(metrics: Mapping[str, Any], bake: BakeOff) -> dict[str, Any]:
    """``metrics.json`` content with the bake-off added: the main metric under its stable key in
    ``before``/``after``, ``main_metric``, the interval (``interval_95``) and the full ``bakeoff``."""
    out = dict(metrics)
    out["before"] = {**dict(metrics.get("before") or {}), bake.metric: bake.before}
    out["after"] = {**dict(metrics.get("after") or {}), bake.metric: bake.after}
    out["main_metric"] = bake.metric
    out[bake.interval_key] = list(bake.interval)
    out["bakeoff"] = bake.to_dict()
    return out


def _check_ids(a: Mapping[str, Any], b: Mapping[str, Any], a_name: str, b_name: str) -> None:
    if a.keys() == b.keys():
        return
    only_a = sorted(map(str, a.keys() - b.keys()))
    only_b = sorted(map(str, b.keys() - a.keys()))
    parts = []
    if only_a:
        parts.append(f"{len(only_a)} only in the {a_name} ({', '.join(only_a[:5])}{', …' if len(only_a) > 5 else ''})")
    if only_b:
        parts.append(f"{len(only_b)} only in the {b_name} ({', '.join(only_b[:5])}{', …' if len(only_b) > 5 else ''})")
    raise BakeOffError("the base and the result must be scored on the same held-out examples; example ids "
                       "differ: " + "; ".join(parts))


def _number(value: Any, key: str, side: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BakeOffError(f"{side} score of example {key!r} is {value!r}, not a finite number")
    return float(value)


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided sign-test p-value of ``wins`` against ``losses`` (1.0 when none differ)."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(wins, losses) + 1))
    return min(1.0, 2 * tail / 2 ** n)


def _quantile(ordered: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile of sorted values (numpy's default)."""
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _fmt(value: float, spec: MetricSpec) -> str:
    if spec.kind == "perplexity" or spec.key == "loss":
        size = abs(value)
        return f"{value:.0f}" if size >= 100 else f"{value:.1f}" if size >= 10 else f"{value:.2f}"
    return f"{value:.2f}"


def _signed(value: float, spec: MetricSpec) -> str:
    text = _fmt(value, spec)
    return text if text.startswith("-") else "+" + text


def _sentence(b: BakeOff, spec: MetricSpec) -> str:
    numbers = (f"{spec.name} {_fmt(b.before, spec)} → {_fmt(b.after, spec)}, {_signed(b.difference, spec)} "
               f"[{_fmt(b.interval[0], spec)}, {_fmt(b.interval[1], spec)}]")
    who = b.method[:1].upper() + b.method[1:]
    if b.verdict == "better":
        return f"{who} beats the base on {b.wins} of {b.examples} {b.unit}: {numbers}"
    if b.verdict == "worse":
        return (f"{who} is worse than the base on {b.examples} {b.unit}: {numbers}; "
                f"it lost on {b.losses} and won on {b.wins}")
    lo, hi = b.interval
    if lo <= 0 <= hi:
        why = f"the interval includes 0 ({b.wins} won, {b.ties} tied, {b.losses} lost)"
    elif b.improved_on_average and b.losses >= b.wins:
        why = f"the average improved, but {b.losses} examples got worse and only {b.wins} improved"
    elif not b.improved_on_average and b.wins >= b.losses:
        why = f"the average got worse, but {b.wins} examples improved and {b.losses} got worse"
    else:
        why = (f"too few examples changed to be sure: {b.wins} improved, {b.losses} got worse "
               f"(sign test p = {b.sign_test_p:.2g})")
    return f"{who} is not better than the base on {b.examples} {b.unit}: {numbers}; {why}"


def _with_reason(sentence: str, reasons: Sequence[Reason]) -> str:
    if not reasons:
        return sentence
    top = reasons[0]
    return f"{sentence}. Most likely {top.reason}; {top.change}."


def bake_off(base: Mapping[str, float], result: Mapping[str, float], metric: str, *,
             higher_is_better: bool | None = None, weights: Mapping[str, float] | None = None,
             method: str = "the result", unit: str = "held-out examples", resamples: int = RESAMPLES,
             seed: int = 0, confidence: float = 0.95, facts: RunFacts | None = None,
             classification: LabelBreakdown | None = None) -> BakeOff:
    """Compare per-example scores of the base and the result on the same held-out examples (same ids).

    Scores are per example: 0/1 for accuracy and exact match, F1 for ROUGE-L, the judge's reward of
    each model's answer for ``win_rate``, and the mean token loss (nats) for ``perplexity`` (weighted
    by ``weights``, the target tokens, when given; perplexity is exp of the weighted mean loss).

    The interval is a paired percentile bootstrap of the difference (``resamples`` draws of the
    examples with replacement, ``random.Random(seed)``). ``significant`` needs the interval to exclude
    0 *and* the exact sign test of wins against losses to agree (p < 0.05, same direction): percentile
    intervals are too narrow on small samples (3 wins out of 3 give the interval [1, 1]), and the sign
    test is exact at any size. ``facts`` adds the likely reasons when the result is not better.
    """
    spec = metric_spec(metric, higher_is_better)
    if not base and not result:
        raise BakeOffError(f"no held-out examples to compare on {spec.name}: the bake-off needs each "
                           "example scored for both the base and the result")
    _check_ids(base, result, "base scores", "result scores")
    if resamples < 1:
        raise BakeOffError(f"resamples must be at least 1, got {resamples}")
    if not 0 < confidence < 1:
        raise BakeOffError(f"confidence must be between 0 and 1, got {confidence}")
    keys = sorted(base)  # a fixed order, so the seeded bootstrap does not depend on mapping order
    b = [_number(base[k], k, "base") for k in keys]
    a = [_number(result[k], k, "result") for k in keys]
    if weights is not None:
        if spec.kind != "perplexity":
            raise BakeOffError(f"weights apply to perplexity only, not {spec.name}")
        _check_ids(base, weights, "scores", "weights")
        w = [_number(weights[k], k, "weight") for k in keys]
        if any(x <= 0 for x in w):
            raise BakeOffError("weights (target tokens per example) must be positive")
    else:
        w = [1.0] * len(keys)

    n = len(keys)
    wins = ties = losses = 0
    outcomes: list[float] = []
    for x, y in zip(b, a, strict=True):
        if math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12):
            ties += 1
            outcomes.append(0.5)
        elif (y > x) == spec.higher_is_better:
            wins += 1
            outcomes.append(1.0)
        else:
            losses += 1
            outcomes.append(0.0)

    rng = random.Random(seed)
    stats: list[float] = []
    if spec.kind == "perplexity":
        wb = [wi * x for wi, x in zip(w, b, strict=True)]
        wa = [wi * y for wi, y in zip(w, a, strict=True)]
        total_w = math.fsum(w)
        before = math.exp(min(math.fsum(wb) / total_w, 50.0))
        after = math.exp(min(math.fsum(wa) / total_w, 50.0))
        positions = range(n)
        for _ in range(resamples):
            pick = itemgetter(*rng.choices(positions, k=n))
            total = sum(pick(w)) if n > 1 else w[0]
            mean_b = (sum(pick(wb)) if n > 1 else wb[0]) / total
            mean_a = (sum(pick(wa)) if n > 1 else wa[0]) / total
            stats.append(math.exp(min(mean_a, 50.0)) - math.exp(min(mean_b, 50.0)))
    else:
        if spec.kind == "win_rate":
            diffs = [o - 0.5 for o in outcomes]
            before, after = 0.5, sum(outcomes) / n
        else:
            diffs = [y - x for x, y in zip(b, a, strict=True)]
            before, after = math.fsum(b) / n, math.fsum(a) / n
        stats = [sum(rng.choices(diffs, k=n)) / n for _ in range(resamples)]
    stats.sort()
    tail = (1 - confidence) / 2
    low, high = _quantile(stats, tail), _quantile(stats, 1 - tail)
    difference = after - before

    p = sign_test(wins, losses)
    gain = low > 0 if spec.higher_is_better else high < 0
    drop = high < 0 if spec.higher_is_better else low > 0
    if gain and wins > losses and p < SIGN_TEST_ALPHA:
        verdict = "better"
    elif drop and losses > wins and p < SIGN_TEST_ALPHA:
        verdict = "worse"
    else:
        verdict = "not_better"
    draft = BakeOff(spec.key, spec.name, spec.higher_is_better, n, wins, ties, losses, before, after,
                    difference, (low, high), confidence, p, verdict != "not_better", verdict, "",
                    method, unit, resamples, seed, classification)
    reasons = tuple(likely_reasons(facts, draft)) if facts is not None and verdict != "better" else ()
    sentence = _with_reason(_sentence(draft, spec), reasons)
    return dataclasses.replace(draft, sentence=sentence, reasons=reasons)


def classification_bake_off(golds: Mapping[str, str], base_answers: Mapping[str, str],
                            result_answers: Mapping[str, str], labels: Sequence[str],
                            **options: Any) -> BakeOff:
    """Accuracy bake-off of generated answers against gold labels, with per-label counts and confusions.

    ``options`` go to :func:`bake_off` (``method``, ``unit``, ``seed``, ``facts``, …).
    """
    breakdown = label_breakdown(golds, base_answers, result_answers, labels)
    return bake_off(accuracy_scores(golds, base_answers), accuracy_scores(golds, result_answers), "accuracy",
                    classification=breakdown, **options)
