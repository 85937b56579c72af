"""`qwen3asr transcribe` end to end on generated media with the real ffmpeg."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pysubs2
import pytest

from qwen3asr_plugin.engine.errors import AudioError
from qwen3asr_plugin.engine.media import probe, read_blocks
from tests.fixtures.trained import speech as trained_speech
from tests.media import two_track_mkv, video_with_audio, write_wav
from tests.parity import speech_like

QWEN3ASR = str(Path(sys.executable).parent / "qwen3asr")


def transcribe(models, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [
        QWEN3ASR,
        "transcribe",
        "--model",
        str(models("tiny")),
        "--aligner",
        str(models("aligner-tiny")),
        "--device",
        "cpu",
        "--no-vad",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("media")
    # espeak-ng speech (12 s of it), so that the track with speech has speech for VAD to find
    said = trained_speech.talk([("English", 12)], seed=2).audio[: 16_000 * 12]
    speech = write_wav(folder / "speech.wav", said)
    silence = write_wav(folder / "silence.wav", np.zeros(16_000 * 12, np.float32))
    return {
        "mp4": video_with_audio(folder / "clip one.mp4", speech),
        "mkv": two_track_mkv(folder / "two tracks ü.mkv", silence, speech),
        "folder": folder,
    }


def test_probe_and_blocks(media):
    info = probe(media["mkv"])
    assert info.audio_streams == 2 and info.video_streams == 1
    assert info.duration == pytest.approx(12.0, abs=0.2)
    blocks = list(read_blocks(media["mkv"], audio_track=1, block_seconds=5))
    assert [b.size for b in blocks[:2]] == [80_000, 80_000]
    assert np.abs(np.concatenate(blocks)).max() > 0.1
    assert np.abs(np.concatenate(list(read_blocks(media["mkv"], audio_track=0)))).max() < 1e-3
    with pytest.raises(AudioError, match="has 2 audio stream"):
        list(read_blocks(media["mkv"], audio_track=2))


def test_mp4_to_every_format(models, media, tmp_path):
    run = transcribe(models, str(media["mp4"]), "--format", "all", "--output-dir", str(tmp_path), "--quiet")
    assert run.returncode == 0, run.stderr
    stem = "clip one"
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(f"{stem}.{f}" for f in ("srt", "vtt", "ass", "json", "txt", "lrc"))
    data = json.loads((tmp_path / f"{stem}.json").read_text(encoding="utf-8"))
    assert data["segments"] and all(s["words"] for s in data["segments"])
    assert data["duration"] == pytest.approx(12.0, abs=0.2)
    for fmt in ("srt", "vtt", "ass"):
        subs = pysubs2.load(str(tmp_path / f"{stem}.{fmt}"))
        assert len(subs) == len(data["cues"]) > 0
        assert all(e.end > e.start for e in subs)
        assert all(a.end <= b.start for a, b in zip(subs, subs[1:], strict=False))
        assert subs[-1].end <= 12_700  # within the audio, plus at most the linger


def test_mkv_second_audio_track(models, media, tmp_path):
    silent = transcribe(
        models, str(media["mkv"]), "-o", str(tmp_path / "a"), "--vad", "--format", "json", "--quiet"
    )
    spoken = transcribe(
        models,
        str(media["mkv"]),
        "-o",
        str(tmp_path / "b"),
        "--vad",
        "--audio-track",
        "1",
        "--format",
        "json",
        "--quiet",
    )
    assert silent.returncode == 0 and spoken.returncode == 0, silent.stderr + spoken.stderr
    name = "two tracks ü.json"
    assert json.loads((tmp_path / "a" / name).read_text(encoding="utf-8"))["segments"] == []
    assert json.loads((tmp_path / "b" / name).read_text(encoding="utf-8"))["segments"]


def test_next_to_input_no_silent_overwrite_and_json_progress(models, media, tmp_path):
    src = tmp_path / "talk.wav"
    src.write_bytes((media["folder"] / "speech.wav").read_bytes())
    first = transcribe(models, str(src), "--json-progress")
    assert first.returncode == 0, first.stderr
    events = [json.loads(line) for line in first.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert events[0] == {"event": "status", "message": "loading the model"}
    assert kinds[1] == "file" and kinds[-2:] == ["output", "done"] and "progress" in kinds
    assert events[-1]["rtf"] > 0 and events[-1]["failed"] == 0
    progress = [e["percent"] for e in events if e["event"] == "progress"]
    assert progress == sorted(progress) and progress[-1] == pytest.approx(100.0, abs=1)
    srt = tmp_path / "talk.srt"
    before = srt.read_text(encoding="utf-8")
    srt.write_text("my own edits", encoding="utf-8")
    again = transcribe(models, str(src), "--quiet")
    assert again.returncode == 1 and "use --overwrite" in again.stderr
    assert srt.read_text(encoding="utf-8") == "my own edits"
    forced = transcribe(models, str(src), "--quiet", "--overwrite")
    assert forced.returncode == 0 and srt.read_text(encoding="utf-8") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["talk.srt", "talk.wav"]


def test_folder_input(models, media, tmp_path):
    run = transcribe(models, str(media["folder"]), "-o", str(tmp_path), "--format", "txt", "--quiet")
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["clip one.txt", "two tracks ü.txt", "speech.txt", "silence.txt"]
    )


def test_no_audio_stream_is_one_clear_line(models, tmp_path):
    from tests.media import ffmpeg

    video = tmp_path / "mute.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=2", "-c:v", "mpeg4", str(video))
    run = transcribe(models, str(video), "--quiet")
    assert run.returncode == 1
    assert f"{video}: has no audio stream" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "mute.srt").exists()


def test_batch_size_option(models, tmp_path):
    """--batch-size changes how chunks are grouped, never what is written; 0 is refused in one line. The f32
    decoder: on AVX-512 VNNI CPUs llama.cpp's q8_0 products for several sequences in one step round differently
    from one sequence's, and this random model's looping output flips on such near-ties (README, on `--batch-size`)."""
    wav = write_wav(tmp_path / "long.wav", speech_like(16_000 * 70))  # three chunks
    outputs = {}
    for size in ("1", "3"):
        out = tmp_path / f"b{size}"
        r = transcribe(
            models,
            str(wav),
            "--batch-size",
            size,
            "--no-align",
            "--decoder-quant",
            "f32",
            "-f",
            "json",
            "-o",
            str(out),
        )
        assert r.returncode == 0, r.stderr
        outputs[size] = json.loads((out / "long.json").read_text())["segments"]
    assert len(outputs["1"]) >= 2
    assert [s["text"] for s in outputs["1"]] == [s["text"] for s in outputs["3"]]
    r = transcribe(models, str(wav), "--batch-size", "0")
    assert r.returncode != 0 and "at least 1" in r.stderr


@pytest.mark.parametrize("stderr_to", ["file", "terminal"])
def test_bad_inputs_without_quiet_give_one_line_and_the_batch_goes_on(models, media, tmp_path, stderr_to):
    """As a script runs it (stderr to a file) and as a person does (stderr a terminal, with the progress bar):
    an unreadable input, whose length is unknown, is one error line and the next input is still written."""
    import os

    (tmp_path / "empty.mp4").touch()
    wav = write_wav(tmp_path / "talk.wav", speech_like(16_000 * 3))
    cmd = [
        QWEN3ASR,
        "transcribe",
        "--model",
        str(models("tiny")),
        "--no-align",
        "--device",
        "cpu",
        "--no-vad",
    ]
    cmd += [str(tmp_path / "empty.mp4"), str(wav), str(tmp_path / "missing.wav")]
    if stderr_to == "file":
        with open(tmp_path / "err.log", "w") as log:
            code = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=log).returncode
        err = (tmp_path / "err.log").read_bytes().decode("utf-8")
        assert "\r" not in err and "%|" not in err  # a log gets lines, not bar redraws
    else:
        import fcntl
        import struct
        import termios

        parent, child = os.openpty()
        fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
        run = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=child)
        os.close(child)
        chunks = []
        while True:
            try:
                data = os.read(parent, 4096)
            except OSError:  # the terminal closed with the process
                break
            if not data:
                break
            chunks.append(data)
        code = run.wait()
        os.close(parent)
        err = b"".join(chunks).decode("utf-8", "replace")
        assert "%|" in err  # the bar was drawn on the terminal
    assert code == 1 and "Traceback" not in err
    assert err.count("qwen3asr: error: ") == 2
    assert "empty.mp4: not a media file" in err and "missing.wav: no such file" in err
    assert (tmp_path / "talk.srt").exists() and not (tmp_path / "empty.srt").exists()
    assert "2 of 3 inputs failed" in err


def test_resume_goes_on_from_where_a_killed_run_stopped(models, tmp_path):
    """A player's run is killed (mpv does, on a seek) after its first chunk; the next run with --resume keeps
    that chunk's segments, decodes only the rest, and ends with the whole transcript."""
    wav = write_wav(tmp_path / "talk.wav", speech_like(16_000 * 75, seed=5))
    out = tmp_path / "out"
    common = [
        QWEN3ASR, "transcribe", str(wav), "--model", str(models("tiny")), "--aligner", str(models("aligner-tiny")),
        "--device", "cpu", "--no-vad", "--json-progress", "--progressive", "--resume", "--output-dir", str(out), "-f", "srt,json",
    ]  # fmt: skip
    first = subprocess.Popen([*common, "--start", "40"], stdout=subprocess.PIPE, text=True)
    starts = []
    for line in first.stdout:
        event = json.loads(line)
        starts += [event["start"]] if event["event"] == "segment" else []
        if event["event"] == "ranges" and any(a <= t < b for a, b in event["done"] for t in starts):
            first.terminate()  # SIGTERM, once a range with words in it is recorded
            break
    first.wait(30)
    state = json.loads((out / "talk.resume.json").read_text(encoding="utf-8"))
    [(a, b)] = state["done"]  # from 40 s, a first chunk of 5-10 s cut where it is quietest
    assert a == 40.0 and b <= 75.0 and state["source"] == str(wav)
    kept = [(s["start"], s["text"]) for s in state["segments"] if a <= s["start"] < b]
    assert kept
    assert (out / "talk.srt").exists()  # the progressive file stays with its state

    second = subprocess.run([*common, "--start", "10"], capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    events = [json.loads(line) for line in second.stdout.splitlines()]
    decoded = [e for e in events if e["event"] == "segment"]
    assert a == 40.0 and decoded and all(e["start"] <= a for e in decoded)  # only before 40 s: nothing twice
    ranges = [e["done"] for e in events if e["event"] == "ranges"]
    assert ranges[0] == [[a, b]] and [[10.0, b]] in ranges  # the kept range, then on from --start 10
    assert ranges[-1] == [[0.0, 75.0]]
    cues = pysubs2.load(str(out / "talk.srt"))
    # the second run's cues from the beginning and the first run's kept ones from 40 s (random weights say
    # nothing in some chunks, so no cue is promised near the end)
    assert cues[0].start < 10_000 and any(c.start >= 40_000 for c in cues)
    final = json.loads((out / "talk.json").read_text(encoding="utf-8"))["segments"]
    from qwen3asr_plugin.engine.writers import clean  # the json writer drops control characters

    assert {(t, clean(text)) for t, text in kept} <= {
        (s["start"], s["text"]) for s in final
    }  # kept as they were
    assert not (out / "talk.resume.json").exists()  # done: nothing left to resume


def test_a_url_is_transcribed_with_the_headers_given(models, tmp_path):
    from tests.http_media import MediaServer
    from tests.media import ffmpeg

    served = tmp_path / "www"
    served.mkdir()
    wav = write_wav(tmp_path / "a.wav", speech_like(16_000 * 40, seed=8))
    video_with_audio(tmp_path / "film.mp4", wav)
    ffmpeg(
        "-i", str(tmp_path / "film.mp4"), "-c", "copy", "-movflags", "+faststart", str(served / "my film.mp4")
    )
    out = tmp_path / "out"
    with MediaServer(served) as server:
        url = f"{server.url}/my%20film.mp4?token=abc"
        run = transcribe(
            models, url, "-o", str(out), "--start", "20", "--user-agent", "mpv 0.35.1",
            "--http-header", "Cookie: session=42", "--http-header", "Referer: https://example.org/",
        )  # fmt: skip
    assert run.returncode == 0, run.stderr
    cues = pysubs2.load(str(out / "my film.srt"))  # named from the URL's path
    assert cues and cues[-1].end > 30_000
    assert server.seen and all(r.get("user-agent") == "mpv 0.35.1" for r in server.seen)
    assert all(
        r.get("cookie") == "session=42" and r.get("referer") == "https://example.org/" for r in server.seen
    )
    assert any(
        r.get("range", "bytes=0-").split("=")[1].split("-")[0] != "0" for r in server.seen
    )  # --start seeks


def test_a_url_without_an_output_folder_lands_in_the_current_one(models, tmp_path):
    from tests.http_media import MediaServer

    served = tmp_path / "www"
    served.mkdir()
    write_wav(served / "clip.wav", speech_like(16_000 * 3))
    with MediaServer(served) as server:
        run = subprocess.run(
            [QWEN3ASR, "transcribe", f"{server.url}/clip.wav", "--model", str(models("tiny")), "--no-align",
             "--device", "cpu", "--no-vad", "--quiet"],
            capture_output=True, text=True, cwd=tmp_path,
        )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "clip.srt").is_file() and not (tmp_path / "http:").exists()


FAKE_YT_DLP = """#!{python}
# yt-dlp as the engine runs it (`yt-dlp --no-warnings --no-playlist -J -f bestaudio/best -- URL`): the page
# resolves to an audio file on the local server, which wants the site's own headers.
import json, sys
assert sys.argv[1:6] == ["--no-warnings", "--no-playlist", "-J", "-f", "bestaudio/best"], sys.argv
if "missing" in sys.argv[-1]:
    sys.stderr.write("ERROR: [generic] Unsupported URL: " + sys.argv[-1] + "\\n")
    sys.exit(1)
print(json.dumps({{"id": "abc", "title": "A talk: part 1/2", "webpage_url": sys.argv[-1], "format_id": "140",
                  "url": {media!r}, "acodec": "mp4a.40.2", "vcodec": "none", "ext": "m4a",
                  "http_headers": {{"User-Agent": "SiteAgent/2.0", "Referer": "https://site.example/"}}}}))
"""


def test_a_sites_page_is_transcribed_through_yt_dlp(models, tmp_path):
    """A page ffmpeg cannot read (YouTube and the like): yt-dlp, when installed, resolves it to the best audio;
    ffmpeg reads that with the headers the site wants, and the outputs take the page's title. Without
    yt-dlp, or when it cannot resolve the page, one line says why and what to install."""
    import os

    from tests.http_media import MediaServer
    from tests.media import ffmpeg

    served = tmp_path / "www"
    served.mkdir()
    wav = write_wav(tmp_path / "a.wav", speech_like(16_000 * 12, seed=9))
    ffmpeg("-i", str(wav), "-c:a", "aac", "-b:a", "64k", str(served / "talk.m4a"))
    (served / "watch.html").write_text("<html>a video page</html>")
    out = tmp_path / "out"
    with MediaServer(served) as server:
        page = f"{server.url}/watch.html?v=abc"
        bare = transcribe(models, page, "-o", str(out))
        assert bare.returncode == 1 and "install yt-dlp" in bare.stderr and "watch.html" in bare.stderr
        assert "Traceback" not in bare.stderr
        assert not out.exists() or not any(out.iterdir())
        tools = tmp_path / "bin"
        tools.mkdir()
        ytdl = tools / "yt-dlp"
        ytdl.write_text(FAKE_YT_DLP.format(python=sys.executable, media=f"{server.url}/talk.m4a"))
        ytdl.chmod(0o755)
        env = {**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}"}
        server.seen.clear()
        run = transcribe(models, page, f"{server.url}/missing.html", "-o", str(out), env=env)
    assert run.returncode == 1, run.stderr  # the second input fails, the first is done
    assert "missing.html: yt-dlp could not resolve it (ERROR: [generic] Unsupported URL" in run.stderr
    cues = pysubs2.load(str(out / "A talk part 1 2.srt"))  # named by the page's title
    assert cues and cues[-1].end > 8_000
    media = [r for r in server.seen if r["path"] == "/talk.m4a"]
    assert media and all(
        r.get("user-agent") == "SiteAgent/2.0" and r.get("referer") == "https://site.example/" for r in media
    )


def test_a_growing_file_is_followed_to_its_end(models, tmp_path):
    """--follow: a file still being written (as a player records a live stream) is read on at its end; the
    transcript covers what arrived while it ran, not only what was there when it started."""
    import threading
    import time

    from tests.media import ffmpeg

    wav = write_wav(tmp_path / "a.wav", speech_like(16_000 * 30, seed=10))
    whole = tmp_path / "whole.ts"
    ffmpeg("-i", str(wav), "-c:a", "aac", "-b:a", "64k", "-f", "mpegts", str(whole))
    data = whole.read_bytes()
    live = tmp_path / "live ü.ts"
    live.write_bytes(data[: len(data) // 5])  # the first 6 s are there when the engine starts

    def record() -> None:  # the rest arrives over about 4 s, as a recording grows
        time.sleep(1.0)
        with live.open("ab") as f:
            for at in range(len(data) // 5, len(data), len(data) // 16):
                f.write(data[at : at + len(data) // 16])
                f.flush()
                time.sleep(0.25)

    writer = threading.Thread(target=record)
    writer.start()
    try:
        run = transcribe(
            models,
            str(live),
            "--follow",
            "3",
            "-o",
            str(tmp_path / "out"),
            "-f",
            "srt,json",
            "--json-progress",
        )
    finally:
        writer.join()
    assert run.returncode == 0, run.stderr
    events = [json.loads(line) for line in run.stdout.splitlines()]
    # its length is unknown while it grows (what ffmpeg estimates from the first 6 s would be wrong)
    assert [e["duration"] for e in events if e["event"] == "file"] == [None]
    assert live.read_bytes() == data  # the recording was complete before the engine gave up waiting
    transcript = json.loads((tmp_path / "out" / "live ü.json").read_text(encoding="utf-8"))
    assert transcript["duration"] == pytest.approx(30.0, abs=0.5)
    assert pysubs2.load(str(tmp_path / "out" / "live ü.srt"))[-1].end > 24_000


def test_an_hls_playlist_is_transcribed(models, tmp_path):
    """HLS, as streaming sites and live TV serve video: a playlist of segments made with ffmpeg's hls muxer,
    read over HTTP from the playlist's URL, transcribed from --start and then from the beginning."""
    from tests.http_media import MediaServer
    from tests.media import ffmpeg

    wav = write_wav(tmp_path / "a.wav", speech_like(16_000 * 40, seed=12))
    served = tmp_path / "www"
    served.mkdir()
    ffmpeg("-i", str(wav), "-c:a", "aac", "-b:a", "64k", "-f", "hls", "-hls_time", "4",
           "-hls_playlist_type", "vod", str(served / "talk.m3u8"))  # fmt: skip
    assert len(list(served.glob("*.ts"))) >= 8
    out = tmp_path / "out"
    with MediaServer(served) as server:
        run = transcribe(
            models,
            f"{server.url}/talk.m3u8",
            "--start",
            "20",
            "-o",
            str(out),
            "--json-progress",
            "--no-align",
            "-f",
            "srt,json",
        )  # fmt: skip (without word times a segment starts where its chunk does)
    assert run.returncode == 0, run.stderr
    events = [json.loads(line) for line in run.stdout.splitlines()]
    starts = [e["start"] for e in events if e["event"] == "segment"]
    assert starts[0] == pytest.approx(20.0) and min(starts) == 0.0  # from --start, then the beginning
    # ffmpeg's seek into HLS lands at a segment's start, up to 4 s early here: the window is cut by the audio's
    # timestamps, so both passes together are the stream's 40.06 s, nothing read twice
    assert json.loads((out / "talk.json").read_text())["duration"] == pytest.approx(40.06, abs=0.05)
    cues = pysubs2.load(str(out / "talk.srt"))
    assert cues[0].start < 10_000 and cues[-1].end > 34_000
    fetched = {r["path"] for r in server.seen}
    assert "/talk.m3u8" in fetched and sum(p.endswith(".ts") for p in fetched) >= 8


@pytest.mark.parametrize(
    ("language", "code"), [("English", "en"), ("Chinese", "zh"), ("Cantonese", "yue"), (None, None)]
)
def test_the_output_event_names_the_language_heard(capsys, language, code):
    """The "output" event carries the main language heard, by name and as the ISO 639-1 code subtitle file
    names take (the mpv host saves <name>.<code>.srt from it)."""
    from qwen3asr_plugin.batch import JsonReporter
    from qwen3asr_plugin.engine.records import TranscriptionInfo

    JsonReporter().on_complete("talk.wav", ["talk.srt"], TranscriptionInfo(language, 12.0))
    event = json.loads(capsys.readouterr().out)
    assert (event["event"], event["outputs"], event["language"], event["language_code"]) == (
        "output",
        ["talk.srt"],
        language,
        code,
    )


def test_the_head_of_joined_mpeg_ts_is_exact(tmp_path):
    """Two MPEG-TS recordings joined end to end (as `cat` joins them, or a broadcast's VOB): the timestamps
    restart in the middle and ffmpeg's correction of that must stay on, so the head pass of a player's run
    (the first 12 s) is 12 s, not the whole file (-copyts made it 20 s). (A seek into such a file lands by
    timestamp, which occurs twice: ffmpeg cannot place it, with or without -copyts.)"""
    start, seconds = None, 12.0
    from qwen3asr_plugin.engine.media import read_blocks
    from tests.media import ffmpeg

    parts = []
    for seed in (1, 2):
        wav = write_wav(tmp_path / f"{seed}.wav", speech_like(16_000 * 10, seed=seed))
        ffmpeg("-i", str(wav), "-c:a", "aac", "-b:a", "64k", "-f", "mpegts", str(tmp_path / f"{seed}.ts"))
        parts.append((tmp_path / f"{seed}.ts").read_bytes())
    joined = tmp_path / "joined.ts"
    joined.write_bytes(b"".join(parts))
    got = sum(b.size for b in read_blocks(joined, start_seconds=start, duration_seconds=seconds)) / 16_000
    assert got == pytest.approx(seconds, abs=0.1)


@pytest.mark.parametrize(
    ("url", "stem"),
    [
        ("https://example.org/a/film.mp4?t=3#x", "film"),
        ("https://example.org/a%2Fb%3Ac.mp4", "a_b_c"),  # an escaped "/" is in the name, not a folder
        ("https://example.org/My%20Film.v2.mkv", "My Film.v2"),
        ("https://example.org/a%5Cb%00c", "a_b_c"),  # no backslash, no control character in a file name
        ("https://example.org/%2E%2E", "stream"),
        ("https://example.org/", "stream"),
        ("https://example.org?x=/a.mp4", "stream"),  # a query is not a path
        ("https://example.org/play;jsessionid=1", "play;jsessionid=1"),  # as the mpv script names it
    ],
)
def test_outputs_for_a_url_are_named_from_its_last_segment(url, stem):
    from qwen3asr_plugin.engine.media import source_stem

    assert source_stem(url) == stem


def dash_fragments(tmp_path: Path, seconds: int = 40) -> tuple[Path, Path, list[str]]:
    """`seconds` of speech as ffmpeg's DASH muxer cuts it (an initialisation segment and 4 s fragments, named
    without an extension as some sites send them), the same bytes joined in one file, and the names."""
    from tests.media import ffmpeg

    wav = write_wav(tmp_path / "a.wav", speech_like(16_000 * seconds, seed=14))
    served = tmp_path / "www"
    served.mkdir()
    ffmpeg("-i", str(wav), "-c:a", "aac", "-b:a", "64k", "-f", "dash", "-seg_duration", "4",
           "-use_template", "0", "-use_timeline", "0", "-init_seg_name", "init",
           "-media_seg_name", "frag-$Number$", str(served / "a.mpd"))  # fmt: skip
    names = ["init"] + sorted((p.name for p in served.glob("frag-*")), key=lambda n: int(n.split("-")[1]))
    joined = tmp_path / "joined.mp4"
    joined.write_bytes(b"".join((served / n).read_bytes() for n in names))
    return served, joined, names


def fragment_playlist(path: Path, base: str, names: list[str], lengths: list[float]) -> Path:
    """The playlist hosts/mpv/qwen3asr.lua writes for a format the ytdl hook gave as fragments."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-PLAYLIST-TYPE:VOD", f'#EXT-X-MAP:URI="{base}/{names[0]}"']
    for name, seconds in zip(names[1:], lengths, strict=True):
        lines += [f"#EXTINF:{seconds:.3f},", f"{base}/{name}"]
    path.write_text("\n".join([*lines, "#EXT-X-ENDLIST", ""]), encoding="utf-8")
    return path


def test_network_fragments_are_fetched_with_the_headers_and_read_as_one_file(tmp_path):
    """ffmpeg's HLS demuxer sends a local playlist's segment requests without the player's headers (they come
    from the playlist's own connection: libavformat/hls.c, save_avio_options), so the engine fetches the
    fragments itself and pipes them to ffmpeg: the audio equals the joined fragments', from any start (cut at
    the stream's own timestamps, so a playlist's rounded lengths move nothing), with the headers on every
    request and the fragments before the start not fetched."""
    from qwen3asr_plugin.engine import media as media_module
    from tests.http_media import MediaServer

    served, joined, names = dash_fragments(tmp_path)
    with MediaServer(served) as server:
        # lengths as a manifest rounds them: 4 s each, whatever the AAC frames make of the cut
        playlist = fragment_playlist(tmp_path / "talk.m3u8", server.url, names, [4.0] * (len(names) - 1))
        media_module.set_network_options("mpv 0.35.1", ["Cookie: session=42"])
        try:
            info = probe(playlist)
            assert info.audio_streams == 1 and info.duration == pytest.approx(4.0 * (len(names) - 1))
            for start in (None, 13.5, 16.01):
                server.seen.clear()
                got = np.concatenate(list(read_blocks(playlist, start_seconds=start)))
                want = np.concatenate(list(read_blocks(joined, start_seconds=start)))
                assert got.size == want.size and np.abs(got - want).max() < 1e-3, start
                fetched = [r["path"].lstrip("/") for r in server.seen]
                assert all(
                    r.get("user-agent") == "mpv 0.35.1" and r.get("cookie") == "session=42"
                    for r in server.seen
                )
                skipped = int(max(0.0, (start or 0.0) - 1.0) // 4)  # fragments wholly before start - 1 s
                assert fetched == [names[0], *names[1 + skipped :]], start
            # a window (a resumed gap): ffmpeg ends at its end and the fragments after it are not fetched;
            # --follow (for growing files) does not reach the pipe
            media_module.set_follow(5.0)
            server.seen.clear()
            got = np.concatenate(list(read_blocks(playlist, start_seconds=6.0, duration_seconds=5.0)))
            want = np.concatenate(list(read_blocks(joined, start_seconds=6.0, duration_seconds=5.0)))
            assert got.size == want.size == 80_000 and np.abs(got - want).max() < 1e-3
            assert names[-1] not in [r["path"].lstrip("/") for r in server.seen]
        finally:
            media_module.set_network_options()
            media_module.set_follow(None)
        # what ffmpeg's HLS demuxer reads itself: a master, live (no end), encrypted or byte-range playlist
        text = playlist.read_text()
        for other in (
            text.replace("#EXT-X-ENDLIST", ""),
            text.replace("#EXTM3U", '#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI="https://k.example/key"'),
            f"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=64000\n{server.url}/a.m3u8\n#EXT-X-ENDLIST\n",
        ):
            playlist.write_text(other)
            assert media_module.fragments(playlist) is None
        playlist.write_text(text.replace(f"{server.url}/{names[3]}", names[3]))  # one segment beside it
        assert media_module.fragments(playlist) is None


def test_a_fragment_playlist_is_transcribed_and_a_missing_fragment_fails_in_one_line(models, tmp_path):
    from tests.http_media import MediaServer

    served, _, names = dash_fragments(tmp_path)
    out = tmp_path / "out"
    with MediaServer(served) as server:
        playlist = fragment_playlist(tmp_path / "A talk.m3u8", server.url, names, [4.0] * (len(names) - 1))
        run = transcribe(
            models, str(playlist), "-o", str(out), "-f", "srt,json", "--start", "20", "--no-align"
        )
        assert run.returncode == 0, run.stderr
        assert json.loads((out / "A talk.json").read_text())["duration"] == pytest.approx(40.0, abs=0.1)
        assert pysubs2.load(str(out / "A talk.srt"))[-1].end > 30_000
        (served / names[5]).unlink()  # gone from the server mid-way
        run = transcribe(models, str(playlist), "-o", str(tmp_path / "out2"), "--no-align")
    assert run.returncode != 0
    said = run.stderr.strip().splitlines()  # the input's one line, then the batch's summary
    assert (
        said[0].startswith("qwen3asr: error: ") and "A talk.m3u8: a fragment could not be fetched" in said[0]
    )
    assert names[5] in said[0] and not any("Traceback" in line for line in said)
    assert not (tmp_path / "out2").exists() or not list((tmp_path / "out2").iterdir())  # no partial subtitles


@pytest.mark.parametrize("container", ["webm", "mkv", "ogg"])
def test_a_window_of_opus_starts_where_the_whole_file_puts_it(tmp_path, container):
    """Opus in Matroska/WebM starts its timestamps at minus its codec delay (ffmpeg reports `start: -0.007`);
    decoded from the start the delay is dropped, but `-ss` counts from the container's start: a window began
    7 ms early and every time in it was 8 ms late. A click at 1 s is at 1 s both ways, within a sample's
    rounding (Ogg has no negative start and needs nothing)."""
    from tests.media import ffmpeg

    rate = 48_000
    click = np.zeros(3 * rate, np.float32)
    click[rate : rate + 48] = 0.6
    wav = write_wav(tmp_path / "click.wav", click, rate=rate)
    media = tmp_path / f"click.{container}"
    ffmpeg("-i", str(wav), "-c:a", "libopus", "-b:a", "64k", str(media))
    whole = np.concatenate(list(read_blocks(media)))
    window = np.concatenate(list(read_blocks(media, start_seconds=0.5)))
    at_whole = int(np.argmax(np.abs(whole)))
    at_window = int(np.argmax(np.abs(window))) + 8_000
    assert abs(at_whole - 16_000) <= 2 and abs(at_window - at_whole) <= 2
    assert window.size == whole.size - 8_000
