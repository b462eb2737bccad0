"""Greedy generation streamed piece by piece, cancellable, with its token count and speed.

``model.generate`` runs in a thread and hands its text to a transformers ``TextIteratorStreamer``;
the caller's thread reads the pieces and passes each to ``stream`` as it arrives, so a terminal or a
screen shows the answer being written. Setting ``cancel`` stops generation after the current token
(a stopping criterion reads it), which is how a new prompt replaces one still being answered.
Decoding is greedy: the base and the result answer the same prompt the same way every time, so a
difference between them comes from their weights, not from sampling.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tunewise.plugins.errors import TunewiseError

POLL_S = 0.1
"""How often the reading thread checks that generation is still alive (a crash never leaves it waiting)."""

Stream = Callable[[str], None]
"""Receives each new piece of the answer's text."""
Progress = Callable[[int, float], None]
"""Receives (tokens generated so far, seconds since generation started)."""


class PromptTooLongError(TunewiseError):
    """A prompt that leaves the model no position to answer in."""


@dataclass(frozen=True)
class Generated:
    """What one streamed generation produced."""

    text: str
    tokens: int
    seconds: float
    cancelled: bool

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def context_length(model: Any) -> int | None:
    """Positions the model can attend to (None when its config does not say)."""
    value = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    return int(value) if isinstance(value, int) and value > 0 else None


def generate_streamed(model: Any, tokenizer: Any, prompt_ids: Sequence[int], *, max_new_tokens: int,
                      stream: Stream | None = None, progress: Progress | None = None,
                      cancel: threading.Event | None = None,
                      context: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
                      repetition_penalty: float | None = None) -> Generated:
    """Greedy answer to ``prompt_ids``, streamed to ``stream``; ``context()`` wraps the generate call
    (e.g. a LoRA model's ``disable_adapter`` to answer as the base)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer
    from tunewise.plugins.models import stop_ids

    stop = cancel or threading.Event()
    limit = context_length(model)
    if limit is not None:  # past its positions a model fails or rambles; the answer is cut there instead
        if len(prompt_ids) >= limit:
            raise PromptTooLongError(f"the prompt is {len(prompt_ids):,} tokens with everything added to it "
                                     f"(template, instruction, examples or passages); this model reads at most "
                                     f"{limit:,}: shorten it")
        max_new_tokens = max(1, min(max_new_tokens, limit - len(prompt_ids)))

    class Counting(TextIteratorStreamer):
        generated = 0

        def put(self, value: Any) -> None:
            if not (self.skip_prompt and self.next_tokens_are_prompt):
                self.generated += int(value.numel())
                if progress is not None:
                    progress(self.generated, time.perf_counter() - started)
            super().put(value)

    class Cancelled(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool, device=input_ids.device)

    streamer = Counting(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=POLL_S)
    device = next(model.parameters()).device
    ids = torch.tensor([list(prompt_ids)], device=device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    kwargs: dict[str, Any] = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "do_sample": False,
                              "max_new_tokens": max_new_tokens, "pad_token_id": pad,
                              "eos_token_id": stop_ids(model, tokenizer), "streamer": streamer,
                              "stopping_criteria": StoppingCriteriaList([Cancelled()])}
    if repetition_penalty is not None:
        kwargs["repetition_penalty"] = repetition_penalty
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            with context(), torch.inference_mode():
                outcome["ids"] = model.generate(**kwargs)
        except BaseException as exc:  # handed to the caller's thread below
            outcome["error"] = exc
            streamer.end()

    started = time.perf_counter()
    worker = threading.Thread(target=work, name="tunewise-generate", daemon=True)
    worker.start()
    try:
        while True:
            try:
                piece = next(streamer)
            except StopIteration:
                break
            except queue.Empty:
                if not worker.is_alive():
                    break
                continue
            if piece and stream is not None:
                stream(piece)
    except BaseException:
        stop.set()  # the reader failed (a closed screen, Ctrl-C): stop the model too
        raise
    finally:
        worker.join()
    seconds = time.perf_counter() - started
    if "error" in outcome:
        raise outcome["error"]
    new = outcome["ids"][0, len(prompt_ids):]
    text = str(tokenizer.decode(new, skip_special_tokens=True)).strip()
    return Generated(text, int(new.numel()), seconds, stop.is_set())
