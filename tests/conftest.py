"""Shared fixtures: offline Hugging Face settings and tiny random models built in a second."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Tests never reach a hub; make any accidental download fail fast instead of hanging.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The user's data folder holds probe calibrations and decision logs that change quotes and listings:
# tests (and the processes they start) get an empty one of their own, so results do not depend on
# what ran on this machine before and nothing is written into the user's folder.
os.environ["TUNEWISE_DATA_DIR"] = tempfile.mkdtemp(prefix="tunewise-test-data-")

@pytest.fixture(scope="session")
def embedded_model_path() -> Path:
    """The prepared embedded model (bootstrap.sh prepares it; this prepares it if needed)."""
    from tunewise.plugins.models import resolve_model

    return resolve_model(None).path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, embedded_model_path: Path) -> Path:
    """A 2-layer Llama with random weights and the embedded model's real tokenizer and chat template."""
    from tunewise.plugins.testing import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))
