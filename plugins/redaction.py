"""Secrets never reach a file tunewise writes nor its console: credential values are replaced.

The values come from the environment at the time of writing: the well-known credential variables
(:data:`KNOWN_SECRET_VARS`) and any variable whose name says it holds a secret (TOKEN, KEY, SECRET,
PASSWORD, ...) with a value of at least :data:`MIN_SECRET_LENGTH` characters, so a token a user
also pasted into a plan, an answers file or a label note is caught where it lands (a multi-line
value also line by line; a value that is an existing absolute path says where a secret lives and is
not one). Each value is
matched as written and as ``repr``, JSON (ASCII or not) and ``unicode_escape`` would quote it, once
or twice over (a repr inside a JSON document), in any letter case, so escaping or lower-casing in a
message cannot slip it through.

Only values are matched, never shapes: text merely shaped like a token (a data file named
``sk-support-chats-train-v1.jsonl``, a model called ``hf_...``) is someone's file or model name,
and an error must keep naming it.

Two treatments, by what happens to the text next:

- shown or logged text (events, reports, model cards, generations, console): :func:`redact` /
  :func:`redact_data` replace the value with ``[redacted]``;
- records tunewise reads back to compare (checkpoint identity, RLHF stage records, launch records):
  :func:`seal_data` keeps every string as it is, except that a string holding a secret becomes the
  ``sealed-sha256:`` hash of the whole string, which still compares equal to itself and reveals nothing.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 8
SEALED_PREFIX = "sealed-sha256:"

KNOWN_SECRET_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_TOKEN", "WANDB_API_KEY",
                     "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
                     "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "GITHUB_TOKEN", "COMET_API_KEY")

_SECRET_NAME = re.compile(r"TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
# Names that match the pattern but hold settings, not secrets.
_NOT_SECRET = frozenset({"TOKENIZERS_PARALLELISM", "PYTHONHASHSEED", "SSH_AUTH_SOCK", "KEYTIMEOUT",
                         "GPG_AGENT_INFO"})


def _is_location(value: str) -> bool:
    """An absolute path that exists (HF_TOKEN_PATH, GOOGLE_APPLICATION_CREDENTIALS): where a secret
    lives, not the secret; treating it as one would hide every path below it."""
    return value.startswith(("/", "~")) and os.path.exists(os.path.expanduser(value))


def secret_values(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Secret values in ``environ`` (default: this process's environment), longest first."""
    env = os.environ if environ is None else environ
    found: set[str] = set()
    for name, value in env.items():
        if name.upper() in _NOT_SECRET:
            continue
        known = name.upper() in KNOWN_SECRET_VARS
        value = value.strip()
        if (known or _SECRET_NAME.search(name)) and len(value) >= MIN_SECRET_LENGTH and not _is_location(value):
            # A multi-line value (a PEM key) also line by line: output is redacted a line at a time.
            found.update(v for v in {value, *(line.strip() for line in value.splitlines())}
                         if len(v) >= MIN_SECRET_LENGTH)
    # Longest first, so a secret containing another is replaced whole.
    return tuple(sorted(found, key=len, reverse=True))


_ENCODERS = (
    lambda s: repr(s)[1:-1],
    lambda s: json.dumps(s)[1:-1],
    lambda s: json.dumps(s, ensure_ascii=False)[1:-1],
    lambda s: s.encode("unicode_escape").decode("ascii"),
)
"""How text quotes a string: repr, JSON (ASCII or not), unicode-escaped."""


def _variants(secret: str) -> set[str]:
    """``secret`` as written plainly, quoted once, and quoted twice (a repr in a message sent as JSON)."""
    once = {encode(secret) for encode in _ENCODERS}
    twice = {encode(form) for form in once for encode in _ENCODERS}
    return {form for form in {secret, *once, *twice} if form}


@functools.lru_cache(maxsize=16)
def _pattern(secrets: tuple[str, ...]) -> re.Pattern[str] | None:
    forms = sorted({form for secret in secrets for form in _variants(secret)}, key=len, reverse=True)
    return re.compile("|".join(map(re.escape, forms)), re.IGNORECASE) if forms else None


def longest_form(secrets: tuple[str, ...] | None = None) -> int:
    """Length of the longest written form of any secret (0: none): how much text a stream must hold back."""
    secrets = secret_values() if secrets is None else secrets
    return max((len(form) for secret in secrets for form in _variants(secret)), default=0)


def secret_forms(secrets: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """Every written form of every secret, lower-cased (for prefix checks by a stream)."""
    secrets = secret_values() if secrets is None else secrets
    return tuple(sorted({form.lower() for secret in secrets for form in _variants(secret)}))


def redact(text: str, secrets: tuple[str, ...] | None = None) -> str:
    """``text`` with every secret value (in any of its written forms) replaced by ``[redacted]``."""
    pattern = _pattern(secret_values() if secrets is None else secrets)
    return text if pattern is None else pattern.sub(REDACTED, text)


def holds_secret(text: str, secrets: tuple[str, ...] | None = None) -> bool:
    pattern = _pattern(secret_values() if secrets is None else secrets)
    return pattern is not None and pattern.search(text) is not None


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


def redacted_repr(value: Any, limit: int | None = None) -> str:
    """``repr(value)`` for a message, secrets redacted *before* quoting and cutting to ``limit`` characters.

    A cut or escaped secret no longer matches its value, so the console guard could not catch it later.
    """
    if isinstance(value, str):
        text = redact(value)
        if limit is not None and len(text) > limit:
            return repr(text[:limit]) + "…"
        return repr(text)
    shown = repr(redact_data(value))
    return shown[:limit] + "…" if limit is not None and len(shown) > limit else shown


def sealed(text: str) -> str:
    """The stand-in :func:`seal_data` stores for a string holding a secret."""
    return SEALED_PREFIX + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def seal_data(value: Any, secrets: tuple[str, ...] | None = None) -> Any:
    """A copy of JSON-like ``value`` for a record tunewise reads back: strings (and keys) unchanged,
    except one holding a secret, which becomes :func:`sealed` of itself (equal inputs, equal outputs)."""
    secrets = secret_values() if secrets is None else secrets
    if isinstance(value, str):
        return sealed(value) if holds_secret(value, secrets) else value
    if isinstance(value, Mapping):
        return {seal_data(k, secrets) if isinstance(k, str) else k: seal_data(v, secrets)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [seal_data(v, secrets) for v in value]
    return value
