"""Errors the plugin host and methods raise; each carries a message meant for the user."""

from __future__ import annotations


class TunewiseError(Exception):
    """Base of every error tunewise reports to the user as a message rather than a traceback."""


class PluginError(TunewiseError):
    """A plugin failed to load or misbehaved (raised in strict mode, otherwise recorded)."""


class DuplicateMethodError(PluginError):
    """Two plugins registered the same method id."""


class MethodNotRunnable(TunewiseError):
    """The method exists for advice but cannot run in this configuration (or on this machine)."""


class ModelNotFoundError(TunewiseError):
    """A model name could not be resolved to local files; the message says where tunewise looked."""
