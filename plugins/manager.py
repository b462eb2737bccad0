"""The plugin host: loads built-in and entry-point plugins once, isolates their failures.

pluggy itself isolates nothing: one raising implementation aborts the whole hook call. The host
therefore calls every implementation on its own, records what went wrong (plugin, package, stage,
error) and carries on, unless strict mode turns any failure into a :class:`PluginError`.
"""

from __future__ import annotations

import functools
import importlib
import os
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy
from tunewise.plugins import hookspecs
from tunewise.plugins.errors import DuplicateMethodError, PluginError
from tunewise.plugins.markers import PROJECT_NAME

ENTRY_POINT_GROUP = PROJECT_NAME
DISABLE_ENV = "TUNEWISE_DISABLE_PLUGINS"
STRICT_ENV = "TUNEWISE_STRICT_PLUGINS"
SLOW_HOOK_SECONDS = 2.0
"""A hook implementation slower than this is reported (it still counts)."""

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

REQUIRED_METHOD_ATTRS = ("id", "title", "summary", "fit", "estimate", "run")


@dataclass(frozen=True)
class PluginFailure:
    """Something a plugin did wrong, kept for ``tunewise plugins`` and the TUI."""

    plugin: str
    package: str | None
    stage: str
    """``import``, ``register``, ``hook`` (raised), ``signature``, ``duplicate``, ``invalid``, ``slow``."""
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


def _identity(value: Any) -> Any:
    return value


def _short_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


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
        self.disabled = set(disabled) if disabled is not None else _disabled_from_env()
        self.pm = pluggy.PluginManager(PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.failures: list[PluginFailure] = []
        self.skipped: list[str] = []
        self._loaded: dict[str, _Loaded] = {}
        self._methods: dict[str, type] | None = None
        self._method_owner: dict[str, str] = {}

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
        self.failures.append(failure)
        if self.strict:
            raise PluginError(failure.describe()) from exc

    def _load_entry_points(self) -> None:
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = getattr(ep, "dist", None)
            package = dist.name if dist is not None else ep.value.split(":")[0]
            version = dist.version if dist is not None else ""
            if self._is_disabled(ep.name, package):
                continue
            self._load(ep.name, package, version, False, ep.load)

    def _load(self, name: str, package: str, version: str, builtin: bool, loader: Callable[[], Any]) -> None:
        if name in self._loaded:
            self._fail(
                PluginFailure(name, package, "register", f"a plugin named {name!r} is already loaded "
                              f"from package {self._loaded[name].package}")
            )
            return
        try:
            module = loader()
        except Exception as exc:  # a broken plugin must not take tunewise down
            self._fail(PluginFailure(name, package, "import", _short_error(exc)), exc)
            return
        try:
            self.pm.register(module, name=name)
        except pluggy.PluginValidationError as exc:
            self._fail(PluginFailure(name, package, "signature", str(exc)), exc)
            return
        except ValueError as exc:
            self._fail(PluginFailure(name, package, "register", str(exc)), exc)
            return
        unknown = [hc.name for hc in self.pm.get_hookcallers(module) or [] if not hc.has_spec()]
        if unknown:
            self.pm.unregister(module)
            self._fail(
                PluginFailure(name, package, "signature",
                              f"implements unknown hook(s) {', '.join(sorted(unknown))}; "
                              f"known hooks: {', '.join(self.hook_names())}")
            )
            return
        self._loaded[name] = _Loaded(name, package, version, builtin, module)

    # -- calling ---------------------------------------------------------------------------

    @staticmethod
    def hook_names() -> list[str]:
        return sorted(n for n in dir(hookspecs) if n.startswith("tunewise_"))

    def call(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call every implementation of ``hook_name`` separately; return ``(plugin, result)`` pairs.

        Order follows pluggy's (tryfirst/trylast, then last registered first). Failures are recorded,
        or raised in strict mode.
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
        plugin cannot silently replace a built-in method or catalogue entry.
        """
        items: list[tuple[str, Any]] = []
        current: list[str] = [""]

        def register(obj: Any) -> None:
            items.append((current[0], obj))

        caller = getattr(self.pm.hook, hook_name)
        for impl in caller.get_hookimpls():
            current[0] = impl.plugin_name
            before = len(items)
            ok, _ = self._call_one(impl, hook_name, {"register": register})
            if not ok:
                del items[before:]  # a plugin that raised half-way registers nothing
        return items

    def _call_one(self, impl: Any, hook_name: str, kwargs: Mapping[str, Any]) -> tuple[bool, Any]:
        """Call one implementation; a raise is recorded with the file:line it came from."""
        plugin_name = impl.plugin_name
        package = self._loaded[plugin_name].package if plugin_name in self._loaded else None
        started = time.perf_counter()
        try:
            result = impl.function(**{a: kwargs[a] for a in impl.argnames if a in kwargs})
        except Exception as exc:
            last = traceback.extract_tb(exc.__traceback__)[-1]
            where = f" ({os.path.basename(last.filename)}:{last.lineno})"
            self._fail(PluginFailure(plugin_name, package, "hook", _short_error(exc) + where, hook_name), exc)
            return False, None
        elapsed = time.perf_counter() - started
        if elapsed > SLOW_HOOK_SECONDS:
            self.failures.append(
                PluginFailure(plugin_name, package, "slow", f"took {elapsed:.1f} s (limit {SLOW_HOOK_SECONDS} s)", hook_name)
            )
        return True, result

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
        assert self._methods is not None
        package = self._loaded[plugin_name].package if plugin_name in self._loaded else plugin_name
        missing = [a for a in REQUIRED_METHOD_ATTRS if not hasattr(cls, a)]
        if missing:
            self._fail(PluginFailure(plugin_name, package, "invalid",
                                     f"{getattr(cls, '__name__', cls)!r} lacks {', '.join(missing)} "
                                     "(see tunewise.plugins.Method)", "tunewise_register_methods"))
            return
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

    # -- listing ---------------------------------------------------------------------------

    def plugins(self) -> list[PluginInfo]:
        methods = self.methods  # make sure registrations ran, so failures are complete
        infos = []
        for loaded in self._loaded.values():
            hooks = sorted(hc.name for hc in self.pm.get_hookcallers(loaded.module) or [])
            owned = [mid for mid, owner in self._method_owner.items() if owner == loaded.name and mid in methods]
            infos.append(PluginInfo(loaded.name, loaded.package, loaded.version, loaded.builtin, hooks, owned))
        return infos


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
