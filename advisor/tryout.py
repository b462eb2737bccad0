"""Try a finished run: the base model and the run's result answer the same prompt, side by side.

:func:`open_run` reads what the run folder says (``events.jsonl``: the plan from its ``start``
event, the outcome from its ``end`` event) and loads the two things to compare:

===================================  ==================================================================
method                               base → result
===================================  ==================================================================
``lora``                             base → base + ``adapter/`` (the base answers with the adapter
                                     switched off); ``merged/`` when the adapter is missing
``full_finetune``,                   base → ``model/``
``continual_pretraining``
``rlhf`` (GRPO, RLOO, DPO)           base → ``stages/policy/model`` (an adapter goes on the SFT model
                                     when the run had an SFT stage, else on the base)
``in_context``                       the base zero-shot → the base with examples picked for the prompt
                                     from the run's data, the way the run picked them
``rag``                              the base closed-book → the base answering from the run's index,
                                     with citations (extractive when its own citations do not hold)
===================================  ==================================================================

Prompts are built the way the run's evaluation built them: the chat template with a generation
prompt (raw text for continual pretraining and plain prompt/completion data), plus the instruction
or system prompt every training row shared, so a model tuned on "Classify the message: …" rows is
asked the same way. Answers are greedy and streamed (:mod:`~tunewise.advisor.streaming`).

Every model goes through :func:`tunewise.plugins.models.load_model` (the trust checks), adapters
through :func:`tunewise.plugins.trust.check_model_folder` first. When the run recorded its base
model's fingerprint (``run.json`` / ``identity.json``), a base that changed since is refused: the
comparison, and a LoRA adapter on it, would be wrong. Files the run folder names outside itself
and the working directory (data to pick examples from, an index) are read only with the user's
``--allow-outside-paths``, since a run folder, like a plan, may come from someone else.
"""

from __future__ import annotations

import dataclasses
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewise.advisor.streaming import Progress, Stream
from tunewise.advisor.tryout_sides import (
    CHAT,
    TEXT,
    FewShotSide,
    ModelSide,
    PromptShape,
    RagSide,
    Reply,
    Side,
    Turn,
    shared_shape,
    streaming_answerer,
)
from tunewise.plugins.errors import TunewiseError

EVENTS_FILE = "events.jsonl"
WHICH = ("base", "result")
DEFAULT_MAX_NEW_TOKENS = 128
SCAN_DATA_BYTES = 64 << 20
"""Training data larger than this is not read to find the instruction its rows share (opening stays quick)."""
__all__ = ["Reply", "RunRecord", "TryOut", "TryOutError", "open_run", "read_run"]


class TryOutError(TunewiseError):
    """A run folder that cannot be tried: not a run, not finished, failed, or missing what it needs."""


# -- what the run folder says ----------------------------------------------------------------------


@dataclass(frozen=True)
class RunRecord:
    """A finished run as its events file tells it."""

    folder: Path
    method: str
    plan: dict[str, Any]
    start: dict[str, Any]
    result: dict[str, Any]

    def to_plan(self) -> Any:
        """The run's plan as a :class:`~tunewise.plugins.types.Plan` (for the methods' config readers)."""
        from tunewise.plugins.types import Plan

        known = {f.name for f in dataclasses.fields(Plan)}
        values = {k: v for k, v in self.plan.items() if k in known}
        values["method"] = self.method
        values["data"] = tuple(str(d) for d in values.get("data") or ())
        values["config"] = dict(values.get("config") or {})
        values["training"] = dict(values.get("training") or {})
        return Plan(**values)


def read_run(run_dir: str | Path) -> RunRecord:
    """The last start and its end in ``run_dir/events.jsonl``; refuses folders without a completed run."""
    from tunewise.plugins.bounded_load import InputError, read_lines
    from tunewise.plugins.events import parse_event_line

    folder = Path(run_dir).expanduser()
    if not folder.is_dir():
        raise TryOutError(f"{folder}: {'not a folder' if folder.exists() else 'folder not found'}; "
                          "give the output folder of a finished `tunewise run`")
    events = folder / EVENTS_FILE
    if not events.is_file():
        raise TryOutError(f"{folder} is not a tunewise run folder: it has no {EVENTS_FILE} "
                          "(a run writes one when it starts)")
    start: dict[str, Any] | None = None
    end: dict[str, Any] | None = None
    try:
        for line in read_lines(events):
            event = parse_event_line(line.text) if line.problem is None else None
            if event is None:
                continue
            if event["event"] == "start":
                start, end = event, None  # a resumed run starts again: its last start counts
            elif event["event"] == "end" and start is not None:
                end = event
    except (InputError, OSError) as exc:
        raise TryOutError(f"{events}: cannot be read ({exc})") from None
    if start is None:
        raise TryOutError(f"{events} has no start event: the run in {folder} never started")
    if end is None:
        raise TryOutError(f"the run in {folder} has not finished ({events} has no end event after its start); "
                          f"follow it with `tunewise --run {folder}` and try it once it completes")
    status = str(end.get("status", ""))
    result = end.get("result") if isinstance(end.get("result"), dict) else {}
    assert isinstance(result, dict)
    message = str(result.get("message") or "").strip()
    why = f": {message}" if message else ""
    if status == "failed":
        raise TryOutError(f"the run in {folder} failed{why}. It has no result to try; fix the cause and run "
                          "it again")
    if status != "completed":
        raise TryOutError(f"the run in {folder} ended {status or 'without a status'} before saving its result"
                          f"{why}. Finish it with `tunewise run PLAN --out {folder} --resume`, then try it")
    plan = start.get("plan") if isinstance(start.get("plan"), dict) else {}
    assert isinstance(plan, dict)
    method = str(start.get("method") or plan.get("method") or result.get("method") or "")
    return RunRecord(folder, method, plan, start, result)


# -- the try-out -------------------------------------------------------------------------------------


class TryOut:
    """A finished run ready to answer prompts as the base and as its result."""

    def __init__(self, record: RunRecord, sides: dict[str, Side], max_new_tokens: int,
                 notes: Sequence[str] = ()) -> None:
        self.record = record
        self.sides = sides
        self.max_new_tokens = max_new_tokens
        """The run's own evaluation length (what its report's answers were cut at)."""
        self.notes = list(notes)
        self._lock = threading.Lock()  # one generation at a time: the sides may share one model

    @property
    def run_dir(self) -> Path:
        return self.record.folder

    @property
    def method(self) -> str:
        return self.record.method

    def describe(self) -> dict[str, str]:
        """What each side is, in words."""
        return {which: side.what for which, side in self.sides.items()}

    def answer(self, prompt: str, which: str = "result", *, stream: Stream | None = None,
               progress: Progress | None = None, cancel: threading.Event | None = None,
               max_new_tokens: int | None = None) -> Reply:
        """``which`` (``base`` or ``result``) answers ``prompt``, streaming its text to ``stream``.

        Setting ``cancel`` ends the answer early (``Reply.cancelled``). Calls are served one at a time.
        """
        if which not in WHICH:
            raise TryOutError(f"which must be one of {', '.join(WHICH)}, got {which!r}")
        if which not in self.sides:
            raise TryOutError(f"the {which} was not loaded (open the run with compare=True to answer as the base)")
        if not prompt.strip():
            raise TryOutError("the prompt is empty; type what to ask")
        turn = Turn(max_new_tokens or self.max_new_tokens, stream, progress, cancel)
        with self._lock:
            return self.sides[which].reply(which, prompt, turn)


def open_run(run_dir: str | Path, *, compare: bool = True, allow_outside_paths: bool | None = None) -> TryOut:
    """Check a finished run and load its result (and, with ``compare``, the base) for :meth:`TryOut.answer`.

    Refused with a :class:`TryOutError` (naming the file): a folder that is not a run, a run still going,
    failed, cancelled or stopped, a method with nothing to chat with, a base model that is gone or changed.
    """
    record = read_run(run_dir)
    return _Opener(record, compare, allow_outside_paths).open()


class _Opener:
    """Builds the sides of one run, loading each model once."""

    def __init__(self, record: RunRecord, compare: bool, allow_outside_paths: bool | None) -> None:
        from tunewise.plugins.trust import outside_paths_allowed

        self.record = record
        self.folder = record.folder
        self.compare = compare
        self.allow_outside = outside_paths_allowed() if allow_outside_paths is None else allow_outside_paths
        self.notes: list[str] = []
        self._models: dict[tuple[str, str], Any] = {}
        self._tokenizers: dict[str, Any] = {}

    # -- files ---------------------------------------------------------------------------------

    def may_read(self, path: Path) -> bool:
        """Whether a run folder may make tunewise read ``path``: inside it or the working directory, or opted in."""
        from tunewise.plugins.trust import is_inside

        return self.allow_outside or is_inside(path, self.folder) or is_inside(path, Path.cwd())

    def readable(self, path: Path, what: str) -> Path:
        """``path`` if :meth:`may_read`; else refused, naming it and the opt-in."""
        from tunewise.plugins.trust import OUTSIDE_PATHS_ENV

        if self.may_read(path):
            return path
        raise TryOutError(
            f"{what} {path} lies outside the run folder {self.folder} and the working directory; the run folder "
            "names it, and a run folder may come from someone else. Run from the folder holding it, or pass "
            f"--allow-outside-paths ({OUTSIDE_PATHS_ENV}=1) if it is yours")

    def missing(self, path: Path, what: str) -> TryOutError:
        return TryOutError(f"the {self.record.method or 'unknown-method'} run in {self.folder} has nothing to chat "
                           f"with: {what} {path} is missing")

    # -- models --------------------------------------------------------------------------------

    @property
    def device(self) -> str:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def base_ref(self) -> Any:
        """The run's base model: its plan's ``model``, checked against the fingerprint the run recorded.

        A relative model folder was named from where ``tunewise run`` started, which is usually a folder
        above the run's output folder: those are tried too when the working directory does not hold it.
        """
        from tunewise.plugins.errors import ModelNotFoundError
        from tunewise.plugins.models import is_embedded, resolve_model

        name = self.record.plan.get("model")
        name = str(name) if name else None
        candidates: list[str | None] = [name]
        if name is not None and not is_embedded(name) and not Path(name).expanduser().is_absolute():
            candidates += [str(above / name) for above in self.folder.resolve().parents
                           if (above / name / "config.json").is_file()]
        refused: str | None = None
        for candidate in dict.fromkeys(candidates):
            try:
                ref = resolve_model(candidate)
            except ModelNotFoundError as exc:
                gone = str(exc) if candidate == name else None
                if gone is not None and refused is None:
                    refused = f"the base model of the run in {self.folder} is gone: {gone}"
                continue
            problem = self.base_problem(ref.path)
            if problem is None:
                if candidate != name:
                    self.notes.append(f"the run's base model {name!r} was found at {ref.path}")
                return ref
            if refused is None or "is gone" in refused:
                refused = problem
        raise TryOutError(refused or f"the base model of the run in {self.folder} is gone ({name!r})")

    def identity(self) -> dict[str, Any] | None:
        """The run's recorded identity (training methods), or None."""
        from tunewise.plugins.bounded_load import InputError, read_json

        for name, key in (("run.json", "identity"), ("identity.json", None)):
            path = self.folder / name
            if not path.is_file():
                continue
            try:
                data = read_json(path, what=name)
            except (InputError, OSError):
                continue
            found = data.get(key) if key and isinstance(data, dict) else data
            if isinstance(found, dict):
                return found
        return None

    def base_problem(self, path: Path) -> str | None:
        """Why ``path`` is not the base the run trained from (config, layout or weights differ), or None."""
        identity = self.identity()
        saved = identity.get("model") if identity else None
        if not isinstance(saved, dict) or not saved.get("fingerprint"):
            return None  # a method that records no identity (in-context, RAG): nothing to compare
        from tunewise.methods._hf.identity import model_fingerprint, weights_differences, weights_fingerprint

        if model_fingerprint(path) != saved["fingerprint"]:
            changed = "its config or tensor layout differs"
        else:
            differences = weights_differences(saved.get("weights"), weights_fingerprint(path))
            changed = f"its weights differ ({'; '.join(differences)})" if differences else ""
        if not changed:
            return None
        return (f"the base model at {path} is not the one the run in {self.folder} trained from: {changed}. "
                "Comparing against it (or putting the run's adapter on it) would be wrong; put the original "
                "model back there")

    def model(self, path: Path, adapter: Path | None = None) -> Any:
        key = (str(path), str(adapter or ""))
        if key not in self._models:
            from transformers.utils import logging as hf_logging
            from tunewise.plugins.models import load_model

            hf_logging.disable_progress_bar()
            dtype = "bfloat16" if self.device == "cuda" else "float32"
            model = load_model(str(path), dtype=dtype, device=self.device)
            if adapter is not None:
                model = self.attach(model, adapter)
            self._models[key] = model.eval()
        return self._models[key]

    def attach(self, model: Any, adapter: Path) -> Any:
        from peft import PeftModel
        from tunewise.plugins.trust import check_model_folder

        check_model_folder(adapter, need_weights=True)  # no pickles, nothing read from outside it
        try:
            with warnings.catch_warnings():  # peft asks a deprecated transformers property: noise for the user
                warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
                return PeftModel.from_pretrained(model, str(adapter))
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise TryOutError(f"{adapter}: cannot put this adapter on its base model ({first})") from None

    def tokenizer(self, path: Path, style: str = CHAT) -> Any:
        if str(path) not in self._tokenizers:
            from tunewise.plugins.models import load_tokenizer

            tokenizer = load_tokenizer(str(path))
            if style == CHAT:
                from tunewise.methods._hf.encoding import ensure_chat_template

                ensure_chat_template(tokenizer)  # what training and evaluation did for a template-less model
            self._tokenizers[str(path)] = tokenizer
        return self._tokenizers[str(path)]

    # -- data --------------------------------------------------------------------------------------

    def data_paths(self) -> list[Path]:
        return [Path(str(p)).expanduser() for p in self.record.plan.get("data") or ()]

    def prompt_shape(self, style: str) -> PromptShape:
        """The prompt style, and the instruction / system prompt every row of the run's data shares."""
        if style == TEXT:
            return PromptShape(TEXT)
        outside = [path for path in self.data_paths() if not self.may_read(path)]
        if outside:
            from tunewise.plugins.trust import OUTSIDE_PATHS_ENV

            self.notes.append(f"prompts go as typed: the run's data {outside[0]} lies outside the run folder and the "
                              "working directory, so it was not read for an instruction its rows may share "
                              f"(--allow-outside-paths or {OUTSIDE_PATHS_ENV}=1 reads it)")
            return PromptShape(style)
        size = sum(_size(path) for path in self.data_paths())
        if size > SCAN_DATA_BYTES:
            self.notes.append(f"the run's data is large ({size / 2**20:,.0f} MiB), so it was not read for an "
                              "instruction or system prompt its rows may share; prompts go as typed")
            return PromptShape(style)
        try:
            shape, rows = self.read_data()
        except TunewiseError as exc:
            self.notes.append(f"the run's data could not be read, so prompts go without an instruction its rows "
                              f"may share: {exc}")
            return PromptShape(style)
        return self.noted(shared_shape(rows, shape, style))

    def noted(self, shape: PromptShape) -> PromptShape:
        """``shape``, with a note saying what goes into every prompt besides what is typed."""
        def short(text: str) -> str:
            return repr(text if len(text) <= 80 else text[:79] + "…")

        if shape.instruction:
            self.notes.append(f"your prompt follows the instruction every row of the run's data shares: "
                              f"{short(shape.instruction)}")
        if shape.system:
            self.notes.append(f"with the system prompt every row shares: {short(shape.system)}")
        return shape

    def read_data(self) -> tuple[str | None, list[Any]]:
        """The shape and rows of the run's data (only where a run folder may make tunewise read)."""
        from tunewise.plugins.data import load_dataset

        shape: str | None = None
        rows: list[Any] = []
        for path in self.data_paths():
            if not self.readable(path, "data").exists():  # (whether an outside file exists is not said either)
                raise TryOutError(f"{path} is gone")
            loaded = load_dataset(path)
            shape = shape or loaded.shape
            rows.extend(row.data for row in loaded.rows)
        return shape, rows

    # -- the sides ---------------------------------------------------------------------------------

    def open(self) -> TryOut:
        method = self.record.method
        opener = {"lora": self.trained, "full_finetune": self.trained, "continual_pretraining": self.trained,
                  "rlhf": self.rlhf, "in_context": self.in_context, "rag": self.rag}.get(method, self.plugin)
        sides, max_new_tokens = opener()
        if not self.compare:
            sides.pop("base", None)
        return TryOut(self.record, sides, max_new_tokens, self.notes)

    def base_side(self, ref: Any, shape: PromptShape) -> Side:
        return ModelSide(f"base model {ref.name}", self.model(ref.path), self.tokenizer(ref.path, shape.style), shape)

    def trained(self) -> tuple[dict[str, Side], int]:
        from tunewise.methods._hf.pipeline import training_settings

        method = self.record.method
        max_new_tokens = training_settings(self.record.plan.get("training") or {}).max_new_tokens
        if method == "lora":
            adapter, merged = self.folder / "adapter", self.folder / "merged"
            if (adapter / "adapter_config.json").is_file():
                result: tuple[str, Path, Path | None] = ("LoRA adapter", adapter, None)
            elif (merged / "config.json").is_file():
                result = ("merged LoRA model", merged, None)
            else:
                raise self.missing(adapter / "adapter_config.json", "the adapter's")
        else:
            model = self.folder / "model"
            if not (model / "config.json").is_file():
                raise self.missing(model / "config.json", "the trained model's")
            result = ("fine-tuned model" if method == "full_finetune" else "continually pretrained model", model, None)
        raw_text = method == "continual_pretraining" or self.record.start.get("data_shape") in ("text", "documents")
        shape = self.prompt_shape(TEXT if raw_text else CHAT)  # raw text: the run trained on documents
        return self.model_sides(result, shape), max_new_tokens

    def model_sides(self, result: tuple[str, Path, Path | None], shape: PromptShape) -> dict[str, Side]:
        """Base and result for a result that is a model folder or an adapter (on ``result[2]`` or the base)."""
        what, path, adapter_base = result
        ref = self.base_ref()
        tokenizer = self.tokenizer(ref.path, shape.style)
        sides: dict[str, Side] = {}
        if (path / "adapter_config.json").is_file():
            on = adapter_base or ref.path
            model = self.model(on, adapter=path)
            sides["result"] = ModelSide(f"{what} {path}", model, tokenizer, shape)
            if self.compare:
                if adapter_base is None:  # the same network with the adapter switched off: no second copy
                    sides["base"] = ModelSide(f"base model {ref.name}", model, tokenizer, shape,
                                              context=model.disable_adapter)
                else:
                    sides["base"] = self.base_side(ref, shape)
        else:
            has_tokenizer = (path / "tokenizer_config.json").is_file()
            sides["result"] = ModelSide(f"{what} {path}", self.model(path),
                                        self.tokenizer(path if has_tokenizer else ref.path, shape.style), shape)
            if self.compare:
                sides["base"] = self.base_side(ref, shape)
        return sides

    def rlhf(self) -> tuple[dict[str, Side], int]:
        from tunewise.methods._hf.pipeline import method_config
        from tunewise.methods.rlhf.config import RlhfConfig

        config = method_config(RlhfConfig, self.record.plan.get("config") or {})
        policy = self.folder / "stages" / "policy" / "model"
        if not (policy / "adapter_config.json").is_file() and not (policy / "config.json").is_file():
            raise self.missing(policy / "config.json", "the tuned policy's")
        sft = self.folder / "stages" / "sft" / "model"
        adapter_base = sft if config.sft and (sft / "config.json").is_file() else None
        what = f"{str(config.algorithm).upper()} policy"
        return self.model_sides((what, policy, adapter_base), PromptShape(CHAT)), int(config.max_new_tokens)

    def in_context(self) -> tuple[dict[str, Side], int]:
        from tunewise.methods.in_context.evaluate import Selector
        from tunewise.methods.in_context.examples import load_examples, split_examples
        from tunewise.methods.in_context.prompting import PromptBuilder
        from tunewise.methods.in_context.run import config_from_plan

        plan = self.record.to_plan()
        config = config_from_plan(plan)
        paths = self.data_paths()
        if not paths:
            raise TryOutError(f"the in_context run in {self.folder} names no data to pick examples from")
        for path in paths:
            if not self.readable(path, "the examples file").exists():
                raise self.missing(path, "its examples file")
        examples = [e for path in paths for e in load_examples(path)]
        # The run's pool: everything when it evaluated on separate eval_data, else its stable split.
        pool = examples if config.eval_data else split_examples(examples, config.eval_fraction, config.seed)[0]
        data_shape, rows = self.read_data()
        shape = shared_shape(rows, data_shape, CHAT)
        # Examples are chat turns whatever the data's shape; only messages rows carry a system turn.
        own_system = data_shape == "messages" and config.system_prompt is None  # else the plan's system prompt
        shape = self.noted(PromptShape(CHAT, shape.instruction, shape.system if own_system else None))
        ref = self.base_ref()
        tokenizer = self.tokenizer(ref.path)
        model = self.model(ref.path)
        builder = PromptBuilder(tokenizer, config.system_prompt)
        embed = None
        vectors = None
        if config.selection in ("knn", "mmr"):
            embedder = self.embedder(plan, config.embedding_model)
            vectors = embedder.encode([e.query_text for e in pool])

            def embed(text: str) -> Any:
                return embedder.encode([text])[0]

        costs = [builder.example_cost(e) for e in pool]
        selector = Selector(pool, costs, config.shots, config.prompt_token_budget, config.selection, vectors,
                            config.mmr_lambda, config.seed)
        sides: dict[str, Side] = {
            "result": FewShotSide(f"base model {ref.name} with up to {config.shots} examples ({config.selection}) "
                                  f"from {len(pool)}", model, tokenizer, builder, shape, selector, embed)}
        if self.compare:
            sides["base"] = FewShotSide(f"base model {ref.name}, zero-shot", model, tokenizer, builder, shape)
        return sides, int(config.max_new_tokens)

    def embedder(self, plan: Any, name: str | None) -> Any:
        from tunewise.methods.rag.embed import Embedder, is_bundled, resolve_embedding_model

        chosen = name if is_bundled(name) else str(plan.config_path(str(name), "embedding_model"))
        return Embedder(resolve_embedding_model(chosen), device=self.device)

    def rag(self) -> tuple[dict[str, Side], int]:
        from tunewise.methods.rag.index import MANIFEST, RagIndex
        from tunewise.methods.rag.run import config_from_plan

        config = config_from_plan(self.record.to_plan())
        index_dir = self.folder / "index"
        recorded = self.record.start.get("index")
        if not (index_dir / MANIFEST).is_file() and isinstance(recorded, str) and recorded:
            index_dir = self.readable(Path(recorded).expanduser(), "the index")
        if not (index_dir / MANIFEST).is_file():
            raise self.missing(index_dir / MANIFEST, "the index's")
        index = RagIndex.open(index_dir)
        ref = self.base_ref()
        answerer = streaming_answerer(self.model(ref.path), self.tokenizer(ref.path), config.max_new_tokens,
                                       config.max_context_tokens)
        sides: dict[str, Side] = {
            "result": RagSide(f"base model {ref.name} answering from the index {index_dir} ({config.mode}, "
                              f"k={config.k}, {config.answer_mode})", answerer, index, config, closed_book=False)}
        if self.compare:
            sides["base"] = RagSide(f"base model {ref.name}, closed book", answerer, index, config, closed_book=True)
        return sides, int(config.max_new_tokens)

    def plugin(self) -> tuple[dict[str, Side], int]:
        """A plugin method's run: a model or adapter folder among its artifacts, inside the run folder."""
        from tunewise.plugins.trust import is_inside

        artifacts = self.record.result.get("artifacts") or {}
        for name, value in artifacts.items() if isinstance(artifacts, dict) else ():
            path = Path(str(value))
            path = path if path.is_absolute() else self.folder / path
            if not is_inside(path, self.folder) or not path.is_dir():
                continue
            if (path / "adapter_config.json").is_file() or (path / "config.json").is_file():
                return self.model_sides((f"{self.record.method} {name}", path, None), PromptShape(CHAT)), \
                    DEFAULT_MAX_NEW_TOKENS
        listed = ", ".join(f"{k}: {v}" for k, v in artifacts.items()) if isinstance(artifacts, dict) else ""
        raise TryOutError(f"the {self.record.method or 'unknown-method'} run in {self.folder} has nothing to chat "
                          f"with: none of its artifacts is a model or adapter folder (config.json or "
                          f"adapter_config.json) inside it" + (f" ({listed})" if listed else ""))


def _size(path: Path) -> int:
    """Bytes of a data file, or of the files in a data folder (0 when it cannot be read)."""
    try:
        if path.is_file():
            return path.stat().st_size
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0
    except OSError:
        return 0
