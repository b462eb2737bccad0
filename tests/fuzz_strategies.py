"""Hypothesis strategies for fuzzing the whole ``tunewise`` command line (tests/test_fuzz_cli.py).

Argument lists are generated from each command's own argparse configuration (its ``configure``),
so a new flag is fuzzed without touching this file: flags present or absent, values of the flag's
type or of the wrong type (huge, negative, nan, inf, empty, unicode, undecodable), paths that do not
exist, folders where files belong, files of random bytes, FIFOs, symlink loops. The generated
arguments hold placeholders (:class:`Ref`, :class:`GenFile`) that the test turns into real paths in
a per-example folder, so strategies stay independent of fixtures. File contents are generated too:
answers and plans start from the shipped examples with a few fields mutated, data files have random
row shapes.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]
COMMAND_NAMES = ("plugins", "model", "recommend", "estimate", "audit", "probe", "run", "rag", "label", "export")


@dataclass(frozen=True)
class Ref:
    """A path or value the test supplies: ``missing``, ``dir``, ``tiny_model``, ``canary``, ... (see the test)."""

    kind: str


@dataclass(frozen=True)
class GenFile:
    """A file written into the example's folder before the call; the argument becomes its path.

    ``content`` may hold placeholders the test fills in when writing: ``@@CANARY@@`` (the secret
    canary), ``@@EXDIR@@`` (the example's folder), ``@@REF:kind@@`` (a workspace path) and
    ``@@CHILD<i>@@`` (the path of ``children[i]``, written first: a plan's data file).
    """

    suffix: str
    content: bytes
    children: tuple[GenFile, ...] = ()


Arg = str | Ref | GenFile

# Paths that exist in any workspace but are the wrong thing, or no thing at all.
BAD_PATHS = ("missing", "missing_deep", "dir", "empty_dir", "empty", "devnull", "fifo", "loop", "long_name",
             "tilde_user", "bytes_file", "trailing_slash", "canary_name")
SAFE_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=24)
# What a real argv holds for bytes that are not UTF-8 (os.fsdecode's surrogateescape).
UNDECODABLE = st.sampled_from(["\udcff", "caf\udce9", "x\udc80y.jsonl"])
HUGE = ("9" * 40, "1e400", "-1e400", str(2**63), str(-(2**63) - 1), "1" + "0" * 400)
ODD_NUMBERS = ("0", "-0", "-1", "-7", "nan", "NaN", "inf", "-inf", "1e-320", "0x10", "1_000", "1.5", "2e9",
               "500M", "1B", "", " ", "+3", "١٢", "1,5", "½", "true", "None", "--1")
CANARY_SLOTS = ("canary", "canary_in_text")


def one_in(draw: st.DrawFn, n: int) -> bool:
    """True about once in ``n`` draws. (Not ``integers(0, n - 1) == 0``: Hypothesis favours the ends
    of a range, which made the "rare" branch common.)"""
    return draw(st.integers(0, n - 1)) == n // 2


def odd_text() -> st.SearchStrategy[str]:
    """Free text as a user (or an attacker) might type it, canary placeholders excluded."""
    return st.one_of(SAFE_TEXT, UNDECODABLE, st.sampled_from(
        ["", " ", "-", "--", "-x", "é✓ 汉字 🙂", "a\tb\nc", "\r", "../../etc/passwd", "$(echo hi)", "%s%n{0}",
         "[red]markup[/red]", "\x1b[2J", "x" * 5000, "‮reversed"]))


def _text_or_canary() -> st.SearchStrategy[Arg]:
    return st.one_of(odd_text(), st.sampled_from([Ref(k) for k in CANARY_SLOTS]))


def number_arg(kind: type, tame: tuple[int, int] | None, noisy: bool,
               allowed: Any = None) -> st.SearchStrategy[str]:
    """A value for a number flag. Usually one argparse accepts: in range (``allowed``, the flag's
    declared :class:`~tunewise.advisor.limits.Range`, when it has one), its bounds included; else
    zero, negative, huge, nan or inf, and when ``noisy`` text that is no number at all. ``tame``:
    the flag sizes real work (steps, tokens to generate), so accepted values stay in that range."""
    low, high = (allowed.low, allowed.high) if allowed is not None else (-5, 10**6)
    whole = allowed.whole if allowed is not None else kind is int
    if tame:
        low, high = max(low, tame[0]), min(high, tame[1])
    inside = st.integers(max(math.ceil(low), 1 if low >= 0 else -5), max(1, min(high, 10_000)))
    valid_text = inside.map(str)
    bounds = [] if tame else [str(int(high) if whole else high)]
    if allowed is not None and not allowed.above_low:
        bounds.append(str(int(low) if whole else low))
    if not whole:
        valid_text = st.one_of(valid_text, st.floats(max(low, 0.01), min(high, 100.0 if not tame else 2.0)).map(repr))
    edge = ["0", "-1", "-7", "nan", "inf", "-inf"] + ([] if tame else ["9" * 40, str(2**63), "1e400"])
    if allowed is not None:
        edge += [str(allowed.high * 10 + 1), str(allowed.low - 1)]
    options = [valid_text, valid_text, valid_text, valid_text, valid_text, valid_text, valid_text, st.sampled_from(edge)]
    if bounds:
        options.append(st.sampled_from(bounds))
    if noisy:
        options += [st.sampled_from(edge), st.sampled_from(ODD_NUMBERS + HUGE)]
    return st.one_of(options)


def path_arg(good: tuple[str, ...], files: st.SearchStrategy[GenFile] | None = None) -> st.SearchStrategy[Arg]:
    """A path flag: one of the ``good`` workspace refs, a generated file, or a bad path."""
    options: list[st.SearchStrategy[Arg]] = []
    if good:
        options += [st.sampled_from([Ref(k) for k in good])] * 3
    if files is not None:
        options += [files] * 4
    options += [st.sampled_from([Ref(k) for k in BAD_PATHS]), odd_text(), random_bytes_file()]
    return st.one_of(options)


def random_bytes_file() -> st.SearchStrategy[GenFile]:
    return st.builds(GenFile, st.sampled_from([".jsonl", ".json", ".csv", ".yaml", ".txt", ".parquet", ""]),
                     st.binary(max_size=200))


# ---------------------------------------------------------------------------------------------- documents

_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.integers(-(10**30), 10**30),
    st.floats(allow_nan=True, allow_infinity=True), SAFE_TEXT,
    st.sampled_from(["lora", "task", "knowledge", "A100", "L4", "1.5B", "500M", "1e999", "chat.jsonl", "../x",
                     "~no-such-user-fz/x", "/dev/null", "/", "x" * 400, "{{ 7*7 }}", "!!python/object", "auto",
                     "cpu", "cuda", "bf16", "4bit", "all-linear", "q_proj", "dpo", "grpo", "knn", "hybrid"]),
)
CANARY_TEXT = "@@CANARY@@"
"""Replaced by the canary value when the file is written (strategies cannot know it)."""

values = st.recursive(
    st.one_of(_scalar, st.just(CANARY_TEXT), st.just(f"see {CANARY_TEXT} here")),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.one_of(SAFE_TEXT, st.sampled_from(
        ["name", "path", "r", "gpu", "usd", "k", CANARY_TEXT])), inner, max_size=3),
    max_leaves=6,
)


def _key_paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    paths = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            paths.append((*prefix, key))
            paths += _key_paths(value, (*prefix, key))
    return paths


@st.composite
def mutated(draw: st.DrawFn, doc: dict, protect: frozenset[str] = frozenset(),
            cost_keys: frozenset[str] = frozenset(), max_mutations: int = 3) -> dict:
    """``doc`` with 0..max_mutations edits: a value replaced, a key deleted, an unknown key added.

    Keys in ``protect`` are never touched (the test needs them, e.g. a plan's model); keys in
    ``cost_keys`` only get values that cannot make real work bigger (so a run that starts stays short).
    """
    doc = json.loads(json.dumps(doc))
    for _ in range(draw(st.integers(0, max_mutations))):
        paths = [p for p in _key_paths(doc) if p[-1] not in protect and p[0] not in protect]
        op = draw(st.sampled_from(["set", "set", "delete", "add", "retype"]))
        if op == "add" or not paths:
            parents = [()] + [p for p in paths if isinstance(_get(doc, p), dict)]
            parent = draw(st.sampled_from(parents))
            key = draw(st.one_of(SAFE_TEXT.filter(bool), st.sampled_from(["extra", "model", "lr", CANARY_TEXT])))
            if key not in protect:
                _get(doc, parent)[key] = draw(values)
            continue
        path = draw(st.sampled_from(paths))
        parent, key = _get(doc, path[:-1]), path[-1]
        if key in cost_keys:  # neither deleted (a default may be bigger) nor set to a valid value
            parent[key] = draw(st.sampled_from([0, -1, -(10**9), "many", None, [], {}, 0.0, float("nan"), True]))
        elif op == "delete":
            del parent[key]
        elif op == "retype":
            old = parent[key]
            parent[key] = (str(old) if not isinstance(old, str) else [old]) if draw(st.booleans()) else {"v": old}
        else:
            parent[key] = draw(values)
    return doc


def _get(doc: Any, path: tuple) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def dump_yaml(doc: Any) -> str:
    try:
        return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=10**6)
    except (yaml.YAMLError, ValueError, TypeError):
        return str(doc)


@functools.cache
def example_docs(folder: str) -> dict[str, dict]:
    """The shipped example answers or plans, parsed."""
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted((REPO / "examples" / folder).glob("*.yaml"))}


def placeholder(arg: Arg, children: list[GenFile]) -> str:
    """``arg`` as text inside a generated file: refs and nested files become placeholders."""
    if isinstance(arg, Ref):
        return f"@@REF:{arg.kind}@@"
    if isinstance(arg, GenFile):
        children.append(arg)
        return f"@@CHILD{len(children) - 1}@@"
    return arg


def _yaml_file(draw: st.DrawFn, doc: dict, children: list[GenFile]) -> GenFile:
    # Broken YAML is test_fuzz_loaders' subject: here it is rare, so most files get past the parser.
    tail = draw(st.sampled_from(["\n: bad", "\t", "{", "\x00", "&a [*a]\n"])) if one_in(draw, 10) else ""
    head = draw(st.sampled_from(["\ufeff", "---\n", "%YAML 1.1\n---\n", "# é\n"])) if one_in(draw, 5) \
        else ""
    suffix = draw(st.sampled_from([".yaml", ".yaml", ".yml", ".txt"]))
    text = head + dump_yaml(doc) + tail
    return GenFile(suffix, text.encode("utf-8", "surrogatepass"), tuple(children))


def answers_files(data_paths: st.SearchStrategy[Arg]) -> st.SearchStrategy[GenFile]:
    """An example answers file, mutated; ``data.path`` sometimes points at a (generated) data file."""
    examples = list(example_docs("answers").values())

    @st.composite
    def build(draw: st.DrawFn) -> GenFile:
        base = json.loads(json.dumps(draw(st.sampled_from(examples))))
        children: list[GenFile] = []
        if draw(st.booleans()) and isinstance(base.get("data"), dict):
            base["data"]["path"] = placeholder(draw(data_paths), children)
        return _yaml_file(draw, draw(mutated(base, protect=frozenset({"path"}))), children)

    return build()


METHOD_COST_KEYS = frozenset({
    "max_steps", "epochs", "batch_size", "seq_len", "generation_examples", "save_steps", "max_new_tokens",
    "max_eval", "shots", "answer_questions", "num_generations", "prompts_per_step", "eval_max_prompts",
    "reward_epochs", "reward_batch_size", "reward_num_layers", "max_length", "recall_at", "prompt_token_budget",
    "compare_selections", "chunk_tokens", "overlap_tokens", "sft", "dpo_reward_judge", "processes", "k",
    "max_hours", "max_usd", "eval_fraction", "r", "lora_r", "alpha", "gradient_accumulation_steps", "distributed",
    "training", "config", "eval_data", "max_examples", "method", "algorithm", "selection", "mode",
})
"""Plan keys whose valid values scale real work: with a real model they only get invalid values."""

CHEAP = {
    "training": {"max_steps": 1, "batch_size": 1, "seq_len": 128, "generation_examples": 1, "save_steps": 100,
                 "eval_fraction": 0.34},
    "in_context": {"max_eval": 2, "shots": 2, "compare_selections": False, "max_new_tokens": 2,
                   "prompt_token_budget": 64, "eval_fraction": 0.34},
    "rag": {"answer_questions": 1, "max_new_tokens": 2, "recall_at": [1]},
    "rlhf": {"max_new_tokens": 2, "eval_max_prompts": 1, "num_generations": 2, "prompts_per_step": 1,
             "reward_num_layers": 1, "reward_top_layers": 1, "reward_batch_size": 2, "max_length": 160,
             "dpo_reward_judge": False, "sft": False},
}
"""Settings that keep a run on the 2-layer test model to a few seconds."""


def plan_files(data_for: dict[str, st.SearchStrategy[Arg]], model: st.SearchStrategy[Arg],
               live: bool = False, max_mutations: int = 3) -> st.SearchStrategy[GenFile]:
    """An example plan with a generated or shipped data file, ``model`` set, a few fields mutated.

    ``live``: the model can really load, so cost settings are made cheap and only mutated to invalid values.
    """
    examples = list(example_docs("plans").values())

    @st.composite
    def build(draw: st.DrawFn) -> GenFile:
        base = json.loads(json.dumps(draw(st.sampled_from(examples))))
        method = base["method"]
        children: list[GenFile] = []
        base["model"] = placeholder(draw(model), children)
        base["data"] = placeholder(draw(data_for.get(method, data_for["default"])), children)
        base["output_dir"] = "@@EXDIR@@/out"
        if method not in ("rag", "in_context"):  # the two that do not train take no training block
            base.setdefault("training", {}).update(CHEAP["training"])
        base["config"].update(CHEAP.get(method, {}))
        if method == "rag":
            base["config"]["questions"] = placeholder(draw(data_for["questions"]), children)
            base["config"]["index_dir"] = "@@EXDIR@@/index"
        if method == "rlhf" and "prompts" in base["config"]:
            base["config"]["prompts"] = placeholder(draw(data_for["prompts"]), children)
        protect = frozenset({"model", "output_dir", "index_dir"}) if live else frozenset()
        doc = draw(mutated(base, protect=protect, cost_keys=METHOD_COST_KEYS if live else frozenset(),
                           max_mutations=max_mutations))
        return _yaml_file(draw, doc, children)

    return build()


# ---------------------------------------------------------------------------------------------- data rows

_content = st.one_of(SAFE_TEXT, st.just(CANARY_TEXT), st.sampled_from(["", " ", "x" * 3000, "é✓", "\u2028"]),
                     st.integers(), st.none(), st.lists(SAFE_TEXT, max_size=2))
_role = st.sampled_from(["system", "user", "assistant", "assistant", "tool", "", "USER", 3])
_rows = st.one_of(
    st.fixed_dictionaries({"messages": st.lists(st.fixed_dictionaries({"role": _role, "content": _content}),
                                                max_size=4)}),
    st.fixed_dictionaries({"instruction": _content, "input": _content, "output": _content}),
    st.fixed_dictionaries({"prompt": _content, "chosen": _content, "rejected": _content}),
    st.fixed_dictionaries({"prompt": _content, "responses": st.lists(_content, max_size=3)}),
    st.fixed_dictionaries({"prompt": _content, "candidates": st.lists(_content, max_size=3)}),
    st.fixed_dictionaries({"question": _content, "source": _content, "answer": _content}),
    st.fixed_dictionaries({"text": _content}),
    st.fixed_dictionaries({"prompt": _content}),
    st.dictionaries(SAFE_TEXT, _content, max_size=3),
    values,
)
_good_rows = st.one_of(
    st.fixed_dictionaries({"messages": st.just([{"role": "user", "content": "hi"}]).map(
        lambda m: [*m, {"role": "assistant", "content": "hello there"}])}),
    st.fixed_dictionaries({"prompt": st.sampled_from(["Why?", "How do I reset it?"]),
                           "chosen": st.just("Because."), "rejected": st.just("No.")}),
    st.fixed_dictionaries({"instruction": st.just("Classify"), "input": SAFE_TEXT, "output": st.just("billing")}),
    st.fixed_dictionaries({"text": SAFE_TEXT.map(lambda t: t + " some words of text.")}),
    st.fixed_dictionaries({"prompt": st.just("Say hi"), "candidates": st.just(["hi", "hello"])}),
    st.fixed_dictionaries({"question": st.just("What is assert?"), "source": st.just("assert.txt"),
                           "answer": st.just("a statement")}),
)


def _jsonl(rows: list, junk: list[str]) -> bytes:
    lines = [json.dumps(r, ensure_ascii=False, allow_nan=True) for r in rows] + junk
    return "\n".join(lines).encode("utf-8", "surrogatepass")


def _csv(rows: list) -> bytes:
    keys: list[str] = []
    for r in rows:
        if isinstance(r, dict):
            keys += [str(k) for k in r if str(k) not in keys]
    lines = [",".join(keys)]
    for r in rows:
        cells = [json.dumps(r.get(k, "") if isinstance(r, dict) else r, ensure_ascii=False) for k in keys]
        lines.append(",".join(cells))
    return "\n".join(lines).encode("utf-8", "surrogatepass")


def data_files(good_bias: bool = False) -> st.SearchStrategy[GenFile]:
    """A data file with random row shapes: jsonl (with junk lines), json, csv or plain text."""
    rows = st.lists(st.one_of(_good_rows, _good_rows, _rows) if good_bias else st.one_of(_good_rows, _rows),
                    min_size=0, max_size=6)
    junk = st.lists(st.sampled_from(["", "{", "[1, 2]", "null", '{"a": NaN}', "\ufeff{}", "\x00", "{}" * 3]),
                    max_size=1 if good_bias else 2)
    return st.one_of(
        st.builds(lambda r, j: GenFile(".jsonl", _jsonl(r, j)), rows, junk),
        st.builds(lambda r: GenFile(".jsonl", _jsonl(r, [])), rows),
        st.builds(lambda r: GenFile(".json", json.dumps(r, allow_nan=True).encode()), rows),
        st.builds(lambda r: GenFile(".csv", _csv(r)), rows),
        st.builds(lambda t: GenFile(".txt", t.encode("utf-8", "surrogatepass")), SAFE_TEXT),
    )


# ---------------------------------------------------------------------------------------------- argv

@functools.cache
def command_parser(name: str) -> argparse.ArgumentParser:
    """The command's real argparse configuration."""
    parser = argparse.ArgumentParser(prog=f"tunewise {name}")
    importlib.import_module(f"tunewise.advisor.commands.{name}").configure(parser)
    return parser


@dataclass
class Context:
    """What one generated command line is about.

    ``live``: the command's model can really load, so flags that size work stay small. ``noisy``:
    values argparse itself refuses (not a number, not a choice, unknown flags) are allowed.
    """

    command: str
    noisy: bool = False
    live: bool = False


MODEL_DESTS = {"model"}
TAME = {"steps": (4, 5), "seq_len": (16, 64), "batch_size": (1, 2), "max_new_tokens": (1, 4), "k": (1, 4),
        "processes": (1, 1), "max_steps": (1, 2)}
"""Integer flags that size real work, with a small valid range: with a model that loads they are
always given (their defaults are sized for real use) and stay small."""
ALWAYS = {"keys_from_stdin"}
"""Flags given unless noisy: without --keys-from-stdin, label refuses a non-terminal at once."""
NEVER = {"tunewise model prepare": {"force"}}
"""Flags never generated: ``--force`` rewrites the embedded model every test shares (minutes of work)."""
MODEL_COMMANDS = {"probe", "label", "rag"}
"""Commands whose default model is the 135M embedded one: the fuzzer always names a model instead."""


@functools.cache
def _by_dest(model_command: bool, rag: bool) -> dict[str, st.SearchStrategy[Arg]]:
    """Value strategies for flags named like a path, a model, a method, a query (built once)."""
    data = data_files()
    plan_data = {"default": path_arg(("data_chat",), data),
                 "continual_pretraining": path_arg(("docs", "odd_names"), data),
                 "rlhf": path_arg(("data_prefs",), data), "in_context": path_arg(("data_intents",), data),
                 "rag": path_arg(("docs",), data), "questions": path_arg(("questions",), data),
                 "prompts": path_arg(("rlhf_prompts",), data)}
    return {
        "answers": path_arg(("answers_example",), answers_files(path_arg(("data_chat", "data_prefs"), data))),
        "plan": path_arg(("plan_example",), plan_files(plan_data, path_arg(("missing",)), live=False)),
        "path": path_arg(("data_chat", "data_prefs", "data_intents", "docs", "odd_names"), data),
        "prompts": path_arg(("rlhf_prompts", "label_prompts"), data_files(good_bias=True)),
        "out": path_arg(("new_file", "new_file", "new_dir_file", "existing_file")),
        "index": path_arg(("index", "index", "new_dir") if rag else ()),
        "source": path_arg(("docs", "doc_file", "odd_names"), data),
        "embedding_model": path_arg(("tiny_model",)),
        # An odd text might name the embedded 135M model ("" = default): only for commands that merely read it.
        "model": st.one_of(st.sampled_from([Ref(k) for k in ("tiny_model", "tiny_model", "hub_id", *BAD_PATHS)]),
                           random_bytes_file()) if model_command
        else path_arg(("tiny_model", "hub_id", "embedded_name")),
        "method": st.one_of(st.sampled_from(["lora", "full_finetune", "continual_pretraining", "rag", "in_context",
                                             "rlhf", "LoRA", "dpo"]), odd_text()),
        "gpu": st.one_of(st.sampled_from(["A100-80GB", "H100", "L4", "cpu", "T4", "a100"]), odd_text()),
        "query": _text_or_canary(), "question": _text_or_canary(), "labeler": _text_or_canary(),
        "tokens": st.sampled_from(["2B", "500M", "20000", "1e12", "0.5", "1", "3e9"]),
    }


def _value(dest: str, action: argparse.Action, ctx: Context) -> st.SearchStrategy[Arg]:
    """A value for one flag or positional, by what the flag means."""
    by_dest = _by_dest(ctx.command in MODEL_COMMANDS, ctx.command == "rag")
    if dest == "tokens":
        return st.one_of(by_dest["tokens"], number_arg(float, None, ctx.noisy, getattr(action.type, "allowed", None)))
    if dest in by_dest:
        return by_dest[dest]
    if action.choices is not None:
        choices = st.sampled_from(list(action.choices))
        return st.one_of(choices, odd_text(), st.sampled_from(["JSON", "table "])) if ctx.noisy else choices
    allowed = getattr(action.type, "allowed", None)  # advisor/limits.py flags say their range
    kind = action.type if action.type in (int, float) else (float if callable(action.type) else None)
    if kind is not None:
        return number_arg(kind, tame=TAME.get(dest) if ctx.live else None, noisy=ctx.noisy, allowed=allowed)
    return odd_text()


def _flag_args(draw: st.DrawFn, action: argparse.Action, value: Arg | None, ctx: Context) -> list[Arg]:
    flag = draw(st.sampled_from(action.option_strings))
    if value is None:
        return [flag]
    if isinstance(value, str) and (one_in(draw, 6) or (value.startswith("-") and not ctx.noisy)):
        return [f"{flag}={value}"]  # how a value that starts with "-" gets past argparse
    return [flag, value]


def _positional_ok(value: Arg, ctx: Context) -> bool:
    """A well-formed positional cannot look like a flag."""
    return ctx.noisy or not isinstance(value, str) or not value.startswith("-") or value.lstrip("-").isdigit()


@st.composite
def parser_args(draw: st.DrawFn, parser: argparse.ArgumentParser, ctx: Context) -> list[Arg]:
    """Arguments for ``parser``: each optional flag present or not, positionals present, subcommands
    chosen; when noisy, also missing required arguments, unknown subcommands, flags and strays."""
    options: list[list[Arg]] = []
    positionals: list[Arg] = []
    sub_args: list[Arg] = []
    actions = [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]
    model_action = next((a for a in actions if a.dest in MODEL_DESTS and a.option_strings), None)
    if model_action is not None:
        # Name the model first: whether it can load decides how big the other values may be.
        if ctx.command in MODEL_COMMANDS or draw(st.booleans()):
            value = draw(_value("model", model_action, ctx))
            ctx.live = value == Ref("tiny_model")
            options.append(_flag_args(draw, model_action, value, ctx))
        else:
            ctx.live = ctx.command not in MODEL_COMMANDS  # the default (embedded) model
    for action in actions:
        if action is model_action or action.dest in NEVER.get(parser.prog, ()):
            continue
        if isinstance(action, argparse._SubParsersAction):
            names = list(action.choices)
            name = draw(odd_text()) if ctx.noisy and one_in(draw, 5) else draw(st.sampled_from(names))
            sub_args = [name]
            if name in action.choices:
                sub_args += draw(parser_args(action.choices[name], ctx))
            continue
        if not action.option_strings:
            count = draw(st.integers(1, 3)) if action.nargs in ("+", "*") else 1
            if ctx.noisy and one_in(draw, 10):
                count = 0  # a missing positional: argparse's error
            value = _value(action.dest, action, ctx).filter(lambda v: _positional_ok(v, ctx))
            positionals += [draw(value) for _ in range(count)]
            continue
        required = (action.required or (ctx.live and action.dest in TAME) or action.dest in ALWAYS) and not (
            ctx.noisy and one_in(draw, 10))
        if not required and not draw(st.booleans()):
            continue
        value = draw(_value(action.dest, action, ctx)) if action.nargs != 0 else None
        options.append(_flag_args(draw, action, value, ctx))
        if one_in(draw, 30):
            options.append(_flag_args(draw, action, value, ctx))  # the same flag twice: the last one counts
    options = draw(st.permutations(options)) if options else []
    extra: list[Arg] = []
    if ctx.noisy and one_in(draw, 4):
        extra = [draw(st.sampled_from(["--no-such-flag", "--", "-", "--format", "stray", "-h"]))]
    flat = [a for group in options for a in group]
    if draw(st.booleans()):
        return [*flat, *positionals, *sub_args, *extra]
    return [*sub_args, *positionals, *flat, *extra] if not sub_args else [*sub_args, *flat, *positionals, *extra]


@st.composite
def command_line(draw: st.DrawFn, command: str) -> list[Arg]:
    """A whole ``tunewise`` argv for ``command``: well-formed three times in four, sometimes with a
    global flag in front."""
    ctx = Context(command, noisy=one_in(draw, 4))
    head: list[Arg] = []
    if one_in(draw, 10):
        head = [draw(st.sampled_from(["--strict-plugins", "--version"] if ctx.noisy else ["--strict-plugins"]))]
    return [*head, command, *draw(parser_args(command_parser(command), ctx))]
