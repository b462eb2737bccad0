"""RAG: Retrieval-augmented generation: answer from your documents, retrieved at query time, with citations."""

from __future__ import annotations

from tunewise.methods._builtin import BuiltinMethod
from tunewise.plugins import hookimpl


class RagMethod(BuiltinMethod):
    id = "rag"
    title = "RAG"
    summary = "Retrieval-augmented generation: answer from your documents, retrieved at query time, with citations."


@hookimpl
def tunewise_register_methods(register):
    register(RagMethod)
