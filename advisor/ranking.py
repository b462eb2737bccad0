"""Ranking: every registered method scores the profile and quotes it; cost rules and plugins adjust; combine.

Steps, each visible in the result:

1. every method's ``fit`` (its own rules) and ``estimate`` on the user's hardware, through the plugin
   host, so third-party methods are ranked like built-in ones; a method that raises is listed last
   with the error rather than breaking the ranking;
2. the cost rules in :data:`COST_RULES` apply to every method alike (over budget, does not fit in
   memory, longer than the calendar allows);
3. methods that need no training win when they suffice (:data:`SUFFICIENT_SCORE`, no blockers);
4. ``tunewise_adjust_recommendations`` plugins may re-rank or annotate;
5. :data:`COMBINATIONS` suggest hybrids (RAG for facts + LoRA for format …).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from tunewise.plugins.types import Fit, Hardware, Profile, Quote, to_jsonable

NO_TRAINING_METHODS = frozenset({"rag", "in_context"})
"""Built-in methods that adapt nothing; a third-party method says so with ``needs_training = False``."""
SUFFICIENT_SCORE = 0.7
"""A no-training method scoring at least this (and unblocked) is ranked first: it suffices."""
USABLE_SCORE = 0.3
"""Methods below this, or blocked, are not suggested in combinations."""


@dataclass(frozen=True)
class Recommendation:
    """One method's place in the ranking."""

    method: str
    title: str
    rank: int
    score: float
    """After cost rules (0..1); ``fit_score`` is the method's own."""
    fit_score: float
    reasons: tuple[str, ...]
    blockers: tuple[str, ...]
    quote: Quote | None
    needs_training: bool = True
    error: str | None = None
    """Why the method could not score or quote (a plugin that raised)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method, "title": self.title, "rank": self.rank, "score": self.score,
            "fit_score": self.fit_score, "reasons": list(self.reasons), "blockers": list(self.blockers),
            "needs_training": self.needs_training,
            "quote": json_safe(self.quote.to_dict()) if self.quote is not None else None,
        }
        if self.error:
            out["error"] = self.error
        return out


@dataclass(frozen=True)
class Combination:
    methods: tuple[str, ...]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"methods": list(self.methods), "reason": self.reason}


@dataclass(frozen=True)
class Ranking:
    """The whole advice: all methods best first, hybrids, and what was assumed."""

    profile: Profile
    hardware: Hardware
    recommendations: tuple[Recommendation, ...]
    combine: tuple[Combination, ...] = ()
    assumptions: Mapping[str, Any] = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    @property
    def top(self) -> Recommendation:
        return self.recommendations[0]

    def get(self, method: str) -> Recommendation:
        return next(r for r in self.recommendations if r.method == method)

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``tunewise recommend --format json``."""
        return {
            "recommendations": [r.to_dict() for r in self.recommendations],
            "combine": [c.to_dict() for c in self.combine],
            "assumptions": to_jsonable(dict(self.assumptions)),
            "problems": list(self.problems),
        }


def json_safe(value: Any) -> Any:
    """JSON has no infinity: unbounded figures become None."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


# -- cost rules ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CostRule:
    """A rule on a method's quote that applies to every method: score change, reason, or blocker."""

    id: str
    applies: Callable[[Profile, Quote, Hardware], bool]
    effect: float
    reason: Callable[[Profile, Quote, Hardware], str]
    blocker: bool = False


def _money(low: float, high: float) -> str:
    def one(x: float) -> str:
        return f"${x:,.0f}" if x >= 100 else f"${x:,.2f}"
    return one(low) if abs(high - low) < 0.005 else f"{one(low)}–{one(high)}"


def _days(hours: float) -> str:
    return f"{hours:.1f} hours" if hours < 48 else f"{hours / 24:.1f} days"


def _first_fix(quote: Quote) -> str | None:
    """The first fix that is enough on its own (fixes marked "still too much" are not)."""
    return next((f for f in quote.fixes if "still too much" not in f), None)


COST_RULES: tuple[CostRule, ...] = (
    CostRule("over-budget", lambda p, q, hw: q.usd_low > p.budget.usd, 0.0,
             lambda p, q, hw: f"compute alone costs {_money(q.usd_low, q.usd_high)}, over your "
                              f"${p.budget.usd:,.0f} budget", blocker=True),
    CostRule("maybe-over-budget", lambda p, q, hw: q.usd_low <= p.budget.usd < q.usd_high, -0.1,
             lambda p, q, hw: f"compute costs {_money(q.usd_low, q.usd_high)}: the high end exceeds your "
                              f"${p.budget.usd:,.0f} budget"),
    CostRule("within-budget", lambda p, q, hw: q.usd_high <= p.budget.usd and q.usd_high > 0, 0.05,
             lambda p, q, hw: f"compute costs {_money(q.usd_low, q.usd_high)}, within your "
                              f"${p.budget.usd:,.0f} budget"),
    CostRule("does-not-fit", lambda p, q, hw: not q.fits, -0.25,
             lambda p, q, hw: f"needs {q.peak_memory_gb:.1f} GB per device, more than the {hw.memory_gb:g} GB "
                              f"of your {hw.name}" + (f"; would fit with {_first_fix(q)}" if _first_fix(q) else "")),
    CostRule("too-slow", lambda p, q, hw: q.wall_hours / 24 > p.budget.days, 0.0,
             lambda p, q, hw: f"compute alone takes {_days(q.wall_hours)} on {p.hardware.gpus}× {hw.name}, "
                              f"more than your {p.budget.days:g} days", blocker=True),
)


def apply_cost_rules(fit: Fit, quote: Quote | None, profile: Profile, hardware: Hardware,
                     rules: Sequence[CostRule] = COST_RULES) -> Fit:
    """``fit`` with the cost rules' score changes, reasons and blockers added."""
    if quote is None:
        return fit
    score, reasons, blockers = fit.score, list(fit.reasons), list(fit.blockers)
    for rule in rules:
        if not rule.applies(profile, quote, hardware):
            continue
        if rule.blocker:
            blockers.append(rule.reason(profile, quote, hardware))
        else:
            score += rule.effect
            reasons.append(rule.reason(profile, quote, hardware))
    score = min(1.0, max(0.0, score))
    if blockers:
        score = min(score, 0.1)
    return replace(fit, score=round(score, 3), reasons=tuple(reasons), blockers=tuple(blockers))


# -- combinations --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CombinationRule:
    methods: tuple[str, ...]
    applies: Callable[[Profile], bool]
    reason: Callable[[Profile], str]


def _goals(p: Profile, *names: str) -> list[str]:
    return [g for g in p.goals if g in names]


COMBINATIONS: tuple[CombinationRule, ...] = (
    CombinationRule(
        ("rag", "lora"),
        lambda p: "knowledge" in p.goals and bool(_goals(p, "format", "style", "task", "domain")),
        lambda p: f"RAG for the facts from your {p.data.documents:,} documents + LoRA on your "
                  f"{p.data.labeled_examples:,} examples for {', '.join(_goals(p, 'format', 'style', 'task', 'domain'))}"),
    CombinationRule(
        ("rag", "in_context"),
        lambda p: "knowledge" in p.goals and bool(_goals(p, "format", "style", "task")),
        lambda p: "RAG for the facts, with a few of your examples in the prompt to show the "
                  f"{', '.join(_goals(p, 'format', 'style', 'task'))} — no training at all"),
    CombinationRule(
        ("continual_pretraining", "lora"),
        lambda p: True,
        lambda p: f"continual pretraining on your {p.data.unlabeled_tokens:,} tokens for fluency, then LoRA on "
                  f"your {p.data.labeled_examples:,} examples to restore instruction following"),
    CombinationRule(
        ("lora", "rlhf"),
        lambda p: True,
        lambda p: f"fine-tune (LoRA) on your {p.data.labeled_examples:,} examples first, then DPO — or the full "
                  f"RLHF loop — on your {p.data.preference_pairs:,} preference judgements"),
    CombinationRule(
        ("rag", "rlhf"),
        lambda p: "knowledge" in p.goals,
        lambda p: "RAG for the facts; preference training for the quality of the answers people judge"),
)
"""Hybrids worth suggesting when every method in them is usable (unblocked, score ≥ USABLE_SCORE)."""


def suggest_combinations(profile: Profile, fits: Mapping[str, Fit],
                         rules: Sequence[CombinationRule] = COMBINATIONS) -> list[Combination]:
    def usable(method: str) -> bool:
        fit = fits.get(method)
        return fit is not None and not fit.blockers and fit.score >= USABLE_SCORE

    return [Combination(rule.methods, rule.reason(profile)) for rule in rules
            if all(usable(m) for m in rule.methods) and rule.applies(profile)]


# -- ranking -------------------------------------------------------------------------------------------


def _assess(cls: Any, profile: Profile) -> tuple[Any, Fit]:
    """A method instance and its fit for (a private copy of) ``profile``; a wrong result raises TypeError."""
    import copy
    import math

    method = cls()
    fit = method.fit(copy.deepcopy(profile))
    if not isinstance(fit, Fit):
        raise TypeError(f"fit returned {type(fit).__name__}, not Fit")
    if not isinstance(fit.score, (int, float)) or isinstance(fit.score, bool) or not math.isfinite(fit.score):
        raise TypeError(f"fit returned score {fit.score!r}, not a finite number")
    return method, fit


def _quote(method: Any, profile: Profile, hardware: Hardware) -> Quote:
    import copy

    quote = method.estimate(copy.deepcopy(profile), copy.deepcopy(hardware))
    if not isinstance(quote, Quote):
        raise TypeError(f"estimate returned {type(quote).__name__}, not Quote")
    return quote


def _needs_training(method_id: str, cls: Any) -> bool:
    flag = getattr(cls, "needs_training", None)
    return bool(flag) if flag is not None else method_id not in NO_TRAINING_METHODS


TIE_RULE = ("equal scores (as shown, to two decimals) are ordered by: no training first; then the higher score "
            "from the method's own rules (how well it suits your goals and data, before costs); then the lower "
            "high-end cost; then the method id, alphabetically")
"""How ties are broken, stated in the ranking's assumptions and in the reasons of every tied method."""


def _tie_key(fit: Fit, trains: Mapping[str, bool], own: Mapping[str, float],
             cost: Mapping[str, float]) -> tuple[int, float, float, str]:
    return (1 if trains.get(fit.method, True) else 0, -round(own.get(fit.method, fit.score), 3),
            cost.get(fit.method, float("inf")), fit.method)


def order(fits: Sequence[Fit], needs_training: Mapping[str, bool], failed: frozenset[str] = frozenset(),
          own: Mapping[str, float] | None = None, cost: Mapping[str, float] | None = None) -> list[Fit]:
    """Best first: sufficient no-training methods, then by score (shown to two decimals), ties by
    :data:`TIE_RULE` (``own``: each method's own-rules score, ``cost``: its quote's high-end dollars);
    methods that failed to score or quote (``failed``) last."""
    own, cost = own or {}, cost or {}

    def key(fit: Fit) -> tuple[int, float, tuple[int, float, float, str]]:
        trains = needs_training.get(fit.method, True)
        sufficient = not trains and not fit.blockers and fit.score >= SUFFICIENT_SCORE
        group = 2 if fit.method in failed else (0 if sufficient else 1)
        return (group, -round(fit.score, 2), _tie_key(fit, needs_training, own, cost))

    return sorted(fits, key=key)


def tie_reasons(ranked: Sequence[Fit], needs_training: Mapping[str, bool], own: Mapping[str, float],
                cost: Mapping[str, float], titles: Mapping[str, str]) -> dict[str, str]:
    """For each method whose shown score equals a neighbour's: the sentence saying which tie rule placed it."""
    out: dict[str, str] = {}
    for above, below in itertools.pairwise(ranked):
        if round(above.score, 2) != round(below.score, 2) or above.blockers or below.blockers:
            continue  # blocked methods sit at the bottom in the same order, without a sentence each
        a, b = _tie_key(above, needs_training, own, cost), _tie_key(below, needs_training, own, cost)
        if a[0] != b[0]:
            why = f"{titles.get(above.method, above.method)} needs no training"
        elif a[1] != b[1]:
            why = (f"its own rules scored {titles.get(above.method, above.method)} higher "
                   f"({-a[1]:.2f} vs {-b[1]:.2f}) before costs")
        elif a[2] != b[2]:
            why = (f"{titles.get(above.method, above.method)} costs less (up to ${a[2]:,.2f} vs "
                   f"${b[2]:,.2f})" if b[2] != float("inf") else
                   f"{titles.get(above.method, above.method)} has a quote")
        else:
            why = "everything else equal: by method id, alphabetically"
        tie = f"tied at {above.score:.2f} with"
        for method, text in ((above.method, f"{tie} {titles.get(below.method, below.method)}, ranked above it: {why}"),
                             (below.method, f"{tie} {titles.get(above.method, above.method)}, ranked below it: {why}")):
            out[method] = f"{out[method]}; {text}" if method in out else text
    return out


def rank(profile: Profile, hardware: Hardware | None = None) -> Ranking:
    """Score, quote and rank every registered method for ``profile`` (hardware: the profile's GPU)."""
    from tunewise.advisor.hardware import find_hardware
    from tunewise.plugins.manager import get_host

    host = get_host()
    hw = hardware or find_hardware(profile.hardware.gpu)
    problems: list[str] = []
    fits: dict[str, Fit] = {}
    own: dict[str, float] = {}
    quotes: dict[str, Quote | None] = {}
    errors: dict[str, str] = {}
    titles: dict[str, str] = {}
    trains: dict[str, bool] = {}
    for method_id, cls in host.methods.items():
        titles[method_id] = str(getattr(cls, "title", method_id))
        trains[method_id] = _needs_training(method_id, cls)
        # Method code runs isolated like a hook: a fit or estimate that raises anything (sys.exit
        # included) or hangs is this method's error, never the ranking's.
        outcome = host.run_method_code(method_id, functools.partial(_assess, cls, profile))
        if not outcome.ok:
            errors[method_id] = outcome.problem
            problems.append(f"method {method_id!r}: fit failed: {errors[method_id]}")
            fits[method_id] = Fit(method_id, 0.0, (), (f"could not be assessed: {errors[method_id]}",))
            own[method_id] = 0.0
            quotes[method_id] = None
            continue
        method, fit = outcome.value
        own[method_id] = fit.score
        outcome = host.run_method_code(method_id, functools.partial(_quote, method, profile, hw))
        quote = outcome.value if outcome.ok else None
        if not outcome.ok:
            errors[method_id] = outcome.problem
            problems.append(f"method {method_id!r}: estimate failed: {errors[method_id]}")
        quotes[method_id] = quote
        fits[method_id] = apply_cost_rules(fit, quote, profile, hw)
    cost = {m: q.usd_high for m, q in quotes.items() if q is not None}
    ranked = order(list(fits.values()), trains, frozenset(errors), own, cost)
    ties = tie_reasons([f for f in ranked if f.method not in errors], trains, own, cost, titles)
    for fit in ranked:
        extra: tuple[str, ...] = (ties[fit.method],) if fit.method in ties else ()
        if not trains[fit.method] and not fit.blockers and fit.score >= SUFFICIENT_SCORE:
            extra += ("no training needed: this suffices for your goals, so it comes first",)
        if extra:
            fits[fit.method] = replace(fit, reasons=(*fit.reasons, *extra))
    ranked = [fits[f.method] for f in ranked]
    ranked = _adjust(host, profile, ranked, problems)
    recommendations = tuple(
        Recommendation(method=f.method, title=titles.get(f.method, f.method), rank=i + 1, score=f.score,
                       fit_score=own.get(f.method, 0.0), reasons=f.reasons, blockers=f.blockers,
                       quote=quotes.get(f.method), needs_training=trains.get(f.method, True),
                       error=errors.get(f.method))
        for i, f in enumerate(ranked)
    )
    combine = suggest_combinations(profile, {f.method: f for f in ranked})
    sample = next((q for q in quotes.values() if q is not None), None)
    assumptions: dict[str, Any] = {
        "hardware": f"{profile.hardware.gpus}× {hw.name} ({hw.peak_tflops:g} TFLOP/s, {hw.memory_gb:g} GB, "
                    f"${hw.usd_per_hour_low:g}–{hw.usd_per_hour_high:g}/h; {hw.source})",
        "model": sample.assumptions.get("model_shape", "") if sample else "",
        "data": (f"audited from {profile.data.path}" if profile.data.avg_tokens_per_example is not None
                 else "counts from the answers"),
        "scores": "each method's own rules, then the cost rules (budget, memory, calendar) for all methods",
        "no_training_first": f"RAG / in-context scoring ≥ {SUFFICIENT_SCORE} without blockers rank first",
        "ties": TIE_RULE,
        "calibrated_methods": sorted(hw.calibration) if hw.calibration else [],
    }
    return Ranking(profile, hw, recommendations, tuple(combine), assumptions, tuple(problems))


def _adjust(host: Any, profile: Profile, ranked: list[Fit], problems: list[str]) -> list[Fit]:
    """Pass the ranking through each ``tunewise_adjust_recommendations`` implementation in turn."""
    hook = "tunewise_adjust_recommendations"
    caller = getattr(host.pm.hook, hook)
    for impl in reversed(caller.get_hookimpls()):
        ok, result = host._call_one(impl, hook, {"profile": profile, "ranking": list(ranked)})
        if not ok:
            last = next((f for f in reversed(host.failures) if (f.plugin, f.hook) == (impl.plugin_name, hook)), None)
            why = {"hook": "raised", "timeout": "did not return in time", "invalid": "returned an invalid result"}
            detail = f"{why.get(last.stage, 'failed')}: {last.error}" if last is not None else "failed"
            problems.append(f"plugin {impl.plugin_name!r}: {hook} {detail}; its adjustment is ignored")
            continue
        if result is None:
            continue
        if not isinstance(result, list) or not all(isinstance(f, Fit) for f in result):
            problems.append(f"plugin {impl.plugin_name!r}: {hook} returned {type(result).__name__}, "
                            "not a list of Fit; ignored")
            continue
        known = {f.method for f in ranked}
        returned = [f for f in result if f.method in known]
        dropped = [f for f in ranked if f.method not in {r.method for r in returned}]
        if dropped:
            problems.append(f"plugin {impl.plugin_name!r}: {hook} dropped "
                            f"{', '.join(f.method for f in dropped)}; kept at the end (all methods are shown)")
        ranked = returned + dropped
    return ranked
