"""``tunewise recommend`` / ``estimate`` as users run them, and the shipped example answer files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import REPO, run_cli
from tunewise.advisor.answers import load_answers
from tunewise.advisor.ranking import rank

EXAMPLES = REPO / "examples" / "answers"
EXPECTED_TOP = {
    "support-billing.yaml": "rag",
    "ticket-routing.yaml": "lora",
    "invoice-json.yaml": "in_context",
    "contract-review.yaml": "full_finetune",
    "clinical-german.yaml": "continual_pretraining",
    "helpful-harmless.yaml": "rlhf",
    "preference-one-gpu.yaml": "rlhf",
    "product-faq.yaml": "rag",
    "brand-voice-cpu.yaml": "lora",
    "ops-runbooks.yaml": "rag",
}


def test_examples_cover_all_six_methods() -> None:
    files = sorted(p.name for p in EXAMPLES.glob("*.yaml"))
    assert len(files) >= 8 and set(files) == set(EXPECTED_TOP)
    seen: set[str] = set()
    for name in files:
        result = rank(load_answers(EXAMPLES / name))
        assert result.top.method == EXPECTED_TOP[name], (name, [(r.method, r.score) for r in result.recommendations])
        assert not result.top.blockers and result.top.quote is not None
        seen.add(result.top.method)
        for combo in result.combine:
            seen.update(combo.methods)
    assert seen == {"rag", "in_context", "full_finetune", "lora", "continual_pretraining", "rlhf"}


def test_recommend_json() -> None:
    proc = run_cli("recommend", "--answers", str(EXAMPLES / "support-billing.yaml"), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    recs = data["recommendations"]
    assert [r["rank"] for r in recs] == list(range(1, len(recs) + 1)) and len(recs) == 6
    assert recs[0]["method"] == "rag"
    for rec in recs:
        assert set(rec) >= {"method", "rank", "score", "reasons", "blockers", "quote"}
    assert {"methods": ["rag", "lora"]}.items() <= next(c for c in data["combine"] if c["methods"] == ["rag", "lora"]).items()
    assert "hardware" in data["assumptions"]


def test_recommend_table_and_markdown() -> None:
    table = run_cli("recommend", "--answers", str(EXAMPLES / "ticket-routing.yaml"))
    assert table.returncode == 0, table.stderr
    assert "Recommendations" in table.stdout and "LoRA" in table.stdout and "Assumptions" in table.stdout
    md = run_cli("recommend", "--answers", str(EXAMPLES / "helpful-harmless.yaml"), "--format", "markdown")
    assert md.returncode == 0, md.stderr
    assert md.stdout.startswith("# Recommendations") and "| 1 | RLHF" in md.stdout and "## Combinations" in md.stdout


def test_recommend_bad_answers_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("goals: [knowledge]\nbudget:\n  usd: -5\n")
    proc = run_cli("recommend", "--answers", str(bad))
    assert proc.returncode == 1
    assert f"{bad}:3: budget.usd: must be ≥ 0" in proc.stderr and "Traceback" not in proc.stderr


def test_estimate_json() -> None:
    proc = run_cli("estimate", "--method", "full_finetune", "--params-b", "7", "--tokens", "2e9", "--gpu", "h100",
                   "--gpus", "8", "--seq-len", "4096", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) >= {"method", "flops", "gpu_hours", "wall_hours", "usd_low", "usd_high", "peak_memory_gb",
                         "fits", "assumptions"}
    assert data["method"] == "full_finetune" and data["assumptions"]["seq_len"] == 4096
    assert data["assumptions"]["gpus"] == 8 and data["fits"] is True
    assert data["flops"] == pytest.approx(2e9 * data["assumptions"]["flops_per_token"])


@pytest.mark.parametrize(("args", "message", "code"), [
    (["--method", "nope", "--tokens", "1e6"], "unknown method 'nope'", 1),
    (["--method", "lora", "--tokens", "1e6", "--gpu", "abacus"], "unknown hardware 'abacus'", 1),
    # a flag out of its range is a usage error, reported by argparse (tests/test_number_limits.py)
    (["--method", "lora", "--tokens", "1e6", "--gpus", "0"], "argument --gpus: must be a whole number from 1", 2),
])
def test_estimate_errors(args: list[str], message: str, code: int) -> None:
    proc = run_cli("estimate", *args)
    assert proc.returncode == code and message in proc.stderr and "Traceback" not in proc.stderr


def test_estimate_table_for_rlhf_lists_dpo() -> None:
    proc = run_cli("estimate", "--method", "rlhf", "--params-b", "8", "--tokens", "50M", "--gpu", "H100", "--gpus", "8")
    assert proc.returncode == 0, proc.stderr
    # No raters, no expert team: DPO is quoted (every weight fits 8× H100), the full loop among the other ways.
    assert "DPO, every weight trained" in proc.stdout and "Other ways to run it" in proc.stdout
    assert "full RLHF, every weight trained" in proc.stdout and "reward model" in proc.stdout


def test_advice_imports_nothing_heavy() -> None:
    """recommend / estimate / audit stay free of torch, transformers and textual."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from tunewise.advisor.answers import load_answers\n"
        "from tunewise.advisor.ranking import rank\n"
        "from tunewise.advisor.audit import audit\n"
        f"rank(load_answers({str(EXAMPLES / 'support-billing.yaml')!r}))\n"
        "import pathlib, tempfile\n"
        "d = pathlib.Path(tempfile.mkdtemp()) / 'x.jsonl'\n"
        "d.write_text('{\"text\": \"hello\"}\\n')\n"
        "audit(d)\n"
        "heavy = ('torch', 'transformers', 'trl', 'peft', 'datasets', 'textual', 'sentence_transformers', 'faiss')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip().splitlines()[-1] == "[]"
