"""The plugin manager: entry points in the ``lctk`` group, loaded once and lazily, into registries.

A plugin that raises on import or inside a hook is reported once, as a one-line warning naming its
distribution, and skipped; everything else keeps working. ``LCTK_PLUGINS`` (comma-separated distribution
names) restricts which distributions load; set to an empty string, it loads none.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import pluggy

from lctk import hookspecs
from lctk.errors import LctkError

ENTRY_POINT_GROUP = "lctk"
HOOKS = ("register_backbones", "register_datasets", "register_writers", "register_evaluators",
         "register_labelers", "register_rules", "register_importers", "register_commands")


@dataclasses.dataclass
class DataRequest:
    """What the user asked a dataset loader for.

    Attributes: data_dir, the user's ``--data-dir`` (None: the loader's default location); options, extra
    ``--data-option key=value`` pairs; max_examples, a cap (None: all); seed, for any subsampling;
    progress, a `lctk.progress.Progress` to report long loading on (may be None).
    """

    data_dir: Path | None = None
    options: dict[str, str] = dataclasses.field(default_factory=dict)
    max_examples: int | None = None
    seed: int = 0
    progress: Any = None


@dataclasses.dataclass
class Entry:
    """One registered object and who provided it."""

    name: str
    value: Any
    plugin: str
    help: str = ""
    modality: str | None = None


@dataclasses.dataclass
class PluginInfo:
    """A loaded (or failed) plugin: its distribution, version and what it registered."""

    name: str
    version: str
    provides: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    error: str | None = None


class Registries:
    """Everything the plugins registered: backbones, datasets, writers, evaluators, labelers, rules, importers,
    commands."""

    def __init__(self):
        self.backbones: dict[str, Entry] = {}
        self.datasets: dict[str, Entry] = {}
        self.writers: dict[str, Entry] = {}
        self.evaluators: dict[str, Entry] = {}
        self.labelers: dict[str, Entry] = {}
        self.rules: dict[str, Entry] = {}
        self.importers: dict[str, Entry] = {}
        self.commands: dict[str, Entry] = {}
        self.plugins: dict[str, PluginInfo] = {}

    # -- lookups with one-line errors ------------------------------------------------------------------
    def _lookup(self, table: dict[str, Entry], kind: str, name: str, hint: str = "") -> Entry:
        entry = table.get(name.lower())
        if entry is None:
            known = ", ".join(sorted(table)) or "none installed"
            raise LctkError(f"unknown {kind} {name!r}; available: {known}{hint}")
        return entry

    def backbone(self, name: str):
        """The backbone class registered as ``name``."""
        return self._lookup(self.backbones, "backbone", name, " (see `lctk plugins`)").value

    def dataset(self, name: str) -> Entry:
        """The dataset loader entry registered as ``name``."""
        return self._lookup(self.datasets, "dataset", name, " (see `lctk plugins`)")

    def writer(self, modality: str):
        """The writer for ``modality``."""
        return self._lookup(self.writers, "writer for modality", modality, "; install the plugin for it").value

    def evaluator(self, modality: str):
        """The evaluator class for ``modality``."""
        return self._lookup(self.evaluators, "evaluator for modality", modality, "; install the plugin for it").value

    def labeler(self, modality: str):
        """The labeler class for ``modality``, or None when no plugin provides one."""
        entry = self.labelers.get(modality.lower())
        return entry.value if entry else None

    def rule_entry(self, spec: str) -> Entry:
        """The rule parser entry whose name starts ``spec`` (``key`` for ``key=C``)."""
        name = spec
        for i, ch in enumerate(spec):
            if ch in "=<>!":
                name = spec[:i]
                break
        return self._lookup(self.rules, "rule", name.strip())

    def importer(self, name: str) -> Entry:
        """The importer entry registered as ``name`` (a model format, e.g. ``pythae``)."""
        return self._lookup(self.importers, "model format", name, " (see `lctk plugins`; install the importer plugin)")


_hook_errors_reported: set[str] = set()


def _warn(message: str) -> None:
    if message in _hook_errors_reported:
        return
    _hook_errors_reported.add(message)
    print(f"warning: {message}", file=sys.stderr)


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


class PluginManager:
    """Loads plugins and fills `Registries`. Use `get_registries()` rather than building one."""

    def __init__(self, load_entry_points: bool = True):
        self.pm = pluggy.PluginManager("lctk")
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        #: Plugins that raised in a hook: everything they registered is dropped and they are not called again.
        self.failed: set[str] = set()
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
                _warn(f"plugin {dist} failed to load ({_one_line(e)}); skipped")
                self.infos[dist] = PluginInfo(dist, version, error=_one_line(e))
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
                _warn(f"plugin {plugin} failed in {hook} ({_one_line(e)}); skipped")
                self.failed.add(plugin)
                info = self.infos.setdefault(plugin, PluginInfo(plugin, ""))
                info.error = info.error or f"{hook}: {_one_line(e)}"
                info.provides.clear()
                continue
            if after is not None:
                after(plugin)

    def build(self) -> Registries:
        """Run the registration hooks and return the filled registries."""
        reg = Registries()
        tables = {"register_backbones": ("backbones", reg.backbones), "register_datasets": ("datasets", reg.datasets),
                  "register_writers": ("writers", reg.writers), "register_evaluators": ("evaluators", reg.evaluators),
                  "register_labelers": ("labelers", reg.labelers), "register_rules": ("rules", reg.rules),
                  "register_importers": ("importers", reg.importers)}
        for hook, (kind, table) in tables.items():
            def make_register(plugin, kind=kind, table=table):
                def register(name: str, value: Any, *, help: str = "", modality: str | None = None) -> None:
                    key = name.lower()
                    if key in table and table[key].plugin != plugin:
                        _warn(f"plugin {plugin} registers {kind[:-1]} {name!r} already provided by "
                              f"{table[key].plugin}; the later one wins")
                    table[key] = Entry(key, value, plugin, help or (value.__doc__ or "").strip().split("\n")[0],
                                       modality)
                    info = self.infos.setdefault(plugin, PluginInfo(plugin, ""))
                    info.provides.setdefault(kind, []).append(key)
                return register

            self.call(hook, make_register)
        for table in (reg.backbones, reg.datasets, reg.writers, reg.evaluators, reg.labelers, reg.rules, reg.importers):
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
