"""The pluggy hook interface: every hook has a test here and a heading in the README (meta-tests), the test
plugin `qwen3asr-example` is a real installed distribution with an entry point, and the manifest is true."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from qwen3asr_plugin import hookspecs
from qwen3asr_plugin.plugins import chain, load_plugins, pm, registry
from tests.parity import speech_like

ROOT = Path(__file__).resolve().parents[1]
QWEN3ASR = str(Path(sys.executable).parent / "qwen3asr")
HOOKS = sorted(
    name
    for name in dir(hookspecs)
    if callable(getattr(hookspecs, name)) and hasattr(getattr(hookspecs, name), "qwen3asr_spec")
)


def cli(*args: str, log: Path | None = None, cwd: Path | None = None, only_builtins: bool = False):
    env = {k: v for k, v in os.environ.items() if k != "QWEN3ASR_LOAD_PLUGINS"}
    if only_builtins:
        env["QWEN3ASR_LOAD_PLUGINS"] = ""
    if log is not None:
        env["QWEN3ASR_EXAMPLE_LOG"] = str(log)
    return subprocess.run([QWEN3ASR, *args], capture_output=True, text=True, env=env, cwd=cwd)


def events(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()] if log.exists() else []


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plugin-audio")
    path = folder / "talk.wav"
    wavfile.write(path, 16_000, speech_like(16_000 * 3))
    return path


def transcribe(models, *args, log=None):
    return cli(
        "transcribe",
        "--model",
        str(models("tiny")),
        "--no-align",
        "--device",
        "cpu",
        "--no-vad",
        "--quiet",
        *args,
        log=log,
    )


# Meta-tests ------------------------------------------------------------------------------------------------


def test_every_hook_has_a_test():
    missing = [h for h in HOOKS if f"test_hook_{h}" not in globals()]
    assert not missing and len(HOOKS) == 12


def test_every_hook_is_documented_in_the_readme():
    headings = set(re.findall(r"^#### `(\w+)", (ROOT / "README.md").read_text(encoding="utf-8"), re.M))
    assert set(HOOKS) <= headings


def test_manifest_lists_what_the_code_registers():
    manifest = json.loads((ROOT / "manifest.json").read_text())
    assert sorted(manifest["hooks"]) == HOOKS
    load_plugins()
    builtin = {
        n: e for n, e in registry("register_engines").items() if e.plugin.startswith("qwen3asr_plugin")
    }
    assert manifest["engines"] == list(builtin)
    formats = {
        n for n, e in registry("register_output_formats").items() if e.plugin.startswith("qwen3asr_plugin")
    }
    assert set(manifest["output_formats"]) == formats
    hosts = [n for n, e in registry("register_hosts").items() if e.plugin.startswith("qwen3asr_plugin")]
    assert manifest["hosts"] == hosts


def test_entry_points_stay_out_under_test_and_the_env_var_limits_them():
    load_plugins()
    assert "example" not in dict(pm.list_name_plugin())  # installed, but not loaded inside pytest
    listing = cli("plugins", "--json")
    names = [p["name"] for p in json.loads(listing.stdout)]
    assert "example" in names
    env = {**os.environ, "QWEN3ASR_LOAD_PLUGINS": ""}
    none = subprocess.run([QWEN3ASR, "plugins", "--json"], capture_output=True, text=True, env=env)
    assert "example" not in [p["name"] for p in json.loads(none.stdout)]


def test_plugins_command_shows_versions_and_hooks():
    listing = {p["name"]: p for p in json.loads(cli("plugins", "--json").stdout)}
    example = listing["example"]
    assert example["version"] == "0.3.1" and example["distribution"] == "qwen3asr-example"
    assert sorted(example["hooks"]) == HOOKS
    text = cli("plugins").stdout
    assert "example (qwen3asr-example 0.3.1):" in text


# One test per hook -------------------------------------------------------------------------------------------


def test_hook_register_engines(models, tmp_path):
    engines = registry("register_engines")
    assert {"local", "openai"} <= set(engines)
    (tmp_path / "clip.txt").write_text("hello from the echo engine", encoding="utf-8")
    wavfile.write(tmp_path / "clip.wav", 16_000, speech_like(16_000))
    run = cli(
        "transcribe",
        str(tmp_path / "clip.wav"),
        "--engine",
        "echo",
        "--format",
        "txt",
        "--quiet",
        "-o",
        str(tmp_path / "out"),
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out" / "clip.txt").read_text(
        encoding="utf-8"
    ) == "hello from the echo engine [checked]\n"


def test_hook_register_engines_openai_against_our_server(models, wav, tmp_path):
    """The built-in OpenAI-compatible engine, pointed at our own `qwen3asr serve`."""
    from tests.server_process import ServerProcess

    with ServerProcess(
        "--no-vad", "--model", str(models("tiny")), "--aligner", str(models("aligner-tiny"))
    ) as server:
        run = cli(
            "transcribe",
            str(wav),
            "--engine",
            "openai",
            "--endpoint",
            f"{server.url}/v1",
            "--no-vad",
            "--format",
            "json,srt",
            "-o",
            str(tmp_path),
            "--quiet",
            only_builtins=True,
        )
    assert run.returncode == 0, run.stderr
    data = json.loads((tmp_path / "talk.json").read_text(encoding="utf-8"))
    assert data["segments"]
    for s in data["segments"]:
        assert "".join(w["word"] for w in s["words"]) == s["text"]  # word times came back through the API


def test_hook_register_output_formats(models, wav, tmp_path):
    run = transcribe(models, str(wav), "--format", "shout,srt", "-o", str(tmp_path))
    assert run.returncode == 0, run.stderr
    shout = (tmp_path / "talk.shout").read_text(encoding="utf-8")
    assert shout and shout == shout.upper()
    assert "[OK]" in shout  # its own postprocess_cues ran before the writer


def test_hook_register_hosts():
    listing = cli("hosts", "list")
    assert "example-host" in listing.stdout
    assert cli("hosts", "install", "example-host").stdout.strip() == "installed"
    assert cli("hosts", "uninstall", "example-host").stdout.strip() == "removed"
    bad = cli("hosts", "install", "nope")
    assert bad.returncode == 1 and "unknown host" in bad.stderr


def test_hook_load_audio(models, tmp_path):
    tone = tmp_path / "beep.tone"
    tone.write_text("2.5", encoding="utf-8")
    run = transcribe(models, str(tone), "--format", "json", "-o", str(tmp_path))
    assert run.returncode == 0, run.stderr
    data = json.loads((tmp_path / "beep.json").read_text(encoding="utf-8"))
    assert data["duration"] == pytest.approx(2.5)


def test_hook_postprocess_segment(models, wav, tmp_path):
    # Built-in: a replacement table, with words kept joining to the text.
    from qwen3asr_plugin import Segment, Word

    load_plugins()
    seg = Segment(
        0,
        0.0,
        1.0,
        "colour of the colour",
        "English",
        words=(
            Word(0, 0.3, "colour"),
            Word(0.3, 0.5, " of"),
            Word(0.5, 0.6, " the"),
            Word(0.6, 1.0, " colour"),
        ),
    )
    out = chain(
        "postprocess_segment", seg, language="English", options={"replacements": [("colour", "color")]}
    )
    assert out.text == "color of the color" and "".join(w.word for w in out.words) == out.text
    zh = Segment(1, 0.0, 1.0, "一百二十三个人", "Chinese")
    assert chain("postprocess_segment", zh, language="Chinese", options={"itn": True}).text == "123个人"
    assert chain("postprocess_segment", zh, language="Chinese", options={}).text == "一百二十三个人"
    # An installed plugin's implementation runs too, on the CLI's output.
    table = tmp_path / "table.tsv"
    table.write_text("# a comment\n[checked]\t[verified]\n", encoding="utf-8")
    run = transcribe(models, str(wav), "--format", "txt", "-o", str(tmp_path), "--replace", str(table))
    assert run.returncode == 0, run.stderr
    # The installed plugin runs first (appending [checked]), then the built-in table rewrites its result.
    assert (tmp_path / "talk.txt").read_text(encoding="utf-8").rstrip().endswith("[verified]")


def test_hook_postprocess_cues(models, wav, tmp_path):
    run = transcribe(models, str(wav), "--format", "srt", "-o", str(tmp_path))
    assert run.returncode == 0, run.stderr
    srt = (tmp_path / "talk.srt").read_text(encoding="utf-8")
    assert "[ok]" in srt and "[checked]" not in srt


def _run_with_log(models, wav, tmp_path):
    log = tmp_path / "events.jsonl"
    run = transcribe(models, str(wav), "--format", "txt", "-o", str(tmp_path), log=log)
    assert run.returncode == 0, run.stderr
    return events(log)


def test_hook_on_progress(models, wav, tmp_path):
    progress = [e for e in _run_with_log(models, wav, tmp_path) if e["event"] == "progress"]
    assert progress and progress[-1]["seconds"] == pytest.approx(3.0)


def test_hook_on_segment(models, wav, tmp_path):
    segs = [e for e in _run_with_log(models, wav, tmp_path) if e["event"] == "segment"]
    assert segs and all(e["text"].endswith("[checked]") for e in segs)


def test_hook_on_language(models, tmp_path, wav):
    log = tmp_path / "events.jsonl"
    run = transcribe(
        models, str(wav), "--language", "German", "--format", "txt", "-o", str(tmp_path), log=log
    )
    assert run.returncode == 0, run.stderr
    assert [e["language"] for e in events(log) if e["event"] == "language"] == ["German"]


def test_hook_on_complete(models, wav, tmp_path):
    done = [e for e in _run_with_log(models, wav, tmp_path) if e["event"] == "complete"]
    assert done == [{"event": "complete", "source": str(wav), "outputs": [str(tmp_path / "talk.txt")]}]


def test_hook_on_failure(models, tmp_path):
    log = tmp_path / "events.jsonl"
    run = transcribe(models, str(tmp_path / "missing.wav"), log=log)
    assert run.returncode == 1
    failures = [e for e in events(log) if e["event"] == "failure"]
    assert len(failures) == 1 and "no such file" in failures[0]["error"]


def test_hook_should_cancel(models, tmp_path):
    src = tmp_path / "cancel-me.wav"
    wavfile.write(src, 16_000, np.concatenate([speech_like(16_000 * 40)]))
    log = tmp_path / "events.jsonl"
    run = transcribe(models, str(src), "--format", "srt", log=log)
    assert run.returncode == 1 and "cancelled" in run.stderr
    assert not (tmp_path / "cancel-me.srt").exists()
    progress = [e for e in events(log) if e["event"] == "progress"]
    assert len(progress) == 1  # stopped after the first chunk of two
