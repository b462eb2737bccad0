"""The quote detail pane (Recommendations screen) and `tunewise estimate`: every figure in words with its unit,
no raw keys, no e-notation, only the comparisons that apply, and the score explained."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

import pytest
from rich.console import Console
from tunewise.advisor.answers import load_answers, parse_answers
from tunewise.advisor.ranking import rank
from tunewise.advisor.report_render import number, operations, quote_detail, quote_tables
from tunewise.advisor.tui.screens.recommendations import detail_renderable
from tunewise.plugins import hookimpl, manager
from tunewise.plugins.manager import PluginHost
from tunewise.plugins.types import Fit, Quote

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "answers"
E_NOTATION = re.compile(r"\d[eE][+-]?\d")
RAW_UNITS = re.compile(r"\d(\.\d+)?[kMG] (FLOPs|GPU)|\b\d+\.\d[kMG]\b")
"""'44763080.1G FLOPs', '8.0G': the old compact figures without words."""


@pytest.fixture(autouse=True)
def builtin_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manager, "_HOST", PluginHost(load_entry_points=False))


def pane(rec: Any, ranking: Any) -> str:
    """The detail pane's text as the app draws it, 80 columns wide."""
    console = Console(width=80, record=True, color_system=None, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(detail_renderable(rec, "", ranking.hardware, ranking.profile))
    return console.export_text()


def raw_keys(quote: Quote) -> list[str]:
    """Keys of the quote's own mappings written with underscores (what a reader must never see)."""
    keys = [*quote.per_query, *quote.assumptions, *quote.memory_breakdown_gb, *quote.human_time, *quote.stages,
            *quote.alternatives]
    for figures in (*quote.stages.values(), *quote.alternatives.values()):
        keys += list(figures)
    return sorted({k for k in keys if "_" in k})


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_every_pane_of_every_example_is_words_and_units(example: str) -> None:
    ranking = rank(load_answers(EXAMPLES / example))
    for rec in ranking.recommendations:
        text = pane(rec, ranking)
        assert rec.quote is not None
        leaked = [k for k in raw_keys(rec.quote) if re.search(rf"(?<![\w.]){re.escape(k)}(?![\w])", text)]
        assert not leaked, (example, rec.method, leaked)
        assert not E_NOTATION.search(text), (example, rec.method, E_NOTATION.search(text))
        assert not RAW_UNITS.search(text), (example, rec.method, RAW_UNITS.search(text))
        assert "GB per device" in text and "fit" in text
        assert f"the {ranking.hardware.memory_gb:g} GB of one {ranking.hardware.name}" in text
        if rec.quote.per_query:  # inference methods: dollars per 1,000 queries and per day, nothing trained
            assert "per 1,000 queries" in text and "a day" in text and "nothing is trained" in text
            assert "GPU-hours" not in text.split("Per query")[0]
        else:
            assert re.search(r"[\d.,]+ GPU-hours|\d+ (s|min) of GPU time", text), text
            assert "floating-point operations" in text and "wall-clock" in text
        assert all(len(line) <= 80 for line in text.splitlines())


def test_break_even_against_fine_tuning_only_when_there_are_examples_to_fine_tune() -> None:
    base = "goals: [format]\nhardware: {gpu: L4}\nqueries_per_day: 20000\n"
    without = rank(parse_answers(base))
    with_examples = rank(parse_answers(base + "data: {labeled_examples: 400}\n"))
    for method in ("in_context",):
        quote = without.get(method).quote
        assert quote is not None and "breakeven_days_low" in quote.per_query  # the estimator computes it anyway
        assert "LoRA fine-tune" not in " ".join(pane(without.get(method), without).split())
        text = " ".join(pane(with_examples.get(method), with_examples).split())
        assert re.search(r"after [\d.–]+ days of queries, one LoRA fine-tune on your labeled examples", text), text


def test_the_score_says_where_it_came_from() -> None:
    ranking = rank(load_answers(EXAMPLES / "preference-one-gpu.yaml"))
    full = ranking.get("full_finetune")  # does not fit one 80 GB GPU: the cost rules moved its score
    assert abs(full.score - full.fit_score) > 0.005
    text = pane(full, ranking)
    assert (f"score {full.score:.2f} of 1 (its own rules {full.fit_score:.2f}, budget, memory and calendar "
            f"{full.score - full.fit_score:+.2f})") in " ".join(text.split())
    assert "does NOT fit in the 80 GB of one A100-80GB" in text and "What would make it fit" in text
    blocked = next(r for r in ranking.recommendations if r.blockers)
    assert "capped by a blocker" in pane(blocked, ranking)
    rlhf = ranking.get("rlhf")
    text = " ".join(pane(rlhf, ranking).split())
    assert "variant quoted DPO with LoRA adapters" in text and "plan settings config: {algorithm: dpo, lora: true}" in text
    assert "DPO, every weight trained" in text and "(does not fit)" in text  # the variant that did not fit, said


def test_words_for_numbers() -> None:
    assert number(8e9) == "8.0 billion" and number(42_000_000) == "42.0 million" and number(1234) == "1,234"
    assert number(6.291e-05) == "0.0000629" and number(3e20) == "3.0 × 10²⁰"
    assert operations(2.06e19) == "2.1 × 10¹⁹ floating-point operations" and operations(0) == "none"
    assert operations(9.97e21).startswith("1.0 × 10²²")


class OddQuotes:
    """A third-party method whose quote uses keys tunewise has never seen, and an alternative without figures."""

    id: ClassVar[str] = "odd"
    title: ClassVar[str] = "Odd method"
    summary: ClassVar[str] = "A method with its own quote keys."
    config_class: ClassVar[Any] = None

    def fit(self, profile: Any) -> Fit:
        return Fit(self.id, 0.5, ("it says so",))

    def estimate(self, profile: Any, hardware: Any) -> Quote:
        return Quote(self.id, 3.3e18, 2.0, 0.25, 4.0, 7.0, 12.0, True, memory_breakdown_gb={"soft_prompts": 0.5},
                     assumptions={"warmup_steps": 200, "tiny_rate": 2.5e-7, "huge_count": 4.4e25, "uses_cache": True},
                     alternatives={"cheap_way": {"note": "no figures at all"}})

    def run(self, plan: Any, events: Any) -> Any:
        raise NotImplementedError


class Register:
    @hookimpl
    def tunewise_register_methods(self, register: Any) -> None:
        register(OddQuotes)


def test_third_party_keys_are_written_in_words(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manager, "_HOST", PluginHost(load_entry_points=False, extra_plugins=(("odd", Register()),)))
    ranking = rank(parse_answers("goals: [task]\ndata: {labeled_examples: 300}\n"))
    rec = ranking.get("odd")
    text = " ".join(pane(rec, ranking).split())
    for words in ("warmup steps 200", "tiny rate less than 0.000001", "huge count 4.4 × 10²⁵", "uses cache yes",
                  "soft prompts 0.5 GB", "cheap way no figures", "3.3 × 10¹⁸ floating-point operations"):
        assert words in text, (words, text)
    assert not E_NOTATION.search(text) and "_" not in text


def test_estimate_tables_use_the_same_words() -> None:
    ranking = rank(load_answers(EXAMPLES / "helpful-harmless.yaml"))
    quote = ranking.get("rlhf").quote
    assert quote is not None
    console = Console(width=100, record=True, color_system=None, file=open("/dev/null", "w"))  # noqa: SIM115
    for table in quote_tables(quote, "rlhf", ranking.hardware, ranking.profile):
        console.print(table)
    text = console.export_text()
    sections = [title for title, _ in quote_detail(quote, ranking.hardware, ranking.profile)]
    assert sections[1:] == [t for t in ("People and calendar", "Stages, one after another", "Other ways to run it",
                                        "Assumptions") if t in text]
    assert "supervised fine-tuning (SFT)" in text and "GRPO policy training" in text
    assert not [k for k in raw_keys(quote) if re.search(rf"(?<![\w.]){re.escape(k)}(?![\w])", text)]


def test_ranking_table_and_markdown_show_the_break_even_only_when_it_applies() -> None:
    from tunewise.advisor.report_render import ranking_markdown, ranking_table

    base = "goals: [format]\nhardware: {gpu: L4}\nqueries_per_day: 20000\n"
    for answers, expected in ((base, False), (base + "data: {labeled_examples: 400}\n", True)):
        ranking = rank(parse_answers(answers))
        console = Console(width=160, record=True, color_system=None, file=open("/dev/null", "w"))  # noqa: SIM115
        for item in ranking_table(ranking):
            console.print(item)
        assert ("vs LoRA" in console.export_text()) is expected
        assert ("break-even" in ranking_markdown(ranking)) is expected
