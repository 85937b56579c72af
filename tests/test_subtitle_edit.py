"""Subtitle Edit 5: its OpenAI-compatible requests byte for byte against `qwen3asr serve`, and the SE 5 plugin
run on a request.json shaped exactly like SE's."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
import wave
from pathlib import Path

import numpy as np
import pysubs2
import pytest
import uvicorn
from scipy.io import wavfile

from qwen3asr_plugin.engine.cues import rules_for, width
from qwen3asr_plugin.engine.errors import Qwen3ASRError
from qwen3asr_plugin.engine.records import Segment, TranscriptionInfo, Word
from qwen3asr_plugin.hosts.subtitle_edit import SubtitleEditHost
from qwen3asr_plugin.server import TranscriptionServer
from tests.media import video_with_audio, write_wav
from tests.parity import speech_like
from tests.server_process import QWEN3ASR, ServerProcess, free_port
from tests.test_server import wav_bytes

PLUGIN = str(Path(sys.executable).parent / "qwen3asr-se-plugin")
SRT = re.compile(r"(?:\d+\n\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}\n(?:[^\n]+\n)+\n)+")


def dotnet_multipart(
    fields: list[tuple[str, str]], audio: bytes, filename: str = "audio.wav", media_type: str = "audio/wav"
) -> tuple[bytes, str]:
    """The body .NET's MultipartFormDataContent writes for SE 5's OpenAiSttService.TranscribeCoreAsync
    (SubtitleEdit/subtitleedit 5c98fbdf, src/ui/Features/Video/SpeechToText/OpenAiCompatible/): StringContent
    parts (text/plain; charset=utf-8) in SE's order, then the file part last (its media type from the
    extension: audio/mpeg for SE's default mp3). .NET quotes a name or filename only when it is not an HTTP
    token (so `name=model` but `name="timestamp_granularities[]"`), adds filename*, and quotes the boundary."""

    def quoted(value: str) -> str:
        return value if re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", value) else f'"{value}"'

    boundary = str(uuid.uuid4())
    out = []
    for name, value in fields:
        out.append(
            f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Disposition: form-data; "
            f"name={quoted(name)}\r\n\r\n{value}\r\n".encode()
        )
    out.append(
        f"--{boundary}\r\nContent-Type: {media_type}\r\nContent-Disposition: form-data; name=file; "
        f"filename={quoted(filename)}; filename*=utf-8''{filename}\r\n\r\n".encode()
        + audio
        + b"\r\n"
    )
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f'multipart/form-data; boundary="{boundary}"'


# SE 5's fields in its order (OpenAiSttService.TranscribeCoreAsync): model (default "whisper-1"), language
# when set, response_format verbose_json, timestamp_granularities[] segment then word; the file last.
SE_FIELDS = [
    ("model", "whisper-1"),
    ("language", "en"),
    ("response_format", "verbose_json"),
    ("timestamp_granularities[]", "segment"),
    ("timestamp_granularities[]", "word"),
]
# With SE's Stream option: response_format json and stream=true, no granularities.
SE_STREAM_FIELDS = [("model", "whisper-1"), ("response_format", "json"), ("stream", "true")]


@pytest.fixture(scope="module")
def server(models):
    with ServerProcess(
        "--no-vad", "--model", str(models("tiny")), "--aligner", str(models("aligner-tiny"))
    ) as s:
        yield s


def send(server, body: bytes, content_type: str):
    req = urllib.request.Request(f"{server.url}/v1/audio/transcriptions", data=body, method="POST")
    req.add_header("Content-Type", content_type)
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.headers.get("content-type", ""), r.read().decode("utf-8")


def assert_subtitle_sized(segments: list[dict]) -> None:
    """Each segment is one subtitle (SE makes one paragraph of each): within the cue rules' duration and two
    lines of text; `id` and `seek` are integers (else SE's parser fails and takes the body as plain text)."""
    assert segments
    for s in segments:
        rules = rules_for(s.get("language"), s["text"])
        assert isinstance(s["id"], int) and isinstance(s["seek"], int) and isinstance(s["tokens"], list)
        assert 0 <= s["start"] <= s["end"] <= s["start"] + rules.max_duration_seconds + 1e-3, s
        assert width(s["text"].replace("\n", ""), rules.cjk) <= rules.max_lines * rules.max_line_chars, s


def test_se_probe_and_request_get_subtitle_sized_segments_with_words(server):
    probe = urllib.request.Request(
        server.url + "/", method="HEAD"
    )  # SpeechToTextViewModel.ProbeOpenAiUrlAsync
    with urllib.request.urlopen(probe, timeout=8) as r:
        assert r.status == 200
    body, ctype = dotnet_multipart(SE_FIELDS, wav_bytes(40.0), "0f8fad5b.wav")
    content_type, text = send(server, body, ctype)
    assert content_type.startswith("application/json")
    data = json.loads(text)
    assert data["text"] and data["duration"] == pytest.approx(40.0, abs=0.01)
    assert len(data["segments"]) >= 2
    assert_subtitle_sized(data["segments"])
    for seg in data["segments"]:  # what SE's OpenAiCompatibleSegment reads
        assert {
            "id",
            "seek",
            "start",
            "end",
            "text",
            "tokens",
            "avg_logprob",
            "no_speech_prob",
            "words",
        } <= set(seg)
        assert seg["words"] and all({"word", "start", "end", "probability"} <= set(w) for w in seg["words"])
    assert [w["word"] for s in data["segments"] for w in s["words"]] == [w["word"] for w in data["words"]]


def test_se_streaming_request(server):
    body, ctype = dotnet_multipart(SE_STREAM_FIELDS, wav_bytes(40.0))
    content_type, text = send(server, body, ctype)
    assert content_type.startswith("text/event-stream")
    events, kind, data = [], None, []
    for line in text.splitlines():  # parsed the way SE's ParseSseStreamAsync does: only events with a name
        if line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and data and kind:
            events.append((kind, json.loads("\n".join(data))))
            kind, data = None, []
    kinds = [k for k, _ in events]
    assert kinds[-1] == "transcript.text.done" and "transcript.text.delta" in kinds
    assert "transcript.segment" not in kinds  # SE would add those paragraphs and maybe the done ones again
    done = events[-1][1]
    assert len(done["segments"]) >= 2
    assert_subtitle_sized(done["segments"])
    assert "".join(d["delta"] for k, d in events if k == "transcript.text.delta") == done["text"]


def se_request(tmp_path: Path, video: str | None, settings: dict | None) -> Path:
    """A request.json as SE 5 writes it (docs/plugin.md), including a subtitle with CR, quotes and CJK."""
    work = tmp_path / "SubtitleEditPlugins" / "7f1c"
    work.mkdir(parents=True)
    request = {
        "apiVersion": 1,
        "requestType": "run",
        "responseFilePath": str(work / "response.json"),
        "tempDirectory": str(work),
        "subtitle": {
            "format": "SubRip",
            "fileName": str(tmp_path / "old.srt"),
            "native": '1\r\n00:00:01,000 --> 00:00:03,000\r\nShe said "hello" 你好\r\n\r\n',
            "subRip": '1\r\n00:00:01,000 --> 00:00:03,000\r\nShe said "hello" 你好\r\n\r\n',
        },
        "selectedIndices": [],
        "videoFileName": video,
        "frameRate": 25.0,
        "videoDurationSeconds": 6.0,
        "videoWidth": 160,
        "videoHeight": 120,
        "uiLanguage": "English",
        "theme": "Dark",
        "themeColors": {"isDark": True, "backgroundColor": "#FF212121"},
        "seVersion": "5.0.0",
        "settings": settings,
        "settingsVersion": None,
    }
    path = work / "request.json"
    path.write_text("\ufeff" + json.dumps(request, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def headless(env: dict | None = None) -> dict:
    """The environment without a display: the plugin then runs without its window (as SE's tests need)."""
    return {k: v for k, v in (env or os.environ).items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}


def run_plugin(request: Path, env: dict | None = None) -> dict:
    run = subprocess.run(
        [PLUGIN, str(request)], capture_output=True, text=True, env=headless(env), cwd=request.parent
    )
    assert run.returncode == 0, run.stderr
    return json.loads((request.parent / "response.json").read_text(encoding="utf-8"))


def check_srt_for_se(native: str) -> pysubs2.SSAFile:
    assert "\r" not in native and native.strip()
    assert SRT.fullmatch(native), native[:200]
    return pysubs2.SSAFile.from_string(native, format_="srt")


@pytest.fixture
def models_home(models, tmp_path):
    """The preset names resolve to the tiny models, as after `qwen3asr models pull`."""
    home = tmp_path / "models"
    home.mkdir()
    os.symlink(models("tiny"), home / "qwen3-asr-0.6b")
    os.symlink(models("aligner-tiny"), home / "qwen3-forcedaligner-0.6b")
    return {**os.environ, "QWEN3ASR_MODELS_DIR": str(home)}


def test_plugin_transcribes_the_loaded_video(models_home, tmp_path):
    """SE's first run (no saved settings: the defaults, VAD on) on a video with speech in it."""
    from tests.fixtures.trained import speech

    said = speech.talk([("English", 6)], seed=1)
    wav = write_wav(tmp_path / "speech.wav", said.audio)
    video = video_with_audio(tmp_path / "episode 01 ü.mp4", wav)
    response = run_plugin(se_request(tmp_path, str(video), None), models_home)
    assert response["apiVersion"] == 1 and response["status"] == "ok", response.get("message")
    assert response["subtitle"]["format"] == "SubRip"
    subs = check_srt_for_se(response["subtitle"]["native"])
    assert len(subs) >= 1 and subs[-1].end <= said.seconds * 1000 + 600
    assert response["settings"]["engine"] == "local" and response["settingsVersion"] == 1


def test_plugin_output_keeps_quotes_and_cjk_and_drops_cr(tmp_path):
    wav = write_wav(tmp_path / "clip.wav", speech_like(16_000 * 2))
    (tmp_path / "clip.txt").write_text('He said "hi"\r\nthen 你好，世界。', encoding="utf-8")
    env = {
        k: v for k, v in os.environ.items() if k != "QWEN3ASR_LOAD_PLUGINS"
    }  # the test plugin's echo engine
    response = run_plugin(se_request(tmp_path, str(wav), {"engine": "echo"}), env)
    assert response["status"] == "ok", response.get("message")
    native = response["subtitle"]["native"]
    subs = check_srt_for_se(native)
    text = " ".join(e.plaintext for e in subs)
    assert '"hi"' in text and "你好，世界。" in text


def test_plugin_without_a_video_answers_with_an_error(tmp_path):
    response = run_plugin(se_request(tmp_path, None, None))
    assert response["status"] == "error" and "open a video" in response["message"]


def se_launch_path(plugin_folder: Path, manifest: dict, key: str) -> Path:
    """What SE 5 runs (PluginCatalog.ResolveLaunchPath): Path.Combine(folder, executables[os]), which is the
    second path alone when it is rooted, and only if File.Exists."""
    executable = manifest["executables"][key]
    path = Path(executable) if Path(executable).is_absolute() else plugin_folder / executable
    assert path.is_file(), f"SE would not find {path}"
    return path


def test_install_and_uninstall(tmp_path, monkeypatch):
    monkeypatch.setenv("QWEN3ASR_SE_DATA", str(tmp_path / "se"))
    host = SubtitleEditHost()
    assert "installed" in host.install()
    folder = tmp_path / "se" / "Plugins" / "Qwen3ASR"
    manifest = json.loads((folder / "plugin.json").read_text())
    assert manifest["apiVersion"] == 1 and set(manifest["executables"]) == {"linux"}
    launch = se_launch_path(folder, manifest, "linux")
    assert launch == Path(PLUGIN)
    request = se_request(tmp_path, None, None)
    run = subprocess.run(
        [str(launch), str(request)], cwd=folder, capture_output=True, text=True, env=headless()
    )
    assert (
        run.returncode == 0
        and json.loads((request.parent / "response.json").read_text())["status"] == "error"
    )
    assert "removed" in host.uninstall() and not folder.exists()


# The start of a Settings.json as SE 5 writes it (SeJsonContext: PascalCase names, indented).
SE_SETTINGS = {
    "General": {"SubtitleLineMaximumLength": 43, "MaxNumberOfLines": 2},
    "Tools": {
        "OpenAiCompatibleSttUrl": "http://localhost:8000/v1/audio/transcriptions",
        "OpenAiCompatibleSttApiKey": "",
        "OpenAiCompatibleSttModel": "whisper-1",
        "OpenAiCompatibleSttTimeoutSeconds": 300,
        "OpenAiCompatibleSttStream": False,
        "OpenAiCompatibleSttAudioFormat": "mp3",
        "AudioToText": {"WhisperChoice": "CPP", "PostProcessing": True},
    },
    "Plugins": {"Settings": {}, "SettingsVersions": {}, "DisabledPluginNames": []},
}


def test_install_configure_points_se_speech_to_text_at_serve(tmp_path):
    data = tmp_path / "Subtitle Edit ü"
    data.mkdir()
    (data / "Settings.json").write_text(json.dumps(SE_SETTINGS, indent=2), encoding="utf-8")
    env = {**os.environ, "QWEN3ASR_SE_DATA": str(data)}
    run = subprocess.run(
        [QWEN3ASR, "hosts", "install", "subtitle-edit", "--configure"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert run.returncode == 0, run.stderr
    assert "audio format wav" in run.stdout and "configured" in run.stdout
    written = json.loads((data / "Settings.json").read_text(encoding="utf-8"))
    tools = written["Tools"]
    assert tools["OpenAiCompatibleSttUrl"] == "http://127.0.0.1:8000/v1/audio/transcriptions"
    assert (
        tools["OpenAiCompatibleSttAudioFormat"] == "wav"
        and tools["OpenAiCompatibleSttTimeoutSeconds"] == 3600
    )
    assert tools["AudioToText"] == {"WhisperChoice": "OpenAI Compatible", "PostProcessing": True}
    assert written["General"] == SE_SETTINGS["General"] and written["Plugins"] == SE_SETTINGS["Plugins"]
    assert json.loads((data / "Settings.json.qwen3asr-backup").read_text()) == SE_SETTINGS
    assert (data / "Plugins" / "Qwen3ASR" / "plugin.json").is_file()


def test_configure_leaves_the_settings_alone_when_it_should(tmp_path):
    from qwen3asr_plugin.hosts.subtitle_edit import configure_speech_to_text

    missing = tmp_path / "none" / "Settings.json"
    assert "does not exist" in configure_speech_to_text(missing) and not missing.parent.exists()
    commented = tmp_path / "Settings.json"
    text = "// SE accepts comments\n" + json.dumps(SE_SETTINGS)
    commented.write_text(text, encoding="utf-8")
    with pytest.raises(Qwen3ASRError, match="set the engine in SE by hand"):
        configure_speech_to_text(commented)
    assert commented.read_text(encoding="utf-8") == text
    # A running Subtitle Edit (here a process by its name) writes its own copy back on exit: refuse.
    fake = tmp_path / "SubtitleEdit"
    shutil.copy("/bin/sleep", fake)
    plain = tmp_path / "plain" / "Settings.json"
    plain.parent.mkdir()
    plain.write_text(json.dumps(SE_SETTINGS), encoding="utf-8")
    process = subprocess.Popen([str(fake), "30"])
    try:
        with pytest.raises(Qwen3ASRError, match="Subtitle Edit is running"):
            configure_speech_to_text(plain)
    finally:
        process.kill()
        process.wait()
    assert json.loads(plain.read_text()) == SE_SETTINGS
    assert "configured" in configure_speech_to_text(plain)


def test_configure_is_only_for_hosts_that_have_settings(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    run = subprocess.run(
        [QWEN3ASR, "hosts", "install", "ffmpeg", "--configure"], capture_output=True, text=True, env=env
    )
    assert run.returncode != 0 and "nothing to configure" in run.stderr and "Traceback" not in run.stderr


# Windows install layouts: (site-packages, scripts folder, python.exe), under a profile with a non-ASCII name.
# pip's RECORD lists the script relative to site-packages.
WINDOWS_LAYOUTS = {
    "venv": ("venv/Lib/site-packages", "venv/Scripts", "venv/Scripts/python.exe"),
    "system": ("Python311/Lib/site-packages", "Python311/Scripts", "Python311/python.exe"),
    "user": (
        "AppData/Roaming/Python/Python311/site-packages",
        "AppData/Roaming/Python/Python311/Scripts",
        "Python311/python.exe",
    ),
    "conda": ("miniconda3/Lib/site-packages", "miniconda3/Scripts", "miniconda3/python.exe"),
}


@pytest.mark.parametrize("layout", sorted(WINDOWS_LAYOUTS))
def test_windows_manifest_names_the_installed_exe(tmp_path, monkeypatch, layout):
    from importlib import metadata

    import qwen3asr_plugin.api as hosts

    root = tmp_path / "Users" / "José Müller"
    site, scripts, python = (root / p for p in WINDOWS_LAYOUTS[layout])
    info = site / "qwen3asr_plugin-0.1.0.dist-info"
    info.mkdir(parents=True)
    scripts.mkdir(parents=True, exist_ok=True)
    exe = scripts / "qwen3asr-se-plugin.exe"
    exe.write_bytes(b"MZ")
    relative = os.path.relpath(exe, site).replace(os.sep, "/")
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: qwen3asr-plugin\nVersion: 0.1.0\n")
    (info / "RECORD").write_text(f"qwen3asr_plugin/__init__.py,,\n{relative},,\n", encoding="utf-8")
    monkeypatch.setattr(hosts.metadata, "distribution", lambda name: metadata.PathDistribution(info))
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(sys, "executable", str(python))
    monkeypatch.setenv("QWEN3ASR_SE_DATA", str(root / "AppData" / "Roaming" / "Subtitle Edit"))
    host = SubtitleEditHost()
    host.install()
    manifest = json.loads((host.folder() / "plugin.json").read_text(encoding="utf-8"))
    assert set(manifest["executables"]) == {"windows"}
    assert se_launch_path(host.folder(), manifest, "windows") == exe
    assert not list(host.folder().glob("*.cmd"))


class SlowEngine:
    """An Engine that spends `each` seconds on every 1-second chunk of its input, reporting progress after each
    (as the pipeline does), and records how many chunks each run decoded. Chunks 3 to 29 are music (no
    segment), so that a stream stopped only when it next sends something would go on to chunk 30."""

    def __init__(self, each: float):
        self.each = each
        self.runs: list[list[int]] = []

    def transcribe(self, source, on_progress=None, **keywords):
        with wave.open(str(source)) as w:
            chunks = int(w.getnframes() / w.getframerate())
        info = TranscriptionInfo("English", 0.0)
        done: list[int] = []
        self.runs.append(done)

        def stream():
            for i in range(chunks):
                time.sleep(self.each)
                done.append(i)
                on_progress(i + 1.0)
                if not 3 <= i < 30:
                    yield Segment(i, float(i), i + 0.9, f"word{i}.", "English")
            info.duration = float(chunks)

        return stream(), info


@pytest.fixture
def slow_server():
    """`qwen3asr serve`'s app over real HTTP (uvicorn, as `serve` runs it) with a SlowEngine."""
    engine = SlowEngine(each=0.2)
    app = TranscriptionServer(engine, "slow")
    server = uvicorn.Server(uvicorn.Config(app.app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield app, engine, f"http://127.0.0.1:{server.config.port}"
    server.should_exit = True
    thread.join(10)


def abandoned(url: str, fields: list[tuple[str, str]], seconds: float) -> socket.socket:
    """Send SE's request over a raw connection and return it unread (close it to leave, as SE's HttpClient
    does when its timeout (OpenAiCompatibleSttTimeoutSeconds) runs out)."""
    body, ctype = dotnet_multipart(fields, wav_bytes(seconds))
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    head = (
        f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    return sock


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.parametrize("stream", [False, True])
def test_a_request_whose_client_left_stops_and_the_retry_runs_at_once(slow_server, stream):
    app, engine, url = slow_server
    fields = SE_STREAM_FIELDS if stream else SE_FIELDS
    first = abandoned(url, fields, 40.0)  # 40 chunks: 8 s if decoded to the end
    wait_for(lambda: engine.runs and len(engine.runs[0]) >= 5)  # in the music
    first.close()
    body, ctype = dotnet_multipart(fields, wav_bytes(3.0))
    _, text = send(type("S", (), {"url": url}), body, ctype)  # the retry
    assert "word2." in text
    assert len(engine.runs) == 2 and len(engine.runs[1]) == 3
    assert len(engine.runs[0]) < 12  # stopped within a chunk or two of the client leaving, not at 31 or 40
    wait_for(lambda: not app.lock.locked())
    assert app.waiting == 0


def test_a_request_that_leaves_the_queue_is_never_run(slow_server):
    app, engine, url = slow_server
    running = abandoned(url, SE_FIELDS, 10.0)
    wait_for(lambda: engine.runs)
    queued = abandoned(url, SE_FIELDS, 10.0)
    wait_for(lambda: app.waiting == 1)
    queued.close()
    wait_for(lambda: app.waiting == 0, timeout=5)
    body, ctype = dotnet_multipart(SE_FIELDS, wav_bytes(2.0))
    _, text = send(type("S", (), {"url": url}), body, ctype)
    running.close()
    assert "word1." in text
    assert [len(r) for r in engine.runs] == [10, 2]  # the first ran to its end, the one that left never ran


class ToneEngine:
    """An Engine that hears tones: each run of 20 ms frames whose strongest frequency is one tone becomes the
    word `f<Hz>` at the times it sounds (in the file it is given), so a test knows what is said where."""

    def transcribe(self, source, on_progress=None, **keywords):
        rate, audio = wavfile.read(str(source))
        hop = rate // 50
        words, current = [], None
        for k in range(len(audio) // hop):
            frame = audio[k * hop : (k + 1) * hop].astype(np.float64)
            spectrum = np.abs(np.fft.rfft(frame))
            tone = int(round(np.argmax(spectrum) * rate / hop / 50) * 50) if frame.std() > 0.01 else None
            if current and current[0] == tone:
                current[2] = (k + 1) * hop / rate
            else:
                if current and current[0]:
                    words.append(current)
                current = [tone, k * hop / rate, (k + 1) * hop / rate]
        if current and current[0]:
            words.append(current)
        duration = len(audio) / rate
        info = TranscriptionInfo("English", duration)
        said = tuple(Word(s, e, f" f{tone}") for tone, s, e in words)
        text = "".join(w.word for w in said).strip()
        on_progress(duration)
        return iter([Segment(0, 0.0, duration, text, "English", words=said)] if said else []), info


# (start, end, Hz) of each tone in the recording; the subtitle's lines below are timed around them.
TONES = [(1.0, 1.5, 400), (1.7, 2.2, 600), (4.0, 4.5, 800), (4.55, 5.0, 1000), (8.0, 8.6, 1200)]
LINES = [(0.9, 2.3), (2.4, 4.52), (4.53, 5.1), (7.9, 8.7), (10.0, 11.0)]


def test_selected_lines_get_what_is_said_in_their_span_and_nothing_else_changes(tmp_path):
    from qwen3asr_plugin.hosts.subtitle_edit import retranscribe_lines
    from qwen3asr_plugin.runner import RunOptions

    t = np.arange(int(12 * 16_000)) / 16_000
    audio = np.zeros_like(t)
    for start, end, hz in TONES:
        inside = (t >= start) & (t < end)
        audio[inside] = 0.5 * np.sin(2 * np.pi * hz * t[inside])
    video = video_with_audio(tmp_path / "film ü.mp4", write_wav(tmp_path / "tones.wav", audio))

    def stamp(x):
        return f"00:00:{int(x):02d},{round(x % 1 * 1000):03d}"

    subrip = "".join(
        f"{i + 1}\r\n{stamp(a)} --> {stamp(b)}\r\n<i>old</i> line {i + 1}\r\nsecond row\r\n\r\n"
        for i, (a, b) in enumerate(LINES)
    )
    native, message = retranscribe_lines(ToneEngine(), str(video), subrip, [1, 2, 4], RunOptions())
    subs = check_srt_for_se(native)
    assert [e.plaintext for e in subs] == [
        "old line 1\nsecond row",  # not selected: as it was, though its tones are within the padding
        "f800",  # lines 2 and 3 are transcribed together: each gets the tone spoken in its span (and not the
        # end of line 1's tone, in the audio taken before line 2)
        "f1000",
        "old line 4\nsecond row",
        "old line 5\nsecond row",  # selected, but nothing is said: kept
    ]
    given = subrip.replace("\r\n", "\n").split("\n\n")
    assert native.split("\n\n")[0] == given[0] and native.split("\n\n")[3] == given[3]  # byte for byte
    assert [(e.start, e.end) for e in subs] == [(round(a * 1000), round(b * 1000)) for a, b in LINES]
    assert "2 of 3" in message and "1 with nothing said" in message


def test_serve_says_how_to_set_up_subtitle_edit(models):
    with ServerProcess("--no-vad", "--model", str(models("tiny"))) as s:
        port = s.port
    said = s.proc.stderr.read().decode()
    assert f"URL http://127.0.0.1:{port}/v1/audio/transcriptions" in said
    assert "audio format wav" in said and "timeout 3600 s" in said


@pytest.fixture(scope="session")
def x_screen(tmp_path_factory):
    """A virtual X display for the session (Debian's Xvfb; tests/run.sh installs it), whose screen is the file
    Xvfb_screen0. It ends by itself once its last client (this process's Tk) goes (-terminate), and at the
    latest after 15 minutes: killing it under a live Tk connection would end this process (XIO error)."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is installed by tests/run.sh")
    pytest.importorskip("tkinter", reason="python3-tk is installed by tests/run.sh")
    display = f":{free_port() % 1000 + 100}"
    screen = tmp_path_factory.mktemp("screen")
    subprocess.Popen(
        ["timeout", "900", "Xvfb", display, "-screen", "0", "640x400x24", "-fbdir", str(screen), "-nolisten",
         "tcp", "-terminate"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while not (screen / "Xvfb_screen0").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    return display, screen / "Xvfb_screen0"


@pytest.fixture
def xvfb(x_screen, monkeypatch):
    """The display for one test only (other tests' plugin runs must not open windows)."""
    monkeypatch.setenv("DISPLAY", x_screen[0])
    return x_screen[1]


def test_the_plugin_window_takes_settings_shows_progress_and_cancels(xvfb, tmp_path):
    """SE runs the plugin with no window and no way to cancel (MainViewModel.RunPlugin passes
    CancellationToken.None): the plugin's own window is the user's settings, progress and Cancel."""
    from qwen3asr_plugin.hosts.subtitle_edit import window
    from tests.screenshot import write_png, xwd_pixels

    assert window.available()
    seen = {}

    def work(settings, progress, cancelled):
        seen["settings"] = settings
        for i in range(40):
            if cancelled.is_set():
                seen["stopped at"] = i
                raise RuntimeError("cancelled")
            progress(i / 40, f"{i} of 40 s")
            time.sleep(0.05)
        return "1\n00:00:00,000 --> 00:00:01,000\nhi\n\n", "1 subtitles"

    def shot():
        width, height, rows = xwd_pixels(xvfb)
        seen["colours"] = len(
            {rows[y][x * 3 : x * 3 + 3] for y in range(0, height, 4) for x in range(0, width, 4)}
        )
        write_png(tmp_path / "window.png", width, height, rows)

    w = window.PluginWindow({"language": None, "model": None, "engine": "local", "itn": True}, ["Chinese", "English"],
                            ["qwen3-asr-0.6b", "qwen3-asr-1.7b"], work)  # fmt: skip
    w.root.after(
        300, lambda: (w.language.set("Chinese"), w.model.set("qwen3-asr-1.7b"), w.start_button.invoke())
    )
    w.root.after(1200, shot)  # halfway through the work
    settings, result = w.run()
    assert result == ("1\n00:00:00,000 --> 00:00:01,000\nhi\n\n", "1 subtitles")
    assert settings == {"language": "Chinese", "model": "qwen3-asr-1.7b", "engine": "local", "itn": True}
    assert (
        seen["settings"] == settings and seen["colours"] > 5
    )  # the window was drawn (a blank screen: 1 colour)
    assert (tmp_path / "window.png").read_bytes().startswith(b"\x89PNG")

    cancelling = window.PluginWindow({"language": None}, ["English"], ["qwen3-asr-0.6b"], work)
    cancelling.root.after(300, cancelling.start_button.invoke)
    cancelling.root.after(800, cancelling.cancel_button.invoke)
    _, result = cancelling.run()
    assert result is None and 5 <= seen["stopped at"] < 40  # stopped soon after Cancel, not at the end


def test_the_plugin_cancelled_in_its_window_answers_cancelled(xvfb, tmp_path, monkeypatch):
    """The plugin as SE runs it, with a display: Cancel before starting writes status "cancelled" (SE then
    changes nothing and keeps its settings); the window is the one SE's user would press."""
    from qwen3asr_plugin.hosts import subtitle_edit
    from qwen3asr_plugin.hosts.subtitle_edit import window

    shown = []
    original = window.PluginWindow.run

    def press_cancel(self):
        shown.append(self.language.get())
        self.root.after(300, self.cancel_button.invoke)
        return original(self)

    monkeypatch.setattr(window.PluginWindow, "run", press_cancel)
    request = se_request(tmp_path, str(tmp_path / "film.mp4"), {"engine": "local", "language": "Japanese"})
    assert subtitle_edit.run(str(request)) == 0
    response = json.loads((request.parent / "response.json").read_text(encoding="utf-8"))
    assert shown == ["Japanese"] and response["status"] == "cancelled" and "settings" not in response


def test_selected_empty_lines_are_filled(tmp_path):
    """SE writes a paragraph with no text as its number, its timing and two blank lines: the usual way to ask
    for text is to time empty lines and select them."""
    from qwen3asr_plugin.hosts.subtitle_edit import parse_subrip, retranscribe_lines
    from qwen3asr_plugin.runner import RunOptions

    t = np.arange(int(6 * 16_000)) / 16_000
    fade = np.clip(np.minimum(t - 1.0, 1.5 - t) / 0.05, 0.0, 1.0)  # no click for the codec to smear
    audio = 0.5 * fade * np.sin(2 * np.pi * 700 * t)
    video = video_with_audio(tmp_path / "film.mp4", write_wav(tmp_path / "tone.wav", audio))
    subrip = (
        "1\r\n00:00:00,900 --> 00:00:01,600\r\n\r\n\r\n2\r\n00:00:03,000 --> 00:00:04,000\r\nkept\r\n\r\n"
    )
    blocks = parse_subrip(subrip)
    assert [(b.text, b.start, b.end) for b in blocks] == [([], 0.9, 1.6), (["kept"], 3.0, 4.0)]
    native, _ = retranscribe_lines(ToneEngine(), str(video), subrip, [0], RunOptions())
    assert [e.plaintext for e in pysubs2.SSAFile.from_string(native, format_="srt")] == ["f700", "kept"]


def test_a_streamed_request_refused_early_leaves_no_upload_behind(slow_server, tmp_path, monkeypatch):
    """stream=true with an empty file (or over the size limit, or a full queue) is refused before the stream
    exists: its temporary upload (up to --max-upload-mb) must still go."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    _, _, url = slow_server
    body, ctype = dotnet_multipart(SE_STREAM_FIELDS, b"")
    req = urllib.request.Request(f"{url}/v1/audio/transcriptions", data=body, method="POST")
    req.add_header("Content-Type", ctype)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=30)
    assert refused.value.code == 400
    body, ctype = dotnet_multipart(SE_STREAM_FIELDS, wav_bytes(2.0))
    assert "word1." in send(type("S", (), {"url": url}), body, ctype)[1]
    wait_for(lambda: not list(tmp_path.glob("qwen3asr-upload-*")), timeout=5)
