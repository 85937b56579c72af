"""The project's own descriptions stay true: manifest, version, presets, console script."""

import json
import re
from pathlib import Path

from qwen3asr_plugin import __version__
from qwen3asr_plugin.cli import build_parser
from qwen3asr_plugin.models import load_presets
from tests.fixtures.checkpoint import preset_geometry

ROOT = Path(__file__).resolve().parents[1]


def test_manifest_matches_code():
    manifest = json.loads((ROOT / "manifest.json").read_text())
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'\nname = "{manifest["name"]}"\n' in pyproject
    version = re.search(r'^version = "([^"]+)"$', pyproject, re.M).group(1)
    assert manifest["version"] == version == __version__
    assert manifest["model_presets"] == list(load_presets())
    commands = build_parser()._subparsers._group_actions[0].choices
    assert manifest["commands"] == list(commands)


def test_presets_agree_with_official_geometry():
    presets = load_presets()
    assert [p["name"] for p in presets.values() if p.get("default")] == ["qwen3-asr-0.6b"]
    for name, fixture in (
        ("qwen3-asr-0.6b", "0.6b"),
        ("qwen3-asr-1.7b", "1.7b"),
        ("qwen3-forcedaligner-0.6b", "aligner-0.6b"),
    ):
        dims, geo = presets[name]["dims"], preset_geometry(fixture)
        assert dims["audio_d_model"] == geo["audio"]["d_model"]
        assert dims["audio_layers"] == geo["audio"]["encoder_layers"]
        assert dims["audio_heads"] == geo["audio"]["encoder_attention_heads"]
        assert dims["text_hidden"] == geo["text"]["hidden_size"]
        assert presets[name]["kind"] == geo["kind"]
