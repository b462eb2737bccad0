"""The data audit on good and broken sources: shape, counts with the real tokenizer, problems as file:line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import run_cli
from tunewise.advisor.answers import parse_answers
from tunewise.advisor.audit import apply_audit, audit, audit_lines
from tunewise.plugins.data import DataError


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_counts_tokens_with_the_models_tokenizer(tmp_path: Path, embedded_model_path: Path) -> None:
    from tokenizers import Tokenizer

    records = [{"instruction": f"Summarise ticket {i}", "output": f"Customer {i} wants a refund."} for i in range(20)]
    report = audit(write_jsonl(tmp_path / "d.jsonl", records), model=str(embedded_model_path))
    assert report.ok and report.shape == "instruction" and report.rows == report.usable_rows == 20
    tok = Tokenizer.from_file(str(embedded_model_path / "tokenizer.json"))
    expected = [len(tok.encode(f"{r['instruction']}\n{r['output']}", add_special_tokens=False).ids) for r in records]
    assert report.tokens is not None and report.tokens.total == sum(expected)
    assert report.tokens.max == max(expected) and report.tokens.min == min(expected)
    assert report.counts == {"labeled_examples": 20, "avg_tokens_per_example": round(sum(expected) / 20, 1)}
    assert "tokenizer.json" in report.tokenizer


def test_flags_duplicates_empty_and_over_long_rows(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [
        {"prompt": "What is 2+2?", "completion": "4"},
        {"prompt": "What is  2+2? ", "completion": "4"},      # duplicate after whitespace normalisation
        {"prompt": "", "completion": "nothing asked"},
        {"prompt": "Write a lot", "completion": "word " * 400},
        {"prompt": "fine", "completion": "ok"},
    ])
    report = audit(path, max_tokens=100)
    assert (report.duplicates, report.empty, report.over_long) == (1, 1, 1)
    assert f"{path}:2: duplicate of {path}:1" in report.problems
    assert f"{path}:3: 'prompt' is empty" in report.problems
    assert any(p.startswith(f"{path}:4: ") and "longer than 100" in p for p in report.problems)
    assert report.usable_rows == 3 and report.counts["labeled_examples"] == 3


def test_long_documents_are_counted_as_split_not_as_problems(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "long.txt").write_text("The pump overheats when the valve sticks. " * 60)
    (folder / "short.txt").write_text("Restart the pump after a stop.")
    report = audit(folder, max_tokens=100)
    assert report.ok and report.over_long == 0 and report.long_documents == 1
    lines = dict(audit_lines(report))
    assert lines["documents over 100 tokens"] == "1 (split into pieces for training)"
    assert not any(label.startswith("examples over") for label in lines)
    examples = audit(write_jsonl(tmp_path / "d.jsonl", [{"prompt": "Write", "completion": "word " * 300},
                                                        {"prompt": "ok", "completion": "fine"}]), max_tokens=100)
    assert dict(audit_lines(examples))["examples over 100 tokens"] == "1 (would be truncated)"


def test_broken_file_reports_every_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"text": "fine"}\n{"text": \n{"text": "caf\xe9"}\n{"oops": 1}\n')
    report = audit(path)
    assert not report.ok and report.shape == "text"
    assert any(p.startswith(f"{path}:2: invalid JSON") for p in report.problems)
    assert any(p.startswith(f"{path}:3: not UTF-8") for p in report.problems)
    assert any(p.startswith(f"{path}:4: no known columns") for p in report.problems)
    assert report.usable_rows == 1


def test_unreadable_source_raises(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        audit(tmp_path / "missing.jsonl")


def test_documents_text_and_preferences(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(3):
        (docs / f"page{i}.md").write_text(f"# Page {i}\nRefunds take {i + 3} days.\n")
    report = audit(docs)
    assert report.shape == "documents" and report.counts["documents"] == 3
    assert report.counts["document_tokens"] == report.tokens.total > 0  # type: ignore[union-attr]

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Der Patient klagt über Kopfschmerzen. " * 50)
    text = audit(corpus)
    assert text.shape == "text" and text.counts["unlabeled_tokens"] == text.tokens.total  # type: ignore[union-attr]

    prefs = write_jsonl(tmp_path / "p.jsonl", [
        {"prompt": "q1", "chosen": "good", "rejected": "bad"},
        {"prompt": "q2", "responses": ["best", "middle", "worst"]},
    ])
    pref = audit(prefs)
    assert pref.shape == "preference" and pref.counts["preference_pairs"] == 1 + 3


def test_audit_counts_override_the_answers(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "chat.jsonl", [
        {"messages": [{"role": "user", "content": f"hi {i}"}, {"role": "assistant", "content": f"hello {i}"}]}
        for i in range(7)
    ])
    profile = parse_answers(f"data: {{labeled_examples: 5000, documents: 12, path: {path}}}")
    updated = apply_audit(profile, audit(path))
    assert updated.data.labeled_examples == 7 and updated.data.documents == 12  # other kinds stay
    assert updated.data.avg_tokens_per_example and updated.data.avg_tokens_per_example > 0


def test_recommend_uses_the_audit(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "pairs.jsonl", [{"instruction": f"q{i}", "output": f"a{i}"} for i in range(30)])
    answers = tmp_path / "a.yaml"
    answers.write_text(f"goals: [task]\ndata: {{labeled_examples: 90000, path: {data.name}}}\nhardware: {{gpu: L4}}\n")
    proc = run_cli("recommend", "--answers", str(answers), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    lora = next(r for r in out["recommendations"] if r["method"] == "lora")
    assert any("30 labeled examples" in r or "only 30" in r for r in lora["reasons"]), lora["reasons"]
    assert "audited" in out["assumptions"]["data"]


def test_audit_command(tmp_path: Path) -> None:
    good = write_jsonl(tmp_path / "g.jsonl", [{"text": "one"}, {"text": "two"}])
    proc = run_cli("audit", str(good), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["counts"]["unlabeled_tokens"] > 0
    bad = write_jsonl(tmp_path / "b.jsonl", [{"text": "one"}, {"text": "one"}])
    proc = run_cli("audit", str(bad))
    assert proc.returncode == 2 and f"{bad}:2: duplicate of {bad}:1" in proc.stdout
