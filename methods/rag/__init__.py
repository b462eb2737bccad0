"""RAG: Retrieval-augmented generation: answer from your documents, retrieved at query time, with citations."""

from __future__ import annotations

from tunewise.methods._builtin import BuiltinMethod
from tunewise.methods.rag.config import RagConfig
from tunewise.plugins import hookimpl


class RagMethod(BuiltinMethod):
    id = "rag"
    title = "RAG"
    summary = "Retrieval-augmented generation: answer from your documents, retrieved at query time, with citations."
    config_class = RagConfig


@hookimpl
def tunewise_register_methods(register):
    register(RagMethod)
