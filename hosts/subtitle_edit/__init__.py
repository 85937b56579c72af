"""The Subtitle Edit 5 host: a plugin (Plugins menu) that transcribes the loaded video into the subtitle.

SE writes request.json and runs the plugin's executable with its path; the plugin writes response.json with
the subtitle as SubRip and exits 0 (errors go back as status "error" with a message, never a crash). The
engine, model and language are plugin settings SE keeps between runs (`settings` in the JSON files).
SE 5's own speech-to-text dialog can instead use `qwen3asr serve` as its OpenAI-compatible engine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy.io import wavfile

from qwen3asr_plugin import __version__, hookimpl
from qwen3asr_plugin.api import (
    DEFAULT_MODEL,
    ISO_CODES,
    SAMPLE_RATE,
    SE_AUDIO_FORMAT,
    SE_ENGINE,
    SE_TIMEOUT_SECONDS,
    SE_URL,
    Qwen3ASRError,
    RunOptions,
    TimedWord,
    break_lines,
    engine_instructions,
    installed_script,
    iter_audio,
    load_engine,
    presets,
    read_replacements,
    render_subtitles,
    timed_words,
    transcribe_to_transcript,
)

from . import window

PLUGIN_FOLDER = "Qwen3ASR"
PLATFORM_KEYS = {"win32": "windows", "darwin": "macos"}  # plugin.json's `executables` keys; others: linux
SETTINGS_VERSION = 1
# `aligner`: a preset or folder (None: the model preset's own; false: none); `replacements`: a replacement
# table file (`old<TAB>new` per line), as `--replace` takes; `itn`: Chinese numbers as digits, as `--itn`;
# `vad`: only the speech Silero VAD finds is transcribed (false: everything), as `--vad/--no-vad`.
DEFAULT_SETTINGS = {
    "engine": "local",
    "model": None,
    "aligner": None,
    "language": None,
    "endpoint": None,
    "replacements": None,
    "itn": False,
    "vad": True,
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


class Progress:
    """A run's listener that hands the window its progress (a fraction and a line of text)."""

    def __init__(self, report):
        self.report = report

    def on_progress(self, source, seconds, duration):
        if duration:
            self.report(seconds / duration, f"{seconds:.0f} of {duration:.0f} s")


def transcribe_request(request: dict, settings: dict, progress=None, cancelled=None) -> tuple[str, str]:
    """The subtitle (SubRip) and a status-bar message for one request: the selected lines re-transcribed, or
    the whole video. `progress(fraction, text)` hears how it goes; it stops when `cancelled` is set."""
    video = request.get("videoFileName")
    if not video:
        raise ValueError("open a video or audio file in Subtitle Edit first (Video > Open video file)")
    table = settings["replacements"]
    postprocess = {"replacements": read_replacements(Path(table) if table else None), "itn": settings["itn"]}
    # A cleared field ("" or null) means the default; `aligner: false` means none.
    options = {
        key: settings[key] for key in ("model", "aligner", "endpoint") if settings[key] not in (None, "")
    }
    engine = load_engine(settings["engine"], **options)
    run_options = RunOptions(
        language=settings["language"], vad_filter=bool(settings["vad"]), postprocess=postprocess
    )
    watch = {
        "listeners": [Progress(progress)] if progress else [],
        "should_stop": cancelled.is_set if cancelled else None,
    }
    selected = sorted(set(request.get("selectedIndices") or ()))
    if selected:
        subrip = (request.get("subtitle") or {}).get("subRip") or ""
        return retranscribe_lines(engine, video, subrip, selected, run_options, **watch)
    transcript = transcribe_to_transcript(engine, video, run_options, **watch)
    message = f"{len(transcript.cues)} subtitles ({transcript.language or 'no speech'})"
    return render_subtitles(transcript, "srt"), message


def run(request_path: str) -> int:
    """Handle one SE request; always writes a response and returns 0 unless there is nowhere to write it."""
    try:
        request = json.loads(Path(request_path).read_text(encoding="utf-8-sig"))
        response_path = request["responseFilePath"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"qwen3asr: error: {request_path}: not a Subtitle Edit request ({exc})", file=sys.stderr)
        return 1
    settings = {**DEFAULT_SETTINGS, **(request.get("settings") or {})}
    try:
        if not request.get("videoFileName"):
            raise ValueError("open a video or audio file in Subtitle Edit first (Video > Open video file)")
        if settings.get("window", True) and window.available():
            languages = sorted(set(ISO_CODES.values()))
            models = [name for name, p in presets().items() if p.get("kind") == "asr"]

            def work(chosen, progress, cancelled):
                return transcribe_request(request, chosen, progress, cancelled)

            settings, result = window.PluginWindow(settings, languages, models, work).run()
            if result is None:
                response = {"apiVersion": 1, "status": "cancelled", "message": "Qwen3-ASR: cancelled"}
                _write_response(response_path, response)
                return 0
            native, message = result
        else:
            native, message = transcribe_request(request, settings)
        response = {
            "apiVersion": 1,
            "settings": settings,
            "settingsVersion": SETTINGS_VERSION,
            "status": "ok",
            "subtitle": {"format": "SubRip", "native": native},
            "message": f"Qwen3-ASR: {message}",
            "undoDescription": f"Qwen3-ASR speech to text {__version__}",
        }
    except Exception as exc:  # every failure goes back to SE as a message, never as a crash
        response = {
            "apiVersion": 1,
            "settings": settings,
            "settingsVersion": SETTINGS_VERSION,
            "status": "error",
            "message": f"Qwen3-ASR: {exc}",
        }
    _write_response(response_path, response)
    return 0


SRT_TIMES = re.compile(r"(\d+):(\d\d):(\d\d)[,.](\d{1,3})\s*-->\s*(\d+):(\d\d):(\d\d)[,.](\d{1,3})")
PAD_SECONDS = 0.3  # audio taken on each side of the selected lines (words are kept by where they are spoken)
JOIN_GAP_SECONDS = 3.0  # selected lines closer than this are transcribed in one piece


@dataclass
class SubRipBlock:
    head: list[str]  # the number and timing lines, as given
    text: list[str]
    start: float
    end: float


def parse_subrip(text: str) -> list[SubRipBlock]:
    """SE's SubRip (`subRip` in request.json: CRLF on Windows), block by block, keeping every line as given.

    Read line by line: a timing line (after its number) starts a block, so a paragraph with no text, which
    SE writes as its number, its timing and two blank lines, is a block with no text lines."""
    lines = text.replace("\r\n", "\n").split("\n")
    timings = [i for i, line in enumerate(lines) if SRT_TIMES.search(line)]

    def head_start(i: int) -> int:
        return i - 1 if i > 0 and lines[i - 1].strip().isdigit() else i

    blocks = []
    for k, at in enumerate(timings):
        end = head_start(timings[k + 1]) if k + 1 < len(timings) else len(lines)
        body = lines[at + 1 : end]
        while body and not body[-1].strip():
            body.pop()
        h1, m1, s1, f1, h2, m2, s2, f2 = (int(x) for x in SRT_TIMES.search(lines[at]).groups())
        start, stop = h1 * 3600 + m1 * 60 + s1 + f1 / 1000, h2 * 3600 + m2 * 60 + s2 + f2 / 1000
        blocks.append(SubRipBlock(lines[head_start(at) : at + 1], body, start, stop))
    if not blocks and text.strip():
        raise ValueError(f"not a SubRip subtitle: {text.strip()[:60]!r}")
    return blocks


def retranscribe_lines(
    engine, video: str, subrip: str, selected: list[int], options: RunOptions, listeners=(), should_stop=None
) -> tuple[str, str]:
    """The subtitle with the text of the `selected` lines (0-based, as SE's selectedIndices) replaced by what
    is said in their time spans, every other line as it was; and a message for SE's status bar.

    Neighbouring selected lines are transcribed together from their audio (with PAD_SECONDS either side);
    each word goes to the selected line its spoken time overlaps most, and words outside every selected line
    are dropped, so a neighbour's words never leak in. A line with nothing said keeps its text."""
    blocks = parse_subrip(subrip)
    if selected[-1] >= len(blocks):
        raise ValueError(f"line {selected[-1] + 1} is selected but the subtitle has {len(blocks)} lines")
    runs: list[list[int]] = []
    for i in selected:
        if runs and i == runs[-1][-1] + 1 and blocks[i].start - blocks[runs[-1][-1]].end < JOIN_GAP_SECONDS:
            runs[-1].append(i)
        else:
            runs.append([i])
    heard: dict[int, list[TimedWord]] = {i: [] for i in selected}
    language = None
    with tempfile.TemporaryDirectory(prefix="qwen3asr-se-") as temp:
        for run in runs:
            start = max(0.0, blocks[run[0]].start - PAD_SECONDS)
            end = blocks[run[-1]].end + PAD_SECONDS
            audio = list(iter_audio(video, 0, start_seconds=start, duration_seconds=end - start))
            if not audio or not sum(b.size for b in audio):
                continue
            piece = Path(temp) / f"lines-{run[0] + 1}.wav"
            wavfile.write(piece, SAMPLE_RATE, np.concatenate(audio))
            transcript = transcribe_to_transcript(  # lines chosen on purpose: all of their audio, no VAD
                engine,
                piece,
                replace(options, vad_filter=False),
                listeners=listeners,
                should_stop=should_stop,
            )
            language = language or transcript.language
            for w in timed_words(transcript.segments):
                a, b = w.start + start, w.end + start
                overlap = {i: min(b, blocks[i].end) - max(a, blocks[i].start) for i in run}
                best = max(run, key=lambda i: overlap[i])
                if overlap[best] > 0 or blocks[best].start <= (a + b) / 2 <= blocks[best].end:
                    heard[best].append(replace(w, start=a, end=b))
    changed = [i for i in selected if heard[i]]
    for i in changed:
        blocks[i].text = list(break_lines(heard[i], heard[i][0].language or language))
    out = "".join("\n".join(b.head + b.text) + "\n\n" for b in blocks)
    message = f"re-transcribed {len(changed)} of {len(selected)} selected lines"
    if len(changed) < len(selected):
        message += f"; {len(selected) - len(changed)} with nothing said kept their text"
    return out, message


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: qwen3asr-se-plugin REQUEST_JSON (Subtitle Edit runs this)", file=sys.stderr)
        return 2
    return run(args[0])


def se_running() -> bool:
    """Whether a Subtitle Edit process runs (it would overwrite Settings.json with its own copy on exit)."""
    import subprocess

    names: list[str] = []
    try:
        if sys.platform == "win32":
            listing = subprocess.run(
                ["tasklist", "/FO", "CSV", "/NH"], capture_output=True, text=True, timeout=20
            )
            names = [line.split(",")[0].strip('"') for line in listing.stdout.splitlines()]
        else:
            listing = subprocess.run(["ps", "-A", "-o", "comm="], capture_output=True, text=True, timeout=20)
            names = listing.stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        proc = Path("/proc")
        names = [p.read_text(errors="replace") for p in proc.glob("[0-9]*/comm")] if proc.is_dir() else []
    return any(
        Path(name.strip()).name.lower().removesuffix(".exe") in ("subtitleedit", "subtitle edit")
        for name in names
    )


def _key(mapping: dict, name: str) -> str:
    """`name` as the settings file spells it (SE reads its settings case-insensitively), else `name`."""
    return next((k for k in mapping if k.lower() == name.lower()), name)


def configure_speech_to_text(settings_file: Path, url: str = SE_URL, model: str = DEFAULT_MODEL) -> str:
    """Write the settings of `engine_instructions` into SE's Settings.json (a copy of the old file is kept
    beside it). SE reads the file once at start and writes all of it back on exit, so this refuses while SE
    runs, and refuses a file it cannot read exactly (SE accepts comments and trailing commas)."""
    if not settings_file.is_file():
        return (
            f"did not configure Subtitle Edit: {settings_file} does not exist yet (start and close SE once)"
        )
    if se_running():
        raise Qwen3ASRError(f"{settings_file}: Subtitle Edit is running; close it, then run this again")
    try:
        settings = json.loads(settings_file.read_text(encoding="utf-8-sig"))
        tools = settings.setdefault(_key(settings, "Tools"), {})
        audio = tools.setdefault(_key(tools, "AudioToText"), {})
    except (OSError, ValueError, AttributeError) as exc:
        raise Qwen3ASRError(
            f"{settings_file}: cannot read it as plain JSON ({exc}); set the engine in SE by hand"
        ) from exc
    timeout = tools.get(_key(tools, "OpenAiCompatibleSttTimeoutSeconds"))
    values = {
        "OpenAiCompatibleSttUrl": url,
        "OpenAiCompatibleSttModel": model,
        "OpenAiCompatibleSttAudioFormat": SE_AUDIO_FORMAT,
        "OpenAiCompatibleSttTimeoutSeconds": max(
            SE_TIMEOUT_SECONDS, timeout if isinstance(timeout, int) else 0
        ),
    }
    for name, value in values.items():
        tools[_key(tools, name)] = value
    audio[_key(audio, "WhisperChoice")] = SE_ENGINE
    backup = settings_file.with_name(settings_file.name + ".qwen3asr-backup")
    shutil.copy2(settings_file, backup)
    tmp = settings_file.with_name(settings_file.name + ".qwen3asr-tmp")
    tmp.write_text(json.dumps(settings, ensure_ascii=False, indent=2), encoding="utf-8")
    os.replace(tmp, settings_file)
    return f"configured Subtitle Edit's speech to text in {settings_file} (the previous file: {backup.name})"


class SubtitleEditHost:
    def folder(self) -> Path:
        return se_data_folder() / "Plugins" / PLUGIN_FOLDER

    def install(self, configure: bool = False) -> str:
        """Install the plugin; with `configure`, also point SE's own speech-to-text at `qwen3asr serve`."""
        folder = self.folder()
        # SE runs Path.Combine(pluginFolder, executable), which returns `executable` itself when it is rooted
        # (PluginCatalog.ResolveLaunchPath), and needs File.Exists: so the installed script's absolute path,
        # with no launcher file between (a .cmd would be read in the console's OEM code page).
        exe = installed_script("qwen3asr-se-plugin")
        if not exe.exists():
            found = shutil.which("qwen3asr-se-plugin")
            if found is None:
                raise Qwen3ASRError(
                    f"{exe}: the qwen3asr-se-plugin program is missing; reinstall qwen3asr-plugin with pip"
                )
            exe = Path(found).absolute()
        folder.mkdir(parents=True, exist_ok=True)
        for legacy in ("qwen3asr-se.cmd", "qwen3asr-se"):  # launchers earlier versions wrote
            (folder / legacy).unlink(missing_ok=True)
        manifest = {
            "apiVersion": 1,
            "name": "Qwen3-ASR speech to text",
            "description": "Transcribes the loaded video locally with Qwen3-ASR (word-timed subtitles).",
            "version": __version__,
            "author": "qwen3asr-plugin",
            "menu": "Tools",
            "executables": {PLATFORM_KEYS.get(sys.platform, "linux"): str(exe)},
        }
        (folder / "plugin.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        done = [
            f"installed {folder}: Subtitle Edit 5 lists it in the Plugins menu once a subtitle has a line "
            "(SE runs no plugin on an empty subtitle; its Video > Speech to text with `qwen3asr serve` has "
            "no such limit)",
            engine_instructions(),
        ]
        if configure:
            done.append(configure_speech_to_text(se_data_folder() / "Settings.json"))
        return "\n".join(done)

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
