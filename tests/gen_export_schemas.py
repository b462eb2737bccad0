"""Regenerate tests/export_schemas.json: the config keys LLaMA-Factory and Axolotl accept, read from their sources.

    python tests/gen_export_schemas.py LLAMA_FACTORY_GIT_DIR AXOLOTL_GIT_DIR

Each argument is a clone (bare is fine) of https://github.com/hiyouga/LLaMA-Factory and
https://github.com/axolotl-ai-cloud/axolotl; files are read at HEAD with ``git show`` and the commit
is recorded. Fields are taken from the argument dataclasses / pydantic models with ``ast`` (class
bodies' annotated names, ``Literal`` choices), so nothing is imported or installed. LLaMA-Factory
also accepts Hugging Face ``Seq2SeqTrainingArguments``; those names come from the transformers
installed here, whose version is recorded.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("export_schemas.json")

LF_ARG_FILES = (
    "src/llamafactory/hparams/model_args.py",
    "src/llamafactory/hparams/data_args.py",
    "src/llamafactory/hparams/finetuning_args.py",
    "src/llamafactory/hparams/generating_args.py",
    "src/llamafactory/hparams/training_args.py",
)
LF_TEMPLATES = "src/llamafactory/data/template.py"
LF_PARSER = "src/llamafactory/data/parser.py"
LF_CONSTANTS = "src/llamafactory/extras/constants.py"
LF_README = "data/README.md"

AX_SCHEMA_DIR = "src/axolotl/utils/schemas/"
AX_DATASET_TYPES = {
    # type name -> (file that implements it, text that must be in it)
    "chat_template": ("src/axolotl/prompt_strategies/chat_template.py", "load = StrategyLoader()"),
    "alpaca": ("src/axolotl/utils/data/wrappers.py", '"alpaca": _handle_alpaca_dataset'),
    "completion": ("src/axolotl/prompt_strategies/completion.py", "def load("),
    "chat_template.default": ("src/axolotl/prompt_strategies/dpo/chat_template.py", "def default("),
    "bradley_terry.chat_template": ("src/axolotl/prompt_strategies/bradley_terry/chat_template.py", "def load("),
}
AX_DPO_FIELD_DEFAULTS = ("src/axolotl/prompt_strategies/dpo/chat_template.py",
                         ('"field_messages", "messages"', '"field_chosen", "chosen"', '"field_rejected", "rejected"'))


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def show(repo: Path, path: str) -> str:
    return git(repo, "show", f"HEAD:{path}")


def literal_choices(annotation: ast.expr | None) -> list[Any]:
    """Values of every ``Literal[...]`` inside an annotation."""
    found: list[Any] = []
    for node in ast.walk(annotation) if annotation is not None else []:
        if isinstance(node, ast.Subscript) and getattr(node.value, "id", getattr(node.value, "attr", "")) == "Literal":
            elts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            found += [e.value for e in elts if isinstance(e, ast.Constant)]
    return found


def classes(source: str) -> dict[str, tuple[list[str], dict[str, dict[str, Any]]]]:
    """Class name -> (base names, fields with their Literal choices) for every class in ``source``."""
    out: dict[str, tuple[list[str], dict[str, dict[str, Any]]]] = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        bases = [b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases]
        fields: dict[str, dict[str, Any]] = {}
        for item in node.body:
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                if "ClassVar" in ast.unparse(item.annotation) or item.target.id.startswith("_"):
                    continue
                choices = literal_choices(item.annotation)
                fields[item.target.id] = {"choices": choices} if choices else {}
                alias = next((kw.value.value for kw in getattr(item.value, "keywords", [])
                              if kw.arg == "alias" and isinstance(kw.value, ast.Constant)), None)
                if alias:  # pydantic reads the alias from the YAML, not the attribute name
                    fields[alias] = fields.pop(item.target.id)
        out[node.name] = (bases, fields)
    return out


def resolved_fields(name: str, known: dict[str, tuple[list[str], dict[str, dict[str, Any]]]]) -> dict[str, Any]:
    """Fields of ``name`` and of every base class among ``known``."""
    bases, fields = known[name]
    merged: dict[str, Any] = {}
    for base in bases:
        if base in known:
            merged.update(resolved_fields(base, known))
    merged.update(fields)
    return merged


def llamafactory(repo: Path) -> dict[str, Any]:
    known: dict[str, Any] = {}
    for path in LF_ARG_FILES:
        known.update(classes(show(repo, path)))
    args: dict[str, Any] = {}
    for name in ("ModelArguments", "DataArguments", "FinetuningArguments", "GeneratingArguments",
                 "TrainingArguments"):
        args.update(resolved_fields(name, known))
    templates = sorted({
        kw.value.value
        for node in ast.walk(ast.parse(show(repo, LF_TEMPLATES)))
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "register_template"
        for kw in node.keywords if kw.arg == "name" and isinstance(kw.value, ast.Constant)
    })
    parser = show(repo, LF_PARSER)
    entry_keys = sorted(set(re.findall(r'set_attr\("(\w+)", attr', parser))
                        | set(re.findall(r'dataset_info\[name\]\["(\w+)"\]', parser))
                        | set(re.findall(r'"(\w+)" in dataset_info\[name\]', parser))
                        | {"file_name", "columns", "tags"})
    columns = re.findall(r'"(\w+)"', " ".join(re.findall(r"column_names \+?= \[([^\]]*)\]", parser)))
    tags = re.findall(r'"(\w+)"', " ".join(re.findall(r"tag_names \+?= \[([^\]]*)\]", parser)))
    dataset_attr = classes(parser)["DatasetAttr"][1]
    constants = ast.parse(show(repo, LF_CONSTANTS))
    file_types = next(
        sorted(ast.literal_eval(node.value))
        for node in constants.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "FILEEXT2TYPE"
    )
    import transformers

    hf_source = Path(transformers.__file__).parent
    hf = classes((hf_source / "training_args.py").read_text())
    hf.update(classes((hf_source / "training_args_seq2seq.py").read_text()))
    hf_fields = resolved_fields("Seq2SeqTrainingArguments", hf)
    return {
        "source": {
            "repository": "https://github.com/hiyouga/LLaMA-Factory",
            "commit": git(repo, "rev-parse", "HEAD").strip(),
            "files": [*LF_ARG_FILES, LF_TEMPLATES, LF_PARSER, LF_CONSTANTS, LF_README],
            "training_arguments": f"transformers {transformers.__version__} Seq2SeqTrainingArguments "
                                  "(LLaMA-Factory's TrainingArguments extends it; its pyproject allows "
                                  "transformers>=4.55.0,<=5.8.0)",
        },
        "keys": dict(sorted(args.items())),
        "hf_training_keys": sorted(hf_fields),
        "templates": templates,
        "dataset_info": {
            "entry_keys": entry_keys,
            "columns": columns,
            "tags": tags,
            "formatting": dataset_attr["formatting"]["choices"],
            "file_types": file_types,
        },
    }


def axolotl(repo: Path) -> dict[str, Any]:
    files = [p for p in git(repo, "ls-tree", "-r", "--name-only", "HEAD", AX_SCHEMA_DIR).split()
             if p.endswith(".py")]
    known: dict[str, Any] = {}
    for path in files:
        known.update(classes(show(repo, path)))
    enums = ast.parse(show(repo, AX_SCHEMA_DIR + "enums.py"))
    rl_types = next(
        [item.value.value for item in node.body
         if isinstance(item, ast.Assign) and isinstance(item.value, ast.Constant)]
        for node in enums.body if isinstance(node, ast.ClassDef) and node.name == "RLType"
    )
    dataset_types = {}
    for name, (path, needle) in AX_DATASET_TYPES.items():
        if needle not in show(repo, path):
            raise SystemExit(f"axolotl dataset type {name!r}: {needle!r} not found in {path}")
        dataset_types[name] = path
    dpo_source = show(repo, AX_DPO_FIELD_DEFAULTS[0])
    if not all(needle in dpo_source for needle in AX_DPO_FIELD_DEFAULTS[1]):
        raise SystemExit(f"axolotl: DPO field defaults changed in {AX_DPO_FIELD_DEFAULTS[0]}")
    return {
        "source": {
            "repository": "https://github.com/axolotl-ai-cloud/axolotl",
            "commit": git(repo, "rev-parse", "HEAD").strip(),
            "files": [*files, *sorted({p for p, _ in AX_DATASET_TYPES.values()})],
        },
        "keys": dict(sorted(resolved_fields("AxolotlInputConfig", known).items())),
        "deprecated_keys": sorted(resolved_fields("DeprecatedParameters", known)),
        "sft_dataset_keys": sorted(resolved_fields("SFTDataset", known)),
        "dpo_dataset_keys": sorted(resolved_fields("DPODataset", known)),
        "user_defined_type_keys": sorted(resolved_fields("UserDefinedPrompterType", known)),
        "rl": rl_types,
        "dataset_types": dataset_types,
    }


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    schemas = {"llamafactory": llamafactory(Path(argv[0])), "axolotl": axolotl(Path(argv[1]))}
    OUT.write_text(json.dumps(schemas, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    print(f"wrote {OUT}: {len(schemas['llamafactory']['keys'])} LLaMA-Factory keys, "
          f"{len(schemas['axolotl']['keys'])} Axolotl keys")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
