"""Preference pairs and prompts for RLHF and DPO, in trl's conversational format (no torch).

Rows come from :func:`tunewise.plugins.data.load_dataset` (jsonl/json/csv/parquet/HF folders), so a
bad row is reported as ``file:line``. Both preference layouts are accepted: ``prompt`` +
``chosen`` + ``rejected``, and ``prompt`` + ``responses`` ranked best first (n responses give every
one of their n·(n-1)/2 ordered pairs). Rows whose ``chosen``/``rejected`` are whole conversations
without a ``prompt`` have the shared leading turns taken as the prompt.

Every pair becomes ``{"prompt": [turns], "chosen": [assistant turn], "rejected": [assistant turn]}``,
the format trl's RewardTrainer, DPOTrainer and GRPOTrainer render with the model's chat template,
so all stages and the evaluation see the same text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewise.methods._hf.split import split_indices
from tunewise.plugins.data import DataError, load_dataset, preference_pairs, read_rows

Turns = list[dict[str, str]]


@dataclass(frozen=True)
class PreferencePair:
    """One judged pair: the conversation so far, the preferred and the rejected answer."""

    prompt: tuple[tuple[str, str], ...]
    """(role, content) turns ending with the user's turn."""
    chosen: str
    rejected: str
    where: str
    """``file:line`` of the row it came from."""

    @property
    def prompt_turns(self) -> Turns:
        return [{"role": role, "content": content} for role, content in self.prompt]

    @property
    def prompt_key(self) -> str:
        return json.dumps(self.prompt, ensure_ascii=False)

    def as_trl(self) -> dict[str, Any]:
        return {"prompt": self.prompt_turns, "chosen": [{"role": "assistant", "content": self.chosen}],
                "rejected": [{"role": "assistant", "content": self.rejected}]}


@dataclass(frozen=True)
class Prompt:
    """A prompt to sample answers for (policy optimisation or evaluation)."""

    turns: tuple[tuple[str, str], ...]
    where: str

    @property
    def messages(self) -> Turns:
        return [{"role": role, "content": content} for role, content in self.turns]

    @property
    def text(self) -> str:
        """The last user turn (what tables show)."""
        return self.turns[-1][1] if self.turns else ""


def _turns(value: Any, where: str, name: str) -> tuple[tuple[str, str], ...]:
    if isinstance(value, str):
        return (("user", value),)
    if isinstance(value, list) and value and all(isinstance(t, Mapping) for t in value):
        return tuple((str(t.get("role")), str(t.get("content", ""))) for t in value)
    raise DataError(f"{where}: {name!r} must be text or a list of {{role, content}} turns")


def _answer(value: Any, where: str, name: str) -> str:
    """An answer as text: a string, or a list of turns whose last one is the assistant's."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and isinstance(value[-1], Mapping):
        last = value[-1]
        if last.get("role") != "assistant":
            raise DataError(f"{where}: the last turn of {name!r} must be the assistant's, found {last.get('role')!r}")
        return str(last.get("content", ""))
    raise DataError(f"{where}: {name!r} must be text or a list of {{role, content}} turns")


def _implicit_prompt(chosen: Any, rejected: Any, where: str) -> tuple[Any, Any, Any]:
    """Split whole conversations into their shared leading turns (the prompt) and the two answers."""
    if not (isinstance(chosen, list) and isinstance(rejected, list)):
        raise DataError(f"{where}: missing 'prompt' (plain-text chosen/rejected need the prompt they answer)")
    shared = 0
    while shared < min(len(chosen), len(rejected)) - 1 and chosen[shared] == rejected[shared]:
        shared += 1
    if shared == 0:
        raise DataError(f"{where}: missing 'prompt', and 'chosen' and 'rejected' share no leading turns")
    return chosen[:shared], chosen[shared:], rejected[shared:]


def pairs_from_rows(rows: Sequence[Any]) -> list[PreferencePair]:
    """Every preference pair of validated rows (``tunewise.plugins.data.Row``), ranked lists expanded."""
    pairs: list[PreferencePair] = []
    problems: list[str] = []
    for row in rows:
        for pair in preference_pairs(row.data):
            try:
                prompt, chosen, rejected = pair["prompt"], pair["chosen"], pair["rejected"]
                if prompt is None:
                    prompt, chosen, rejected = _implicit_prompt(chosen, rejected, row.where)
                turns = _turns(prompt, row.where, "prompt")
                if turns[-1][0] != "user":
                    raise DataError(f"{row.where}: the prompt must end with a user turn, found {turns[-1][0]!r}")
                better, worse = _answer(chosen, row.where, "chosen"), _answer(rejected, row.where, "rejected")
                if better.strip() == worse.strip():
                    raise DataError(f"{row.where}: the preferred and the rejected answer are the same text")
                pairs.append(PreferencePair(turns, better, worse, row.where))
            except DataError as exc:
                problems.append(str(exc))
    if problems:
        shown = problems[:20] + ([f"… and {len(problems) - 20} more"] if len(problems) > 20 else [])
        raise DataError(f"{len(problems)} unusable preference row(s):\n  " + "\n  ".join(shown))
    return pairs


def load_pairs(paths: Sequence[str]) -> tuple[list[PreferencePair], list[str]]:
    """Pairs of every preference source of a plan, and the files they came from."""
    if not paths:
        raise DataError("the plan names no preference data (data: path/to/preferences.jsonl)")
    pairs: list[PreferencePair] = []
    files: list[str] = []
    for path in paths:
        loaded = load_dataset(path, expect={"preference"})
        pairs += pairs_from_rows(loaded.rows)
        files += loaded.files
    return pairs, files


def split_pairs(pairs: Sequence[PreferencePair], fraction: float, cap: int,
                seed: int) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """(train, held-out) pairs; every pair of one prompt lands on the same side, so no prompt leaks."""
    keys = [p.prompt_key for p in pairs]
    train, held = split_indices(keys, fraction, cap, seed)
    return [pairs[i] for i in train], [pairs[i] for i in held]


def unique_prompts(pairs: Sequence[PreferencePair]) -> list[Prompt]:
    """The distinct prompts of ``pairs``, in first-seen order."""
    seen: set[str] = set()
    out: list[Prompt] = []
    for pair in pairs:
        if pair.prompt_key not in seen:
            seen.add(pair.prompt_key)
            out.append(Prompt(pair.prompt, pair.where))
    return out


def load_prompts(path: str | Path) -> list[Prompt]:
    """Prompts from ``.txt`` (one per line) or jsonl/json/csv/parquet rows with a ``prompt`` field."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such prompts file")
    prompts: list[Prompt] = []
    if path.suffix.lower() == ".txt":
        from tunewise.plugins.bounded_load import read_lines

        bad = []
        for line in read_lines(path):  # split on "\n" only, each line bounded: a prompt per line
            if line.problem:
                bad.append(f"{path}:{line.number}: {line.problem}")
            elif line.text.strip():
                prompts.append(Prompt((("user", line.text.strip()),), f"{path}:{line.number}"))
        if bad:
            raise DataError(f"{path}: {len(bad)} bad prompt line(s):\n  " + "\n  ".join(bad[:20]))
    else:
        problems = []
        for row in read_rows(path):
            value = row.data.get("prompt")
            if value is None or (isinstance(value, str) and not value.strip()):
                problems.append(f"{row.where}: missing or empty 'prompt'")
                continue
            try:
                turns = _turns(value, row.where, "prompt")
            except DataError as exc:
                problems.append(str(exc))
                continue
            prompts.append(Prompt(turns, row.where))
        if problems:
            raise DataError(f"{path}: {len(problems)} bad prompt row(s):\n  " + "\n  ".join(problems[:20]))
    if not prompts:
        raise DataError(f"{path}: no prompts")
    return prompts


def sft_rows_from_pairs(pairs: Sequence[PreferencePair]) -> list[dict[str, Any]]:
    """SFT examples from the preferred answers (one per prompt: the first preferred answer seen)."""
    seen: set[str] = set()
    rows = []
    for pair in pairs:
        if pair.prompt_key in seen:
            continue
        seen.add(pair.prompt_key)
        rows.append({"prompt": pair.prompt_turns, "completion": [{"role": "assistant", "content": pair.chosen}]})
    return rows
