"""The mpv host with the real mpv (headless, JSON IPC), the tiny model and a generated video."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pysubs2
import pytest

from qwen3asr_plugin.hosts.mpv import MpvHost, script_path
from tests.media import video_with_audio, write_wav
from tests.mpv_ipc import Mpv
from tests.parity import speech_like

QWEN3ASR = str(Path(sys.executable).parent / "qwen3asr")
pytestmark = pytest.mark.skipif(shutil.which("mpv") is None, reason="mpv is installed by tests/run.sh")


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mpv-media")
    wav = write_wav(folder / "speech.wav", speech_like(16_000 * 75, seed=11))
    return video_with_audio(folder / "film.mp4", wav)


def tiny_engine_opts(models) -> str:
    """The script's options that run the engine with the tiny model and aligner on the CPU."""
    return ",".join(
        [
            f"qwen3asr-command={QWEN3ASR}",
            f"qwen3asr-model={models('tiny')}",
            f"qwen3asr-aligner={models('aligner-tiny')}",
            "qwen3asr-extra_args=--device cpu --no-vad",
        ]
    )


def words(text: str) -> list[str]:
    return [w for w in re.findall(r"\w+", text)]


def wait_for(predicate, timeout: float, mpv: Mpv):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        mpv.pump(0.2)
    return False


def generate_from(mpv: Mpv, media: Path, position: float, timeout: float) -> None:
    """Load `media`, seek to `position`, ask the host script for subtitles and wait until it is done."""
    mpv.command("loadfile", str(media))
    assert wait_for(lambda: mpv.get("duration"), 20, mpv)
    mpv.command("seek", position, "absolute")
    assert wait_for(lambda: (mpv.get("time-pos") or 0) > position - 1, 10, mpv)
    mpv.command("script-message-to", "qwen3asr", "generate")
    assert wait_for(lambda: mpv.messages("qwen3asr-done"), timeout, mpv), mpv.messages("qwen3asr-failed")


def test_subtitles_appear_and_grow_while_watching(models, video, tmp_path):
    opts = tiny_engine_opts(models)
    mpv = Mpv(tmp_path / "mpv.sock", f"--script={script_path()}", f"--script-opts={opts}")
    try:
        generate_from(mpv, video, 40, timeout=120)

        updates = [int(args[0]) for args in mpv.messages("qwen3asr-update")]
        assert len(updates) >= 3 and updates == sorted(updates)  # the track grew chunk by chunk
        output = Path(mpv.messages("qwen3asr-done")[0][0])
        assert output.exists() and output.suffix == ".srt"

        subs = [t for t in mpv.get("track-list") if t["type"] == "sub"]
        assert len(subs) == 1 and subs[0]["external"] and subs[0]["selected"]
        assert subs[0]["external-filename"] == str(output)

        cues = pysubs2.load(str(output))
        assert cues[-1].end > 60_000  # the whole film, after starting at 40 s
        # Random weights time many words alike; take the longest cue well inside the film with words in it.
        inside = [e for e in cues if e.end < 74_000 and words(e.plaintext)]
        cue = max(inside, key=lambda e: e.end - e.start)
        assert cue.end - cue.start >= 300
        target = (cue.start + cue.end) / 2000
        mpv.command("seek", target, "absolute+exact")
        assert wait_for(
            lambda: abs((mpv.get("time-pos") or 0) - target) < 0.1 and mpv.get("sub-text"), 10, mpv
        )
        shown = mpv.get("sub-text")
        assert words(shown) and all(w in words(cue.plaintext) for w in words(shown)), (shown, cue.plaintext)

        mpv.command("stop")  # closing the file cleans up the temporary subtitle
        assert wait_for(lambda: not output.exists(), 10, mpv)
        assert wait_for(lambda: not output.parent.exists(), 10, mpv)
    finally:
        mpv.close()


def test_a_direct_url_is_transcribed_with_the_headers_mpv_sends(models, video, tmp_path):
    from tests.http_media import MediaServer
    from tests.media import ffmpeg

    served = tmp_path / "www"
    served.mkdir()
    ffmpeg("-i", str(video), "-c", "copy", "-movflags", "+faststart", str(served / "film.mp4"))  # streamable
    opts = tiny_engine_opts(models)
    with MediaServer(served) as server:
        mpv = Mpv(
            tmp_path / "mpv.sock",
            f"--script={script_path()}",
            f"--script-opts={opts}",
            "--ytdl=no",
            "--user-agent=Viewer/1.0",
            "--http-header-fields=Cookie: session=42",
        )
        try:
            generate_from(mpv, f"{server.url}/film.mp4", 30, timeout=120)
            output = Path(mpv.messages("qwen3asr-done")[0][0])
            assert output.name == "film.srt" and pysubs2.load(str(output))[-1].end > 60_000
            sub = [t for t in mpv.get("track-list") if t["type"] == "sub"][0]
            assert sub["selected"] and sub["external-filename"] == str(output)
        finally:
            mpv.close()
    # mpv's own requests and the engine's ffmpeg (which would say Lavf/... of itself) all carry mpv's headers
    assert len(server.seen) > 2
    assert all(r.get("user-agent") == "Viewer/1.0" and r.get("cookie") == "session=42" for r in server.seen)


FAKE_YT_DLP = """#!{python}
# A stand-in for yt-dlp as mpv's ytdl hook runs it (`yt-dlp --no-warnings -J ... -- URL`): a site whose video
# and two audio formats are separate files on the local server, as YouTube serves DASH formats.
import json, sys
base = {base!r}
def audio(fid, name, abr):
    return {{"format_id": fid, "url": f"{{base}}/{{name}}", "ext": "m4a", "acodec": "mp4a.40.2", "vcodec": "none",
            "asr": 16000, "abr": abr, "tbr": abr, "protocol": "http", "http_headers": headers}}
headers = {{"User-Agent": "SiteAgent/2.0", "Referer": "https://site.example/watch"}}
video = {{"format_id": "v", "url": f"{{base}}/video.mp4", "ext": "mp4", "vcodec": "mp4v.20.3", "acodec": "none",
         "width": 160, "height": 120, "fps": 10, "vbr": 100, "tbr": 100, "protocol": "http", "http_headers": headers}}
formats = [audio("a-dub", "dub.m4a", 32), audio("a-main", "main.m4a", 64), video]
print(json.dumps({{"id": "abc", "title": "A talk", "duration": 8, "webpage_url": sys.argv[-1],
                  "extractor": "fake", "formats": formats, "requested_formats": [video, formats[1]],
                  "http_headers": headers}}))
"""


@pytest.mark.parametrize("all_formats", [False, True], ids=["requested formats", "all formats"])
def test_a_site_through_yt_dlp_transcribes_the_audio_being_heard(tmp_path, all_formats):
    """mpv's ytdl hook (player/lua/ytdl_hook.lua, add_single_video and formats_to_edl) resolves a site into an
    EDL of separate formats: by default the requested bestvideo+bestaudio, opened whole; with all_formats
    every format as a track of its own, opened when selected. The engine gets the URL of the audio format
    playing, with the headers the site asked for (the hook sets them as user-agent and http-header-fields),
    and switching the audio track starts again on the other format's URL."""
    from tests.http_media import MediaServer
    from tests.media import ffmpeg

    served = tmp_path / "www"
    served.mkdir()
    for name, seed in (("main", 1), ("dub", 2)):
        wav = write_wav(tmp_path / f"{name}.wav", speech_like(16_000 * 8, seed=seed))
        ffmpeg("-i", str(wav), "-c:a", "aac", "-b:a", "64k", str(served / f"{name}.m4a"))
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=10:duration=8",
        "-c:v",
        "mpeg4",
        str(served / "video.mp4"),
    )
    command, log = fake_engine(tmp_path, "hang")
    with MediaServer(served) as server:
        ytdl = tmp_path / "yt-dlp"
        ytdl.write_text(FAKE_YT_DLP.format(python=sys.executable, base=server.url))
        ytdl.chmod(0o755)
        mpv = Mpv(
            tmp_path / "mpv.sock",
            f"--script={script_path()}",
            f"--script-opts=qwen3asr-command={command},qwen3asr-from_position=no,ytdl_hook-ytdl_path={ytdl},"
            f"ytdl_hook-all_formats={'yes' if all_formats else 'no'}",
        )
        try:
            mpv.command("loadfile", f"ytdl://{server.url}/watch?v=abc")
            assert wait_for(lambda: mpv.get("duration"), 30, mpv), mpv.get("stream-open-filename")
            assert mpv.get("stream-open-filename").startswith("edl://")
            audio = [t for t in mpv.get("track-list") if t["type"] == "audio"]
            assert len(audio) == (2 if all_formats else 1)
            playing = mpv.get("current-tracks/audio/id")
            mpv.command("script-message-to", "qwen3asr", "generate")
            assert wait_for(lambda: runs(log), 20, mpv)
            first = runs(log)[0]
            # the best audio first (the hook lists formats best first): the site's requested one, main.m4a
            heard = "main.m4a" if playing == audio[0]["id"] else "dub.m4a"
            assert first[1] == f"{server.url}/{heard}" and "--audio-track" not in first
            assert first[first.index("--user-agent") + 1] == "SiteAgent/2.0"
            assert "Referer: https://site.example/watch" in first
            if not all_formats:
                return
            other = next(t["id"] for t in audio if t["id"] != playing)
            mpv.command("set", "aid", str(other))
            assert wait_for(lambda: len(runs(log)) == 2, 20, mpv)
            assert runs(log)[1][1] == f"{server.url}/{'dub.m4a' if heard == 'main.m4a' else 'main.m4a'}"
        finally:
            mpv.close()


FRAGMENTED_YT_DLP = """#!{python}
# A stand-in for yt-dlp whose audio format comes in DASH fragments (protocol http_dash_segments: an
# initialisation segment without a duration, then fragments with theirs), as some sites send it.
import json, sys
base, names, muxed, title = {base!r}, {names!r}, {muxed!r}, {title!r}
headers = {{"User-Agent": "SiteAgent/2.0", "Referer": "https://site.example/watch"}}
frags = [{{"url": f"{{base}}/{{names[0]}}"}}] + [{{"url": f"{{base}}/{{n}}", "duration": 4.0}} for n in names[1:]]
audio = {{"format_id": "a", "url": f"{{base}}/a.mpd", "manifest_url": f"{{base}}/a.mpd", "ext": "m4a",
         "acodec": "mp4a.40.2", "vcodec": "none", "asr": 16000, "abr": 64, "tbr": 64,
         "protocol": "http_dash_segments", "fragments": frags, "http_headers": headers}}
video = {{"format_id": "v", "url": f"{{base}}/video.mp4", "ext": "mp4", "vcodec": "mp4v.20.3", "acodec": "none",
         "width": 160, "height": 120, "fps": 10, "vbr": 100, "tbr": 100, "protocol": "http", "http_headers": headers}}
requested = [video, audio] if muxed else [audio]
print(json.dumps({{"id": "abc", "title": title, "duration": 40, "webpage_url": sys.argv[-1],
                  "extractor": "fake", "formats": requested, "requested_formats": requested,
                  "http_headers": headers}}))
"""


@pytest.mark.parametrize(
    ("muxed", "title", "name"),
    [
        (False, "A talk", "A talk"),
        # a long title in CJK: 80 bytes at most, never half a character (26 of 60 characters, 78 bytes)
        (True, "字幕" * 30, "字幕" * 13),
    ],
    ids=["audio alone", "beside a video format"],
)
def test_a_format_sent_in_fragments_is_transcribed(models, tmp_path, muxed, title, name):
    """mpv's ytdl hook joins a fragmented format into an EDL track (player/lua/ytdl_hook.lua,
    edl_track_joined: `!mp4_dash,init=...` and each fragment with its length): the whole opened EDL when it
    is the only format, nested in a stream of the formats' EDL beside a video. The script lists the fragments
    in a playlist in its temporary folder, and the engine fetches them with the site's headers (ffmpeg would
    not send them for a local playlist's segments) and transcribes what is heard."""
    from tests.http_media import MediaServer
    from tests.media import ffmpeg
    from tests.test_media_cli import dash_fragments

    served, _, names = dash_fragments(tmp_path)
    folder = None
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=40", "-c:v", "mpeg4",
           str(served / "video.mp4"))  # fmt: skip
    with MediaServer(served) as server:
        ytdl = tmp_path / "yt-dlp"
        ytdl.write_text(
            FRAGMENTED_YT_DLP.format(
                python=sys.executable, base=server.url, names=names, muxed=muxed, title=title
            )
        )
        ytdl.chmod(0o755)
        mpv = Mpv(
            tmp_path / "mpv.sock",
            f"--script={script_path()}",
            f"--script-opts={tiny_engine_opts(models)},qwen3asr-from_position=no,ytdl_hook-ytdl_path={ytdl}",
        )
        try:
            mpv.command("loadfile", f"ytdl://{server.url}/watch?v=abc")
            assert wait_for(lambda: mpv.get("duration"), 30, mpv), mpv.get("stream-open-filename")
            opened = mpv.get("stream-open-filename")
            assert (
                opened.startswith("edl://") and "!mp4_dash" in opened and ("!new_stream" in opened) == muxed
            )
            mpv.command("script-message-to", "qwen3asr", "generate")
            ended = ("qwen3asr-done", "qwen3asr-failed", "qwen3asr-refused")
            assert wait_for(lambda: any(mpv.messages(m) for m in ended), 120, mpv)
            assert mpv.messages("qwen3asr-done"), [mpv.messages(m) for m in ended]
            output = Path(mpv.messages("qwen3asr-done")[0][0])
            assert output.name == f"{name}.srt"  # named after what is playing
            cues = pysubs2.load(str(output))
            assert cues and cues[-1].end > 30_000  # the whole format, all its fragments
            folder = output.parent
            assert (folder / f"{name}.m3u8").exists()
            engine = [r for r in server.seen if r["path"].lstrip("/").startswith("frag-")]
            assert engine and all(r.get("user-agent") == "SiteAgent/2.0" for r in server.seen)
            assert all(r.get("referer") == "https://site.example/watch" for r in server.seen)
        finally:
            mpv.close()
    assert folder is not None and not folder.exists()  # the list goes with the subtitles when mpv quits


def test_cookies_the_ytdl_hook_keeps_in_memory_reach_the_engine(video, tmp_path):
    """Newer mpv's ytdl hook hands a site's cookies to mpv as cookies-file=memory:// (Netscape format;
    player/lua/ytdl_hook.lua): the engine's ffmpeg cannot read that, so the script sends the cookies for the
    media's host as a Cookie header (others' stay out)."""
    from tests.http_media import MediaServer
    from tests.media import ffmpeg

    served = tmp_path / "www"
    served.mkdir()
    ffmpeg("-i", str(video), "-c", "copy", "-movflags", "+faststart", str(served / "film.mp4"))
    jar = "\n".join([
        "# Netscape HTTP Cookie File",
        "127.0.0.1\tFALSE\t/\tFALSE\t0\tsession\t42",
        "#HttpOnly_.127.0.0.1\tTRUE\t/\tFALSE\t0\ttoken\tabc",
        ".other.example\tTRUE\t/\tFALSE\t0\tnot\tmine",
    ])  # fmt: skip
    command, log = fake_engine(tmp_path, "hang")
    with MediaServer(served) as server:
        mpv = Mpv(tmp_path / "mpv.sock", f"--script={script_path()}", f"--script-opts=qwen3asr-command={command}",
                  "--ytdl=no", "--cookies=yes")  # fmt: skip
        try:
            mpv.command("set", "cookies-file", f"memory://{jar}")
            mpv.command("loadfile", f"{server.url}/film.mp4")
            assert wait_for(lambda: mpv.get("duration"), 20, mpv)
            mpv.command("script-message-to", "qwen3asr", "generate")
            assert wait_for(lambda: runs(log), 20, mpv)
        finally:
            mpv.close()
    argv = runs(log)[0]
    headers = [argv[i + 1] for i, a in enumerate(argv) if a == "--http-header"]
    assert "Cookie: session=42; token=abc" in headers and not any("not=mine" in h for h in headers)


def feed(mpv: Mpv, data: bytes, seconds: float = 0.0) -> threading.Thread:
    """Write `data` into mpv's standard input from a thread over about `seconds`, then close it (a pipe that
    ends)."""

    def write() -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            pieces = range(0, len(data), 16384)
            for at in pieces:
                mpv.proc.stdin.write(data[at : at + 16384])
                mpv.proc.stdin.flush()
                time.sleep(seconds / len(pieces))
            mpv.proc.stdin.close()

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def piped(tmp_path_factory) -> bytes:
    """40 s of video with speech-like audio as an MPEG-TS stream, as a pipe would carry it (2 Mbit/s: mpv's
    recorder writes in 256 KiB steps, about a second of it)."""
    from tests.media import ffmpeg

    folder = tmp_path_factory.mktemp("pipe")
    wav = write_wav(folder / "a.wav", speech_like(16_000 * 40, seed=13))
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=40", "-i", str(wav), "-c:v", "mpeg4",
           "-b:v", "2M", "-c:a", "aac", "-b:a", "64k", "-f", "mpegts", str(folder / "a.ts"))  # fmt: skip
    return (folder / "a.ts").read_bytes()


def test_a_pipe_is_transcribed_from_mpvs_recording_of_it(piped, tmp_path):
    """Standard input cannot be read twice: the script has mpv record what it reads (dump-cache, continuous;
    DOCS/man/input.rst) into the temporary folder, and the engine follows that growing file (--follow, no
    --resume) with its times moved to where the recording began (--time-offset)."""
    command, log = fake_engine(tmp_path, "hang")
    mpv = Mpv(
        tmp_path / "mpv.sock",
        f"--script={script_path()}",
        f"--script-opts=qwen3asr-command={command},qwen3asr-live_wait=4",
        "--keep-open=yes",
        stdin=subprocess.PIPE,
    )
    try:
        mpv.command("loadfile", "-")
        writer = feed(mpv, piped, seconds=6.0)  # the pipe's data arrives over 6 s
        assert wait_for(lambda: [t for t in mpv.get("track-list") or [] if t["type"] == "audio"], 20, mpv)
        mpv.command("set", "pause", "no")
        mpv.command("script-message-to", "qwen3asr", "generate")
        assert wait_for(lambda: runs(log), 20, mpv)
        argv = runs(log)[0]
        recording = Path(argv[1])
        assert recording.name == "stream.mkv" and recording.parent.name.startswith("qwen3asr-mpv-")
        assert argv[argv.index("--follow") + 1] == "4" and "--resume" not in argv and "--start" not in argv
        assert float(argv[argv.index("--time-offset") + 1]) < 2.0  # from (about) where playback was
        size = recording.stat().st_size
        # it grows as mpv reads on (the recorder writes in 256 KiB steps, and all of it when the pipe ends)
        assert wait_for(lambda: recording.stat().st_size > size, 20, mpv)
        writer.join(30)
    finally:
        mpv.close()
    assert not recording.exists() and not recording.parent.exists()  # the recording goes with mpv


def test_a_live_http_stream_is_recorded_too(piped, tmp_path):
    """A stream served as it is made (no length, no byte ranges: a live broadcast) cannot seek in mpv: the
    script records it like a pipe instead of handing the engine a URL it would read from the start."""
    import http.server

    class Live(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.end_headers()
            with contextlib.suppress(OSError):
                for at in range(0, len(piped), 65536):
                    self.wfile.write(piped[at : at + 65536])
                    self.wfile.flush()
                    time.sleep(0.05)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Live)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    command, log = fake_engine(tmp_path, "hang")
    out = tmp_path / "saved"
    out.mkdir()
    (out / "live.ts.srt").write_text("a subtitle of the viewer's own", encoding="utf-8")
    opts = f"qwen3asr-command={command},qwen3asr-out_dir={out}"
    mpv = Mpv(tmp_path / "mpv.sock", f"--script={script_path()}", f"--script-opts={opts}")
    try:
        mpv.command("loadfile", f"http://127.0.0.1:{server.server_address[1]}/live.ts")
        assert wait_for(lambda: [t for t in mpv.get("track-list") or [] if t["type"] == "audio"], 20, mpv)
        assert mpv.get("seekable") is False  # (its "duration" only estimates what arrived so far)
        mpv.command("set", "pause", "no")
        mpv.command("script-message-to", "qwen3asr", "generate")
        assert wait_for(lambda: runs(log), 20, mpv)
        argv = runs(log)[0]
        assert (
            Path(argv[1]).name == "live.ts.mkv" and "--follow" in argv and "--time-offset" in argv
        )  # its title
        assert "--user-agent" not in argv  # the engine reads the recording, not the network
        # the recording is in the script's own folder; the subtitles go to out_dir, never over a file there
        assert argv[argv.index("--output-dir") + 1] == str(out) and "--overwrite" not in argv
        assert Path(argv[1]).parent != out
    finally:
        mpv.close()
        server.shutdown()
    assert (out / "live.ts.srt").read_text(encoding="utf-8") == "a subtitle of the viewer's own"


def test_a_pipe_gets_subtitles_with_the_engine(models, piped, tmp_path):
    mpv = Mpv(
        tmp_path / "mpv.sock",
        f"--script={script_path()}",
        f"--script-opts={tiny_engine_opts(models)},qwen3asr-live_wait=3",
        "--keep-open=yes",
        "--speed=8",
        stdin=subprocess.PIPE,
    )
    try:
        mpv.command("loadfile", "-")
        writer = feed(mpv, piped)
        assert wait_for(lambda: [t for t in mpv.get("track-list") or [] if t["type"] == "audio"], 20, mpv)
        mpv.command("set", "pause", "no")
        mpv.command("script-message-to", "qwen3asr", "generate")
        assert wait_for(lambda: mpv.messages("qwen3asr-done"), 120, mpv), mpv.messages("qwen3asr-failed")
        output = Path(mpv.messages("qwen3asr-done")[0][0])
        cues = pysubs2.load(str(output))
        assert output.name == "stream.srt" and cues and cues[-1].end > 30_000  # the whole 40 s pipe
        sub = [t for t in mpv.get("track-list") if t["type"] == "sub"][0]
        assert sub["selected"] and sub["external-filename"] == str(output)
        writer.join(30)
    finally:
        mpv.close()


def test_install_and_uninstall(tmp_path, monkeypatch):
    monkeypatch.setenv("MPV_HOME", str(tmp_path / "mpv"))
    host = MpvHost()
    conf = tmp_path / "mpv" / "script-opts" / "qwen3asr.conf"
    assert "installed" in host.install()
    assert (tmp_path / "mpv" / "scripts" / "qwen3asr.lua").read_bytes() == script_path().read_bytes()
    assert "command=" in conf.read_text() and "qwen3asr" in conf.read_text()
    conf.write_text("language=ja\n")
    assert "kept your" in host.install()
    assert conf.read_text() == "language=ja\n"
    assert "removed" in host.uninstall()
    assert not (tmp_path / "mpv" / "scripts" / "qwen3asr.lua").exists() and not conf.exists()


@pytest.mark.parametrize("codepage", ["cp1252", "cp936"])
def test_events_reach_mpv_as_utf8_whatever_the_console_code_page(tmp_path, codepage):
    """On Windows the engine's stdout is a pipe in the ANSI code page (cp1252 in Western Europe, cp936 in
    China); forced here through PYTHONIOENCODING. Text outside it (CJK, emoji) and a non-ASCII folder must
    still reach mpv's JSON parser intact: the subtitle shows the text and the track is the written file."""
    folder = tmp_path / "映画 ü"
    folder.mkdir()
    film = video_with_audio(folder / "片.mp4", write_wav(folder / "a.wav", speech_like(16_000)))
    said = "你好 🎬 café"
    film.with_suffix(".txt").write_text(said, encoding="utf-8")
    env = {
        k: v for k, v in os.environ.items() if k != "QWEN3ASR_LOAD_PLUGINS"
    }  # the example plugin's echo engine
    env["PYTHONIOENCODING"] = codepage
    events = subprocess.run(
        [
            QWEN3ASR,
            "transcribe",
            str(film),
            "--engine",
            "echo",
            "--json-progress",
            "--output-dir",
            str(tmp_path),
        ],
        capture_output=True,
        env=env,
    )
    assert events.returncode == 0, events.stderr.decode(errors="replace")
    parsed = [json.loads(line.decode("utf-8")) for line in events.stdout.splitlines()]
    assert [said in e["text"] for e in parsed if e["event"] == "segment"] == [True]
    assert [e["input"] for e in parsed if e["event"] == "file"] == [str(film)]
    opts = f"qwen3asr-command={QWEN3ASR},qwen3asr-extra_args=--engine echo,qwen3asr-from_position=no"
    mpv = Mpv(tmp_path / "mpv.sock", f"--script={script_path()}", f"--script-opts={opts}", env=env)
    try:
        mpv.command("loadfile", str(film))
        assert wait_for(lambda: mpv.get("duration"), 20, mpv)
        mpv.command("script-message-to", "qwen3asr", "generate")
        assert wait_for(lambda: mpv.messages("qwen3asr-done"), 60, mpv), mpv.messages("qwen3asr-failed")
        mpv.command("seek", 0.5, "absolute+exact")
        assert wait_for(lambda: said in (mpv.get("sub-text") or ""), 10, mpv), mpv.get("sub-text")
        track = [t for t in mpv.get("track-list") if t["type"] == "sub"][0]
        assert Path(track["external-filename"]).name == "片.srt"
    finally:
        mpv.close()


FAKE_ENGINE = """#!{python}
# A stand-in for `qwen3asr` that records how the mpv script ran it, then does what MODE says.
import json, os, sys, time
with open({log!r}, "a", encoding="utf-8") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
with open({log!r} + ".pids", "a", encoding="utf-8") as f:
    f.write(f"{{os.getpid()}}\\n")
mode = {mode!r}
if mode == "updates":  # three updates of a growing subtitle, each after the test creates go<k>, then done
    folder = sys.argv[sys.argv.index("--output-dir") + 1]
    out = folder + "/film.srt"
    for k in range(4):
        with open(out + ".tmp", "w", encoding="utf-8") as f:
            f.writelines(f"{{i + 1}}\\n00:00:0{{i}},000 --> 00:00:0{{i}},900\\nline {{i + 1}}\\n\\n" for i in range(k + 1))
        os.replace(out + ".tmp", out)
        event = {{"event": "update", "output": out, "segments": k + 1}} if k < 3 else {{"event": "output", "outputs": [out]}}
        print(json.dumps(event), flush=True)
        while k < 3 and not os.path.exists(folder + f"/../go{{k}}"):
            time.sleep(0.05)
    sys.exit(0)
if mode == "ranges":  # the first 30 s of the --start position's range are done; then it works on
    start = float(sys.argv[sys.argv.index("--start") + 1]) if "--start" in sys.argv else 0.0
    print(json.dumps({{"event": "file", "input": sys.argv[2]}}), flush=True)  # the model is loaded
    print(json.dumps({{"event": "ranges", "done": [[0.0, 30.0], [start, start + 30.0]]}}), flush=True)
    time.sleep(60)
if mode == "finish":  # the whole subtitle at once, the language heard, done
    folder = sys.argv[sys.argv.index("--output-dir") + 1]
    os.makedirs(folder, exist_ok=True)
    out = os.path.join(folder, "film.srt")
    with open(out, "w", encoding="utf-8") as f:
        f.write("1\\n00:00:01,000 --> 00:00:02,000\\nHallo Welt\\n\\n")
    print(json.dumps({{"event": "output", "outputs": [out], "language": "German", "language_code": "de"}}), flush=True)
    sys.exit(0)
if mode == "fail":
    print(json.dumps({{"event": "error", "input": sys.argv[2], "message": "film.mkv: has no audio stream"}}), flush=True)
    sys.exit(1)
time.sleep(30)
"""


def fake_engine(tmp_path: Path, mode: str) -> tuple[Path, Path]:
    log = tmp_path / f"{mode}.log"
    script = tmp_path / f"fake-{mode}"
    script.write_text(FAKE_ENGINE.format(python=sys.executable, log=str(log), mode=mode))
    script.chmod(0o755)
    return script, log


def runs(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_a_failure_shows_the_engine_reason(video, tmp_path):
    command, _ = fake_engine(tmp_path, "fail")
    mpv = Mpv(tmp_path / "mpv.sock", f"--script={script_path()}", f"--script-opts=qwen3asr-command={command}")
    try:
        mpv.command("loadfile", str(video))
        assert wait_for(lambda: mpv.get("duration"), 20, mpv)
        mpv.command("script-message-to", "qwen3asr", "generate")
        assert wait_for(lambda: mpv.messages("qwen3asr-failed"), 20, mpv)
        assert mpv.messages("qwen3asr-failed") == [["film.mkv: has no audio stream"]]
    finally:
        mpv.close()


def test_the_audio_track_playing_is_the_one_transcribed(tmp_path):
    from tests.media import two_track_mkv

    first = write_wav(tmp_path / "first.wav", speech_like(16_000 * 8, seed=1))
    second = write_wav(tmp_path / "second.wav", speech_like(16_000 * 8, seed=2))
    external = write_wav(tmp_path / "dub ü.wav", speech_like(16_000 * 8, seed=3))
    film = two_track_mkv(tmp_path / "film.mkv", first, second)
    command, log = fake_engine(tmp_path, "hang")
    mpv = Mpv(
        tmp_path / "mpv.sock",
        f"--script={script_path()}",
        f"--script-opts=qwen3asr-command={command},qwen3asr-from_position=no",
        f"--audio-file={external}",
    )
    try:
        mpv.command("loadfile", str(film))
        assert wait_for(lambda: len([t for t in mpv.get("track-list") if t["type"] == "audio"]) == 3, 20, mpv)
        audio = [t for t in mpv.get("track-list") if t["type"] == "audio"]
        assert [t.get("external", False) for t in audio] == [False, False, True]  # mpv ids 1, 2, 3
        mpv.command("set", "aid", "2")  # the file's second audio stream
        assert wait_for(lambda: mpv.get("current-tracks/audio/id") == 2, 10, mpv)
        mpv.command("script-message-to", "qwen3asr", "generate")
        assert wait_for(lambda: runs(log), 20, mpv)
        assert runs(log)[0][1] == str(film)
        assert (
            runs(log)[0][runs(log)[0].index("--audio-track") + 1] == "1"
        )  # ffmpeg's 0:a:1, not mpv's id - 1
        mpv.command("set", "aid", "3")  # switching to the external file starts again on it
        assert wait_for(lambda: len(runs(log)) == 2, 20, mpv)
        assert runs(log)[1][1] == str(external) and "--audio-track" not in runs(log)[1]
    finally:
        mpv.close()


def alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, exited but not yet reaped by mpv, counts as stopped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_engine_stops_when_the_file_ends_or_mpv_quits(video, tmp_path):
    """The engine runs for the file being watched: loading another file or quitting mpv stops it (the
    script's end-file and shutdown handlers abort the job, and mpv itself kills a playback_only subprocess when
    playback ends: player/command.c, subprocess commands), so no transcription goes on unseen. Either alone
    passes; removing both fails it."""
    command, log = fake_engine(tmp_path, "hang")
    pids = Path(f"{log}.pids")
    mpv = Mpv(tmp_path / "mpv.sock", f"--script={script_path()}", f"--script-opts=qwen3asr-command={command}")
    try:
        mpv.command("loadfile", str(video))
        assert wait_for(lambda: mpv.get("duration"), 20, mpv)
        mpv.command("script-message-to", "qwen3asr", "generate")
        assert wait_for(lambda: pids.exists() and pids.read_text().count("\n") == 1, 20, mpv)
        first = int(pids.read_text().split()[0])
        assert alive(first)
        mpv.command("loadfile", str(video))  # another file (here the same one again): end-file
        assert wait_for(lambda: not alive(first), 10, mpv)
        assert wait_for(lambda: mpv.get("duration"), 20, mpv)
        mpv.command("script-message-to", "qwen3asr", "generate")
        assert wait_for(lambda: pids.read_text().count("\n") == 2, 20, mpv)
        second = int(pids.read_text().split()[1])
        assert alive(second)
    finally:
        mpv.close()
    assert mpv.proc.returncode is not None
    deadline = time.monotonic() + 10
    while alive(second) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(second), "the engine outlived mpv"


def test_saved_next_to_the_video_as_players_name_it(video, tmp_path):
    """save_next_to_video: the finished subtitle is copied beside the video as <name>.<lang>.srt (the name
    players load, with its language), replacing only a copy this script saved; a file someone else made
    there stays as it was."""
    import shutil as sh

    film = tmp_path / "film.mp4"
    sh.copy(video, film)
    command, _ = fake_engine(tmp_path, "finish")
    opts = f"qwen3asr-command={command},qwen3asr-save_next_to_video=yes"
    mpv = Mpv(tmp_path / "mpv.sock", f"--script={script_path()}", f"--script-opts={opts}")
    target = tmp_path / "film.de.srt"
    try:
        mpv.command("loadfile", str(film))
        assert wait_for(lambda: mpv.get("duration"), 20, mpv)
        mpv.command("script-message-to", "qwen3asr", "generate")
        assert wait_for(lambda: mpv.messages("qwen3asr-saved"), 20, mpv)
        assert mpv.messages("qwen3asr-saved") == [[str(target)]]
        assert "Hallo Welt" in target.read_text(encoding="utf-8")
        target.write_text("1\n00:00:01,000 --> 00:00:02,000\nstale copy of ours\n\n", encoding="utf-8")
        mpv.command("stop")
        assert wait_for(lambda: mpv.get("path") is None, 20, mpv)  # unloaded, so the next load is a new one
        mpv.command("loadfile", str(film))  # again: our own copy is replaced
        assert wait_for(lambda: mpv.get("duration"), 20, mpv)
        mpv.command("script-message-to", "qwen3asr", "generate")
        assert wait_for(lambda: len(mpv.messages("qwen3asr-saved")) == 2, 20, mpv)
        assert "Hallo Welt" in target.read_text(encoding="utf-8")
    finally:
        mpv.close()
    # a new session: the file there is not known to be ours, so it stays
    target.write_text("my own subtitles", encoding="utf-8")
    mpv = Mpv(tmp_path / "mpv2.sock", f"--script={script_path()}", f"--script-opts={opts}")
    try:
        mpv.command("loadfile", str(film))
        assert wait_for(lambda: mpv.get("duration"), 20, mpv)
        mpv.command("script-message-to", "qwen3asr", "generate")
        assert wait_for(lambda: mpv.messages("qwen3asr-not-saved"), 20, mpv)
        assert target.read_text(encoding="utf-8") == "my own subtitles"
        assert not list(tmp_path.glob("*.partial"))
    finally:
        mpv.close()


def test_the_viewers_track_choice_survives_the_updates(video, tmp_path):
    """mpv's sub-reload would re-select the track and drop its title at every update (command.c,
    cmd_track_reload): the viewer's choice (subtitles off, ours as the secondary track) must stay."""
    command, log = fake_engine(tmp_path, "updates")
    out_dir = tmp_path / "out"
    opts = f"qwen3asr-command={command},qwen3asr-out_dir={out_dir}"
    mpv = Mpv(tmp_path / "mpv.sock", f"--script={script_path()}", f"--script-opts={opts}")

    def ours():
        return [t for t in mpv.get("track-list") if t["type"] == "sub" and t.get("title") == "Qwen3-ASR"]

    def step(k: int) -> None:  # let the engine write its next update, and wait for the script to show it
        (tmp_path / f"go{k}").touch()
        assert wait_for(
            lambda: len(mpv.messages("qwen3asr-update")) >= k + 2 or mpv.messages("qwen3asr-done"), 20, mpv
        )

    try:
        out_dir.mkdir()
        mpv.command("loadfile", str(video))
        assert wait_for(lambda: mpv.get("duration"), 20, mpv)
        mpv.command("script-message-to", "qwen3asr", "generate")
        assert wait_for(lambda: mpv.messages("qwen3asr-update"), 20, mpv)
        assert mpv.get("sid") == ours()[0]["id"]  # the first update selects the new track
        mpv.command("set", "sid", "no")  # the viewer turns subtitles off while more arrive
        step(0)
        assert mpv.get("sid") is False and len(ours()) == 1  # still off; one track, still titled
        mpv.command("set", "secondary-sid", str(ours()[0]["id"]))
        step(1)
        assert mpv.get("sid") is False and len(ours()) == 1 and mpv.get("secondary-sid") == ours()[0]["id"]
        mpv.command("set", "secondary-sid", "no")
        mpv.command("set", "sid", str(ours()[0]["id"]))
        step(2)
        assert wait_for(lambda: mpv.messages("qwen3asr-done"), 20, mpv)
        assert mpv.get("sid") == ours()[0]["id"] and mpv.get("secondary-sid") is False and len(ours()) == 1
        track = ours()[0]
        assert track["external-filename"] == str(out_dir / "film.srt")
        mpv.command("set", "sid", "no")
        mpv.command("script-message-to", "qwen3asr", "generate")  # a second press: the same track, no new run
        assert wait_for(lambda: len(mpv.messages("qwen3asr-done")) == 2, 10, mpv)
        assert len(runs(log)) == 1 and len(ours()) == 1 and mpv.get("sid") == track["id"]
    finally:
        mpv.close()


def test_a_seek_outside_what_is_done_restarts_there_and_keeps_the_rest(tmp_path):
    """mpv's playback-restart after a seek: inside the ranges done, or just ahead of the job's front, nothing
    happens; elsewhere the job starts again a second ahead of the new position, resuming what is done."""
    film = video_with_audio(
        tmp_path / "long film.mp4", write_wav(tmp_path / "a.wav", speech_like(16_000 * 300))
    )
    command, log = fake_engine(tmp_path, "ranges")
    opts = f"qwen3asr-command={command}"
    mpv = Mpv(tmp_path / "mpv.sock", f"--script={script_path()}", f"--script-opts={opts}")

    def seek(position: float) -> None:
        mpv.command("seek", position, "absolute")
        assert wait_for(lambda: abs((mpv.get("time-pos") or 0) - position) < 1, 10, mpv)
        mpv.pump(1.0)  # time for the script to act on the playback-restart

    try:
        mpv.command("loadfile", str(film))
        assert wait_for(lambda: mpv.get("duration"), 20, mpv)
        mpv.command("script-message-to", "qwen3asr", "generate")
        assert wait_for(lambda: runs(log), 20, mpv)
        mpv.pump(1.0)
        assert "--resume" in runs(log)[0] and "--start" not in runs(log)[0]
        seek(20)  # done
        seek(45)  # not done, but the job gets there with its next chunk
        assert len(runs(log)) == 1 and not mpv.messages("qwen3asr-restarted")
        seek(200)
        assert wait_for(lambda: len(runs(log)) == 2, 10, mpv)
        second = runs(log)[1]
        assert (
            float(second[second.index("--start") + 1]) == pytest.approx(201, abs=1) and "--resume" in second
        )
        seek(10)  # done by the first job: kept
        seek(215)  # the second job's own range
        assert len(runs(log)) == 2
        seek(100)  # behind the second job's start and not done
        assert wait_for(lambda: len(runs(log)) == 3, 10, mpv)
        third = runs(log)[2]
        assert float(third[third.index("--start") + 1]) == pytest.approx(101, abs=1)
        assert [float(args[0]) for args in mpv.messages("qwen3asr-restarted")] == pytest.approx(
            [201, 101], abs=1
        )
    finally:
        mpv.close()


def test_a_seek_with_the_engine_keeps_the_cues_made_and_fills_the_rest(models, tmp_path):
    film = video_with_audio(
        tmp_path / "film.mp4", write_wav(tmp_path / "a.wav", speech_like(16_000 * 240, seed=4))
    )
    opts = tiny_engine_opts(models)
    mpv = Mpv(tmp_path / "mpv.sock", f"--script={script_path()}", f"--script-opts={opts}")

    def cues():
        track = [t for t in mpv.get("track-list") if t["type"] == "sub"][0]
        return [(e.start, e.end, e.plaintext) for e in pysubs2.load(track["external-filename"])]

    try:
        mpv.command("loadfile", str(film))
        assert wait_for(lambda: mpv.get("duration"), 20, mpv)
        mpv.command("script-message-to", "qwen3asr", "generate")
        assert wait_for(lambda: mpv.messages("qwen3asr-update"), 60, mpv)
        first = cues()[:-1]  # the first chunk's cues (the last may join words of the next chunk later)
        assert first
        mpv.command("seek", 180, "absolute")
        assert wait_for(lambda: mpv.messages("qwen3asr-restarted"), 10, mpv)
        assert wait_for(
            lambda: any(c[0] >= 181_000 for c in cues()), 60, mpv
        )  # subtitles where the viewer is
        assert wait_for(lambda: mpv.messages("qwen3asr-done"), 120, mpv), mpv.messages("qwen3asr-failed")
        final = cues()
        assert set(first) <= set(final)  # nothing made before the seek is lost
        assert final[0][0] < 30_000 and final[-1][1] > 230_000 and any(90_000 < c[0] < 150_000 for c in final)
    finally:
        mpv.close()


def test_install_honours_portable_config_on_windows(tmp_path, monkeypatch):
    """mpv.exe with a portable_config folder beside it reads its config from there only (mpv.rst, FILES ON
    WINDOWS): the script must go there, not to %APPDATA%\\mpv."""
    from qwen3asr_plugin.hosts import mpv as host

    program = tmp_path / "mpv ü"
    (program / "portable_config").mkdir(parents=True)
    exe = program / "mpv.exe"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATHEXT", ".exe")  # shutil.which's Windows rules on this file system
    monkeypatch.delenv("MPV_HOME", raising=False)
    monkeypatch.setenv("APPDATA", str(tmp_path / "appdata"))
    monkeypatch.setenv("PATH", f"{program}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(sys, "platform", "win32")
    assert "installed" in MpvHost().install()
    assert (program / "portable_config" / "scripts" / "qwen3asr.lua").is_file()
    assert not (tmp_path / "appdata").exists()
    (program / "portable_config").rename(program / "elsewhere")
    assert host.mpv_config_dir() == tmp_path / "appdata" / "mpv"
