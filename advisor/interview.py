"""The interview: the question catalogue (built-in + plugin-contributed) and answers -> profile.

Built-in question ids are the dotted paths of the answers file (``budget.usd``), so an interview and
an answers file fill the same :class:`~tunewise.plugins.types.Profile`. Each question belongs to a
topic; the TUI shows one topic per screen in :data:`TOPICS` order. Plugins add questions through
``tunewise_register_questions``; their answers reach methods in ``profile.extra[question.id]``.
Nothing here imports textual: the app renders these dataclasses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tunewise.advisor.answers import (
    SPECS,
    AnswersError,
    check_question_value,
    profile_from_mapping,
    validate_value,
)
from tunewise.plugins.types import Profile, Question


@dataclass(frozen=True)
class Topic:
    id: str
    title: str
    intro: str


TOPICS: tuple[Topic, ...] = (
    Topic("goals", "Use case & goals", "What the adapted model is for and what it should gain."),
    Topic("knowledge", "Knowledge & citations", "Whether it needs facts it does not have, and how fresh."),
    Topic("data", "Data", "What you can train or retrieve from. Point at a file or folder to audit it."),
    Topic("model", "Model", "The base model to adapt."),
    Topic("hardware", "Hardware", "Where training and serving would run."),
    Topic("budget", "Budget", "Money, calendar time and the expected query volume."),
    Topic("team", "Team", "Who will build and maintain it."),
)
TOPIC_IDS = tuple(t.id for t in TOPICS)


def _asks_about_knowledge(answers: Mapping[str, Any]) -> bool:
    return "knowledge" in (answers.get("goals") or ())


def _no_local_model(answers: Mapping[str, Any]) -> bool:
    return not answers.get("model.name")


def _spec_question(path: str, text: str, help: str, topic: str, ask_if: Any = None) -> Question:
    """A question for an answers-file field: type, default, choices and minimum come from its spec."""
    spec = SPECS[path]
    qtype = {"count": "int", "optional_text": "text"}.get(spec.kind, spec.kind)
    default = list(spec.default) if isinstance(spec.default, tuple) else spec.default
    return Question(id=path, text=text, help=help, type=qtype, default=default,
                    choices=spec.choices, topic=topic, minimum=spec.minimum, ask_if=ask_if)


def builtin_questions(hardware_names: Iterable[str] | None = None) -> list[Question]:
    """The built-in catalogue; the hardware choice lists ``hardware_names`` (default: the catalogue)."""
    if hardware_names is None:
        from tunewise.advisor.hardware import catalogue

        hardware_names = list(catalogue())
    gpu = _spec_question(
        "hardware.gpu", "Which accelerator will you train on?",
        "Memory decides what fits (full fine-tuning needs about 16 bytes per parameter, LoRA about 2, "
        "QLoRA about 0.55); peak FLOP/s decides how long it takes. Pick `cpu` to train here.", "hardware")
    gpu = Question(**{**gpu.__dict__, "type": "choice", "choices": tuple(hardware_names)})
    return [
        _spec_question("use_case", "What will the adapted model do?",
                       "One or two sentences in your words, e.g. 'answer billing questions for our "
                       "support team'. Reasons in the recommendation quote it.", "goals"),
        _spec_question("goals", "What should the model gain?",
                       "knowledge: facts it lacks (RAG is usually enough); task: a specific skill such as "
                       "classifying or extracting; style: a voice or tone; format: an output structure; "
                       "language: a language or dialect; domain: fluency in a field's jargon; safety: "
                       "avoiding harmful output; preference: matching people's judgement of quality "
                       "(the territory of RLHF and DPO).", "goals"),
        _spec_question("knowledge_changes", "How often do the facts it needs change?",
                       "Facts baked in by training go stale and need retraining; retrieval reads the "
                       "current documents at question time, so fast-changing knowledge favours RAG.",
                       "knowledge", _asks_about_knowledge),
        _spec_question("needs_citations", "Must answers cite their sources?",
                       "Only retrieval can point at the passage an answer came from; a fine-tuned model "
                       "cannot say where it learned something.", "knowledge"),
        _spec_question("data.documents", "How many reference documents do you have?",
                       "Manuals, policies, tickets, wiki pages the model should draw on. They feed a "
                       "retrieval index; they are not training examples.", "data"),
        _spec_question("data.unlabeled_tokens", "How much raw domain text do you have, in tokens?",
                       "Unlabeled text in the domain or language (a token is about ¾ of an English word). "
                       "Continual pretraining needs a lot of it, usually hundreds of millions to "
                       "billions of tokens.", "data"),
        _spec_question("data.labeled_examples", "How many input → output examples do you have?",
                       "Pairs showing exactly what the model should produce. A handful can go in the "
                       "prompt (in-context learning); hundreds to thousands make fine-tuning worthwhile.",
                       "data"),
        _spec_question("data.preference_pairs", "How many preference judgements do you have?",
                       "Pairs of outputs where a person marked the better one, or rankings. They train "
                       "a reward model (RLHF) or a policy directly (DPO).", "data"),
        _spec_question("data.human_raters", "Are people available to rate outputs over time?",
                       "RLHF is an ongoing loop: people rank the model's answers, a reward model learns "
                       "from them, the model is optimised against it, and the cycle repeats.", "data"),
        _spec_question("data.path", "Where is the data? (optional)",
                       "A jsonl/json/csv/parquet file, a datasets folder or a folder of .txt/.md files. "
                       "tunewise audits it (shape, counts, tokens, duplicates) and uses its counts.", "data"),
        _spec_question("model.name", "Which base model? (optional)",
                       "A local Hugging Face model folder or a hub id already in your cache. Leave empty "
                       "to plan for a model of the size below (runs here use the embedded "
                       "SmolLM2-135M-Instruct).", "model"),
        _spec_question("model.params_b", "How large is the model, in billions of parameters?",
                       "Compute grows with parameters × tokens (about 6·N·D FLOPs to train); memory with "
                       "parameters.", "model", _no_local_model),
        gpu,
        _spec_question("hardware.gpus", "How many of them?",
                       "More GPUs shorten training and, with ZeRO-3/FSDP sharding, split the memory of "
                       "full fine-tuning between them.", "hardware"),
        _spec_question("budget.usd", "What compute budget do you have, in US dollars?",
                       "Quotes give a low–high range from typical cloud prices.", "budget"),
        _spec_question("budget.days", "How many calendar days do you have?",
                       "Includes data preparation and evaluation, not just training: weeks for continual "
                       "pretraining, months of feedback for RLHF.", "budget"),
        _spec_question("queries_per_day", "How many queries per day do you expect once it is live?",
                       "RAG and in-context examples make every prompt longer, so they cost per query; "
                       "training costs once. The volume decides when training pays off.", "budget"),
        _spec_question("latency_sensitive", "Must answers come back fast?",
                       "Retrieval and long prompts add latency; a fine-tuned model answers from a short "
                       "prompt.", "budget"),
        _spec_question("team_expertise", "How experienced is the team with ML?",
                       "Fine-tuning needs NLP basics; continual pretraining advanced skills in NLP and the "
                       "domain; RLHF expert reinforcement-learning and human-in-the-loop skills.", "team"),
    ]


def plugin_questions() -> list[Question]:
    """Questions contributed through ``tunewise_register_questions`` (ids clashing with built-ins skipped)."""
    from tunewise.plugins.manager import get_host

    taken = set(SPECS)
    out: list[Question] = []
    for _plugin, question in get_host().collect("tunewise_register_questions"):
        if isinstance(question, Question) and question.id not in taken:
            taken.add(question.id)
            out.append(question)
    return out


def questions(include_plugins: bool = True) -> list[Question]:
    """Every question: built-ins in topic order, then plugin questions (topic ``extra`` unless they say)."""
    found = builtin_questions() + (plugin_questions() if include_plugins else [])
    order = {t: i for i, t in enumerate(TOPIC_IDS)}
    return sorted(found, key=lambda q: order.get(q.topic, len(order)))


def topics(all_questions: Iterable[Question] | None = None) -> list[Topic]:
    """Topics in screen order, with an ``extra`` topic when plugins asked questions outside the built-ins."""
    listed = list(TOPICS)
    qs = list(all_questions) if all_questions is not None else questions()
    if any(q.topic not in TOPIC_IDS for q in qs):
        listed.append(Topic("extra", "More questions", "Questions added by installed plugins."))
    return listed


def questions_for_topic(topic: str, all_questions: Iterable[Question] | None = None) -> list[Question]:
    qs = list(all_questions) if all_questions is not None else questions()
    if topic == "extra":
        return [q for q in qs if q.topic not in TOPIC_IDS]
    return [q for q in qs if q.topic == topic]


def should_ask(question: Question, answers: Mapping[str, Any]) -> bool:
    """Whether ``question`` applies given the answers so far.

    ``ask_if`` may be a plugin's code: it runs isolated like a hook (``plugins/isolation.py``) on a
    copy of the answers, and one that raises anything (``SystemExit`` included) or does not return
    within the plugin time limit counts as yes.
    """
    if question.ask_if is None:
        return True
    import copy

    from tunewise.plugins.isolation import run_isolated
    from tunewise.plugins.manager import REGISTRATION_LIMIT_S, time_limit

    condition, private = question.ask_if, copy.deepcopy(dict(answers))
    outcome = run_isolated(lambda: bool(condition(private)), time_limit(REGISTRATION_LIMIT_S),
                           name=f"tunewise-ask-if {question.id}")
    return bool(outcome.value) if outcome.ok else True


def defaults(all_questions: Iterable[Question] | None = None) -> dict[str, Any]:
    """Question id -> default answer."""
    qs = list(all_questions) if all_questions is not None else questions()
    return {q.id: q.default for q in qs}


_TRUE = {"yes", "y", "true", "1", "on"}
_FALSE = {"no", "n", "false", "0", "off", ""}


def parse_text(question: Question, text: str) -> Any:
    """A typed answer from what a user typed (numbers, yes/no, comma-separated lists); ValueError if not."""
    raw = text.strip()
    if question.type == "bool":
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise ValueError(f"answer yes or no, got {text!r}")
    if question.type == "multi":
        return [part.strip() for part in raw.split(",") if part.strip()]
    if question.type in ("int", "float"):
        if not raw:
            return question.default
        if question.id in SPECS and SPECS[question.id].kind == "count":
            return raw  # counts accept 2e9 / 500M / 2B; validate_answer parses them
        try:
            return int(raw) if question.type == "int" else float(raw)
        except ValueError:
            raise ValueError(f"must be a {'whole ' if question.type == 'int' else ''}number, got {text!r}") from None
    if question.type == "path":
        return raw or None
    return raw


def validate_answer(question: Question, value: Any) -> Any:
    """One answer checked and converted (ValueError with a message for the field), for inline validation."""
    if question.id in SPECS:
        result = validate_value(SPECS[question.id], value)
        if question.id == "hardware.gpu":
            from tunewise.advisor.hardware import HardwareError, find_hardware

            try:
                return find_hardware(result).name
            except HardwareError as exc:
                raise ValueError(str(exc)) from None
        return result
    return check_question_value(question, value)


def profile_from_answers(answers: Mapping[str, Any], all_questions: Iterable[Question] | None = None) -> Profile:
    """The profile for interview answers keyed by question id; missing answers take defaults.

    Raises :class:`~tunewise.advisor.answers.AnswersError` naming each bad field's path.
    """
    qs = list(all_questions) if all_questions is not None else questions()
    plugin = {q.id: q for q in qs if q.id not in SPECS}
    nested: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    unknown = []
    for key, value in answers.items():
        if key in SPECS:
            section, _, name = key.partition(".")
            if name:
                nested.setdefault(section, {})[name] = value
            else:
                nested[key] = value
        elif key in plugin:
            extra[key] = value
        else:
            unknown.append(f"{key}: unknown question")
    if unknown:
        raise AnswersError(unknown)
    if extra:
        nested["extra"] = extra
    return profile_from_mapping(nested, extra_questions=plugin)
