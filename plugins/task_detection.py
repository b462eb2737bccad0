"""Which evaluation fits a data set: classification, free-text generation, language modelling or preferences.

The task is read from the training rows themselves (shapes of :mod:`tunewise.plugins.data`), so a run
scores what the user's data asks for: a small set of short answers is a classification scored by
accuracy, other answers are free text scored by ROUGE-L, raw text is scored by perplexity and
preference pairs by the win rate of the tuned model against the base.

Labels are compared after :func:`normalise_label` (case, spacing, surrounding quotes and trailing
punctuation ignored); a generated answer is matched on its first non-empty line only
(:func:`match_label`), so ``Billing.`` matches ``billing`` but ``The answer is billing`` does not:
keeping to the answer format is part of the task.
"""

from __future__ import annotations

import statistics
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tunewise.plugins.data import Row, row_shape
from tunewise.plugins.errors import TunewiseError

TASKS = ("classification", "generation", "language_modeling", "preference")

MAIN_METRIC: dict[str, str] = {
    "classification": "accuracy",
    "generation": "rouge_l",
    "language_modeling": "perplexity",
    "preference": "win_rate",
}
"""The stable ``metrics.json`` key of each task's main metric."""

MAX_LABEL_WORDS = 8
"""A label is at most this many words. Class names are one to three words ("billing", "needs human
review"); eight leaves room for longer names while a one-sentence answer usually exceeds it."""

MAX_LABEL_CHARS = 60
"""…and at most this many characters, so scripts written without spaces cannot pass a sentence as one word."""

MIN_LABEL_ROWS = 2
"""An answer counts as a label only when at least this many rows give it: an answer seen once is a
free-text answer, not a class the model could learn."""

MAX_LABELS = 50
"""At most this many labels. Beyond it a held-out split of a few hundred rows holds only a handful of
examples per label, so per-label counts say little, and the answers are better scored as text."""

MIN_COVERAGE = 0.9
"""The labels must cover at least this share of the answered rows. The rest (typos, one-off answers,
up to one row in ten) is tolerated as noise; a lower share means the answers are mostly free text."""

MIN_LABELS = 2
"""At least two labels: when every answer is the same there is nothing to classify (a model that
always says it is right every time), so such data is scored as free text."""

_EDGE_QUOTES = "\"'`*_“”‘’«»"
_TRAILING_PUNCT = ".,;:!?。，、；：！？…"


class TaskDetectionError(TunewiseError):
    """Rows from which no evaluation task can be read (no rows, or supervised rows without answers)."""


@dataclass(frozen=True)
class DetectedTask:
    """The evaluation a data set calls for, and why."""

    task: str
    """One of :data:`TASKS`."""
    main_metric: str
    """Stable key of the main metric (:data:`MAIN_METRIC`)."""
    reason: str
    """One line for the user: what in the data decided the task."""
    labels: tuple[str, ...] = ()
    """Normalised labels, most frequent first (classification only)."""
    label_counts: tuple[tuple[str, int], ...] = ()
    """``(label, rows)`` in the order of :attr:`labels`."""
    rows: int = 0
    """Rows the decision looked at (answered rows for supervised data)."""

    @property
    def higher_is_better(self) -> bool:
        return self.main_metric != "perplexity"

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "main_metric": self.main_metric,
            "higher_is_better": self.higher_is_better,
            "reason": self.reason,
            "labels": list(self.labels),
            "label_counts": dict(self.label_counts),
            "rows": self.rows,
        }


# -- labels -------------------------------------------------------------------------------------


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = " ".join(text.split()).casefold()
    previous = None
    while text != previous:  # peel "**Billing.**" layer by layer
        previous = text
        text = text.strip().strip(_EDGE_QUOTES).rstrip(_TRAILING_PUNCT)
    return text.strip()


def first_line(text: str) -> str:
    """The first non-empty line of ``text`` (empty string when there is none)."""
    return next((line for line in text.splitlines() if line.strip()), "")


def normalise_label(text: str) -> str:
    """A label or answer as compared: first non-empty line, case-folded, spacing collapsed,
    surrounding quotes/markdown emphasis and trailing punctuation removed (inner punctuation kept,
    so ``N/A`` and ``follow-up`` stay distinct labels)."""
    return _normalise(first_line(text))


def match_label(answer: str, labels: Sequence[str]) -> str | None:
    """The label a generated answer names (by :func:`normalise_label`), or None when it names none."""
    wanted = normalise_label(answer)
    for label in labels:
        if normalise_label(label) == wanted:
            return normalise_label(label)
    return None


# -- answers of a row ---------------------------------------------------------------------------


def _turn_answer(turns: Any) -> str | None:
    """The content of the last assistant turn of a chat list (what evaluation generates)."""
    if not isinstance(turns, list):
        return None
    for turn in reversed(turns):
        if isinstance(turn, Mapping) and turn.get("role") == "assistant":
            content = turn.get("content")
            return content if isinstance(content, str) else None
    return None


def reference_answer(data: Mapping[str, Any], shape: str) -> str | None:
    """The answer a supervised row gives (None when it gives none).

    ``messages``: the last assistant turn; ``instruction``: ``output``; ``prompt_completion``: the
    completion (for a conversational completion, its last assistant turn).
    """
    if shape == "messages":
        return _turn_answer(data.get("messages"))
    key = {"instruction": "output", "prompt_completion": "completion"}.get(shape)
    if key is None:
        return None
    value = data.get(key)
    if isinstance(value, list):
        return _turn_answer(value)
    if value is None or isinstance(value, (Mapping, bool)):
        return None
    text = str(value)
    return text if text.strip() else None


# -- detection ----------------------------------------------------------------------------------


def _is_short(answer: str) -> bool:
    text = answer.strip()
    if "\n" in text:
        return False
    norm = _normalise(text)
    return bool(norm) and len(norm.split()) <= MAX_LABEL_WORDS and len(norm) <= MAX_LABEL_CHARS


def _majority_shape(datas: Sequence[Mapping[str, Any]]) -> str:
    shapes = Counter(s for s in (row_shape(d) for d in datas) if s is not None)
    if not shapes:
        raise TaskDetectionError("no row has a known shape, so no evaluation task can be chosen")
    if set(shapes) == {"text", "documents"}:
        return "documents"
    return shapes.most_common(1)[0][0]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _classify_answers(answers: Sequence[str]) -> DetectedTask:
    n = len(answers)
    short = [_normalise(a) for a in answers if _is_short(a)]
    counts = Counter(short)
    ranked = sorted(((label, c) for label, c in counts.items() if c >= MIN_LABEL_ROWS),
                    key=lambda item: (-item[1], item[0]))
    covered = sum(c for _, c in ranked)
    coverage = covered / n
    metric = MAIN_METRIC["generation"]

    if len(ranked) >= MIN_LABELS and len(ranked) <= MAX_LABELS and coverage >= MIN_COVERAGE:
        shown = ", ".join(f"{label} {c}" for label, c in ranked[:6])
        more = f", … {len(ranked) - 6} more" if len(ranked) > 6 else ""
        reason = (f"answers come from {len(ranked)} labels ({shown}{more}) covering {coverage:.0%} of "
                  f"{_plural(n, 'answered row')}: scored by accuracy")
        return DetectedTask("classification", MAIN_METRIC["classification"], reason,
                            tuple(label for label, _ in ranked), tuple(ranked), n)

    # Why it is not a classification, in the user's terms.
    if len(ranked) == 1 and coverage >= MIN_COVERAGE:
        why = (f"every answer is {ranked[0][0]!r}: one label leaves nothing to classify")
    elif len(short) >= MIN_COVERAGE * n:
        if len(ranked) > MAX_LABELS:
            why = f"answers are short but take {len(ranked)} repeated values (more than {MAX_LABELS} labels)"
        else:
            why = (f"answers are short but {len(counts)} of {n} are different, "
                   f"and repeated ones cover only {coverage:.0%} of rows")
        why += ", so they are not a small label set"
    else:
        median = statistics.median(len(a.split()) for a in answers)
        return DetectedTask("generation", metric, f"answers are free text ({len(set(answers))} distinct, "
                            f"median {median:g} words): scored by ROUGE-L", (), (), n)
    return DetectedTask("generation", metric, f"{why}: scored as free text by ROUGE-L", (), (), n)


def detect_task(rows: Sequence[Row | Mapping[str, Any]], shape: str | None = None) -> DetectedTask:
    """The evaluation task of a data set, from its rows (:class:`Row` or plain records).

    ``shape`` is the source's shape from :func:`tunewise.plugins.data.load_dataset`; None reads the
    majority shape of the rows. Raw text and documents → ``language_modeling``; preference pairs and
    prompt-only rows (prompts for RLHF) → ``preference``; answered rows → ``classification`` when the
    answers are a small label set (see the thresholds above), else ``generation``.
    """
    datas = [r.data if isinstance(r, Row) else r for r in rows]
    if not datas:
        raise TaskDetectionError("no rows: cannot choose an evaluation task for empty data")
    shape = shape or _majority_shape(datas)
    if shape in ("text", "documents"):
        return DetectedTask("language_modeling", MAIN_METRIC["language_modeling"],
                            "raw text without answers: scored by perplexity on held-out text",
                            rows=len(datas))
    if shape == "preference":
        return DetectedTask("preference", MAIN_METRIC["preference"],
                            "preference pairs (a better and a worse answer): scored by the win rate of the "
                            "tuned model's answers against the base's", rows=len(datas))
    if shape not in ("messages", "instruction", "prompt_completion"):
        raise TaskDetectionError(f"unknown data shape {shape!r}: cannot choose an evaluation task")
    answers = [a for a in (reference_answer(d, shape) for d in datas) if a is not None]
    if not answers:
        if shape == "prompt_completion" and all("completion" not in d for d in datas):
            return DetectedTask("preference", MAIN_METRIC["preference"],
                                "prompts without answers (RLHF prompts): scored by the win rate of the tuned "
                                "model's answers against the base's", rows=len(datas))
        raise TaskDetectionError(f"none of the {len(datas)} {shape} rows has an answer to evaluate "
                                 "(an assistant turn, output or completion)")
    return _classify_answers(answers)

