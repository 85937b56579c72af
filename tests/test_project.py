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


def test_the_wheel_carries_silero_vad_its_licence_and_the_host_files(tmp_path):
    """What `pip install` puts on a user's machine holds the VAD model (VAD is on by default and nothing is
    downloaded for it), its MIT licence, the presets and the mpv script: built here as pip builds it."""
    import hashlib
    import shutil
    import subprocess
    import sys
    import zipfile

    # a copy without earlier build output (setuptools reuses ./build, which would hide a missing file)
    source = tmp_path / "source"
    skip = shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__", "trained", "plugins")
    shutil.copytree(ROOT, source, ignore=skip)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)]
        + [str(source)],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("qwen3asr_plugin-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        model = z.read("qwen3asr_plugin/engine/data/silero_vad.onnx")
        licence = z.read("qwen3asr_plugin/engine/data/SILERO_VAD_LICENSE").decode()
    shipped = (ROOT / "engine" / "data" / "silero_vad.onnx").read_bytes()
    assert hashlib.sha256(model).digest() == hashlib.sha256(shipped).digest()
    assert "MIT License" in licence
    assert "qwen3asr_plugin/engine/vad.py" in names
    assert any(n.startswith("qwen3asr_plugin/hosts/mpv/") and n.endswith(".lua") for n in names)
    assert any(n.startswith("qwen3asr_plugin/models/") and n.endswith(".json") for n in names)
