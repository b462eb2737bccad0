"""Secrets never reach a file tunewise writes: known credential values are replaced before writing.

The values come from the environment at write time: the well-known credential variables
(:data:`KNOWN_SECRET_VARS`) and any variable whose name says it holds a secret (TOKEN, KEY, SECRET,
PASSWORD, ...) with a value of at least :data:`MIN_SECRET_LENGTH` characters, so a token a user
also pasted into a plan, an answers file or a label note is caught where it lands. Hugging Face
(``hf_...``) and OpenAI-style (``sk-...``) token shapes are replaced even when no variable holds them.

Every writer tunewise owns for events, reports, model cards, checkpoint state, run records,
decision logs, label files and index manifests passes its text or data through :func:`redact`
or :func:`redact_data`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 8

KNOWN_SECRET_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_TOKEN", "WANDB_API_KEY",
                     "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
                     "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "GITHUB_TOKEN", "COMET_API_KEY")

_SECRET_NAME = re.compile(r"TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
# Names that match the pattern but hold settings, not secrets.
_NOT_SECRET = frozenset({"TOKENIZERS_PARALLELISM", "PYTHONHASHSEED", "SSH_AUTH_SOCK", "KEYTIMEOUT",
                         "GPG_AGENT_INFO"})
_TOKEN_SHAPES = re.compile(r"\bhf_[A-Za-z0-9]{30,}\b|\bsk-[A-Za-z0-9_-]{20,}\b")


def secret_values(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Secret values in ``environ`` (default: this process's environment), longest first."""
    env = os.environ if environ is None else environ
    found = set()
    for name, value in env.items():
        if name.upper() in _NOT_SECRET:
            continue
        known = name.upper() in KNOWN_SECRET_VARS
        if (known or _SECRET_NAME.search(name)) and len(value.strip()) >= MIN_SECRET_LENGTH:
            found.add(value.strip())
    # Longest first, so a secret containing another is replaced whole.
    return tuple(sorted(found, key=len, reverse=True))


def redact(text: str, secrets: tuple[str, ...] | None = None) -> str:
    """``text`` with every secret value and token-shaped string replaced by ``[redacted]``."""
    for secret in secret_values() if secrets is None else secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _TOKEN_SHAPES.sub(REDACTED, text)


def redact_data(value: Any, secrets: tuple[str, ...] | None = None) -> Any:
    """A copy of JSON-like ``value`` (dicts, lists, tuples, strings) with secrets redacted in every string.

    Redacting before serialising catches secrets that JSON would escape (quotes, non-ASCII).
    """
    secrets = secret_values() if secrets is None else secrets
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, Mapping):
        return {redact_data(k, secrets) if isinstance(k, str) else k: redact_data(v, secrets)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_data(v, secrets) for v in value]
    return value
