"""The RAG index on disk: incremental updates, search modes, and refusing corrupted or mismatched indexes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tunewise.methods.rag.embed import Embedder, bundled_model_dir, resolve_embedding_model
from tunewise.methods.rag.index import (
    MANIFEST,
    EmbeddingMismatchError,
    IndexCorruptError,
    RagIndex,
    RagIndexError,
    build_index,
    reciprocal_rank_fusion,
)

DOCS = {
    "volcano.txt": "Volcanoes\nA volcano is a rupture in the crust where lava, ash and gases escape. "
                   "Magma that reaches the surface is called lava.",
    "bread.md": "# Baking bread\nBread dough needs flour, water, salt and yeast. Knead it, let it rise, "
                "then bake at a high temperature until the crust is brown.",
    "chess.txt": "Chess\nIn chess the king moves one square in any direction. Castling moves the king two squares "
                 "towards a rook.",
}


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(resolve_embedding_model(None), device="cpu")


def write_docs(folder: Path, docs: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_incremental_update_embeds_only_changed_and_added(tmp_path: Path, embedder: Embedder) -> None:
    docs = write_docs(tmp_path / "kb", DOCS)
    index_dir = tmp_path / "index"
    index, report = build_index([docs], index_dir, embedder=embedder, chunk_tokens=24, overlap_tokens=4)
    assert sorted(report.added) == ["kb/bread.md", "kb/chess.txt", "kb/volcano.txt"]
    assert report.chunks_embedded == len(index) > 3
    volcano_ids = json.loads((index_dir / MANIFEST).read_text())["files"]["kb/volcano.txt"]["chunk_ids"]

    # Nothing changed: nothing embedded, nothing rewritten.
    data_dir = json.loads((index_dir / MANIFEST).read_text())["data_dir"]
    _, again = build_index([docs], index_dir, embedder=embedder)
    assert again.chunks_embedded == 0 and len(again.unchanged) == 3
    assert json.loads((index_dir / MANIFEST).read_text())["data_dir"] == data_dir

    (docs / "bread.md").write_text("# Baking bread\nSourdough uses a starter instead of commercial yeast.")
    (docs / "chess.txt").unlink()
    (docs / "tea.txt").write_text("Tea\nGreen tea is steamed or pan-fired soon after picking to stop oxidation.")
    index, report = build_index([docs], index_dir, embedder=embedder)
    assert report.changed == ["kb/bread.md"]
    assert report.added == ["kb/tea.txt"]
    assert report.removed == ["kb/chess.txt"]
    assert report.unchanged == ["kb/volcano.txt"]
    manifest = json.loads((index_dir / MANIFEST).read_text())
    new_chunks = len(manifest["files"]["kb/bread.md"]["chunk_ids"]) + len(manifest["files"]["kb/tea.txt"]["chunk_ids"])
    assert report.chunks_embedded == new_chunks
    assert manifest["files"]["kb/volcano.txt"]["chunk_ids"] == volcano_ids  # untouched file kept its vectors
    assert "kb/chess.txt" not in manifest["files"]
    assert sorted(p.name for p in index_dir.glob("data-*")) == [manifest["data_dir"]]  # old data folder dropped
    assert manifest["chunking"]["chunk_tokens"] == 24  # the index's settings are kept when not given

    index.use_embedder(embedder)
    sources = {hit.chunk.source for mode in ("dense", "bm25", "hybrid")
               for hit in index.search("how does a chess king move", k=10, mode=mode)}
    assert "kb/chess.txt" not in sources
    for mode in ("dense", "bm25", "hybrid"):
        top = index.search("sourdough starter", k=1, mode=mode)[0]
        assert top.chunk.source == "kb/bread.md", mode
        assert "starter" in top.chunk.text
    reopened = RagIndex.open(index_dir)
    assert len(reopened) == len(index)
    assert {c.source for c in reopened.chunks.values()} == {"kb/bread.md", "kb/tea.txt", "kb/volcano.txt"}


def test_search_results_and_modes(tmp_path: Path, embedder: Embedder) -> None:
    index, _ = build_index([write_docs(tmp_path / "kb", DOCS)], tmp_path / "index", embedder=embedder)
    dense = index.search("molten rock erupting from a mountain", k=2, mode="dense")
    assert dense[0].chunk.source == "kb/volcano.txt"
    assert dense[0].score >= dense[1].score
    assert index.search("zzzqqq", k=3, mode="bm25") == []  # no shared keyword, no BM25 result
    hybrid = index.search("knead the dough", k=3, mode="hybrid")
    assert hybrid[0].chunk.source == "kb/bread.md"
    assert set(hybrid[0].to_json()) == {"source", "chunk_id", "score", "text"}
    with pytest.raises(RagIndexError, match="not one of"):
        index.search("x", mode="sparse")


def test_reciprocal_rank_fusion_rewards_agreement() -> None:
    fused = reciprocal_rank_fusion([[(1, 0.9), (2, 0.8), (3, 0.1)], [(2, 9.0), (4, 5.0)]])
    assert [item for item, _ in fused] == [2, 1, 4, 3]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)


def test_corrupted_index_is_refused_not_rebuilt(tmp_path: Path, embedder: Embedder) -> None:
    docs = write_docs(tmp_path / "kb", DOCS)
    index_dir = tmp_path / "index"
    build_index([docs], index_dir, embedder=embedder)
    manifest = json.loads((index_dir / MANIFEST).read_text())
    vectors = index_dir / manifest["data_dir"] / "vectors.faiss"
    raw = bytearray(vectors.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    vectors.write_bytes(bytes(raw))
    with pytest.raises(IndexCorruptError, match="vectors.faiss does not match its checksum.*--rebuild"):
        RagIndex.open(index_dir)
    with pytest.raises(IndexCorruptError):
        build_index([docs], index_dir, embedder=embedder)  # an update does not paper over it
    assert vectors.read_bytes() == bytes(raw)

    (index_dir / MANIFEST).write_text("{not json")
    with pytest.raises(IndexCorruptError, match="not valid JSON"):
        RagIndex.open(index_dir)
    index, report = build_index([docs], index_dir, embedder=embedder, rebuild=True)  # only when asked
    assert len(report.added) == 3 and len(index) > 0
    assert RagIndex.open(index_dir).manifest["data_dir"] != manifest["data_dir"]


def test_missing_or_foreign_folder_is_not_an_index(tmp_path: Path, embedder: Embedder) -> None:
    with pytest.raises(RagIndexError, match="is not a tunewise RAG index"):
        RagIndex.open(tmp_path / "nowhere")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(RagIndexError, match="not empty and not a tunewise RAG index"):
        build_index([write_docs(tmp_path / "kb", DOCS)], foreign, embedder=embedder)
    assert (foreign / "notes.txt").read_text() == "mine"


@pytest.fixture(scope="module")
def other_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A different sentence-transformers model: MiniLM's files with one weight changed."""
    from safetensors.torch import load_file, save_file

    source = bundled_model_dir()
    assert source is not None
    target = tmp_path_factory.mktemp("other-model") / "minilm-variant"
    shutil.copytree(source, target)
    weights = load_file(target / "model.safetensors")
    name = next(k for k in weights if k.endswith("embeddings.word_embeddings.weight"))
    weights[name] = weights[name] * 1.01
    save_file(weights, target / "model.safetensors", metadata={"format": "pt"})
    return target


def test_other_embedding_model_is_refused(tmp_path: Path, embedder: Embedder, other_model: Path) -> None:
    docs = write_docs(tmp_path / "kb", DOCS)
    index_dir = tmp_path / "index"
    build_index([docs], index_dir, embedder=embedder)
    with pytest.raises(EmbeddingMismatchError, match="built with embedding model all-MiniLM-L6-v2.*minilm-variant"):
        RagIndex.open(index_dir, embedding_model=str(other_model))
    with pytest.raises(EmbeddingMismatchError, match="--rebuild"):
        build_index([docs], index_dir, embedding_model=str(other_model))
    assert RagIndex.open(index_dir).model.name == "all-MiniLM-L6-v2"  # left as it was


def test_changed_model_files_are_refused(tmp_path: Path, other_model: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(other_model, model)
    docs = write_docs(tmp_path / "kb", {"volcano.txt": DOCS["volcano.txt"]})
    index, _ = build_index([docs], tmp_path / "index", embedding_model=str(model))
    assert index.manifest["embedding_model"]["path"] == str(model.resolve())
    (model / "config.json").write_text((model / "config.json").read_text().replace("{", '{"edited": 1, ', 1))
    with pytest.raises(EmbeddingMismatchError, match="cannot be compared"):
        RagIndex.open(tmp_path / "index")
