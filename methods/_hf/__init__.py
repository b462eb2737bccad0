"""Shared Hugging Face training core of the built-in training methods (private to tunewise).

Full fine-tuning, LoRA/QLoRA and continual pretraining share this package: data encoding (chat
template, loss masks, packing, the held-out split), the training loop with atomic checkpoints and
exact resume, evaluation, and the artifacts and report of a run. Modules import torch only inside
functions, except those whose whole job is tensors (``loop``, ``checkpoint``, ``evaluation``).
A later method (DPO, reward models) reuses :class:`~tunewise.methods._hf.loop.TrainLoop` with its
own batches and loss function.
"""
