"""Contracts that hold as written: the layering (engine <- face <- hosts), the Engine protocol every registered
engine binds and the README quotes, each hook's arguments as the README heads them, records that load without a
model, and QWEN3ASR_LOAD_PLUGINS resolving distribution names."""

from __future__ import annotations

import ast
import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import qwen3asr_plugin
from qwen3asr_plugin import hookspecs
from qwen3asr_plugin.hookspecs import Engine
from qwen3asr_plugin.plugins import load_plugins, pm, registry
from qwen3asr_plugin.runner import ENGINE_KEYWORDS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
QWEN3ASR = str(Path(sys.executable).parent / "qwen3asr")
PUBLIC = {"qwen3asr_plugin", "qwen3asr_plugin.api"}


def imports(path: Path) -> list[tuple[int, str]]:
    """(relative level, module) of every import statement in a file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.extend((0, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            out.append((node.level, node.module or ""))
    return out


def test_engine_imports_nothing_above_it():
    """The engine reaches only itself and the preset data (`qwen3asr_plugin.models`, JSON files)."""
    bad = [
        f"{path.name}: {'.' * level}{module}"
        for path in (ROOT / "engine").glob("*.py")
        for level, module in imports(path)
        if (level >= 2 and module != "models") or module.split(".")[0] == "qwen3asr_plugin"
    ]
    assert not bad


def test_hosts_import_only_the_public_api():
    bad = [
        f"{path.relative_to(ROOT)}: {'.' * level}{module}"
        for path in (ROOT / "hosts").rglob("*.py")
        for level, module in imports(path)
        if level >= 2 or (module.startswith("qwen3asr_plugin") and module not in PUBLIC)
    ]
    assert not bad


def test_the_face_does_not_import_hosts():
    bad = [
        f"{path.name}: {module}"
        for path in (ROOT / "qwen3asr_plugin").rglob("*.py")
        for _, module in imports(path)
        if "hosts" in module.split(".")
    ]
    assert not bad


def test_ffmpeg_errors_are_project_errors():
    from qwen3asr_plugin.hosts.ffmpeg import FfmpegError

    assert issubclass(FfmpegError, qwen3asr_plugin.Qwen3ASRError)


def test_every_registered_engine_binds_what_the_runner_passes(models):
    load_plugins()
    engines = registry("register_engines")
    built = {
        "local": engines["local"].value(model=str(models("tiny")), aligner=False, device="cpu", endpoint="x"),
        "openai": engines["openai"].value(endpoint="http://127.0.0.1:9/v1", device="cpu", aligner=False),
    }
    assert set(built) == set(engines)  # under test only the built-ins are registered
    for name, engine in built.items():
        assert isinstance(engine, Engine), name
        inspect.signature(engine.transcribe).bind("talk.wav", **dict.fromkeys(ENGINE_KEYWORDS))


def test_readme_quotes_the_engine_protocol_as_the_code_has_it():
    source = inspect.getsource(Engine)
    assert source.strip() in README


def test_readme_hook_headings_have_the_spec_arguments():
    headings = dict(re.findall(r"^#### `(\w+)\(([^)]*)\)`", README, re.M))
    specs = {
        name: getattr(pm.hook, name).spec.argnames
        for name in dir(hookspecs)
        if hasattr(getattr(hookspecs, name), "qwen3asr_spec")
    }
    assert set(specs) <= set(headings)
    for name, argnames in specs.items():
        assert tuple(a.strip() for a in headings[name].split(",") if a.strip()) == tuple(argnames), name


def test_the_example_plugin_implements_the_readme_protocol():
    sys.path.insert(0, str(ROOT / "tests" / "plugins" / "qwen3asr-example"))
    try:
        from qwen3asr_example import EchoEngine
    finally:
        sys.path.pop(0)
    assert isinstance(EchoEngine(), Engine)
    inspect.signature(EchoEngine().transcribe).bind("talk.wav", **dict.fromkeys(ENGINE_KEYWORDS))


def test_records_load_without_any_model_code():
    code = (
        "import sys, qwen3asr_plugin as q\n"
        "from qwen3asr_plugin import Cue, Engine, Qwen3ASRError, Segment, Transcript, TranscriptionInfo, Word\n"
        "heavy = [m for m in ('numpy', 'onnxruntime', 'llama_cpp', 'qwen3asr_plugin.engine.decoder',\n"
        "    'qwen3asr_plugin.engine.encoder', 'qwen3asr_plugin.api') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


@pytest.mark.parametrize("spelling", ["qwen3asr-example", "Qwen3ASR_Example", "qwen3asr.example"])
def test_load_plugins_env_resolves_distribution_names(spelling):
    env = {**os.environ, "QWEN3ASR_LOAD_PLUGINS": spelling}
    run = subprocess.run([QWEN3ASR, "plugins", "--json"], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    listing = {p["name"]: p for p in json.loads(run.stdout)}
    assert listing["example"]["version"] == "0.3.1"
    assert listing["example"]["distribution"] == "qwen3asr-example"
    assert not run.stderr


def test_load_plugins_env_reports_unknown_names():
    env = {**os.environ, "QWEN3ASR_LOAD_PLUGINS": "qwen3asr-exampel"}
    run = subprocess.run([QWEN3ASR, "plugins", "--json"], capture_output=True, text=True, env=env)
    assert run.returncode == 0
    assert "example" not in [p["name"] for p in json.loads(run.stdout)]
    (line,) = run.stderr.splitlines()
    assert "'qwen3asr-exampel'" in line and "qwen3asr-example 0.3.1" in line
