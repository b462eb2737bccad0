"""Grounded extractive answers: the retrieved passages' sentences that best answer the question.

Used when the generator gives no usable citations (small models rarely do): the answer is then made
of sentences quoted from the passages given, each followed by its passage number, so every answer is
checkable against its sources. Sentences are ranked by the index's own embedder (cosine to the
question) plus a small bonus for sharing the question's keywords (names like ``__debug__`` that an
embedding blurs).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tunewise.methods.rag.keyword_index import keyword_tokens

MAX_SENTENCES = 3
MAX_CHARS = 400
"""Length budget of an extractive answer (about three sentences of prose)."""
KEYWORD_WEIGHT = 0.2
"""Bonus for a sentence holding every keyword of the question (cosine similarities span about 0-0.8)."""
CLOSE_TO_BEST = 0.75
"""A second or third sentence is quoted only if it scores at least this share of the best one."""
MIN_WORDS = 3
"""Shorter fragments (rules, stray symbols, list bullets) say nothing on their own."""

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)|(?<=[。！？])\s*(?=\S)")
_WORD = re.compile(r"\w+", re.UNICODE)
_UNSPACED = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]")
_UNDERLINE = re.compile(r"^[=\-*~^#_+]{3,}$")
_NO_END = re.compile(r"(?:^|\s)(?:\(?(?:\d{1,3}|[a-zA-Z]|[ivxIVX]{1,4})[.)]|e\.g\.|i\.e\.|cf\.|vs\.)$", re.IGNORECASE)
"""A piece ending like this did not end a sentence: a list enumerator ("1.", "(a)") or an abbreviation."""


@dataclass(frozen=True)
class Quote:
    """A sentence quoted from passage ``number`` (whitespace collapsed, otherwise verbatim)."""

    number: int
    text: str


def _word_count(text: str) -> int:
    """Words, counting each Chinese or Japanese character as one (those scripts do not space words)."""
    return sum(len(_UNSPACED.findall(word)) or 1 for word in _WORD.findall(text))


def _is_rule(line: str) -> bool:
    return bool(line) and not any(ch.isalnum() for ch in line)


def _blocks(text: str, title: str) -> list[tuple[int, list[str]] | None]:
    """Paragraphs as (indent, stripped lines); None where a heading or rule separates them."""
    lines = text.splitlines()
    blocks: list[tuple[int, list[str]] | None] = []
    current: list[str] = []
    indent = 0
    title = " ".join(title.split())

    def flush() -> None:
        nonlocal current
        if current:
            blocks.append((indent, current))
        current = []

    for i, raw in enumerate(lines):
        line = raw.strip()
        following = lines[i + 1].strip() if i + 1 < len(lines) else ""
        heading = line.startswith("#") or (bool(title) and " ".join(line.split()) == title) or \
            bool(_UNDERLINE.match(following))
        if heading or _is_rule(line):
            flush()
            blocks.append(None)
        elif not line:
            flush()
        else:
            if not current:
                indent = len(raw) - len(raw.lstrip())
            current.append(line)
    flush()
    return blocks


def split_sentences(text: str, title: str = "") -> list[str]:
    """Sentences of a passage, whitespace collapsed; headings, rules and tiny fragments left out.

    Paragraphs end at blank lines, rules and headings (a line equal to the document title, a
    markdown ``#`` line, or a line underlined with ``===``/``***``), so a heading never starts a
    sentence. A paragraph whose last sentence is unfinished (ends with ``:``, or without ``.!?``
    before a more indented paragraph: a term before its definition, "is equivalent to" before
    code) is joined to the next paragraph's first sentence, so the quote carries what it introduces.
    Sentences stay whitespace-collapsed slices of the text, so they can be found in it again.
    """
    pieces: list[list[str]] = []
    indents: list[int | None] = []
    for block in _blocks(text, title):
        if block is None:
            pieces.append([])
            indents.append(None)
            continue
        indent, lines = block
        flat = " ".join(" ".join(lines).split())
        sentences: list[str] = []
        for piece in (p.strip() for p in _SENTENCE_END.split(flat)):
            if sentences and _NO_END.search(sentences[-1]):
                sentences[-1] = f"{sentences[-1]} {piece}"
            elif piece:
                sentences.append(piece)
        pieces.append(sentences)
        indents.append(indent)
    for i in range(len(pieces) - 1):
        here, there = pieces[i], pieces[i + 1]
        indent_here, indent_there = indents[i], indents[i + 1]
        if not here or not there or indent_here is None or indent_there is None:
            continue
        last = here[-1]
        if last.endswith(":") or (not last.endswith((".", "!", "?", "。", "！", "？")) and indent_there > indent_here):
            here[-1] = f"{last} {there.pop(0)}"
    return [p for block in pieces for p in block if _word_count(p) >= MIN_WORDS]


def keyword_overlap(question: str, sentence: str) -> float:
    """Share of the question's keywords that the sentence contains (0 when the question has none)."""
    wanted = set(keyword_tokens(question))
    if not wanted:
        return 0.0
    return len(wanted & set(keyword_tokens(sentence))) / len(wanted)


def _clip(text: str, limit: int) -> str:
    """``text`` cut at a word boundary to at most ``limit`` characters (a prefix, so still a quote)."""
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] if " " in text[:limit] else text[:limit]
    return cut.rstrip()


def _cut_ends(text: str, sentences: list[str]) -> set[str]:
    """The passage's first and last sentences when the chunk boundary cut them (mid-sentence start or end)."""
    flat = " ".join(text.split())
    cut = set()
    first, last = sentences[0], sentences[-1]
    if flat.startswith(first) and first[:1].islower():
        cut.add(first)
    if flat.endswith(last) and not last.endswith((".", "!", "?", "。", "！", "？", ":", ")", '"', "'")):
        cut.add(last)
    return cut


def pick_sentences(question: str, question_vector: Any, passages: Sequence[tuple[int, str, str]],
                   encode: Callable[[list[str]], Any], *, max_sentences: int = MAX_SENTENCES,
                   max_chars: int = MAX_CHARS) -> list[Quote]:
    """The best 1-``max_sentences`` sentences of ``passages`` (number, text, title) within ``max_chars``.

    ``encode`` maps sentences to unit vectors of the same model as ``question_vector``. The best
    sentence is always quoted (cut to the budget if it alone is longer); others follow, best first,
    while they score close to the best one and fit the budget. A sentence found in several
    overlapping passages is quoted once, from the first, and one cut short by a chunk boundary gives
    way to its whole.
    """
    import numpy as np

    found: list[Quote] = []
    seen: set[str] = set()
    cut: set[str] = set()
    for number, text, title in passages:
        sentences = split_sentences(text, title)
        for sentence in sentences:
            if sentence not in seen:
                seen.add(sentence)
                found.append(Quote(number, sentence))
        if sentences:
            cut |= _cut_ends(text, sentences)
    # Overlapping chunks cut sentences short: a piece of a longer candidate is left out for the whole.
    candidates = [q for q in found if not any(q.text in other.text and q.text != other.text for other in found)]
    if not candidates:
        return []
    vectors = np.asarray(encode([c.text for c in candidates]), dtype="float32")
    query = np.asarray(question_vector, dtype="float32").reshape(-1)
    scores = [float(v @ query) + KEYWORD_WEIGHT * keyword_overlap(question, c.text)
              for v, c in zip(vectors, candidates, strict=True)]
    ranked = sorted(range(len(candidates)), key=lambda i: (-scores[i], i))
    best = candidates[ranked[0]]
    floor = CLOSE_TO_BEST * scores[ranked[0]] if scores[ranked[0]] > 0 else float("inf")
    picked = [Quote(best.number, _clip(best.text, max_chars))]
    used = len(picked[0].text)
    for i in ranked[1:]:
        if len(picked) >= max_sentences or scores[i] < floor:
            break
        # A piece cut off by the chunk boundary may stand alone as the best match, never as an extra.
        if candidates[i].text not in cut and used + 1 + len(candidates[i].text) <= max_chars:
            picked.append(candidates[i])
            used += 1 + len(candidates[i].text)
    return picked


def compose(quotes: Sequence[Quote]) -> str:
    """The answer text: each quoted sentence followed by its passage number, like ``… [2]``."""
    return " ".join(f"{q.text} [{q.number}]" for q in quotes)
