"""Prompt tuning for tunewise: a third-party method plugin built on peft's ``PromptTuningConfig``.

Prompt tuning (Lester et al., 2021) learns a few "virtual token" embeddings prepended to every
input while the whole model stays frozen. Each task is a few kilobytes, so one served model can
answer many tasks, even mixed in one batch. The plugin registers the ``prompt_tuning`` method and
its interview questions through the ``tunewise`` entry point (see ``plugin.py``).
"""

__version__ = "0.1.0"
