"""Writes ``python_docs/``: raw domain text for the continual pretraining example plan.

The text is the Python language reference as shipped inside CPython (``pydoc_data.topics``, the
pages ``help()`` shows; PSF documentation licence), one file per topic, topics up to 6,000
characters so that the held-out documents stay small enough to evaluate quickly on a CPU.

    python examples/data/make_python_docs.py
"""

from __future__ import annotations

from pathlib import Path

MAX_CHARS = 6000


def main() -> Path:
    import pydoc_data.topics

    out = Path(__file__).with_name("python_docs")
    out.mkdir(exist_ok=True)
    for name, text in sorted(pydoc_data.topics.topics.items()):
        if len(text) <= MAX_CHARS:
            (out / f"{name}.txt").write_text(text.strip() + "\n", encoding="utf-8")
    return out


if __name__ == "__main__":
    print(main())
