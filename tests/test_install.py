"""Installing with no compiler on the machine: the README's command for a prebuilt llama.cpp (llama-cpp-
python's wheel from its maintainer's index, https://abetlen.github.io/llama-cpp-python/whl/<backend>, which
PyPI lacks) run as written, against a local copy of that index, in a fresh virtual environment whose PATH
has no cc, c++, cmake or make; then a transcription with what it installed.

The wheel in the local index is the one pip built for this machine (tests/run.sh), in the index's layout
(a PEP 503 page per project); other packages come from the package registries as usual."""

from __future__ import annotations

import functools
import http.server
import importlib.metadata
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from tests.parity import speech_like

ROOT = Path(__file__).resolve().parents[1]
INDEX = "https://abetlen.github.io/llama-cpp-python/whl/"
COMPILERS = ("cc", "gcc", "c++", "g++", "clang", "cmake", "make", "ninja")


def readme_command(backend: str) -> list[str]:
    """The README's install command for a prebuilt llama.cpp of `backend`, as words."""
    lines = [ln for ln in (ROOT / "README.md").read_text().splitlines() if f"{INDEX}{backend}" in ln]
    assert lines, f"README has no install command for {INDEX}{backend}"
    words = shlex.split(lines[0].split("#")[0])
    assert words[:2] == ["pip", "install"] and "--only-binary" in words, words
    return words


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    """A local copy of the wheel index serving this machine's llama-cpp-python wheel; the paths it was
    asked for are kept."""
    root = tmp_path_factory.mktemp("index")
    version = importlib.metadata.version("llama_cpp_python")
    wheels = root / "files"
    from qwen3asr_plugin.engine.llama_runtime import missing_cpu_features

    # pip's cache holds the wheel tests/run.sh built, unless that one was for another CPU (run.sh then
    # rebuilt it without the cache, and so must this)
    fresh = ["--no-cache-dir"] if missing_cpu_features() else []
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            *fresh,
            "-w",
            str(wheels),
            f"llama-cpp-python=={version}",
        ],
        check=True,
        timeout=1800,
    )  # fmt: skip  (pip's cache holds the wheel tests/run.sh built)
    (wheel,) = wheels.glob("llama_cpp_python-*.whl")
    page = root / "whl" / "cpu" / "llama-cpp-python"
    page.mkdir(parents=True)
    page.joinpath("index.html").write_text(
        f'<html><body><a href="../../../files/{wheel.name}">{wheel.name}</a>'
    )
    asked: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002
            asked.append(self.path)

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/whl/", wheel.name, asked
    server.shutdown()


def test_the_readme_install_needs_no_compiler(index, models, tmp_path):
    url, wheel, asked = index
    source = tmp_path / "src"  # the tracked files only: no build/ left over from another install
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    for name in files.stdout.splitlines():
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLAMA_CPP", "CMAKE", "VIRTUAL_ENV"))}
    env["PATH"] = str(venv / "bin")  # nothing else: no compiler, no cmake, no ffmpeg
    for tool in COMPILERS:
        assert shutil.which(tool, path=env["PATH"]) is None, tool

    words = readme_command("cpu")
    words = [w.replace(INDEX, url) if w.startswith(INDEX) else w for w in words]
    words = [str(source) if w == "." else w for w in words]
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-m", *words[:2], "--quiet", *words[2:]],
        capture_output=True, text=True, env=env, timeout=1800,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert any(wheel in path for path in asked), asked  # the wheel came from the index, built nowhere

    installed = venv / "bin" / "qwen3asr"
    devices = subprocess.run([str(installed), "devices"], capture_output=True, text=True, env=env)
    assert devices.returncode == 0 and f"{venv}/lib" in devices.stdout, devices.stdout + devices.stderr
    audio = tmp_path / "speech.wav"
    wavfile.write(audio, 16_000, (speech_like(16_000 * 4) * 20000).astype(np.int16))
    run = subprocess.run(
        [str(installed), "transcribe", str(audio), "--model", str(models("tiny")), "--no-align", "--no-vad",
         "-o", str(tmp_path / "out"), "--quiet"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    # The same subtitles as this checkout's own install gives (its llama-cpp-python built from source).
    here = subprocess.run(
        [sys.executable, "-m", "qwen3asr_plugin", "transcribe", str(audio), "--model", str(models("tiny")),
         "--no-align", "--no-vad", "-o", str(tmp_path / "here"), "--quiet"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert here.returncode == 0, here.stderr
    srt = (tmp_path / "out" / "speech.srt").read_text(encoding="utf-8")
    assert srt == (tmp_path / "here" / "speech.srt").read_text(encoding="utf-8")
    assert re.search(r"^00:00:0\d,\d{3} --> 00:00:0\d,\d{3}$", srt, re.M), srt
