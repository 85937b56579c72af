"""The Subtitle Edit 5 host: a plugin (Plugins menu) that transcribes the loaded video into the subtitle.

SE writes request.json and runs the plugin's executable with its path; the plugin writes response.json with
the subtitle as SubRip and exits 0 (errors go back as status "error" with a message, never a crash). The
engine, model and language are plugin settings SE keeps between runs (`settings` in the JSON files).
SE 5's own speech-to-text dialog can instead use `qwen3asr serve` as its OpenAI-compatible engine.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path

from qwen3asr_plugin import __version__, hookimpl
from qwen3asr_plugin.api import (
    RunOptions,
    load_engine,
    read_replacements,
    render_subtitles,
    transcribe_to_transcript,
)

PLUGIN_FOLDER = "Qwen3ASR"
SETTINGS_VERSION = 1
# `aligner`: a preset or folder (None: the model preset's own; false: none); `replacements`: a replacement
# table file (`old<TAB>new` per line), as `--replace` takes; `itn`: Chinese numbers as digits, as `--itn`.
DEFAULT_SETTINGS = {
    "engine": "local",
    "model": None,
    "aligner": None,
    "language": None,
    "endpoint": None,
    "replacements": None,
    "itn": False,
}


def se_data_folder() -> Path:
    """SE's data folder: $QWEN3ASR_SE_DATA (portable installs), else the per-OS location SE 5 uses."""
    if os.environ.get("QWEN3ASR_SE_DATA"):
        return Path(os.environ["QWEN3ASR_SE_DATA"])
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming")) / "Subtitle Edit"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "Subtitle Edit"
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "Subtitle Edit"


def _write_response(path: str, response: dict) -> None:
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(response, ensure_ascii=False, indent=2), encoding="utf-8")
    os.replace(tmp, target)


def run(request_path: str) -> int:
    """Handle one SE request; always writes a response and returns 0 unless there is nowhere to write it."""
    try:
        request = json.loads(Path(request_path).read_text(encoding="utf-8-sig"))
        response_path = request["responseFilePath"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"qwen3asr: error: {request_path}: not a Subtitle Edit request ({exc})", file=sys.stderr)
        return 1
    settings = {**DEFAULT_SETTINGS, **(request.get("settings") or {})}
    base = {"apiVersion": 1, "settings": settings, "settingsVersion": SETTINGS_VERSION}
    try:
        video = request.get("videoFileName")
        if not video:
            raise ValueError("open a video or audio file in Subtitle Edit first (Video > Open video file)")
        table = settings["replacements"]
        postprocess = {
            "replacements": read_replacements(Path(table) if table else None),
            "itn": settings["itn"],
        }
        # A cleared field ("" or null) means the default; `aligner: false` means none.
        options = {
            key: settings[key] for key in ("model", "aligner", "endpoint") if settings[key] not in (None, "")
        }
        engine = load_engine(settings["engine"], **options)
        transcript = transcribe_to_transcript(
            engine, video, RunOptions(language=settings["language"], postprocess=postprocess)
        )
        response = {
            **base,
            "status": "ok",
            "subtitle": {"format": "SubRip", "native": render_subtitles(transcript, "srt")},
            "message": f"Qwen3-ASR: {len(transcript.cues)} subtitles ({transcript.language or 'no speech'})",
            "undoDescription": f"Qwen3-ASR speech to text {__version__}",
        }
    except Exception as exc:  # every failure goes back to SE as a message, never as a crash
        response = {**base, "status": "error", "message": f"Qwen3-ASR: {exc}"}
    _write_response(response_path, response)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: qwen3asr-se-plugin REQUEST_JSON (Subtitle Edit runs this)", file=sys.stderr)
        return 2
    return run(args[0])


class SubtitleEditHost:
    def folder(self) -> Path:
        return se_data_folder() / "Plugins" / PLUGIN_FOLDER

    def install(self) -> str:
        folder = self.folder()
        folder.mkdir(parents=True, exist_ok=True)
        bin_dir = Path(sys.executable).parent
        if sys.platform == "win32":
            exe = bin_dir / "qwen3asr-se-plugin.exe"
            (folder / "qwen3asr-se.cmd").write_text(f'@"{exe}" %*\r\n', encoding="utf-8")
        else:
            exe = bin_dir / "qwen3asr-se-plugin"
            if not exe.exists():
                exe = Path(shutil.which("qwen3asr-se-plugin") or exe)
            wrapper = folder / "qwen3asr-se"
            wrapper.write_text(f'#!/bin/sh\nexec "{exe}" "$@"\n', encoding="utf-8")
            wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        manifest = {
            "apiVersion": 1,
            "name": "Qwen3-ASR speech to text",
            "description": "Transcribes the loaded video locally with Qwen3-ASR (word-timed subtitles).",
            "version": __version__,
            "author": "qwen3asr-plugin",
            "menu": "Tools",
            "executables": {"windows": "qwen3asr-se.cmd", "linux": "qwen3asr-se", "macos": "qwen3asr-se"},
        }
        (folder / "plugin.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        return (
            f"installed {folder}; in Subtitle Edit 5 use Plugins > Qwen3-ASR speech to text, or point "
            "its OpenAI-compatible speech-to-text engine at `qwen3asr serve`"
        )

    def uninstall(self) -> str:
        folder = self.folder()
        if not folder.exists():
            return "removed nothing (not installed)"
        shutil.rmtree(folder)
        return f"removed {folder}"

    def status(self) -> str:
        folder = self.folder()
        return f"installed at {folder}" if (folder / "plugin.json").exists() else f"not installed ({folder})"


@hookimpl(trylast=True)
def register_hosts(register):
    register("subtitle-edit", SubtitleEditHost(), "Subtitle Edit 5 plugin (Plugins menu)")
