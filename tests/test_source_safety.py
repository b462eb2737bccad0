"""No unsafe loading anywhere in tunewise's own source: scanned, so a new call site fails the build."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCANNED = ("advisor", "methods", "plugins", "bench", "examples")


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return f"{_name(func.value)}.{func.attr}"
    if isinstance(func, ast.Name):
        return func.id
    return ""


_UNPICKLERS = frozenset({"pickle.load", "pickle.loads", "pickle.Unpickler", "cloudpickle.load", "cloudpickle.loads",
                         "dill.load", "dill.loads", "joblib.load", "pandas.read_pickle", "pd.read_pickle",
                         "shelve.open", "marshal.load", "marshal.loads", "torch.serialization.load"})
"""Calls that unpickle (or unmarshal) whatever the file holds."""
_UNPICKLER_SUFFIXES = (".read_pickle", "_pickle.load", "_pickle.loads")


def _problems(source: str, filename: str) -> list[str]:
    found = []
    for call in _calls(ast.parse(source, filename)):
        name = _name(call.func)
        keywords = {kw.arg: kw.value for kw in call.keywords}
        where = f"{filename}:{call.lineno}"
        if name.endswith("torch.load") or (name == "load" and "weights_only" in keywords):
            value = keywords.get("weights_only")
            if not (isinstance(value, ast.Constant) and value.value is True):
                found.append(f"{where}: torch.load without weights_only=True")
        if name in _UNPICKLERS or name.endswith(_UNPICKLER_SUFFIXES):
            found.append(f"{where}: {name} runs code from untrusted files")
        value = keywords.get("allow_pickle")  # np.load, bm25s.BM25.load, ...: any loader told to unpickle
        if value is not None and not (isinstance(value, ast.Constant) and value.value is False):
            found.append(f"{where}: allow_pickle not False")
        if name.endswith(("np.load", "numpy.load")) and len(call.args) >= 3:  # np.load(file, mmap_mode, allow_pickle)
            found.append(f"{where}: allow_pickle given by position")
        value = keywords.get("trust_remote_code")
        if isinstance(value, ast.Constant) and value.value is True:
            found.append(f"{where}: trust_remote_code=True")
    return found


def test_scanner_catches_each_unsafe_pattern() -> None:
    bad = (
        "import torch, pickle\n"
        "torch.load('x')\n"
        "torch.load('x', weights_only=False)\n"
        "pickle.load(open('x','rb'))\n"
        "f(trust_remote_code=True)\n"
        "torch.load('ok', weights_only=True)\n"
        "np.load('x.npy', allow_pickle=True)\n"
        "bm25s.BM25.load('d', allow_pickle=flag)\n"
        "joblib.load('m.joblib')\n"
        "pd.read_pickle('x.pkl')\n"
        "pickle.Unpickler(fh).load()\n"
        "marshal.loads(data)\n"
        "np.load('ok.npy')\n"
        "np.load('ok.npy', allow_pickle=False)\n"
        "np.load('x.npy', None, True)\n"
    )
    assert len(_problems(bad, "bad.py")) == 11


def test_no_unsafe_loads_in_source() -> None:
    problems = []
    for folder in SCANNED:
        for path in sorted((REPO / folder).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            problems += _problems(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))
    assert not problems, "\n".join(problems)
