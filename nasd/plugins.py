"""Building the plugin manager: built-in plugins and installed ones, registered the same way.

There is no module-global manager: every daemon, command and test builds its own
with :func:`make_plugin_manager`. ``NASD_DISABLED_PLUGINS`` (comma-separated
names) blocks plugins by name, built-in or installed.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from importlib import metadata
from typing import Iterable, Mapping

import pluggy

from . import hookspecs

ENTRY_POINT_GROUP = "nasd"
DISABLE_ENV = "NASD_DISABLED_PLUGINS"

#: the core's own plugins: (name, "module:Class" or "module"), registered exactly like installed ones
BUILTIN_PLUGINS: tuple[tuple[str, str], ...] = (
    ("manifests", "nasd.sources.manifests:ManifestsPlugin"),
    ("api-store", "nasd.sources.api_store:APIStorePlugin"),
)


def blocked_from_env() -> set[str]:
    return {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}


def make_plugin_manager(
    *,
    load_entrypoints: bool = True,
    builtins: bool = True,
    blocked: Iterable[str] = (),
    extra: Iterable[tuple[str, object]] = (),
    replace: Mapping[str, object] | None = None,
) -> pluggy.PluginManager:
    """A fresh manager with the hook specs, the built-ins, the installed plugins and ``extra``.

    An entry point names a plugin class (or, for older plugins, a module): the manager makes one instance of the
    class, so each manager's plugins keep their own state. ``replace`` gives, by name, the plugin object to
    register instead of an installed one (tests construct a plugin with their seams, e.g. a clock)."""
    replace = dict(replace or {})
    pm = pluggy.PluginManager("nasd")
    pm.add_hookspecs(hookspecs)
    # historic: every plugin registered from now on may add hook specs of its own (check_pending,
    # below, then refuses an implementation of a hook nobody declared)
    pm.hook.addhooks.call_historic(kwargs={"pluginmanager": pm})
    for name in set(blocked) | blocked_from_env():
        pm.set_blocked(name)
    candidates: list[tuple[str, object]] = []
    distributions: dict[str, tuple[str, str]] = {}
    if builtins:
        for name, target in BUILTIN_PLUGINS:
            module, _, attr = target.partition(":")
            loaded = importlib.import_module(module)
            candidates.append((name, instance(getattr(loaded, attr)) if attr else loaded))
    if load_entrypoints:
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if pm.is_blocked(ep.name) or pm.has_plugin(ep.name):
                continue
            candidates.append((ep.name, replace.pop(ep.name) if ep.name in replace else instance(ep.load())))
            if ep.dist is not None:
                distributions[ep.name] = (ep.dist.name, ep.dist.version)
    candidates += list(extra) + list(replace.items())
    for name, plugin in candidates:
        register(pm, name, plugin)
    pm.check_pending()
    pm.nasd_distributions = distributions  # type: ignore[attr-defined]
    return pm


def instance(loaded: object) -> object:
    """What an entry point loads, as the object to register: a class is instantiated, anything else is kept."""
    return loaded() if isinstance(loaded, type) else loaded


def register(pm: pluggy.PluginManager, name: str, plugin: object) -> None:
    """The one registration call, for built-in and external plugins alike."""
    if pm.is_blocked(name) or pm.has_plugin(name):
        return
    pm.register(plugin, name=name)


@dataclass
class PluginInfo:
    name: str
    distribution: str
    version: str
    hooks: list[str]


def describe_plugins(pm: pluggy.PluginManager) -> list[PluginInfo]:
    distributions: dict[str, tuple[str, str]] = getattr(pm, "nasd_distributions", {})
    out = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: item[0]):
        if plugin is None:
            continue
        if name in distributions:
            dist_name, version = distributions[name]
        else:
            from . import __version__

            dist_name, version = "nasd (built-in)", __version__
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        out.append(PluginInfo(name, dist_name, version, hooks))
    return out
