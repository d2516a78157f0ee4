"""The plugin manager: entry points in the ``lctk`` group, loaded once and lazily, into registries.

What can be registered is the table `lctk.hookspecs.KINDS`; every kind gets a registry table here
(``Registries.backbones``, ``Registries.datasets``, ...). A plugin may register a ``"module:attribute"``
reference instead of the object: it is imported when first looked up, so listing plugins (`lctk plugins`)
imports no model code.

A plugin that raises on import or inside a hook is reported once, as a one-line warning naming its
distribution, and skipped: everything it registered, in any hook, is dropped and its later hooks are not
called; everything else keeps working. ``LCTK_PLUGINS`` (comma-separated distribution names) restricts which
distributions load; set to an empty string, it loads none. lctk's own registrations (`lctk.builtin`: the
constraint methods) always load, as distribution ``lctk``.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
from importlib import metadata
from typing import Any, Callable

import pluggy

from lctk import hookspecs
from lctk.util.errors import LctkError, describe
from lctk.hookspecs import BY_KEY, KINDS, Kind

ENTRY_POINT_GROUP = "lctk"
#: Every hook, in the order of `lctk.hookspecs.KINDS`.
HOOKS = tuple(kind.hook for kind in KINDS)


def __getattr__(name: str):
    if name == "DataRequest":  # its old home; it lives with the other contracts now
        from lctk.interfaces import DataRequest

        return DataRequest
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclasses.dataclass
class Entry:
    """One registered object and who provided it.

    ``plugin``: the providing distribution (``version`` its version); ``details``: the kind's extra keyword
    arguments (a dataset's ``options`` and ``attributes``); ``also``: other distributions that registered the
    same name and lost (the later registration wins). ``value`` imports a ``"module:attribute"`` reference
    on first use.
    """

    name: str
    ref: Any
    plugin: str
    help: str = ""
    modality: str | None = None
    kind: str = ""
    version: str = ""
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
    also: list[str] = dataclasses.field(default_factory=list)
    _value: Any = dataclasses.field(default=None, repr=False)
    _resolved: bool = dataclasses.field(default=False, repr=False)

    @property
    def value(self) -> Any:
        """The registered object (imported now if it was registered as a reference)."""
        if not self._resolved:
            self._value = resolve(self.ref, BY_KEY.get(self.kind), f"{self.plugin}'s {self.name!r}")
            self._resolved = True
        return self._value


def resolve(ref: Any, kind: Kind | None = None, what: str = "plugin object") -> Any:
    """``ref`` itself, or the object a ``"module:attribute"`` string names (constructed without arguments for
    kinds registered as instances); a one-line LctkError if it cannot be imported."""
    if not isinstance(ref, str):
        return ref
    module_name, _, attribute = ref.partition(":")
    try:
        value = importlib.import_module(module_name)
        for part in attribute.split(".") if attribute else ():
            value = getattr(value, part)
        if kind is not None and kind.instantiate and isinstance(value, type):
            value = value()
    except Exception as e:  # a broken plugin module must not end in a traceback
        raise LctkError(f"plugin object {ref!r} ({what}) cannot be loaded ({describe(e)}); reinstall or fix "
                        "the plugin that provides it (see `lctk plugins`)") from None
    return value


@dataclasses.dataclass
class PluginInfo:
    """A loaded (or failed) plugin: its distribution, version and what it registered."""

    name: str
    version: str
    provides: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    error: str | None = None


class Registries:
    """Everything the plugins registered: one table (name -> `Entry`) per kind of `lctk.hookspecs.KINDS`,
    as attributes named by the kind's key (``backbones``, ``datasets``, ...)."""

    def __init__(self):
        self.tables: dict[str, dict[str, Entry]] = {kind.key: {} for kind in KINDS}
        self.plugins: dict[str, PluginInfo] = {}

    def __getattr__(self, key: str) -> dict[str, Entry]:
        tables = self.__dict__.get("tables", {})
        if key in tables:
            return tables[key]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {key!r}")

    # -- lookups with one-line errors ------------------------------------------------------------------
    def entry(self, key: str, name: str) -> Entry:
        """The entry of kind ``key`` (``backbones``, ...) registered as ``name``; one-line error if none."""
        kind, table = BY_KEY[key], self.tables[key]
        entry = table.get(name.lower())
        if entry is None:
            known = ", ".join(sorted(table)) or "none installed"
            raise LctkError(f"unknown {kind.noun} {name!r}; available: {known}{kind.hint}")
        return entry

    def get(self, key: str, name: str) -> Any:
        """The object of kind ``key`` registered as ``name`` (imported if registered as a reference)."""
        return self.entry(key, name).value

    def backbone(self, name: str):
        """The backbone class registered as ``name``."""
        return self.get("backbones", name)

    def dataset(self, name: str) -> Entry:
        """The dataset loader entry registered as ``name``."""
        return self.entry("datasets", name)

    def writer(self, modality: str):
        """The writer for ``modality``."""
        return self.get("writers", modality)

    def evaluator(self, modality: str):
        """The evaluator class for ``modality``."""
        return self.get("evaluators", modality)

    def labeler(self, modality: str):
        """The labeler class for ``modality``, or None when no plugin provides one."""
        entry = self.labelers.get(modality.lower())
        return entry.value if entry else None

    def constraint_method(self, name: str):
        """The `Constraint` subclass registered as constraint method ``name`` (``actor``, ``diffusion``, ...)."""
        return self.get("constraint_methods", name)

    def importer(self, name: str) -> Entry:
        """The importer entry registered as ``name`` (a model format, e.g. ``pythae``)."""
        return self.entry("importers", name)

    def rule_entry(self, spec: str) -> Entry:
        """The rule parser entry whose name starts ``spec`` (``key`` for ``key=C``)."""
        name = spec
        for i, ch in enumerate(spec):
            if ch in "=<>!":
                name = spec[:i]
                break
        return self.entry("rules", name.strip())


_hook_errors_reported: set[str] = set()


def warn(message: str) -> None:
    """Print ``warning: message`` on stderr, once per process."""
    if message in _hook_errors_reported:
        return
    _hook_errors_reported.add(message)
    print(f"warning: {message}", file=sys.stderr)


class PluginManager:
    """Loads plugins and fills `Registries`. Use `get_registries()` rather than building one."""

    def __init__(self, load_entry_points: bool = True):
        self.pm = pluggy.PluginManager("lctk")
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        #: Plugins that raised in a hook: everything they registered is dropped and they are not called again.
        self.failed: set[str] = set()
        from lctk import __version__, builtin

        self.add(builtin, builtin.NAME, __version__)  # lctk's own, whatever LCTK_PLUGINS says
        if load_entry_points:
            self._load_entry_points()

    def _load_entry_points(self) -> None:
        allow = os.environ.get("LCTK_PLUGINS")
        allowed = None if allow is None else {a.strip().lower() for a in allow.split(",") if a.strip()}
        seen = set()
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = ep.dist.name if ep.dist else ep.name
            version = ep.dist.version if ep.dist else "?"
            if (dist, ep.name) in seen:
                continue
            seen.add((dist, ep.name))
            if allowed is not None and dist.lower() not in allowed:
                continue
            try:
                module = ep.load()
            except Exception as e:  # a broken plugin must not take lctk down
                warn(f"plugin {dist} failed to load ({describe(e)}); skipped")
                self.infos[dist] = PluginInfo(dist, version, error=describe(e))
                continue
            self.add(module, dist, version)

    def add(self, plugin: object, name: str, version: str = "") -> None:
        """Register an in-process plugin object (tests, notebooks) under ``name``."""
        if self.pm.get_plugin(name) is not None:
            self.pm.unregister(name=name)
        self.pm.register(plugin, name=name)
        self.infos[name] = PluginInfo(name, version)

    def remove(self, name: str) -> None:
        """Unregister the plugin called ``name``."""
        if self.pm.get_plugin(name) is not None:
            self.pm.unregister(name=name)
        self.infos.pop(name, None)

    def call(self, hook: str, make_register: Callable[[str], Callable], after: Callable[[str], None] | None = None,
             **extra) -> None:
        """Call ``hook`` on every plugin separately. A plugin that raises is reported once and skipped from
        then on (see `failed`); ``after(plugin)`` runs after each successful call."""
        caller = getattr(self.pm.hook, hook)
        for impl in reversed(caller.get_hookimpls()):
            plugin = impl.plugin_name
            if plugin in self.failed:
                continue
            kwargs = dict(extra)
            if "register" in impl.argnames:
                kwargs["register"] = make_register(plugin)
            try:
                impl.function(**{k: v for k, v in kwargs.items() if k in impl.argnames})
            except Exception as e:
                warn(f"plugin {plugin} failed in {hook} ({describe(e)}); skipped")
                self.failed.add(plugin)
                info = self.infos.setdefault(plugin, PluginInfo(plugin, ""))
                info.error = info.error or f"{hook}: {describe(e)}"
                info.provides.clear()
                continue
            if after is not None:
                after(plugin)

    def _registrar(self, kind: Kind, table: dict[str, Entry], plugin: str) -> Callable:
        """The ``register`` callable ``plugin``'s hook of ``kind`` receives."""
        info = self.infos.setdefault(plugin, PluginInfo(plugin, ""))

        def register(name: str, value: Any, *, help: str = "", modality: str | None = None, **details) -> None:
            unknown = sorted(set(details) - set(kind.details))
            if unknown:
                raise TypeError(f"register() of {kind.key} got unexpected keyword argument(s) {', '.join(unknown)}")
            key = name.lower()
            also = []
            if key in table and table[key].plugin != plugin:
                warn(f"plugin {plugin} registers {kind.noun} {name!r} already provided by {table[key].plugin}; "
                     f"the later one ({plugin}) wins")
                also = [*table[key].also, table[key].plugin]
            doc = "" if isinstance(value, str) else (value.__doc__ or "").strip().split("\n")[0]
            table[key] = Entry(key, value, plugin, help or doc, modality, kind.key, info.version, details, also)
            info.provides.setdefault(kind.key, []).append(key)
        return register

    def build(self) -> Registries:
        """Run the registration hooks and return the filled registries."""
        reg = Registries()
        for kind in KINDS:
            if kind.argument != "register":
                continue  # commands are added to the command group by the CLI
            table = reg.tables[kind.key]
            self.call(kind.hook, lambda plugin, kind=kind, table=table: self._registrar(kind, table, plugin))
        for table in reg.tables.values():
            for key in [k for k, e in table.items() if e.plugin in self.failed]:
                del table[key]
        reg.plugins = self.infos
        return reg


_manager: PluginManager | None = None
_registries: Registries | None = None


def get_manager() -> PluginManager:
    """The process-wide plugin manager, loading entry points on first use."""
    global _manager
    if _manager is None:
        _manager = PluginManager()
    return _manager


def get_registries() -> Registries:
    """The process-wide registries, built once on first use."""
    global _registries
    if _registries is None:
        _registries = get_manager().build()
    return _registries


def reset() -> None:
    """Forget loaded plugins and registries (tests; after installing a plugin in-process)."""
    global _manager, _registries
    _manager = None
    _registries = None
    _hook_errors_reported.clear()


def add_plugin(plugin: object, name: str) -> Registries:
    """Register an in-process plugin and rebuild the registries; returns them."""
    global _registries
    get_manager().add(plugin, name)
    _registries = None
    return get_registries()


def remove_plugin(name: str) -> None:
    """Unregister an in-process plugin and rebuild the registries on next use."""
    global _registries
    get_manager().remove(name)
    _registries = None
