"""The plugin host: loads built-in and entry-point plugins once, isolates their failures.

pluggy itself isolates nothing: one raising implementation aborts the whole hook call. The host
therefore calls every implementation on its own, in a worker thread with a time limit
(``plugins/isolation.py``), checks what it hands back against the hook's declared type
(``plugins/hook_results.py``), records what went wrong (plugin, package, stage, hook, error) and
carries on, unless strict mode turns any failure into a :class:`PluginError`.

Any exception counts, ``SystemExit``, ``KeyboardInterrupt`` and other ``BaseException`` subclasses
included; a real Ctrl-C still interrupts (see ``plugins/isolation.py``). Third-party imports and
hooks get a time limit (:data:`IMPORT_LIMIT_S`, :data:`REGISTRATION_LIMIT_S`, :data:`RUN_LIMIT_S`;
``TUNEWISE_PLUGIN_TIMEOUT`` sets one limit for all); past it the call is abandoned (its thread cannot
be killed and runs on, but nothing it returns later is used) and the plugin is not called again in
this process. The same failure is recorded once, however often a hook is called. Built-in plugins
are tunewise's own code and are not timed. Hooks get private copies of their arguments, so a plugin
(or its abandoned thread) cannot change the plan, profile or ranking tunewise goes on using. Threads
a plugin starts from its hooks are daemon threads too (Python's default inside a daemon thread), so
they cannot keep tunewise from exiting unless the plugin asks otherwise.
"""

from __future__ import annotations

import copy
import functools
import importlib
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy
from tunewise.plugins import hookspecs
from tunewise.plugins.errors import DuplicateMethodError, PluginError
from tunewise.plugins.hook_results import (
    REQUIRED_METHOD_ATTRS,
    Checked,
    check_registrations,
    check_returned,
)
from tunewise.plugins.isolation import Outcome, describe_error, run_isolated
from tunewise.plugins.markers import PROJECT_NAME

ENTRY_POINT_GROUP = PROJECT_NAME
DISABLE_ENV = "TUNEWISE_DISABLE_PLUGINS"
STRICT_ENV = "TUNEWISE_STRICT_PLUGINS"
TIMEOUT_ENV = "TUNEWISE_PLUGIN_TIMEOUT"
SLOW_HOOK_SECONDS = 2.0
"""A hook implementation slower than this is reported (it still counts)."""
IMPORT_LIMIT_S = 30.0
"""A third-party plugin's import is abandoned after this long (generous: some import torch)."""
REGISTRATION_LIMIT_S = 10.0
"""Hooks that only hand objects back (``register_*``, ranking adjustment, training callbacks)."""
RUN_LIMIT_S = 300.0
"""Hooks that may do real work: reading a data set, before/after a run, training-callback methods."""
RUN_TIME_HOOKS = frozenset({"tunewise_load_dataset", "tunewise_before_run", "tunewise_after_run"})

DEFAULT_PLUGINS: tuple[str, ...] = (
    "tunewise.methods.rag",
    "tunewise.methods.in_context",
    "tunewise.methods.full_finetune",
    "tunewise.methods.lora",
    "tunewise.methods.continual_pretraining",
    "tunewise.methods.rlhf",
    "tunewise.advisor.default_hardware",
)
"""Built-in plugins, registered through the same hooks as third-party ones (like datasette's)."""

__all__ = ["REQUIRED_METHOD_ATTRS", "PluginFailure", "PluginHost", "PluginInfo", "get_host", "reset_host",
           "time_limit"]


@dataclass(frozen=True)
class PluginFailure:
    """Something a plugin did wrong, kept for ``tunewise plugins`` and the TUI."""

    plugin: str
    package: str | None
    stage: str
    """``import``, ``register``, ``hook`` (raised), ``timeout`` (abandoned), ``signature``, ``duplicate``,
    ``invalid`` (a result of the wrong type, dropped), ``slow`` (reported; the result counts)."""
    error: str
    hook: str | None = None

    def describe(self) -> str:
        where = f" in {self.hook}" if self.hook else ""
        pkg = f" (package {self.package})" if self.package else ""
        return f"plugin {self.plugin!r}{pkg}: {self.stage}{where}: {self.error}"


@dataclass
class PluginInfo:
    """A loaded plugin as ``tunewise plugins`` lists it."""

    name: str
    package: str
    version: str
    builtin: bool
    hooks: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)


@dataclass
class _Loaded:
    name: str
    package: str
    version: str
    builtin: bool
    module: Any


def _disabled_from_env() -> set[str]:
    raw = os.environ.get(DISABLE_ENV, "")
    return {part.strip() for part in raw.split(",") if part.strip()}


def time_limit(default: float) -> float:
    """``default`` seconds, or the one limit ``TUNEWISE_PLUGIN_TIMEOUT`` sets for every plugin call."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise PluginError(f"{TIMEOUT_ENV}={raw!r}: must be a number of seconds > 0")
    return value


def _identity(value: Any) -> Any:
    return value


def _importable(loader: Callable[[], Any]) -> Any:
    """Load a plugin object and read its attribute names (pluggy's ``register`` calls ``dir()``,
    which a module or object can override), inside the isolated call."""
    plugin = loader()
    if plugin is None:
        raise PluginError("the entry point names None, not a module or object with hooks")
    names = dir(plugin)
    if not all(isinstance(n, str) for n in names):
        raise PluginError("dir() of the plugin returns non-string names")
    return plugin


def _private(value: Any) -> Any:
    """A deep copy for a hook to keep or change as it likes (callables and uncopyable values as they are)."""
    if callable(value):
        return value
    try:
        return copy.deepcopy(value)
    except Exception:  # e.g. a mapping proxy; tunewise's own types copy fine
        return value


def _distributions() -> Iterator[metadata.Distribution]:
    """Installed distributions, the first of each name on ``sys.path`` (as ``entry_points()`` picks them)."""
    seen: set[str] = set()
    for dist in metadata.distributions():
        try:
            name = dist.metadata["Name"]
        except Exception:
            name = None
        key = re.sub(r"[-_.]+", "-", name).lower() if isinstance(name, str) else None
        if key is not None and key in seen:
            continue
        if key is not None:
            seen.add(key)
        yield dist


class PluginHost:
    """Owns the pluggy manager and every plugin's registrations.

    Build one with :func:`get_host` (cached) rather than directly, except in tests.
    """

    def __init__(
        self,
        *,
        strict: bool | None = None,
        disabled: Iterable[str] | None = None,
        load_entry_points: bool = True,
        builtins: Iterable[str] = DEFAULT_PLUGINS,
        extra_plugins: Iterable[tuple[str, ModuleType | object]] = (),
    ) -> None:
        self.strict = bool(os.environ.get(STRICT_ENV)) if strict is None else strict
        time_limit(REGISTRATION_LIMIT_S)  # a bad TUNEWISE_PLUGIN_TIMEOUT is an error even before a plugin needs it
        self.disabled = set(disabled) if disabled is not None else _disabled_from_env()
        self.pm = pluggy.PluginManager(PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.failures: list[PluginFailure] = []
        self.skipped: list[str] = []
        self._loaded: dict[str, _Loaded] = {}
        self._methods: dict[str, type] | None = None
        self._method_owner: dict[str, str] = {}
        self._abandoned: set[str] = set()
        """Plugins (and method ids) with a call past its limit: not called again in this process, since
        each call could cost the whole limit again and the stuck thread may hold what the next one needs."""

        version = _dist_version("tunewise")
        for module_name in builtins:
            short = module_name.rsplit(".", 1)[-1]
            if self._is_disabled(short, module_name):
                continue
            self._load(short, "tunewise", version, True, functools.partial(importlib.import_module, module_name))
        for name, plugin in extra_plugins:
            self._load(name, getattr(plugin, "__name__", name), "", False, functools.partial(_identity, plugin))
        if load_entry_points:
            self._load_entry_points()

    # -- loading ---------------------------------------------------------------------------

    def _is_disabled(self, *names: str | None) -> bool:
        hit = any(n in self.disabled for n in names if n)
        if hit:
            self.skipped.append(next(n for n in names if n))
        return hit

    def _fail(self, failure: PluginFailure, exc: BaseException | None = None) -> None:
        if failure not in self.failures:  # a hook called again (the catalogue, each ranking) fails the same way
            self.failures.append(failure)
        if self.strict:
            raise PluginError(failure.describe()) from exc

    def _load_entry_points(self) -> None:
        for dist in _distributions():
            try:  # one broken dist-info (a malformed entry_points.txt) must not hide every other plugin
                package = str(dist.metadata["Name"] or "")
                version = str(dist.metadata["Version"] or "")
                entry_points = list(dist.entry_points.select(group=ENTRY_POINT_GROUP))
            except Exception as exc:
                where = getattr(dist, "_path", None) or "a distribution"
                self._fail(PluginFailure(os.path.basename(str(where)), None, "import",
                                         f"cannot read its entry points ({where}): {describe_error(exc)}"), exc)
                continue
            for ep in entry_points:
                if self._is_disabled(ep.name, package):
                    continue
                self._load(ep.name, package or ep.value.split(":")[0], version, False, ep.load)

    def _load(self, name: str, package: str, version: str, builtin: bool, loader: Callable[[], Any]) -> None:
        if name in self._loaded:
            self._fail(
                PluginFailure(name, package, "register", f"a plugin named {name!r} is already loaded "
                              f"from package {self._loaded[name].package}")
            )
            return
        limit = None if builtin else time_limit(IMPORT_LIMIT_S)
        outcome = run_isolated(functools.partial(_importable, loader), limit, name=f"tunewise-plugin-import {name}")
        if outcome.timed_out:
            self._fail(PluginFailure(name, package, "timeout", f"import did not finish within {limit:g} s; "
                                     f"abandoned (set {TIMEOUT_ENV} to allow longer)"))
            return
        if outcome.error is not None:
            self._fail(PluginFailure(name, package, "import", outcome.error_text), outcome.error)
            return
        module = outcome.value
        try:
            self.pm.register(module, name=name)
        except pluggy.PluginValidationError as exc:
            self._fail(PluginFailure(name, package, "signature", str(exc)), exc)
            return
        except KeyboardInterrupt:  # runs in this thread: this one may be the user's Ctrl-C
            raise
        except BaseException as exc:  # e.g. a plugin object whose __dir__ raises SystemExit
            self._fail(PluginFailure(name, package, "register", describe_error(exc)), exc)
            return
        callers = self.pm.get_hookcallers(module) or []
        unknown = sorted(hc.name for hc in callers if not hc.has_spec())
        wrappers = sorted(getattr(impl.function, "__name__", "?") for hc in callers for impl in hc.get_hookimpls()
                          if impl.plugin_name == name and (impl.hookwrapper or impl.wrapper))
        if unknown or wrappers:
            self.pm.unregister(module)
            if unknown:
                message = (f"implements unknown hook(s) {', '.join(unknown)}; "
                           f"known hooks: {', '.join(self.hook_names())}")
            else:
                message = (f"{', '.join(wrappers)}: hook wrappers are not supported (tunewise calls each "
                           "implementation on its own); drop hookwrapper=True / wrapper=True")
            self._fail(PluginFailure(name, package, "signature", message))
            return
        self._loaded[name] = _Loaded(name, package, version, builtin, module)

    # -- calling ---------------------------------------------------------------------------

    @staticmethod
    def hook_names() -> list[str]:
        return sorted(n for n in dir(hookspecs) if n.startswith("tunewise_"))

    def call(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call every implementation of ``hook_name`` separately; return ``(plugin, result)`` pairs.

        Order follows pluggy's (tryfirst/trylast, then last registered first). Each result has passed
        the hook's check (``plugins/hook_results.py``). Failures are recorded, or raised in strict mode.
        """
        caller = getattr(self.pm.hook, hook_name)
        results: list[tuple[str, Any]] = []
        for impl in reversed(caller.get_hookimpls()):
            ok, result = self._call_one(impl, hook_name, kwargs)
            if ok:
                results.append((impl.plugin_name, result))
        return results

    def collect(self, hook_name: str) -> list[tuple[str, Any]]:
        """Run a ``register_*`` hook; return ``(plugin, registered object)`` in load order.

        Load order (built-ins, then extra plugins, then entry points), not pluggy's call order (last
        registered first): where names collide, the first registration wins, so a third-party
        plugin cannot silently replace a built-in method or catalogue entry. Each implementation
        registers into a list of its own, accepted only when it returns in time without raising
        (a plugin that fails half-way registers nothing) and filtered by the hook's object check.
        """
        items: list[tuple[str, Any]] = []
        caller = getattr(self.pm.hook, hook_name)
        for impl in caller.get_hookimpls():
            ok, accepted = self._run(impl, hook_name, functools.partial(_registrations, impl, hook_name))
            if ok:
                items.extend((impl.plugin_name, obj) for obj in accepted)
        return items

    def _call_one(self, impl: Any, hook_name: str, kwargs: Mapping[str, Any]) -> tuple[bool, Any]:
        """Call one implementation with private copies of its arguments; ``(ok, checked result)``."""
        args = {a: _private(kwargs[a]) for a in impl.argnames if a in kwargs}
        return self._run(impl, hook_name, functools.partial(_returned, impl, hook_name, args))

    def _package(self, plugin_name: str) -> str | None:
        return self._loaded[plugin_name].package if plugin_name in self._loaded else None

    def _limit(self, plugin_name: str, hook_name: str) -> float | None:
        if plugin_name in self._loaded and self._loaded[plugin_name].builtin:
            return None
        return time_limit(RUN_LIMIT_S if hook_name in RUN_TIME_HOOKS else REGISTRATION_LIMIT_S)

    def _run(self, impl: Any, hook_name: str, call: Callable[[], Checked]) -> tuple[bool, Any]:
        """Run ``call`` isolated; record a raise (with its file:line), a timeout, a slow call and every
        problem the result check found. ``(ok, accepted value)``."""
        plugin_name = impl.plugin_name
        package = self._package(plugin_name)
        if plugin_name in self._abandoned:
            return False, None
        limit = self._limit(plugin_name, hook_name)
        outcome = run_isolated(call, limit, name=f"tunewise-plugin {plugin_name}.{hook_name}")
        if outcome.timed_out:
            self._abandoned.add(plugin_name)
            self._fail(PluginFailure(plugin_name, package, "timeout", f"did not return within {limit:g} s; "
                                     f"abandoned, its result is ignored (set {TIMEOUT_ENV} to allow longer)",
                                     hook_name))
            return False, None
        if outcome.error is not None:
            self._fail(PluginFailure(plugin_name, package, "hook", outcome.error_text, hook_name), outcome.error)
            return False, None
        checked: Checked = outcome.value
        for problem in checked.problems:
            self._fail(PluginFailure(plugin_name, package, "invalid", problem, hook_name))
        if checked.refused:
            return False, None
        if outcome.elapsed > SLOW_HOOK_SECONDS:
            self.failures.append(PluginFailure(plugin_name, package, "slow", f"took {outcome.elapsed:.1f} s "
                                               f"(limit {SLOW_HOOK_SECONDS} s)", hook_name))
        return True, checked.value

    # -- methods ---------------------------------------------------------------------------

    @property
    def methods(self) -> dict[str, type]:
        """Registered method classes by id (built-ins first, then third parties)."""
        if self._methods is None:
            self._methods = {}
            for plugin_name, cls in self.collect("tunewise_register_methods"):
                self._add_method(plugin_name, cls)
        return self._methods

    def _add_method(self, plugin_name: str, cls: Any) -> None:
        """Add a method class (already checked by ``collect``); a taken id is refused."""
        assert self._methods is not None
        package = self._package(plugin_name) or plugin_name
        method_id = cls.id
        if method_id in self._methods:
            owner = self._method_owner[method_id]
            owner_pkg = self._loaded[owner].package if owner in self._loaded else owner
            message = (f"method id {method_id!r} from package {package} is already registered by "
                       f"package {owner_pkg}; the second registration is refused")
            failure = PluginFailure(plugin_name, package, "duplicate", message, "tunewise_register_methods")
            self.failures.append(failure)
            if self.strict:
                raise DuplicateMethodError(message)
            return
        self._methods[method_id] = cls
        self._method_owner[method_id] = plugin_name

    def method(self, method_id: str) -> Any:
        """An instance of the method ``method_id``; a clear error lists the known ids."""
        try:
            cls = self.methods[method_id]
        except KeyError:
            known = ", ".join(sorted(self.methods)) or "none"
            raise PluginError(f"unknown method {method_id!r}; registered methods: {known}") from None
        return cls()

    def method_owner(self, method_id: str) -> str:
        return self._method_owner[method_id]

    def run_method_code(self, method_id: str, fn: Callable[[], Any]) -> Outcome:
        """Run code of a registered method (``fit``, ``estimate``) isolated like a hook: any exception
        caught, a third-party method's call abandoned after :data:`REGISTRATION_LIMIT_S` (they must be
        cheap), a built-in's untimed."""
        owner = self._method_owner.get(method_id, "")
        if owner in self._abandoned or f"method:{method_id}" in self._abandoned:
            skipped = PluginError("not called: an earlier call of this plugin did not return in time")
            return Outcome(error=skipped, error_text=str(skipped))
        builtin = owner in self._loaded and self._loaded[owner].builtin
        outcome = run_isolated(fn, None if builtin else time_limit(REGISTRATION_LIMIT_S),
                               name=f"tunewise-method {method_id}")
        if outcome.timed_out:
            self._abandoned.add(f"method:{method_id}")
        return outcome

    # -- listing ---------------------------------------------------------------------------

    def plugins(self) -> list[PluginInfo]:
        methods = self.methods  # make sure registrations ran, so failures are complete
        infos = []
        for loaded in self._loaded.values():
            hooks = sorted(hc.name for hc in self.pm.get_hookcallers(loaded.module) or [])
            owned = [mid for mid, owner in self._method_owner.items() if owner == loaded.name and mid in methods]
            infos.append(PluginInfo(loaded.name, loaded.package, loaded.version, loaded.builtin, hooks, owned))
        return infos


def _registrations(impl: Any, hook_name: str) -> Checked:
    """Call a ``register_*`` implementation with a ``register`` of its own (runs in the isolated thread)."""
    registered: list[Any] = []

    def register(obj: Any) -> None:
        registered.append(obj)

    returned = impl.function(**({"register": register} if "register" in impl.argnames else {}))
    return check_registrations(hook_name, list(registered), returned)


def _returned(impl: Any, hook_name: str, args: Mapping[str, Any]) -> Checked:
    """Call an implementation and check its return value (runs in the isolated thread)."""
    return check_returned(hook_name, impl.function(**args))


def _dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


_HOST: PluginHost | None = None


def get_host(*, strict: bool | None = None) -> PluginHost:
    """The process-wide host, loading plugins on first use only."""
    global _HOST
    if _HOST is None or (strict is not None and strict != _HOST.strict):
        _HOST = PluginHost(strict=strict)
    return _HOST


def reset_host() -> None:
    """Forget the cached host (tests; after installing a plugin at run time)."""
    global _HOST
    _HOST = None
