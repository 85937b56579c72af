"""Model presets: the official checkpoints by Hugging Face repo id, their dims and the files they ship."""

from __future__ import annotations

import json
from importlib import resources


def load_presets() -> dict[str, dict]:
    """All presets by name, read from the JSON files in this package."""
    presets = {}
    for entry in resources.files(__name__).iterdir():
        if entry.name.endswith(".json"):
            preset = json.loads(entry.read_text(encoding="utf-8"))
            presets[preset["name"]] = preset
    return dict(sorted(presets.items()))
