"""Every path a plan names stays in the plan's folder or the working directory unless the user opts in.

A plan may come from someone else. Its ``data``, ``output_dir``, a local ``model`` folder and every
config setting marked ``metadata={"path": ...}`` (built-in or a plugin's) are refused outside both
folders, by name (absolute, ``..``, ``~``) or through a link, before anything is read or written;
``--allow-outside-paths`` (or ``tunewise run --out``, for the output folder) is the user's own choice.
Real plan files, real ``tunewise run`` processes, a real entry-point plugin.
"""

from __future__ import annotations

import json
import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support import run_cli, write_distribution
from tunewise.advisor.plans import PlanError, load_plan, parse_plan
from tunewise.plugins import Fit, Quote, hookimpl
from tunewise.plugins.trust import OUTSIDE_PATHS_ENV, UntrustedArtifactError, path_fields
from tunewise.plugins.types import Plan

CANARY = "CANARY-outside-3f9c1d"
"""Written only into files outside the project: it must never show up in a refused run's output."""

NO_MODEL = "no/such/model"
"""A hub id no cache holds: an accepted plan then stops at the model, before any training."""


@dataclass
class Layout:
    root: Path  # the project and working directory
    plans: Path  # where the plan files live (root/plans)
    home: Path  # outside: the user's other files (also $HOME)

    def files(self) -> dict[str, bytes]:
        """Every file under the project and outside folders, with its content (to prove nothing changed)."""
        found = {}
        for base in (self.root, self.home):
            for path in sorted(base.rglob("*")):
                if path.is_file() and not path.is_symlink():
                    found[str(path)] = path.read_bytes()
        return found


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _labeled(text: str, n: int = 12) -> list[dict[str, Any]]:
    return [{"instruction": "Classify: billing or delivery.", "input": f"{text} {i}",
             "output": "billing" if i % 2 else "delivery"} for i in range(n)]


def _pairs(text: str, n: int = 10) -> list[dict[str, Any]]:
    return [{"prompt": f"{text} question {i}?", "chosen": f"Polite answer {i}.", "rejected": f"Rude answer {i}!"}
            for i in range(n)]


def _model_folder(path: Path, text: str) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"model_type": "bert", "note": text}))
    return path


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Layout:
    root, home = tmp_path / "project", tmp_path / "home"
    plans = root / "plans"
    plans.mkdir(parents=True)
    # Inside: the examples' layout (plans/ next to data/), and files beside the plan.
    _jsonl(root / "data" / "chat.jsonl", _labeled("inside"))
    _jsonl(root / "data" / "prefs.jsonl", _pairs("inside"))
    (root / "data" / "docs").mkdir()
    (root / "data" / "docs" / "a.txt").write_text("Parcels ship on Mondays.\n")
    _jsonl(plans / "questions.jsonl", [{"question": "When do parcels ship?", "source": "a.txt", "answer": "Mondays"}])
    _jsonl(plans / "prompts.jsonl", [{"prompt": "inside prompt?"}])
    _jsonl(plans / "eval.jsonl", _labeled("inside eval", 4))
    _model_folder(plans / "model", "inside")
    # Outside: the user's other files, each holding the canary.
    home.mkdir()
    _jsonl(home / "canary.jsonl", [{"question": CANARY, "source": "a.txt", "answer": CANARY, "prompt": CANARY,
                                    "instruction": CANARY, "input": CANARY, "output": CANARY, "chosen": CANARY,
                                    "rejected": CANARY}])
    _model_folder(home / "canary_model", CANARY)
    # Outside files a run may read once the user opts in.
    _jsonl(home / "questions.jsonl", [{"question": f"{CANARY}?", "source": "a.txt", "answer": CANARY}])
    _jsonl(home / "eval.jsonl", _labeled(CANARY, 4))
    _jsonl(home / "chat.jsonl", _labeled(CANARY))
    _jsonl(home / "prompts.jsonl", [{"prompt": f"{CANARY}?"}])
    monkeypatch.chdir(root)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv(OUTSIDE_PATHS_ENV, raising=False)
    return Layout(root, plans, home)


def write_plan(folder: Path, method: str, *, data: Any, config: dict[str, Any] | None = None,
               model: str | None = None, output_dir: str = "runs/out", name: str = "plan.yaml",
               ) -> tuple[Path, dict[str, int]]:
    """A plan file and the YAML line of each field (``config.questions`` …)."""
    lines = [f"method: {method}", f"model: {json.dumps(model)}", f"data: {json.dumps(data)}",
             f"output_dir: {json.dumps(output_dir)}"]
    where = {"method": 1, "model": 2, "data": 3, "output_dir": 4}
    if config:
        lines.append("config:")
        for key, value in config.items():
            lines.append(f"  {key}: {json.dumps(value)}")
            where[f"config.{key}"] = len(lines)
    path = folder / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, where


# Every path-bearing setting of the built-in methods: (method, field, plan data, extra settings, kind,
# the file or folder outside it names).
BUILTIN_FIELDS = [
    ("rag", "questions", "../data/docs", {}, "read", "canary.jsonl"),
    ("rag", "index_dir", "../data/docs", {}, "write", "new_index"),
    ("rag", "embedding_model", "../data/docs", {}, "read", "canary_model"),
    ("in_context", "eval_data", "../data/chat.jsonl", {}, "read", "canary.jsonl"),
    ("in_context", "embedding_model", "../data/chat.jsonl", {}, "read", "canary_model"),
    ("rlhf", "prompts", "../data/prefs.jsonl", {}, "read", "canary.jsonl"),
    ("rlhf", "eval_prompts", "../data/prefs.jsonl", {}, "read", "canary.jsonl"),
    ("rlhf", "sft_data", "../data/prefs.jsonl", {"sft": True}, "read", "canary.jsonl"),
    ("rlhf", "reward_model_path", "../data/prefs.jsonl", {}, "read", "canary_model"),
]
FORMS = ("absolute", "dotdot", "tilde")


def outside(layout: Layout, name: str, form: str) -> str:
    """``name`` in the outside folder, written as an absolute path, a ``..`` climb from plans/ or ``~/``."""
    return {"absolute": str(layout.home / name), "dotdot": f"../../home/{name}", "tilde": f"~/{name}"}[form]


def refused(plan: Path, line: int, field: str) -> str:
    """The PlanError of ``plan``, which must name ``field`` at ``line`` as outside, with the opt-in."""
    with pytest.raises(PlanError) as caught:
        load_plan(plan)
    message = str(caught.value)
    assert f"{plan}:{line}: {field}: " in message, message
    mine = next(row for row in message.splitlines() if f":{line}: {field}: " in row)
    assert ("is outside" in mine or "holds links to files outside" in mine) and "--allow-outside-paths" in mine, mine
    return message


def test_builtin_path_settings_are_the_marked_ones() -> None:
    """Guard: the table above is every marked field, and no path-like setting is left unmarked."""
    from tunewise.plugins.manager import PluginHost

    host = PluginHost(load_entry_points=False)
    marked = {(method, name) for method, cls in host.methods.items()
              for name in path_fields(getattr(cls, "config_class", None))}
    assert marked == {(method, name) for method, name, *_ in BUILTIN_FIELDS}
    for method, cls in host.methods.items():
        config_class = getattr(cls, "config_class", None)
        for settings in (config_class, getattr(config_class, "training_settings", None)):
            names = set(getattr(settings, "__dataclass_fields__", {}))
            pathlike = {n for n in names if n.endswith(("_path", "_dir", "_file", "_files", "_data", "_folder"))}
            assert pathlike <= set(path_fields(settings)), (method, pathlike - set(path_fields(settings)))


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(("method", "name", "data", "extra", "kind", "target"), BUILTIN_FIELDS,
                         ids=[f"{m}.{n}" for m, n, *_ in BUILTIN_FIELDS])
def test_every_builtin_path_setting_outside_is_refused_at_its_line(
        layout: Layout, method: str, name: str, data: str, extra: dict[str, Any], kind: str, target: str,
        form: str, monkeypatch: pytest.MonkeyPatch) -> None:
    value = outside(layout, target, form)
    plan, lines = write_plan(layout.plans, method, data=data, config={**extra, name: value})
    refused(plan, lines[f"config.{name}"], f"config.{name}")
    assert not (layout.home / "new_index").exists()
    # The user's opt-in, as an argument or as the environment `tunewise run --allow-outside-paths` sets.
    assert load_plan(plan, allow_outside_paths=True).config[name] == value
    monkeypatch.setenv(OUTSIDE_PATHS_ENV, "1")
    assert load_plan(plan).config[name] == value


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("field_name", ["model", "output_dir", "data"])
def test_model_output_dir_and_data_outside_are_refused(layout: Layout, field_name: str, form: str) -> None:
    target = {"model": "canary_model", "output_dir": "runs_elsewhere", "data": "canary.jsonl"}[field_name]
    value = outside(layout, target, form)
    if field_name == "output_dir" and form == "dotdot":
        value = "../home/runs_elsewhere"  # output_dir starts at the working directory, not the plan's folder
    settings: dict[str, Any] = {"data": "../data/chat.jsonl", field_name: value}
    plan, lines = write_plan(layout.plans, "lora", **settings)
    refused(plan, lines[field_name], field_name)
    assert load_plan(plan, allow_outside_paths=True)
    assert not (layout.home / "runs_elsewhere").exists()


def test_paths_inside_the_project_stay_accepted(layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    """Absolute, ``..`` and ``~`` are fine while they stay in the plan's folder or the working directory."""
    plan, _ = write_plan(layout.plans, "rag", data="../data/docs", model="plans/model",
                         output_dir=str(layout.plans / "out"),
                         config={"questions": str(layout.plans / "questions.jsonl"),
                                 "index_dir": "runs/../runs/index", "embedding_model": "model"})
    loaded = load_plan(plan)
    assert loaded.config_path(loaded.config["questions"], "questions") == layout.plans / "questions.jsonl"
    assert loaded.config_path(loaded.config["embedding_model"], "embedding_model") == layout.plans / "model"
    # A relative write path starts at the working directory, like output_dir.
    assert loaded.config_path("runs/../runs/index", "index_dir", kind="write") == layout.root / "runs/../runs/index"
    # `~` inside the project: the working directory is the user's home here.
    monkeypatch.setenv("HOME", str(layout.root))
    plan, _ = write_plan(layout.plans, "rlhf", data="~/data/prefs.jsonl", name="home.yaml",
                         config={"prompts": "~/plans/prompts.jsonl", "sft": True, "sft_data": "../data/chat.jsonl",
                                 "eval_prompts": "../plans/../plans/prompts.jsonl"})
    assert load_plan(plan).config["prompts"] == "~/plans/prompts.jsonl"
    # The working directory counts as much as the plan's folder: a plan elsewhere may name files here.
    elsewhere = layout.home / "plans"
    elsewhere.mkdir()
    plan, _ = write_plan(elsewhere, "in_context", data=str(layout.root / "data" / "chat.jsonl"),
                         config={"eval_data": str(layout.plans / "eval.jsonl")})
    assert load_plan(plan).data == (str(layout.root / "data" / "chat.jsonl"),)


def test_links_are_judged_by_where_they_lead(layout: Layout) -> None:
    """A copied or cloned folder can carry links: one that leads outside is outside, wherever it sits."""
    (layout.plans / "notes.jsonl").symlink_to(layout.home / "canary.jsonl")
    (layout.plans / "model_link").symlink_to(layout.home / "canary_model")
    (layout.plans / "future").symlink_to(layout.home / "not_yet")  # dangling: where the index would be written
    (layout.root / "runs").symlink_to(layout.home, target_is_directory=True)
    plan, lines = write_plan(layout.plans, "rag", data="../data/docs", output_dir="runs/rag",
                             config={"questions": "notes.jsonl", "embedding_model": "model_link",
                                     "index_dir": "plans/future"})
    message = refused(plan, lines["config.questions"], "config.questions")
    for name in ("config.embedding_model", "config.index_dir", "output_dir"):
        row = next(r for r in message.splitlines() if f": {name}: " in r)
        assert "(a link to " in row and "--allow-outside-paths" in row, row
    # `..` after a link climbs from where the link leads (as the system resolves it), not from its name.
    (layout.plans / "hop").symlink_to(layout.home / "canary_model")
    plan, lines = write_plan(layout.plans, "in_context", data="../data/chat.jsonl", name="hop.yaml",
                             config={"eval_data": "hop/../canary.jsonl"})
    refused(plan, lines["config.eval_data"], "config.eval_data")
    # A link that stays inside is fine.
    (layout.plans / "alias.jsonl").symlink_to(layout.plans / "questions.jsonl")
    plan, _ = write_plan(layout.plans, "rag", data="../data/docs", name="alias.yaml", output_dir="plans/out",
                         config={"questions": "alias.jsonl"})
    assert load_plan(plan).config["questions"] == "alias.jsonl"


def test_unusable_path_names_are_reported_not_raised(layout: Layout) -> None:
    plan, lines = write_plan(layout.plans, "rlhf", data="../data/prefs.jsonl",
                             config={"prompts": "bad\u0000name", "eval_prompts": "~no_such_user_zz/x.jsonl"})
    with pytest.raises(PlanError) as caught:
        load_plan(plan)
    assert f":{lines['config.prompts']}: config.prompts: not a usable path" in str(caught.value)
    assert f":{lines['config.eval_prompts']}: config.eval_prompts: not a usable path" in str(caught.value)


# -- a third-party method -------------------------------------------------------------------------


@dataclass
class SyncSettings:
    """A plugin's settings: a list of files it reads, a folder it writes, nested files, and a plain text."""

    sources: tuple[str, ...] = field(default=(), metadata={"help": "files to read", "path": "read"})
    mirror: str | None = field(default=None, metadata={"help": "folder it writes", "path": "write"})
    layers: Any = field(default=None, metadata={"help": "named groups of files", "path": "folder"})
    label: str = field(default="sync", metadata={"help": "a name, not a path"})


class SyncMethod:
    id = "sync"
    title = "Sync"
    summary = "Copies files."
    config_class = SyncSettings

    def fit(self, profile: Any) -> Fit:
        return Fit(self.id, 0.1, ("copies",))

    def estimate(self, profile: Any, hardware: Any) -> Quote:
        return Quote(self.id, 0, 0, 0, 0, 0, 0, True)

    def run(self, plan: Plan, events: Any) -> Any:
        raise AssertionError("not run here")


class SyncPlugin:
    @hookimpl
    def tunewise_register_methods(self, register: Any) -> None:
        register(SyncMethod)


def test_a_plugins_marked_settings_are_checked_lists_and_nesting_included(layout: Layout) -> None:
    from tunewise.plugins.testing import plugin_host

    text = textwrap.dedent(f"""\
        method: sync
        data: ../data/chat.jsonl
        config:
          sources:
            - questions.jsonl
            - {layout.home / 'canary.jsonl'}
          mirror: ~/mirror
          layers:
            base: [prompts.jsonl, [eval.jsonl, ../../home/canary.jsonl]]
          label: /etc/passwd
        """)
    with plugin_host(("sync", SyncPlugin())):
        with pytest.raises(PlanError) as caught:
            parse_plan(text, source="plan.yaml", base_dir=layout.plans, roots=(layout.plans, layout.root))
        message = str(caught.value)
        assert "plan.yaml:6: config.sources[1]: " in message
        assert "plan.yaml:7: config.mirror: " in message
        assert "plan.yaml:9: config.layers.base[1][1]: " in message
        assert message.count("--allow-outside-paths") == 3 and "label" not in message  # unmarked text is text
        assert parse_plan(text, source="plan.yaml", base_dir=layout.plans).config["sources"][1].endswith("canary.jsonl")


PLUGIN = textwrap.dedent('''
    from dataclasses import dataclass, field
    from pathlib import Path

    from tunewise.plugins import Fit, Quote, RunResult, hookimpl

    @dataclass
    class CopySettings:
        sources: tuple = field(default=(), metadata={"help": "files copied", "path": "read"})
        notes: str = field(default="", metadata={"help": "a file this author forgot to mark"})

    class Copier:
        id = "copier"
        title = "Copier"
        summary = "Copies the files its plan names into the output folder."
        config_class = CopySettings

        def fit(self, profile):
            return Fit(self.id, 0.1, ("copies",))

        def estimate(self, profile, hardware):
            return Quote(self.id, 0, 0, 0, 0, 0, 0, True)

        def run(self, plan, events):
            files = [plan.config_path(s, f"sources[{i}]") for i, s in enumerate(plan.config.get("sources", ()))]
            if plan.config.get("notes"):
                files.append(plan.config_path(plan.config["notes"], "notes"))
            out = Path(plan.output_dir)
            for i, path in enumerate(files):
                (out / f"copy{i}.txt").write_text(path.read_text())
            return RunResult(self.id, "completed", output_dir=str(out))

    @hookimpl
    def tunewise_register_methods(register):
        register(Copier)
''')


def test_plugin_paths_through_tunewise_run_marked_and_unmarked(layout: Layout, tmp_path: Path) -> None:
    """Marked: refused at the plan's line. Unmarked: Plan.config_path refuses it when the run opens it."""
    site = write_distribution(tmp_path / "site", "tw-copier", {"tw_copier": PLUGIN}, {"copier": "tw_copier"})
    env = {"PYTHONPATH": str(site), "HOME": str(layout.home)}
    secret = str(layout.home / "canary.jsonl")
    marked, lines = write_plan(layout.plans, "copier", data="../data/chat.jsonl", output_dir="runs/marked",
                               config={"sources": ["questions.jsonl", secret]}, name="marked.yaml")
    before = layout.files()
    result = run_cli("run", str(marked), "--quiet", env=env, cwd=layout.root, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"marked.yaml:{lines['config.sources']}: config.sources[1]: " in result.stderr
    assert layout.files() == before and not (layout.root / "runs").exists()

    unmarked, _ = write_plan(layout.plans, "copier", data="../data/chat.jsonl", output_dir="runs/unmarked",
                             config={"sources": ["questions.jsonl"], "notes": "~/canary.jsonl"}, name="unmarked.yaml")
    result = run_cli("run", str(unmarked), "--quiet", env=env, cwd=layout.root, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "config.notes: ~/canary.jsonl is outside" in result.stderr and "--allow-outside-paths" in result.stderr
    assert CANARY not in result.stdout + result.stderr
    assert not [p for p in layout.root.rglob("*") if p.is_file() and CANARY.encode() in p.read_bytes()]
    # The user's opt-in: the same run copies the file.
    allowed = run_cli("run", str(unmarked), "--quiet", "--allow-outside-paths", env=env, cwd=layout.root,
                      timeout=120)
    assert allowed.returncode == 0, allowed.stderr
    assert CANARY in (layout.root / "runs" / "unmarked" / "copy1.txt").read_text()


def test_config_path_refuses_outside_paths_for_plans_built_in_code(layout: Layout,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    secret = layout.home / "canary.jsonl"
    beside = Plan("rag", source=str(layout.plans / "plan.yaml"))
    with pytest.raises(UntrustedArtifactError, match=r"plan\.yaml, config\.questions: .*is outside.*--allow-outside-paths"):
        beside.config_path(str(secret), "questions")
    with pytest.raises(UntrustedArtifactError, match=r"config\.questions: \.\./\.\./home/canary\.jsonl is outside"):
        beside.config_path("../../home/canary.jsonl", "questions")
    assert beside.config_path("questions.jsonl") == layout.plans / "questions.jsonl"
    # No plan file: only the working directory counts.
    sourceless = Plan("rag")
    assert sourceless.config_path("plans/questions.jsonl") == layout.root / "plans/questions.jsonl"
    with pytest.raises(UntrustedArtifactError, match="--allow-outside-paths"):
        sourceless.config_path("~/canary.jsonl", "questions")
    monkeypatch.setenv(OUTSIDE_PATHS_ENV, "1")
    assert sourceless.config_path("~/canary.jsonl") == secret


# -- through tunewise run, one case per method family ----------------------------------------------------


def _family_case(layout: Layout, family: str) -> tuple[Path, dict[str, int], list[str], Path]:
    """A plan naming outside paths for ``family``, its lines, the fields to refuse, and a plan the user
    allows (same family, outside files it may read).

    Settings that read point at a FIFO: opening it for reading would block the run, so a run that ends
    proves the file was never opened.
    """
    fifo = layout.home / "pipe.jsonl"
    os.mkfifo(fifo)
    home = layout.home
    top: dict[str, Any] = {"model": NO_MODEL}
    good_top: dict[str, Any] = {"model": NO_MODEL}
    if family == "rag":
        top |= {"data": "../data/docs", "output_dir": "runs/rag"}
        bad = {"questions": str(fifo), "embedding_model": "~/canary_model", "index_dir": str(home / "idx")}
        good = {"questions": str(home / "questions.jsonl"), "answer_questions": 1}
        good_top |= {"data": "../data/docs", "output_dir": "runs/rag"}
        fields = ["config.questions", "config.embedding_model", "config.index_dir"]
    elif family == "in_context":
        top |= {"data": "../data/chat.jsonl", "output_dir": "runs/icl"}
        bad = {"eval_data": "../../home/pipe.jsonl", "embedding_model": str(home / "canary_model")}
        good = {"eval_data": "~/eval.jsonl"}
        good_top |= {"data": "../data/chat.jsonl", "output_dir": "runs/icl"}
        fields = ["config.eval_data", "config.embedding_model"]
    elif family == "rlhf":
        top |= {"data": "../data/prefs.jsonl", "output_dir": "runs/rlhf"}
        bad = {"prompts": "~/pipe.jsonl", "eval_prompts": str(fifo), "sft": True, "sft_data": "~/pipe.jsonl",
               "reward_model_path": "../../home/canary_model"}
        good = {"prompts": "../../home/prompts.jsonl"}
        good_top |= {"data": "../data/prefs.jsonl", "output_dir": "runs/rlhf"}
        fields = ["config.prompts", "config.eval_prompts", "config.sft_data", "config.reward_model_path"]
    else:  # the training methods (lora, full_finetune, continual_pretraining) name data, model and output_dir
        top = {"model": str(home / "canary_model"), "output_dir": str(home / "out"), "data": "~/pipe.jsonl"}
        bad = good = {}
        good_top |= {"data": str(home / "chat.jsonl"), "output_dir": str(home / "out")}
        fields = ["model", "output_dir", "data"]
    plan, lines = write_plan(layout.plans, family, config=bad or None, name=f"{family}-bad.yaml", **top)
    allowed, _ = write_plan(layout.plans, family, config=good or None, name=f"{family}-good.yaml", **good_top)
    return plan, lines, fields, allowed


@pytest.mark.parametrize("family", ["rag", "in_context", "rlhf", "lora"])
def test_tunewise_run_refuses_outside_paths_before_reading_or_writing(layout: Layout, family: str) -> None:
    refused_plan, lines, fields, allowed_plan = _family_case(layout, family)
    env = {"HOME": str(layout.home)}
    before = layout.files()
    result = run_cli("run", str(refused_plan), env=env, cwd=layout.root, timeout=120)  # hang guard: the FIFO
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    for name in fields:
        row = next((r for r in result.stderr.splitlines() if f"{refused_plan.name}:{lines[name]}: {name}: " in r), "")
        assert "is outside" in row and "--allow-outside-paths" in row, (name, result.stderr)
    assert CANARY not in result.stdout + result.stderr
    assert layout.files() == before  # nothing written, nothing changed
    assert not (layout.root / "runs").exists()
    assert not (layout.home / "idx").exists() and not (layout.home / "out").exists()
    # With the opt-in the plan passes; the run reads the outside file and stops at the missing model.
    allowed = run_cli("run", str(allowed_plan), "--quiet", "--allow-outside-paths", env=env, cwd=layout.root,
                      timeout=300)
    assert allowed.returncode == 1 and NO_MODEL in allowed.stderr, allowed.stderr[-2000:]
    assert "--allow-outside-paths" not in allowed.stderr


def test_out_on_the_command_line_is_the_users_choice(layout: Layout) -> None:
    """The plan's output_dir is checked; ``--out`` replaces it and may lie anywhere."""
    plan, lines = write_plan(layout.plans, "lora", data="../data/chat.jsonl", model=NO_MODEL,
                             output_dir=str(layout.home / "planned"))
    refused(plan, lines["output_dir"], "output_dir")
    chosen = layout.home / "chosen"
    assert load_plan(plan, out=str(chosen)).output_dir == str(chosen)
    result = run_cli("run", str(plan), "--quiet", "--out", str(chosen), cwd=layout.root, timeout=120)
    assert result.returncode == 1 and NO_MODEL in result.stderr and "--allow-outside-paths" not in result.stderr
    assert not (layout.home / "planned").exists()


def test_the_app_adds_the_flag_exactly_when_the_run_needs_it(layout: Layout) -> None:
    """The app always passes --out; any other outside path (not only data) shows up as --allow-outside-paths."""
    from tunewise.advisor.tui.run_watch import run_command

    out = layout.root / "runs" / "app"
    cases = {
        "inside": ({"data": "../data/chat.jsonl"}, None, False),
        "data": ({"data": str(layout.home / "canary.jsonl")}, None, True),
        "config": ({"data": "../data/chat.jsonl"}, {"eval_data": "~/canary.jsonl"}, True),
        "model": ({"data": "../data/chat.jsonl", "model": str(layout.home / "canary_model")}, None, True),
        "output_dir": ({"data": "../data/chat.jsonl", "output_dir": str(layout.home / "x")}, None, False),
    }
    for name, (settings, config, needs) in cases.items():
        plan, _ = write_plan(layout.plans, "in_context", config=config, name=f"{name}.yaml", **settings)
        assert ("--allow-outside-paths" in run_command(plan, out)) is needs, name


def test_export_applies_the_same_rule_and_takes_the_same_opt_in(layout: Layout) -> None:
    plan, lines = write_plan(layout.plans, "lora", data="../data/chat.jsonl", model=str(layout.home / "canary_model"))
    target = layout.root / "exports" / "lora.axolotl.yaml"
    result = run_cli("export", str(plan), "--to", "axolotl", "--out", str(target), cwd=layout.root, timeout=120)
    assert result.returncode == 1 and f"plan.yaml:{lines['model']}: model: " in result.stderr
    assert "--allow-outside-paths" in result.stderr and not target.parent.exists()
    allowed = run_cli("export", str(plan), "--to", "axolotl", "--out", str(target), "--allow-outside-paths",
                      cwd=layout.root, timeout=120)
    assert allowed.returncode == 0, allowed.stderr
    assert str(layout.home / "canary_model") in target.read_text()


def test_links_planted_inside_a_named_folder_are_found(layout: Layout) -> None:
    """Loaders read every file in a data or model folder, and runs write through a link at a file's name."""
    docs = layout.root / "data" / "docs"
    (docs / "notes.txt").symlink_to(layout.home / "canary.jsonl")
    (layout.plans / "model" / "tokenizer.json").symlink_to(layout.home / "canary.jsonl")
    planted = layout.root / "runs" / "rag"
    planted.mkdir(parents=True)
    (planted / "report.md").symlink_to(layout.home / "victim.md")  # not there yet: the run would create it
    plan, lines = write_plan(layout.plans, "rag", data="../data/docs", output_dir="runs/rag",
                             config={"embedding_model": "model"})
    message = refused(plan, lines["data"], "data")
    assert f"notes.txt -> {layout.home / 'canary.jsonl'}" in message
    for name, shown in (("config.embedding_model", "tokenizer.json"), ("output_dir", "report.md")):
        row = next(r for r in message.splitlines() if f":{lines[name]}: {name}: " in r)
        assert "holds links to files outside" in row and shown in row and "--allow-outside-paths" in row, row
    assert load_plan(plan, allow_outside_paths=True)


def test_a_default_output_folder_with_a_planted_link_is_refused_before_anything_is_written(layout: Layout) -> None:
    """No output_dir in the plan: runs/<plan name> in the working directory is checked all the same."""
    victim = layout.home / "victim.md"
    victim.write_text("the user's own file\n")
    planted = layout.root / "runs" / "plan"
    planted.mkdir(parents=True)
    (planted / "events.jsonl").symlink_to(victim)
    plan = layout.plans / "plan.yaml"
    plan.write_text(f"method: lora\nmodel: {NO_MODEL}\ndata: ../data/chat.jsonl\n")
    result = run_cli("run", str(plan), "--quiet", cwd=layout.root, timeout=120)
    assert result.returncode == 1 and "output_dir: runs/plan holds links to files outside" in result.stderr
    assert victim.read_text() == "the user's own file\n" and sorted(p.name for p in planted.iterdir()) == ["events.jsonl"]
