"""Drive the app's Ask screen on the example corpus and count what it shows (issue 16 §3).

Indexes ``examples/corpus/python_docs`` (the real embedding model), opens the Ask screen headless on the
index with the embedded SmolLM2-135M-Instruct (or ``--model``), types the first N example questions, waits
for every answer, and prints per question how it was made (generated with checked citations, or
extractive), whether it cites validly, whether the cited passages come from the gold document and
whether the answer contains the reference answer; then the rates, the seconds per answer and the last
screen at 80x24. A measurement script, not a test: the figures depend on the model and the machine.

    python bench/ask_screen.py                  # 12 questions
    python bench/ask_screen.py --questions 53 --model path/to/model
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "examples" / "corpus" / "python_docs"
QUESTIONS = REPO / "examples" / "questions" / "python_docs.jsonl"


async def drive(index: Path, questions: list[dict[str, str]], model: str | None, workdir: Path) -> tuple[list, str, float]:
    sys.path.insert(0, str(REPO / "tests"))
    from textual.widgets import Input
    from tui_support import screen_text, wait_until
    from tunewise.advisor.tui.app import TunewiseApp
    from tunewise.advisor.tui.screens.ask import AskScreen

    app = TunewiseApp(workdir=workdir)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.push_screen(AskScreen(index, model=model))
        await wait_until(pilot, lambda: isinstance(app.screen, AskScreen) and app.screen.asker, "the index", 600)
        screen = app.screen
        assert isinstance(screen, AskScreen)
        started = time.monotonic()
        field = screen.query_one("#ask-question", Input)
        field.focus()
        for row in questions:  # typed one after another: they wait their turn
            field.value = row["question"]
            await pilot.press("enter")
        await wait_until(pilot, lambda: len(screen.history) == len(questions)
                         and all(a is not None for _, a in screen.history), "every answer", 3600)
        seconds = time.monotonic() - started
        await pilot.pause(0.3)
        return [asked for _, asked in screen.history], screen_text(app), seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=12)
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    from tunewise.methods.rag.evaluate import answer_scores, source_matches
    from tunewise.methods.rag.index import build_index

    rows = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()][: args.questions]
    work = Path(tempfile.mkdtemp(prefix="ask-bench-"))
    build_index([CORPUS], work / "index")
    answers, screen, seconds = asyncio.run(drive(work / "index", rows, args.model, work))
    cited = extractive = gold_cited = contained = 0
    for row, asked in zip(rows, answers, strict=True):
        answer = asked.answer
        valid = answer.has_valid_citation
        from_gold = any(source_matches(c.source, row["source"]) for c in answer.citations)
        has_answer = bool(answer_scores(answer.text, row["answer"])["containment"])
        cited += valid
        extractive += answer.extractive
        gold_cited += from_gold
        contained += has_answer
        print(f"{'extractive' if answer.extractive else 'generated ':10}  cites={'yes' if valid else 'no '}  "
              f"gold-doc={'yes' if from_gold else 'no '}  contains-answer={'yes' if has_answer else 'no '}  "
              f"{row['question'][:60]}")
    n = len(rows)
    summary = {"questions": n, "citation_rate": round(cited / n, 3), "extractive_share": round(extractive / n, 3),
               "cites_gold_document": round(gold_cited / n, 3), "contains_reference": round(contained / n, 3),
               "seconds_per_answer": round(seconds / n, 2)}
    print(screen)
    print("RESULT " + json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
