"""The plugin manager: built-in plugins (trylast) plus everything in the `qwen3asr` entry-point group.

Entry points are not loaded under test (pytest sets sys._called_from_test) so installed third-party plugins
cannot change test results; QWEN3ASR_LOAD_PLUGINS="a,b" loads only those distributions (names as pip
compares them; unknown ones are reported), "" none.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs

DEFAULT_PLUGINS = (
    "qwen3asr_plugin.default_plugins.engines",
    "qwen3asr_plugin.default_plugins.formats",
    "qwen3asr_plugin.default_plugins.postprocess",
    "qwen3asr_plugin.hosts.mpv",
    "qwen3asr_plugin.hosts.subtitle_edit",
    "qwen3asr_plugin.hosts.ffmpeg",
)

pm = pluggy.PluginManager("qwen3asr")
pm.add_hookspecs(hookspecs)
_loaded = False
_distributions: dict[str, metadata.Distribution] = {}  # plugins loaded by QWEN3ASR_LOAD_PLUGINS


def load_plugins() -> pluggy.PluginManager:
    """Register the built-ins and the installed plugins once; returns the manager."""
    global _loaded
    if _loaded:
        return pm
    _loaded = True
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name)
    wanted = os.environ.get("QWEN3ASR_LOAD_PLUGINS")
    if wanted is None:
        if not getattr(sys, "_called_from_test", False):
            pm.load_setuptools_entrypoints("qwen3asr")
    else:
        _load_distributions([n for n in wanted.split(",") if n.strip()])
    pm.check_pending()
    return pm


def _normalized(name: str) -> str:
    """A distribution name as pip compares them (PEP 503): case, `-`, `_` and `.` do not matter."""
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def _load_distributions(names: list[str]) -> None:
    """Load the `qwen3asr` entry points of the named distributions; unknown names are reported on stderr with
    the plugin distributions that are installed."""
    plugins = {
        _normalized(dist.metadata["Name"]): dist
        for dist in metadata.distributions()
        if any(ep.group == "qwen3asr" for ep in dist.entry_points)
    }
    for name in names:
        dist = plugins.get(_normalized(name))
        if dist is None:
            installed = ", ".join(
                f"{d.metadata['Name']} {d.version}" for d in sorted(plugins.values(), key=lambda d: d.name)
            )
            print(
                f"qwen3asr: QWEN3ASR_LOAD_PLUGINS: no installed plugin distribution {name.strip()!r} "
                f"(installed: {installed or 'none'})",
                file=sys.stderr,
            )
            continue
        for ep in dist.entry_points:
            if ep.group == "qwen3asr" and pm.get_plugin(ep.name) is None:
                plugin = ep.load()
                pm.register(plugin, name=ep.name)
                _distributions[ep.name] = dist


def hook():
    return load_plugins().hook


_CHAINED = {"postprocess_segment": "segment", "postprocess_cues": "cues"}


def chain(hook_name: str, value, **kwargs):
    """Run every implementation of a post-processing hook in call order, each on the previous result. Each
    is called with only the arguments it declares, as pluggy calls hooks."""
    caller = getattr(hook(), hook_name)
    for impl in reversed(caller.get_hookimpls()):
        given = {_CHAINED[hook_name]: value, **kwargs}
        result = impl.function(*(given[name] for name in impl.argnames))
        if result is not None:
            value = result
    return value


@dataclass(frozen=True)
class Registered:
    """One thing a `register_*` hook registered: its name, the value, a description and the plugin's name."""

    name: str
    value: Any
    description: str
    plugin: str


def registry(hook_name: str) -> dict[str, Registered]:
    """What a `register_*` hook registers, by name; the first registration of a name wins (installed plugins
    before the built-ins)."""
    found: dict[str, Registered] = {}
    caller = getattr(hook(), hook_name)
    for impl in reversed(caller.get_hookimpls()):

        def register(name, value, description="", _plugin=impl.plugin_name):
            found.setdefault(name, Registered(name, value, description, _plugin))

        impl.function(register=register)
    return found


def plugin_listing() -> list[dict]:
    """Installed plugins with their distribution version and the hooks each implements."""
    manager = load_plugins()
    dists = {id(plugin): (dist.project_name, dist.version) for plugin, dist in manager.list_plugin_distinfo()}
    for name, dist in _distributions.items():
        dists[id(manager.get_plugin(name))] = (dist.metadata["Name"], dist.version)
    out = []
    for name, plugin in manager.list_name_plugin():
        if plugin is None:
            continue
        project, version = dists.get(id(plugin), ("qwen3asr-plugin (built-in)", None))
        out.append(
            {
                "name": name,
                "version": version,
                "distribution": project,
                "hooks": sorted(h.name for h in manager.get_hookcallers(plugin) or []),
            }
        )
    return out
