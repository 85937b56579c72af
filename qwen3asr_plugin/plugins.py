"""The plugin manager: built-in plugins (trylast) plus everything in the `qwen3asr` entry-point group.

Entry points are not loaded under test (pytest sets sys._called_from_test) so installed third-party plugins
cannot change test results; QWEN3ASR_LOAD_PLUGINS="a,b" loads only those distributions, "" none.
"""

from __future__ import annotations

import importlib
import os
import sys
from importlib import metadata

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


def load_plugins() -> pluggy.PluginManager:
    """Register the built-ins and the installed plugins once; returns the manager."""
    global _loaded
    if _loaded:
        return pm
    _loaded = True
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name)
    wanted = os.environ.get("QWEN3ASR_LOAD_PLUGINS")
    if not getattr(sys, "_called_from_test", False) and wanted is None:
        pm.load_setuptools_entrypoints("qwen3asr")
    elif wanted:
        names = {n.strip() for n in wanted.split(",") if n.strip()}
        for dist in metadata.distributions():
            if dist.metadata["Name"] not in names:
                continue
            for ep in dist.entry_points:
                if ep.group == "qwen3asr" and pm.get_plugin(ep.name) is None:
                    pm.register(ep.load(), name=ep.name)
    pm.check_pending()
    return pm


def hook():
    return load_plugins().hook


_CHAINED = {"postprocess_segment": "segment", "postprocess_cues": "cues"}


def chain(hook_name: str, value, **kwargs):
    """Run every implementation of a post-processing hook in call order, each on the previous result."""
    caller = getattr(hook(), hook_name)
    for impl in reversed(caller.get_hookimpls()):
        result = impl.function(**{_CHAINED[hook_name]: value}, **kwargs)
        if result is not None:
            value = result
    return value


def registry(hook_name: str) -> dict[str, dict]:
    """What a `register_*` hook registers: name -> {"value": ..., "description": ..., "plugin": ...}."""
    found: dict[str, dict] = {}
    caller = getattr(hook(), hook_name)
    for impl in reversed(caller.get_hookimpls()):

        def register(name, value, description="", _plugin=impl.plugin_name):
            found.setdefault(name, {"value": value, "description": description, "plugin": _plugin})

        impl.function(register=register)
    return found


def plugin_listing() -> list[dict]:
    """Installed plugins with their distribution version and the hooks each implements."""
    manager = load_plugins()
    dists = {id(plugin): dist for plugin, dist in manager.list_plugin_distinfo()}
    out = []
    for name, plugin in manager.list_name_plugin():
        if plugin is None:
            continue
        dist = dists.get(id(plugin))
        out.append(
            {
                "name": name,
                "version": dist.version if dist else None,
                "distribution": dist.project_name if dist else "qwen3asr-plugin (built-in)",
                "hooks": sorted(h.name for h in manager.get_hookcallers(plugin) or []),
            }
        )
    return out
