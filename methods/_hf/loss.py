"""Next-token loss computed only where there are targets.

The output head runs on the hidden states of target positions only: prompt tokens in supervised
data cost no head FLOPs and no logits memory, and the full ``batch x length x vocabulary`` logits
tensor is never built. Very large target sets go through the head in checkpointed chunks.
"""

from __future__ import annotations

from typing import Any

from tunewise.methods._hf.batches import MicroBatch

CHUNK_ELEMENTS = 1 << 28
"""Above this many logits (1 GiB in fp32) the head and loss run chunk by chunk, recomputed in backward."""


def _causal_lm(model: Any) -> Any:
    """The ``*ForCausalLM`` module inside a PEFT wrapper (or the model itself)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def _has_logit_processing(config: Any) -> bool:
    """Models whose forward changes logits after the head (soft-capping, scaling) need the full forward."""
    return bool(getattr(config, "final_logit_softcapping", None) or getattr(config, "logit_scale", None)
                or getattr(config, "logits_scaling", None))


def _head_loss(head: Any, hidden: Any, target_ids: Any) -> Any:
    import torch.nn.functional as F

    logits = head(hidden)
    return F.cross_entropy(logits.float(), target_ids, reduction="sum")


def model_inputs(model: Any, batch: MicroBatch) -> dict[str, Any]:
    """Forward keyword arguments: ids, positions and (for packed rows) the 4D mask in the form the
    model's attention takes (boolean for SDPA, additive float for eager attention)."""
    import torch

    inputs: dict[str, Any] = {"input_ids": batch.input_ids, "position_ids": batch.position_ids, "use_cache": False}
    mask = batch.attention_mask
    if mask is not None:
        implementation = getattr(_causal_lm(model).config, "_attn_implementation", "sdpa")
        if implementation not in ("sdpa", "flex_attention"):
            kind = batch.input_ids.device.type
            dtype = (torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind)
                     else next(model.parameters()).dtype)
            mask = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)
        inputs["attention_mask"] = mask
    return inputs


def causal_lm_loss(model: Any, batch: MicroBatch) -> Any:
    """Summed next-token cross-entropy over the batch's targets (the caller divides)."""
    import torch
    import torch.nn.functional as F
    from torch.utils.checkpoint import checkpoint

    lm = _causal_lm(model)
    decoder = lm.get_decoder() if hasattr(lm, "get_decoder") else None
    head = lm.get_output_embeddings() if hasattr(lm, "get_output_embeddings") else None
    # An FSDP-sharded model gathers its outer weights (embeddings, head) only in its own forward.
    sharded_root = type(model).__name__.startswith("FSDP")
    if decoder is None or head is None or _has_logit_processing(lm.config) or sharded_root:
        logits = model(**model_inputs(model, batch)).logits
        flat = logits.reshape(-1, logits.shape[-1]).index_select(0, batch.target_index)
        return F.cross_entropy(flat.float(), batch.target_ids, reduction="sum")
    hidden = decoder(**model_inputs(model, batch)).last_hidden_state
    picked = hidden.reshape(-1, hidden.shape[-1]).index_select(0, batch.target_index)
    vocab = head.weight.shape[0]
    count = batch.num_targets
    if count * vocab <= CHUNK_ELEMENTS or not torch.is_grad_enabled():
        if count * vocab <= CHUNK_ELEMENTS:
            return _head_loss(head, picked, batch.target_ids)
        chunk = max(1, CHUNK_ELEMENTS // vocab)
        return sum(_head_loss(head, picked[s:s + chunk], batch.target_ids[s:s + chunk])
                   for s in range(0, count, chunk))
    chunk = max(1, CHUNK_ELEMENTS // vocab)
    total = picked.new_zeros((), dtype=torch.float32)
    for s in range(0, count, chunk):
        total = total + checkpoint(_head_loss, head, picked[s:s + chunk], batch.target_ids[s:s + chunk],
                                   use_reentrant=False)
    return total
