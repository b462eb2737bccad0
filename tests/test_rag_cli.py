"""``tunewise rag index|search|ask`` in a fresh interpreter, the way users run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support import run_cli

DOCS = {
    "volcano.txt": "Volcanoes\nA volcano is a rupture in the crust where lava, ash and gases escape.",
    "bread.md": "# Baking bread\nBread dough needs flour, water, salt and yeast. Knead it and let it rise.",
    "chess.html": "<html><head><title>Chess</title></head><body><p>The king moves one square in any "
                  "direction.</p></body></html>",
}


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("rag-cli")
    docs = root / "kb"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    proc = run_cli("rag", "index", str(docs), "--index", str(root / "index"), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert sorted(summary["added"]) == ["kb/bread.md", "kb/chess.html", "kb/volcano.txt"]
    assert summary["embedding_model"]["name"] == "all-MiniLM-L6-v2" and summary["embedding_model"]["dimension"] == 384
    return docs, root / "index"


def test_search_json_lists_best_first(indexed: tuple[Path, Path]) -> None:
    _, index = indexed
    proc = run_cli("rag", "search", "--index", str(index), "how does the king move", "--k", "2", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert len(results) == 2
    assert all(set(r) == {"source", "chunk_id", "score", "text"} for r in results)
    assert results[0]["source"] == "kb/chess.html" and "king" in results[0]["text"]
    assert results[0]["score"] >= results[1]["score"]


def test_search_bm25_text_and_incremental_reindex(indexed: tuple[Path, Path]) -> None:
    docs, index = indexed
    proc = run_cli("rag", "search", "--index", str(index), "knead dough", "--mode", "bm25")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("1. kb/bread.md (chunk 0, score")
    (docs / "tea.txt").write_text("Tea\nGreen tea is steamed soon after picking.")
    proc = run_cli("rag", "index", str(docs), "--index", str(index))
    assert proc.returncode == 0, proc.stderr
    assert "1 added, 0 changed, 0 removed, 3 unchanged files; embedded 1 chunks" in proc.stdout


def test_errors_are_messages_not_tracebacks(indexed: tuple[Path, Path], tmp_path: Path) -> None:
    proc = run_cli("rag", "search", "--index", str(tmp_path / "none"), "lava")
    assert proc.returncode == 1
    assert "is not a tunewise RAG index (no manifest.json)" in proc.stderr and "Traceback" not in proc.stderr
    _, index = indexed
    proc = run_cli("rag", "index", str(tmp_path / "missing"), "--index", str(index))
    assert proc.returncode == 1 and "no such file or folder" in proc.stderr and "Traceback" not in proc.stderr


def test_ask_cites_sources(indexed: tuple[Path, Path], tiny_model_dir: Path) -> None:
    _, index = indexed
    proc = run_cli("rag", "ask", "--index", str(index), "What escapes from a volcano?", "--model",
                   str(tiny_model_dir), "--max-new-tokens", "4", "--min-relevance", "0", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["passages"][0] == {"number": 1, "source": "kb/volcano.txt", "chunk_id": 0, "title": "Volcanoes"}
    proc = run_cli("rag", "ask", "--index", str(index), "Who won the 1998 football world cup?", "--model",
                   str(tiny_model_dir))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "The documents do not contain the answer."


def test_rag_help_imports_nothing_heavy() -> None:
    code = ("import sys, runpy; sys.argv = ['tunewise', 'rag', '--help']\n"
            "try:\n    runpy.run_module('tunewise.advisor.cli', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'faiss', 'sentence_transformers', 'bm25s', 'numpy') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "index" in proc.stdout and "search" in proc.stdout and "ask" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "[]"
