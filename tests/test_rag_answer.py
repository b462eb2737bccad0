"""Answers from retrieved chunks: numbered passages map to source + chunk, citations parsed, refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tunewise.methods.rag.answer import NO_ANSWER, Answer, Answerer, Citation, parse_citations, says_no_answer
from tunewise.methods.rag.index import RagIndex, build_index

DOCS = {
    "volcano.txt": "Volcanoes\nA volcano is a rupture in the crust where lava, ash and gases escape. "
                   "Magma that reaches the surface is called lava.",
    "bread.md": "# Baking bread\nBread dough needs flour, water, salt and yeast. Knead it, let it rise, "
                "then bake at a high temperature until the crust is brown.",
    "chess.txt": "Chess\nIn chess the king moves one square in any direction. Castling moves the king two squares "
                 "towards a rook.",
}


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> RagIndex:
    root = tmp_path_factory.mktemp("answer")
    docs = root / "kb"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    built, _ = build_index([docs], root / "index", chunk_tokens=24, overlap_tokens=4)
    return built


@pytest.fixture(scope="module")
def answerer(tiny_model_dir: Path) -> Answerer:
    return Answerer(str(tiny_model_dir), max_new_tokens=6, max_context_tokens=400)


def test_parse_citations() -> None:
    assert parse_citations("Lava [1]. Also [3] and [1, 2].", passages=3) == ((1, 3, 2), ())
    assert parse_citations("See [4] and [0] but not (1).", passages=3) == ((), (4, 0))
    assert parse_citations("no citations", passages=3) == ((), ())


def test_passages_map_to_retrieved_sources_and_chunks(index: RagIndex, answerer: Answerer) -> None:
    question = "What is magma called when it reaches the surface?"
    answer = answerer.answer(index, question, k=3, mode="hybrid", min_relevance=0.0)
    hits = index.search(question, k=3, mode="hybrid")
    assert answer.passages
    assert [p.number for p in answer.passages] == list(range(1, len(answer.passages) + 1))
    assert {(p.source, p.chunk_id) for p in answer.passages} == {(h.chunk.source, h.chunk.chunk_id) for h in hits}
    assert answer.passages[0].source == "kb/volcano.txt"  # the most similar passage is [1]
    assert answer.prompt_tokens > 0 and answer.relevance is not None and answer.relevance > 0.3
    # Whatever the (random) model wrote, every citation it contains resolves to a passage or is flagged.
    cited, unknown = parse_citations(answer.text, len(answer.passages))
    assert answer.cited == cited and answer.unknown_citations == unknown


def test_citations_resolve_to_source_and_chunk() -> None:
    passages = (Citation(1, "kb/volcano.txt", 0, "Volcanoes"), Citation(2, "kb/bread.md", 3, "Baking bread"))
    answer = Answer("q", "Bread needs yeast [2].", passages, cited=(2,))
    assert [(c.source, c.chunk_id) for c in answer.citations] == [("kb/bread.md", 3)]
    rendered = answer.render()
    assert "[2] kb/bread.md (chunk 3)" in rendered
    assert "[1] kb/volcano.txt (chunk 0)  (retrieved, not cited)" in rendered
    assert answer.to_json()["citations"] == [{"number": 2, "source": "kb/bread.md", "chunk_id": 3}]


def test_unrelated_question_says_the_documents_lack_the_answer(index: RagIndex, answerer: Answerer) -> None:
    answer = answerer.answer(index, "Who won the football world cup in 1998?", k=3, min_relevance=0.3)
    assert answer.text == NO_ANSWER and not answer.answered
    assert answer.passages == () and answer.prompt_tokens == 0  # no generation at all
    assert says_no_answer(answer.render())


def test_context_budget_limits_passages(index: RagIndex, answerer: Answerer) -> None:
    hits = index.search("bread and volcano and chess", k=5, mode="bm25")
    small = Answerer(model=answerer.model, tokenizer=answerer.tokenizer, max_context_tokens=30)
    messages, passages = small.context_messages("question?", hits)
    assert len(passages) == 1  # the first passage is clipped to the budget, the rest dropped
    assert len(small.tokenizer(messages[1]["content"].split("\n\nQuestion:")[0])["input_ids"]) <= 40
    _, all_passages = answerer.context_messages("question?", hits)
    assert len(all_passages) == len(hits)


def test_closed_book_has_no_passages(answerer: Answerer) -> None:
    answer: Any = answerer.answer_closed_book("What is lava?")
    assert answer.passages == () and answer.cited == () and answer.prompt_tokens > 0
