"""RAG advice: answer from your documents, retrieved at question time, with citations.

Retrieval suits knowledge that changes, large document collections and answers that must cite their
sources, and needs no labeled data and no retraining: an index is built once (hours), then every
query carries the retrieved passages in its prompt. It supplies facts, not skills, tone or format.
"""

from __future__ import annotations

from tunewise.methods._advice import (
    Rule,
    count,
    document_tokens,
    evaluate,
    expertise_at_least,
    has_goal,
    only_goals,
    said_goals,
    shape_of,
    use_case,
)
from tunewise.plugins.costs import inference_quote
from tunewise.plugins.types import Fit, Hardware, Profile, Quote

METHOD = "rag"
BASE_SCORE = 0.3
EMBEDDING_PARAMS = 22.7e6
"""all-MiniLM-L6-v2, the embedding model tunewise bundles."""
RETRIEVED_CHUNKS = 3
CHUNK_TOKENS = 200
CHUNK_OVERLAP = 40
PROMPT_TEMPLATE_TOKENS = 60
CHANGING = ("monthly", "weekly", "daily", "hourly", "realtime")
LIVE = ("hourly", "realtime")
"""Faster than any retraining cycle: only a refreshed index (or a live lookup) keeps up."""
NON_FACT_GOALS = ("style", "format", "language", "safety", "preference", "task", "domain")

RULES: tuple[Rule, ...] = (
    Rule("no-documents", lambda p: p.data.documents == 0 and not p.data.document_tokens, 0.0,
         lambda p: "RAG needs documents to retrieve from: you have none", blocker=True),
    Rule("knowledge-goal", lambda p: has_goal(p, "knowledge"), 0.3,
         lambda p: f'you want the model to know facts ("knowledge"){use_case(p)}: retrieval puts the right '
                   "passage in front of it at question time"),
    Rule("documents", lambda p: p.data.documents > 0, 0.1,
         lambda p: f"you have {count(p.data.documents)} documents to retrieve from; no labeled data needed"),
    Rule("many-documents", lambda p: p.data.documents >= 1000, 0.05,
         lambda p: f"{count(p.data.documents)} documents are far more than any prompt or fine-tune can hold; "
                   "an index scales"),
    Rule("changing-facts", lambda p: p.knowledge_changes in CHANGING, 0.2,
         lambda p: f'your facts change "{p.knowledge_changes}": re-indexing a document takes seconds, '
                   "retraining takes days"),
    Rule("live-facts", lambda p: has_goal(p, "knowledge") and p.knowledge_changes in LIVE, 0.1,
         lambda p: f'your facts change "{p.knowledge_changes}", faster than any training run: re-index changed '
                   "documents as they change (seconds each)"
                   + ("; figures that change by the second (prices, stock, status) are best read from their live "
                      "source at question time" if p.knowledge_changes == "realtime" else "")),
    Rule("citations", lambda p: p.needs_citations, 0.2,
         lambda p: "answers must cite their sources: only retrieval can point at the passage used"),
    Rule("no-knowledge-goal", lambda p: not has_goal(p, "knowledge"), -0.3,
         lambda p: f"your goals ({said_goals(p)}) are not about facts; retrieval supplies facts, not behaviour"),
    Rule("behaviour-goals-too", lambda p: has_goal(p, "knowledge") and not only_goals(p, "knowledge"), -0.05,
         lambda p: f"retrieval will not teach the other goals ({said_goals(p, *NON_FACT_GOALS)}); see the "
                   "combinations"),
    Rule("latency", lambda p: p.latency_sensitive, -0.05,
         lambda p: "answers must be fast: retrieval and longer prompts add latency to each query"),
    Rule("low-expertise", lambda p: not expertise_at_least(p, "moderate"), 0.05,
         lambda p: f'no model training needed, which suits a team with "{p.team_expertise}" ML expertise'),
)


def fit(profile: Profile) -> Fit:
    return evaluate(METHOD, BASE_SCORE, RULES, profile)


def estimate(profile: Profile, hardware: Hardware) -> Quote:
    from tunewise.methods.lora.advice import estimate as lora_estimate

    doc_tokens = float(profile.training_tokens) if profile.training_tokens else document_tokens(profile)
    chunked = doc_tokens * CHUNK_TOKENS / (CHUNK_TOKENS - CHUNK_OVERLAP)  # overlap embeds some text twice
    lora = lora_estimate(profile, hardware)
    return inference_quote(
        METHOD, shape_of(profile), hardware,
        extra_prompt_tokens=RETRIEVED_CHUNKS * CHUNK_TOKENS + PROMPT_TEMPLATE_TOKENS,
        queries_per_day=profile.queries_per_day,
        setup_flops=2 * EMBEDDING_PARAMS * chunked,
        finetune_usd=(lora.usd_low, lora.usd_high),
        assumptions={
            "retrieval": f"{RETRIEVED_CHUNKS} chunks of {CHUNK_TOKENS} tokens per query (hybrid dense + BM25)",
            "index": f"{doc_tokens:,.0f} document tokens embedded with all-MiniLM-L6-v2 "
                     f"({EMBEDDING_PARAMS / 1e6:.1f} million parameters), {CHUNK_OVERLAP}-token overlap",
            "tokens": int(doc_tokens),
            "breakeven_against": "a LoRA fine-tune on your labeled examples (see its quote)",
            **({"freshness": f'facts change "{profile.knowledge_changes}": re-embed each changed document when it '
                             "changes (seconds each); the quote counts one full indexing"}
               if profile.knowledge_changes in LIVE else {}),
        },
    )
