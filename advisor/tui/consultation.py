"""The state of one consultation in the app: answers, audit, ranking, chosen plan, run (no textual).

Screens read and change this object; it calls the advisor core (interview, answers, audit,
ranking, plans) and writes every step to the consultation's decision log.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunewise.advisor.decision_log import DecisionLog
from tunewise.plugins.redaction import redact
from tunewise.plugins.types import Profile, Question

if TYPE_CHECKING:
    from tunewise.advisor.tui.run_watch import RunState


@dataclass(frozen=True)
class TopicView:
    """One interview screen: a topic and the questions it asks."""

    id: str
    title: str
    intro: str
    questions: tuple[Question, ...]


def flatten_answers(answers: Mapping[str, Any]) -> dict[str, Any]:
    """``{"budget": {"usd": 5}, "extra": {"q": 1}}`` -> ``{"budget.usd": 5, "q": 1}`` (question ids)."""
    from tunewise.advisor.answers import EXTRA_KEY, SECTIONS

    flat: dict[str, Any] = {}
    for key, value in answers.items():
        if key in SECTIONS and isinstance(value, Mapping):
            for sub, sub_value in value.items():
                flat[f"{key}.{sub}"] = sub_value
        elif key == EXTRA_KEY and isinstance(value, Mapping):
            flat.update({str(k): v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def load_answers_file(path: Path) -> dict[str, Any]:
    """Saved answers (validated like ``tunewise recommend`` does) as question id -> value."""
    from tunewise.advisor.answers import load_answers, profile_to_answers

    return flatten_answers(profile_to_answers(load_answers(path)))


def split_problem(problem: str) -> tuple[str, str]:
    """``"budget.usd: must be ≥ 0"`` -> ``("budget.usd", "must be ≥ 0")``."""
    where, _, message = problem.partition(": ")
    return where.strip(), message.strip() or problem


@dataclass
class Consultation:
    """Answers by question id plus what was derived from them, logged as it happens."""

    questions: list[Question]
    topics: list[TopicView]
    answers: dict[str, Any]
    log: DecisionLog
    source: Path | None = None
    audit: Any = None
    ranking: Any = None
    chosen_method: str | None = None
    plan_path: Path | None = None
    run_dirs: list[Path] = field(default_factory=list)

    @classmethod
    def start(cls, answers: Mapping[str, Any] | None = None, *, source: Path | None = None,
              decisions_dir: Path | None = None, include_plugins: bool = True) -> Consultation:
        from tunewise.advisor import interview

        questions = interview.questions(include_plugins=include_plugins)
        topics = [
            TopicView(t.id, t.title, t.intro, tuple(interview.questions_for_topic(t.id, questions)))
            for t in interview.topics(questions)
        ]
        topics = [t for t in topics if t.questions]
        values = {q.id: q.default for q in questions}
        values.update(answers or {})
        return cls(questions=questions, topics=topics, answers=values, log=DecisionLog.start(decisions_dir),
                   source=source)

    # -- answers -----------------------------------------------------------------------------

    def value(self, question: Question) -> Any:
        return self.answers.get(question.id, question.default)

    def set(self, question_id: str, value: Any) -> None:
        if self.answers.get(question_id) != value:
            self.answers[question_id] = value
            self.ranking = None  # derived from the old answers
            if question_id == "data.path":
                self.audit = None

    def asked(self, question: Question) -> bool:
        from tunewise.advisor.interview import should_ask

        return should_ask(question, self.answers)

    def check(self, question: Question, raw: Any) -> Any:
        """What the field holds, parsed and validated like the answers file; ValueError says why not."""
        from tunewise.advisor.interview import parse_text, validate_answer

        value = parse_text(question, raw) if isinstance(raw, str) and question.type != "text" else raw
        value = validate_answer(question, value)
        if question.type == "path" and value and not Path(str(value)).expanduser().exists():
            raise ValueError(f"no such file or folder: {value}")
        return list(value) if isinstance(value, tuple) else value

    def _asked_answers(self) -> dict[str, Any]:
        """The answers to the questions that apply (an ``ask_if`` that says no drops its answer)."""
        asked = {q.id for q in self.questions if self.asked(q)}
        return {k: v for k, v in self.answers.items() if k in asked}

    def profile(self) -> Profile:
        from tunewise.advisor.interview import profile_from_answers

        return profile_from_answers(self._asked_answers(), self.questions)

    def all_errors(self) -> dict[str, str]:
        """Field path -> problem for the answers as a whole (empty when they make a valid profile)."""
        from tunewise.advisor.answers import AnswersError

        try:
            self.profile()
        except AnswersError as exc:
            return dict(split_problem(p) for p in exc.problems)
        return {}

    def errors_for(self, question_ids: Iterable[str]) -> dict[str, str]:
        wanted = set(question_ids)
        return {self._question_id(path): message for path, message in self.all_errors().items()
                if self._question_id(path) in wanted}

    @staticmethod
    def _question_id(path: str) -> str:
        return path.removeprefix("extra.")

    def topic_of(self, path: str) -> int | None:
        qid = self._question_id(path)
        for index, topic in enumerate(self.topics):
            if any(q.id == qid for q in topic.questions):
                return index
        return None

    def save_answers(self, path: Path) -> Path:
        """Write the answers as an answers file (atomically: a temp file renamed over the target)."""
        from tunewise.advisor.answers import dump_answers

        text = redact(dump_answers(self.profile()))
        path = Path(path).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as stream:
                stream.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.source = path
        self.log.record("note", {"saved_answers": str(path)})
        return path

    def data_path(self) -> str | None:
        question = next((q for q in self.questions if q.id == "data.path"), None)
        if question is None or not self.asked(question):
            return None
        value = self.answers.get("data.path")
        return str(value) if value else None

    # -- advice (slow: the app calls these from workers) ------------------------------------------

    def run_audit(self) -> Any:
        """Audit the data path with the chosen model's tokenizer; the report feeds the ranking."""
        from tunewise.advisor.audit import audit

        path = self.data_path()
        if path is None:
            raise ValueError("no data path was given")
        report = audit(path, model=self.answers.get("model.name") or None)
        self.audit = report
        self.ranking = None
        self.log.record("audit", {"path": path, "report": report.to_dict()})
        return report

    def advised_profile(self) -> Profile:
        """The profile the ranking sees: the answers, with the audit's counts when there is one."""
        profile = self.profile()
        if self.audit is not None:
            from tunewise.advisor.audit import apply_audit

            profile = apply_audit(profile, self.audit)
        return profile

    def run_ranking(self) -> Any:
        """Score, quote and rank every registered method for these answers."""
        from tunewise.advisor.ranking import rank

        ranking = rank(self.advised_profile())
        self.ranking = ranking
        self.log.record("ranking", {"ranking": ranking.to_dict()})
        return ranking

    def choose(self, method_id: str) -> None:
        self.chosen_method = method_id
        rank = None
        if self.ranking is not None:
            rank = next((r.rank for r in self.ranking.recommendations if r.method == method_id), None)
        self.log.record("plan", {"chosen": method_id, "rank": rank})

    # -- decision log --------------------------------------------------------------------------

    def record_answers(self) -> None:
        profile = self.profile()
        self.log.record("answers", {"source": str(self.source) if self.source else None,
                                    "answers": self._asked_answers(), "profile": profile})

    def record_run(self, run_dir: Path, state: RunState) -> None:
        self.log.record("run", {"run_dir": str(run_dir), "status": state.status, "method": state.method,
                                "steps": state.step, "total_steps": state.total_steps, "wall_s": state.wall_s,
                                "result": state.result, "errors": [e.get("message") for e in state.errors]})
