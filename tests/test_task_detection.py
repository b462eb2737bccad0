"""tunewise.plugins.task_detection: which evaluation a data set calls for, and label matching."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tunewise.plugins.data import load_dataset, read_rows
from tunewise.plugins.task_detection import (
    MAX_LABELS,
    TaskDetectionError,
    detect_task,
    match_label,
    normalise_label,
    reference_answer,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "data"

ROUTING = "Route this support ticket to one team: billing, delivery, account, refund, technical."
TICKETS = [
    ("I was charged twice for my order", "billing"),
    ("Where is my parcel? It is a week late", "delivery"),
    ("I cannot log in after changing my email", "account"),
    ("I want my money back for the broken kettle", "refund"),
    ("The app crashes when I open settings", "technical"),
    ("Why is there a fee on my invoice?", "billing"),
    ("The courier left the box at the wrong house", "delivery"),
    ("Please delete my account", "account"),
    ("Return label for a refund please", "refund"),
    ("Sync stopped working on my laptop", "technical"),
]


def chat(user: str, answer: str) -> dict[str, object]:
    return {"messages": [{"role": "system", "content": "You route tickets."},
                         {"role": "user", "content": user}, {"role": "assistant", "content": answer}]}


def test_ticket_routing_instruction_rows_are_classification() -> None:
    rows = [{"instruction": ROUTING, "input": text, "output": label} for text, label in TICKETS * 3]
    task = detect_task(rows)
    assert task.task == "classification" and task.main_metric == "accuracy" and task.higher_is_better
    assert set(task.labels) == {"billing", "delivery", "account", "refund", "technical"}
    assert dict(task.label_counts) == dict.fromkeys(task.labels, 6)
    assert "5 labels" in task.reason and "accuracy" in task.reason
    assert json.loads(json.dumps(task.to_dict()))["label_counts"]["billing"] == 6


def test_the_example_files_get_the_task_their_runs_need() -> None:
    intents = load_dataset(EXAMPLES / "support_intents.jsonl")
    assert detect_task(intents.rows, intents.shape).labels == ("account", "billing", "delivery", "refund",
                                                                "technical")
    # Support chats open with a short "Category: X" line, but the whole answer is the target: free text.
    chats = load_dataset(EXAMPLES / "support_chat.jsonl")
    assert detect_task(chats.rows, chats.shape).task == "generation"
    prefs = load_dataset(EXAMPLES / "preferences.jsonl")
    assert detect_task(prefs.rows, prefs.shape).main_metric == "win_rate"
    prompts = read_rows(EXAMPLES / "rlhf_prompts.jsonl")  # prompts only, for RLHF
    assert detect_task(prompts).task == "preference"


def test_chat_and_prompt_completion_labels_with_different_spelling_are_one_label() -> None:
    spellings = ["Billing", "billing.", "  BILLING ", "**billing**", '"billing"', "Refund!", "refund", "REFUND."]
    rows = [chat(f"ticket {i}", s) for i, s in enumerate(spellings)]
    task = detect_task(rows)
    assert task.task == "classification"
    assert task.label_counts == (("billing", 5), ("refund", 3))
    pc = [{"prompt": f"ticket {i}", "completion": s} for i, s in enumerate(spellings)]
    assert detect_task(pc).labels == ("billing", "refund")


def test_free_text_support_answers_are_generation() -> None:
    answers = [
        "Open Settings > Billing > Invoices, pick the month and select Download PDF.",
        "Deleted files stay in Trash for 30 days; open Trash on the web and select Restore.",
        "A conflicted copy appears when two devices edit the same file offline; keep the one you want.",
        "Go to Settings > Security > Sessions and sign out of devices you do not recognise.",
    ]
    rows = [chat(f"question {i}", a) for i, a in enumerate(answers * 5)]
    task = detect_task(rows)
    assert task.task == "generation" and task.main_metric == "rouge_l" and task.labels == ()
    assert "free text" in task.reason


def test_raw_text_and_documents_are_language_modelling() -> None:
    assert detect_task([{"text": "Chapter one. It was a cold morning."}] * 3).main_metric == "perplexity"
    docs = [{"title": "Sync", "text": "How sync works."}, {"text": "Plain notes."}]
    task = detect_task(docs)
    assert task.task == "language_modeling" and not task.higher_is_better


def test_preference_pairs_and_ranked_responses_are_win_rate() -> None:
    pairs = [{"prompt": "Boil an egg?", "chosen": "Six minutes.", "rejected": "Why ask me?"}]
    assert detect_task(pairs).task == "preference"
    ranked = [{"prompt": "Boil an egg?", "responses": ["Six minutes.", "Ten.", "Why ask?"]}]
    assert detect_task(ranked).main_metric == "win_rate"


def test_one_label_only_is_not_a_classification() -> None:
    task = detect_task([chat(f"ticket {i}", "Escalate.") for i in range(12)])
    assert task.task == "generation"
    assert "'escalate'" in task.reason and "one label" in task.reason


def test_many_distinct_short_answers_are_free_text() -> None:
    capitals = ["Paris", "Tokyo", "Lima", "Oslo", "Cairo", "Quito", "Rome", "Bern", "Kyiv", "Hanoi",
                "Dakar", "Doha", "Riga", "Sofia", "Minsk", "Seoul", "Accra", "Baku", "Male", "Suva"]
    task = detect_task([{"prompt": f"Capital of country {i}?", "completion": c} for i, c in enumerate(capitals)])
    assert task.task == "generation"
    assert "not a small label set" in task.reason and "20 of 20 are different" in task.reason


def test_more_labels_than_the_limit_are_free_text() -> None:
    labels = [f"code {i}" for i in range(MAX_LABELS + 1)]
    rows = [{"prompt": f"q{i}{j}", "completion": label} for j in range(2) for i, label in enumerate(labels)]
    task = detect_task(rows)
    assert task.task == "generation" and f"more than {MAX_LABELS} labels" in task.reason
    within = [r for r in rows if r["completion"] != labels[-1]]
    assert detect_task(within).task == "classification"


def test_a_few_odd_answers_are_tolerated_but_not_many() -> None:
    labelled = [{"prompt": f"t{i}", "completion": "yes" if i % 2 else "no"} for i in range(19)]
    odd = [{"prompt": "t-odd", "completion": "It depends on the contract you signed with us last year."}]
    assert detect_task(labelled + odd).task == "classification"  # 95 % covered
    many_odd = [{"prompt": f"o{i}", "completion": f"It depends on clause {i} of your contract with us."}
                for i in range(5)]
    assert detect_task(labelled + many_odd).task == "generation"  # 79 % covered


def test_a_short_first_line_does_not_make_a_long_answer_a_label() -> None:
    rows = [chat(f"t{i}", f"{label}\nBecause the message mentions it.") for i, label in
            enumerate(["billing", "refund"] * 5)]
    assert detect_task(rows).task == "generation"


def test_answers_come_from_the_last_assistant_turn() -> None:
    turns = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello, how can I help?"},
                          {"role": "user", "content": "route: card declined"}, {"role": "assistant", "content": "billing"}]}
    assert reference_answer(turns, "messages") == "billing"
    conversational = {"prompt": [{"role": "user", "content": "x"}],
                      "completion": [{"role": "assistant", "content": "refund"}]}
    assert reference_answer(conversational, "prompt_completion") == "refund"


def test_rows_without_answers_or_rows_at_all_are_clear_errors() -> None:
    with pytest.raises(TaskDetectionError, match="no rows"):
        detect_task([])
    with pytest.raises(TaskDetectionError, match="none of the 1 messages rows has an answer"):
        detect_task([{"messages": [{"role": "user", "content": "hi"}]}])
    with pytest.raises(TaskDetectionError, match="no row has a known shape"):
        detect_task([{"question": "?"}])


def test_rows_read_from_a_file_keep_working(tmp_path: Path) -> None:
    path = tmp_path / "tickets.jsonl"
    path.write_text("".join(json.dumps(chat(t, label.title() + ".")) + "\n" for t, label in TICKETS * 2))
    loaded = load_dataset(path)
    task = detect_task(loaded.rows, loaded.shape)
    assert task.task == "classification" and task.rows == 20 and "billing" in task.labels


@pytest.mark.parametrize(("text", "label"), [
    ("Billing.", "billing"),
    ("  billing  \nExplanation: the customer was charged twice", "billing"),
    ("\n\n**Refund**!", "refund"),
    ("N/A", "n/a"),
    ("follow-up", "follow-up"),
    ("Ｂｉｌｌｉｎｇ", "billing"),  # full-width letters (NFKC)
    ("needs   human\treview", "needs human review"),
])
def test_normalise_label(text: str, label: str) -> None:
    assert normalise_label(text) == label


def test_match_label_takes_the_first_line_and_keeps_to_the_format() -> None:
    labels = ["billing", "refund", "n/a"]
    assert match_label("Refund.\nThe kettle was broken.", labels) == "refund"
    assert match_label("N/A", labels) == "n/a"
    assert match_label("The answer is billing", labels) is None
    assert match_label("", labels) is None
