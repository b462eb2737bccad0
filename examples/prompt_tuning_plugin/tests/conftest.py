"""The tunewise author kit's fixtures: tunewise_tiny_model, tunewise_host, tunewise_profiles."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the tiny model and the tokenizer are local
pytest_plugins = ["tunewise.plugins.testing"]
