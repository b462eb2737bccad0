"""Write the Python reference topics bundled with the stdlib (``pydoc_data.topics``) as one file per topic.

The result, ``examples/corpus/python_docs/<topic>.txt``, is the example corpus of the RAG plan and
``bench/rag_retrieval.py``. The text depends on the Python version that runs this script; the committed
files were made with the version named in ``python_docs/VERSION``.

    python examples/corpus/make_python_docs.py [--out DIR]
"""

from __future__ import annotations

import argparse
import platform
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent


def topic_file_name(topic: str) -> str:
    """A portable file name for a topic key (keys are already mostly ``[a-z-]``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", topic) + ".txt"


def write_topics(out: Path) -> int:
    from pydoc_data.topics import topics

    out.mkdir(parents=True, exist_ok=True)
    wanted = {topic_file_name(t) for t in topics}
    for stale in out.glob("*.txt"):
        if stale.name not in wanted:
            stale.unlink()
    for topic, text in sorted(topics.items()):
        (out / topic_file_name(topic)).write_text(text.strip() + "\n", encoding="utf-8")
    (out / "VERSION").write_text(f"pydoc_data.topics from Python {platform.python_version()}\n")
    return len(topics)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "python_docs", help="folder to write")
    args = parser.parse_args()
    count = write_topics(args.out)
    print(f"wrote {count} topics to {args.out}")


if __name__ == "__main__":
    main()
