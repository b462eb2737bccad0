"""Numbers out of range (nan, inf, 1e300, negatives, thousands of digits): one message naming the flag or field.

Every numeric flag of every command goes through :mod:`tunewise.advisor.limits` (checked on the real
parsers), each is tried with the bad values, and the CLI itself is run for one case of each kind. The
cost formulas refuse non-finite inputs and results by name, and quotes at the edges of every range
stay finite.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import itertools
import json
import math
from pathlib import Path

import pytest
from support import REPO, run_cli
from tunewise.advisor import limits
from tunewise.advisor.answers import FIELDS, AnswersError, parse_answers
from tunewise.advisor.cli import COMMANDS

BAD = ["nan", "inf", "-inf", "1e300", "-1e300", "1" + "0" * 5000, "-1", "0x10", "abc", ""]


def _parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    """Each command's real parser (and each sub-command's), as ``tunewise`` builds them."""
    out = []
    for name in COMMANDS:
        module = importlib.import_module(f"tunewise.advisor.commands.{name}")
        parser = argparse.ArgumentParser(prog=f"tunewise {name}")
        module.configure(parser)
        out.append((name, parser))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                out += [(f"{name} {sub}", p) for sub, p in action.choices.items()]
    return out


def _numeric_actions() -> list[tuple[str, argparse.Action, limits.Range]]:
    return [(command, action, action.type.allowed) for command, parser in _parsers()  # type: ignore[union-attr]
            for action in parser._actions if hasattr(action.type, "allowed")]


def test_no_numeric_flag_bypasses_the_limits() -> None:
    """A new ``type=int``/``type=float`` flag fails here: it would take nan, inf and 1e300."""
    problems = []
    for path in sorted((REPO / "advisor" / "commands").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
                for keyword in node.keywords:
                    if keyword.arg == "type" and isinstance(keyword.value, ast.Name) and keyword.value.id in (
                            "int", "float"):
                        problems.append(f"{path.name}:{node.lineno}: type={keyword.value.id}")
    assert not problems, problems
    assert len(_numeric_actions()) >= 20  # the sweeps below really cover the flags


@pytest.mark.parametrize("text", BAD, ids=lambda text: text if len(text) < 20 else f"{len(text)}-digits")
def test_every_numeric_flag_refuses_out_of_range_text(text: str) -> None:
    for command, action, allowed in _numeric_actions():
        if text == "-1" and allowed.low <= -1:
            continue  # inside this range (a cosine similarity)
        try:
            action.type(text)  # type: ignore[misc]
        except argparse.ArgumentTypeError as exc:
            assert str(exc).startswith("must be"), exc
        else:
            pytest.fail(f"tunewise {command} {action.option_strings[0]} took {text[:20]!r}")


def test_every_numeric_flag_takes_its_bounds_and_its_default() -> None:
    for command, action, allowed in _numeric_actions():
        convert = action.type
        assert convert is not None
        low = allowed.low + (1 if allowed.whole else 1e-6) * allowed.above_low
        assert convert(repr(low)) == low and convert(f"{allowed.high:.0f}") == allowed.high, (command, action.dest)
        if action.default is not None:
            assert convert(str(action.default)) == action.default, (command, action.dest)


@pytest.mark.parametrize(("args", "flag"), [
    (["estimate", "--method", "lora", "--tokens", "1e6", "--params-b", "1e300"], "--params-b"),
    (["estimate", "--method", "lora", "--tokens", "1e6", "--params-b", "nan"], "--params-b"),
    (["estimate", "--method", "lora", "--tokens", "1e6", "--params-b", "inf"], "--params-b"),
    (["estimate", "--method", "lora", "--tokens", "1e6", "--params-b", "-1"], "--params-b"),
    (["estimate", "--method", "lora", "--tokens", "1e6", "--params-b", "0"], "--params-b"),
    (["estimate", "--method", "lora", "--tokens", "-5"], "--tokens"),
    (["estimate", "--method", "rag", "--tokens", "1e6", "--queries-per-day", "nan"], "--queries-per-day"),
    (["estimate", "--method", "lora", "--tokens", "1e6", "--gpus", "9" * 5000], "--gpus"),
    (["rag", "search", "q", "--index", "x", "--k", "1e30"], "--k"),
    (["label", "--prompts", "p", "--out", "o", "--seed", str(2**70)], "--seed"),
    (["run", "plan.yaml", "--max-steps", "inf"], "--max-steps"),
])
def test_cli_names_the_flag(args: list[str], flag: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr  # argparse's usage error
    assert f"argument {flag}: must be" in result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr


def test_estimate_at_the_largest_accepted_values_gives_a_finite_quote() -> None:
    result = run_cli("estimate", "--method", "continual_pretraining", "--params-b", "100000", "--tokens", "1e15",
                     "--gpus", "100000", "--seq-len", str(2**24), "--format", "json")
    assert result.returncode == 0, result.stderr
    quote = json.loads(result.stdout)
    for key in ("flops", "gpu_hours", "wall_hours", "usd_low", "usd_high", "peak_memory_gb"):
        assert isinstance(quote[key], float) and math.isfinite(quote[key]), key  # inf would be null


# -- answers files ---------------------------------------------------------------------------------


NUMERIC_FIELDS = [f for f in FIELDS if f.kind in ("count", "int", "float")]


def _answers(path: str, value: str) -> str:
    section, _, name = path.partition(".")
    return f"{section}:\n  {name}: {value}\n" if name else f"{section}: {value}\n"


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "1.0e300", "-1.0e300", "1" + "0" * 400, "-1"],
                         ids=lambda value: value if len(value) < 20 else f"{len(value)}-digits")
def test_every_numeric_answer_refuses_out_of_range_values(value: str) -> None:
    assert len(NUMERIC_FIELDS) >= 9
    for spec in NUMERIC_FIELDS:
        if value == "-1" and spec.minimum is None:
            continue
        with pytest.raises(AnswersError, match=rf"answers:\d+: {spec.path}: must be"):
            parse_answers(_answers(spec.path, value), extra_questions={})


def test_every_numeric_answer_takes_its_maximum() -> None:
    for spec in NUMERIC_FIELDS:
        assert spec.maximum is not None, spec.path
        text = f"{spec.maximum:.0f}" if spec.kind != "float" else f"{float(spec.maximum)!r}"
        parse_answers(_answers(spec.path, text), extra_questions={})


def test_recommend_names_the_field(tmp_path: Path) -> None:
    answers = tmp_path / "answers.yaml"
    answers.write_text("use_case: support bot\nbudget:\n  usd: .nan\nqueries_per_day: 1.0e300\n")
    result = run_cli("recommend", "--answers", str(answers))
    assert result.returncode == 1, result.stderr
    assert "answers.yaml:3: budget.usd: must be a finite number" in result.stderr
    assert "answers.yaml:4: queries_per_day: must be ≤" in result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr


# -- the cost formulas -----------------------------------------------------------------------------


def test_quotes_refuse_non_finite_inputs_by_name() -> None:
    from tunewise.advisor.hardware import find_hardware
    from tunewise.plugins import costs

    hardware = find_hardware("A100-80GB")
    shape = costs.shape_from_params(7)
    for bad in (math.nan, math.inf, -1.0):
        with pytest.raises(costs.QuoteInputError, match="params_b must be"):
            costs.shape_from_params(bad)
        with pytest.raises(costs.QuoteInputError, match="tokens must be"):
            costs.training_quote("lora", shape, bad, hardware, kind="lora")
        with pytest.raises(costs.QuoteInputError, match="queries_per_day must be"):
            costs.inference_quote("rag", shape, hardware, extra_prompt_tokens=100, queries_per_day=bad)
    with pytest.raises(costs.QuoteInputError, match="flops"):  # finite inputs whose product overflows
        costs.training_quote("lora", shape, 1e300, hardware, kind="lora")


@pytest.mark.parametrize("mfu", [math.nan, math.inf, -0.3, "fast"])
def test_a_damaged_calibration_is_named(mfu: object) -> None:
    from dataclasses import replace

    from tunewise.advisor.hardware import find_hardware
    from tunewise.plugins import costs

    hardware = replace(find_hardware("cpu"), calibration={"lora": {"mfu": mfu, "memory_offset_gb": 0.1}})
    with pytest.raises(costs.QuoteInputError, match="calibration .*lora mfu.*probe again"):
        costs.training_quote("lora", costs.shape_from_params(0.1), 1e6, hardware, kind="lora")


def test_quotes_stay_finite_at_the_edges_of_every_range() -> None:
    from tunewise.advisor.hardware import find_hardware
    from tunewise.advisor.report_render import quote_tables
    from tunewise.plugins.manager import get_host
    from tunewise.plugins.types import HardwareChoice, ModelProfile, Profile

    host = get_host()
    corners = itertools.product((1e-9, limits.PARAMS_B.high), (1, limits.TOKENS.high), (1, limits.GPUS.high),
                                (None, limits.SEQ_LEN.high), (0, limits.QUERIES_PER_DAY.high))
    for (params_b, tokens, gpus, seq_len, queries), gpu in itertools.product(list(corners), ("H100", "cpu")):
        hardware = find_hardware(gpu)
        profile = Profile(model=ModelProfile(name=None, params_b=params_b),
                          hardware=HardwareChoice(gpu=hardware.name, gpus=int(gpus)), queries_per_day=int(queries),
                          training_tokens=int(tokens), seq_len=seq_len)
        for method in ("rag", "in_context", "full_finetune", "lora", "continual_pretraining", "rlhf"):
            quote = host.method(method).estimate(profile, hardware)
            figures = [quote.flops, quote.gpu_hours, quote.wall_hours, quote.usd_low, quote.usd_high,
                       quote.peak_memory_gb, *quote.per_query.values()]
            assert all(math.isfinite(x) for x in figures), (method, gpu, params_b, tokens, gpus, seq_len, queries)
            quote_tables(quote, method)


def test_money_never_prints_inf() -> None:
    from tunewise.advisor.report_render import money

    assert money(math.inf) == "unbounded" and money(math.nan) == "unknown" and money(2_000_000) == "$2.00M"


@pytest.mark.parametrize("value", [".nan", ".inf", "1.0e300", "-1"])
def test_hardware_catalogue_numbers_are_checked(tmp_path: Path, value: str) -> None:
    from tunewise.advisor.hardware import HardwareError, load_catalogue_file

    path = tmp_path / "hardware.yaml"
    path.write_text(f"- name: X1\n  peak_tflops: {value}\n  memory_gb: 80\n  usd_per_hour: [1, 2]\n")
    with pytest.raises(HardwareError, match=r"hardware\.yaml\[0\]\.peak_tflops: must be"):
        load_catalogue_file(path)


@pytest.mark.parametrize("typed", ["nan", "inf", "-inf", "1e400"])
def test_app_number_field_refuses_non_finite_input(typed: str) -> None:
    """The interview form checks as you type: nan passed its minimum check before."""
    from tunewise.advisor.tui.widgets.question_field import parse_value
    from tunewise.plugins.types import Question

    question = Question(id="budget", text="Budget?", type="float", default=1.0, minimum=0)
    assert parse_value(question, typed)[1] == "must be a finite number"
    assert parse_value(question, "12.5") == (12.5, None)
