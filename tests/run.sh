#!/usr/bin/env bash
# Sets up everything the tests need on a fresh Linux machine, then runs every test.
# A virtual environment in .venv gets the package (editable) with its test extra: pytest, ruff, and the
# parity reference, transformers' native Qwen3ASR on torch 2.13.0 (CPU).
set -euo pipefail
cd "$(dirname "$0")/.."

# The tests drive the real programs: Debian's ffmpeg and mpv (the engine alone falls back to imageio-ffmpeg's),
# speak with espeak-ng (the synthesized speech in tests/fixtures/trained/speech.py), and show the Subtitle
# Edit plugin's window on Xvfb's virtual screen.
missing=""
command -v ffmpeg >/dev/null 2>&1 || missing="$missing ffmpeg"
command -v mpv >/dev/null 2>&1 || missing="$missing mpv"
command -v espeak-ng >/dev/null 2>&1 || missing="$missing espeak-ng"
command -v Xvfb >/dev/null 2>&1 || missing="$missing xvfb"
"${PYTHON:-python3}" -c "import tkinter" >/dev/null 2>&1 || missing="$missing python3-tk"
if [ -n "$missing" ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
# pip may reuse a llama-cpp-python wheel it built (-march=native) on a machine with CPU features this one lacks;
# its kernels would stop with an illegal instruction, so rebuild it for this CPU then (about 9 minutes).
if ! .venv/bin/python -c "import sys; from qwen3asr_plugin.engine.llama_runtime import missing_cpu_features as m; sys.exit(1 if m() else 0)" 2>/dev/null; then
    version="$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('llama_cpp_python'))")"
    echo "rebuilding llama-cpp-python $version for this CPU"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --force-reinstall --no-cache-dir \
        --no-deps "llama-cpp-python==$version"
fi
# A plugin installed as a real distribution with an entry point, for the plugin tests.
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e tests/plugins/qwen3asr-example

.venv/bin/ruff check .
.venv/bin/ruff format --check .
PATH="$PWD/.venv/bin:$PATH" .venv/bin/python -m pytest -q "$@"
