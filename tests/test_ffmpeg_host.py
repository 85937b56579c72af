"""`qwen3asr-ffmpeg` with the real ffmpeg on generated media."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pysubs2
import pytest

from qwen3asr_plugin.engine.media import ffmpeg_exe, probe
from tests.media import ffmpeg, two_track_mkv, video_with_audio, write_wav
from tests.parity import speech_like

TOOL = str(Path(sys.executable).parent / "qwen3asr-ffmpeg")


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ffmpeg host ü")
    speech = write_wav(folder / "speech.wav", speech_like(16_000 * 8, seed=4))
    silence = write_wav(folder / "silence.wav", np.zeros(16_000 * 8, np.float32))
    mp4 = video_with_audio(folder / "my clip.mp4", speech)
    mkv = two_track_mkv(folder / "two tracks.mkv", silence, speech)
    with_subs = folder / "has subs.mkv"
    existing = folder / "old.srt"
    existing.write_text("1\n00:00:01,000 --> 00:00:02,000\nan existing track\n\n", encoding="utf-8")
    ffmpeg(
        "-i",
        str(mp4),
        "-i",
        str(existing),
        "-map",
        "0",
        "-map",
        "1",
        "-c",
        "copy",
        "-c:s",
        "srt",
        str(with_subs),
    )
    return {"mp4": mp4, "mkv": mkv, "with_subs": with_subs, "folder": folder}


def tool(models, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            TOOL,
            "--model",
            str(models("tiny")),
            "--aligner",
            str(models("aligner-tiny")),
            "--device",
            "cpu",
            "--no-vad",
            *args,
        ],
        capture_output=True,
        text=True,
    )


def subtitle_text(path: Path, index: int = 0) -> str:
    run = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", f"0:s:{index}", "-f", "srt", "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    return run.stdout


def video_md5(path: Path) -> str:
    run = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "md5", "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    return run.stdout.strip()


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_soft_subtitles_with_stream_copy(models, media, tmp_path, suffix):
    out = tmp_path / f"out put ü{suffix}"
    before = media["mp4"].read_bytes()
    run = tool(models, "-i", str(media["mp4"]), str(out))
    assert run.returncode == 0, run.stderr
    assert media["mp4"].read_bytes() == before  # the input is never modified
    info = probe(out)
    assert info.subtitle_streams == 1 and info.video_streams == 1 and info.audio_streams == 1
    assert video_md5(out) == video_md5(media["mp4"])  # copied, not re-encoded
    cues = pysubs2.SSAFile.from_string(subtitle_text(out), format_="srt")
    assert len(cues) >= 1 and any(e.plaintext.strip() for e in cues)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial file left


def test_existing_subtitle_tracks_are_kept(models, media, tmp_path):
    out = tmp_path / "both.mkv"
    run = tool(models, "-i", str(media["with_subs"]), str(out))
    assert run.returncode == 0, run.stderr
    assert probe(out).subtitle_streams == 2
    assert "an existing track" in subtitle_text(out, 0)
    assert subtitle_text(out, 1).strip()


def test_second_audio_track_is_transcribed(models, media, tmp_path):
    silent = tool(
        models, "-i", str(media["mkv"]), "--destination", str(tmp_path / "a.srt"), str(tmp_path / "a.mkv")
    )
    spoken = tool(models, "-i", str(media["mkv"]), "--audio-track", "1", str(tmp_path / "b.srt"))
    ffmpeg("-i", str(media["mkv"]), "-map", "0:a:1", "-c", "copy", str(tmp_path / "track 1.mka"))
    alone = tool(models, "-i", str(tmp_path / "track 1.mka"), str(tmp_path / "c.srt"))
    assert silent.returncode == spoken.returncode == alone.returncode == 0, silent.stderr + spoken.stderr
    # Track 1 gives exactly the subtitles of its own audio copied out; track 0 (digital silence) others.
    assert (tmp_path / "b.srt").read_text(encoding="utf-8") == (tmp_path / "c.srt").read_text(
        encoding="utf-8"
    )
    assert len(pysubs2.load(str(tmp_path / "b.srt"))) >= 1
    assert subtitle_text(tmp_path / "a.mkv") != (tmp_path / "b.srt").read_text(encoding="utf-8")
    assert probe(tmp_path / "a.mkv").subtitle_streams == 1


def test_burn_in_re_encodes_the_picture(models, media, tmp_path):
    out = tmp_path / "burnt.mp4"
    run = tool(models, "-i", str(media["mp4"]), "--burn", "-c:v", "mpeg4", "-q:v", "5", str(out))
    assert run.returncode == 0, run.stderr
    info = probe(out)
    assert info.subtitle_streams == 0 and info.video_streams == 1
    assert video_md5(out) != video_md5(media["mp4"])


def test_no_audio_stream_fails_clearly_without_output(models, tmp_path):
    mute = tmp_path / "mute.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=2", "-c:v", "mpeg4", str(mute))
    out = tmp_path / "out.mkv"
    run = tool(models, "-i", str(mute), str(out))
    assert run.returncode == 1
    assert (
        run.stderr.strip()
        == f"qwen3asr-ffmpeg: error: {mute}: has no audio stream; there is nothing to transcribe"
    )
    assert not out.exists()


def test_refuses_to_overwrite_and_to_write_the_input(models, media, tmp_path):
    out = tmp_path / "exists.mkv"
    out.write_bytes(b"precious")
    run = tool(models, "-i", str(media["mp4"]), str(out))
    assert run.returncode == 1 and "use -y" in run.stderr and out.read_bytes() == b"precious"
    same = tool(models, "-i", str(media["mp4"]), "-y", str(media["mp4"]))
    assert same.returncode == 1 and "is the input" in same.stderr
    avi = tool(models, "-i", str(media["mp4"]), str(tmp_path / "x.avi"))
    assert avi.returncode == 1 and "cannot carry soft subtitles" in avi.stderr


def test_qwen3asr_ffmpeg_subcommand(models, media, tmp_path):
    run = subprocess.run(
        [
            str(Path(sys.executable).parent / "qwen3asr"),
            "ffmpeg",
            "-i",
            str(media["mp4"]),
            "--model",
            str(models("tiny")),
            "--no-align",
            "--device",
            "cpu",
            "--no-vad",
            str(tmp_path / "sub.vtt"),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "sub.vtt").read_text(encoding="utf-8").startswith("WEBVTT")


def test_works_with_the_ffmpeg_imageio_ships(models, media, tmp_path):
    """imageio-ffmpeg's binary has no ffprobe next to it; nothing here needs one."""
    import os

    import imageio_ffmpeg

    env = {**os.environ, "QWEN3ASR_FFMPEG": imageio_ffmpeg.get_ffmpeg_exe(), "PATH": "/nonexistent"}
    out = tmp_path / "imageio.mkv"
    run = subprocess.run(
        [
            TOOL,
            "--model",
            str(models("tiny")),
            "--no-align",
            "--device",
            "cpu",
            "--no-vad",
            "-i",
            str(media["mp4"]),
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert run.returncode == 0, run.stderr
    assert probe(out).subtitle_streams == 1


def stream_tags(path: Path) -> list[str]:
    """`ffmpeg -i`'s stream lines, e.g. 'Stream #0:2(ger): Subtitle: mov_text'."""
    report = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True
    ).stderr
    return [line.strip() for line in report.splitlines() if line.strip().startswith("Stream #")]


def subtitle_tracks(path: Path) -> list[tuple[str, str, str]]:
    """(language, codec, title) of each subtitle stream, from `ffmpeg -i`'s report: a stream line such as
    'Stream #0:2(eng): Subtitle: ass (default)' followed by its 'Metadata:' block ('title : ...', or in
    mp4 and mov 'handler_name : ...', ffmpeg's default there being 'SubtitleHandler')."""
    report = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    tracks, current = [], None
    for line in report.stderr.splitlines():
        head = line.strip()
        if head.startswith("Stream #"):
            current = None
            if ": Subtitle: " in head:
                language = head.split("(")[1].split(")")[0] if "(" in head.split(":")[1] else ""
                codec = head.split(": Subtitle: ")[1].split()[0]
                current = [language, codec, ""]
                tracks.append(current)
        elif current is not None and head.split(":")[0].strip() in ("title", "handler_name"):
            value = head.split(":", 1)[1].strip()  # mp4 and mov name a track by its handler name
            if value != "SubtitleHandler" and (head.startswith("title") or not current[2]):
                current[2] = value
    return [tuple(t) for t in tracks]


def test_the_track_gets_its_language_codec_and_title(models, media, tmp_path):
    """The new track: ISO 639-2 language of the transcript (or of --language), the container's codec or
    --format's, the --title (default 'Qwen3-ASR'); the input's own track keeps its own."""
    mkv = tmp_path / "titled.mkv"
    run = tool(models, "-i", str(media["with_subs"]), "--language", "fr", "--format", "ass", "--title",
               "Sous-titres ü", str(mkv))  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert subtitle_tracks(mkv)[1] == ("fra", "ass", "Sous-titres ü")
    assert subtitle_tracks(mkv)[0][1:] == ("subrip", "")
    mp4 = tmp_path / "plain.mp4"
    run = tool(models, "-i", str(media["mp4"]), "--language", "ja", str(mp4))
    assert run.returncode == 0, run.stderr
    assert subtitle_tracks(mp4) == [("jpn", "mov_text", "Qwen3-ASR")]
    mov = tmp_path / "named.mov"
    run = tool(models, "-i", str(media["mp4"]), "--language", "en", "--title", "English (auto)", str(mov))
    assert run.returncode == 0, run.stderr
    assert subtitle_tracks(mov) == [("eng", "mov_text", "English (auto)")]
    vtt = tmp_path / "vtt.mkv"
    run = tool(models, "-i", str(media["mp4"]), "--language", "zh", "--format", "vtt", str(vtt))
    assert run.returncode == 0, run.stderr
    assert subtitle_tracks(vtt) == [("zho", "webvtt", "Qwen3-ASR")]


def test_an_mkv_with_srt_and_a_font_muxes_into_mp4(models, media, tmp_path):
    """An SRT track cannot be stream-copied into mp4, nor can a font attachment: the track is converted to
    mov_text and the font dropped with a note, decided before transcribing (it used to fail after)."""
    font = tmp_path / "font.ttf"
    font.write_bytes(b"\x00\x01\x00\x00" + bytes(64))
    rich = tmp_path / "rich.mkv"
    ffmpeg("-i", str(media["with_subs"]), "-map", "0", "-c", "copy", "-attach", str(font),
           "-metadata:s:t", "mimetype=application/x-truetype-font", str(rich))  # fmt: skip
    out = tmp_path / "rich.mp4"
    run = tool(models, "-i", str(rich), str(out))
    assert run.returncode == 0, run.stderr
    assert "attachment" in run.stderr and "dropped" in run.stderr
    assert probe(out).subtitle_streams == 2 and "an existing track" in subtitle_text(out, 0)
    assert all("mov_text" in line for line in stream_tags(out) if "Subtitle" in line)


def test_a_stream_webm_cannot_hold_fails_before_transcribing(models, media, tmp_path):
    out = tmp_path / "clip.webm"
    run = tool(models, "-i", str(media["mp4"]), str(out))
    assert run.returncode == 1 and "webm cannot hold mpeg4 video" in run.stderr and "libvpx" in run.stderr
    assert "subtitles, language" not in run.stderr and not out.exists()


def test_whisper_filter_options_language_auto_destination_stdout_and_format(models, media, tmp_path):
    out = tmp_path / "clip.mkv"
    run = tool(models, "-i", str(media["mp4"]), "--language", "auto", "--destination", "-", str(out))
    assert run.returncode == 0, run.stderr
    assert pysubs2.SSAFile.from_string(run.stdout, format_="srt") and not (Path.cwd() / "-").exists()
    assert probe(out).subtitle_streams == 1
    wrong = tool(models, "-i", str(media["mp4"]), "--format", "json", str(tmp_path / "b.mkv"))
    assert wrong.returncode == 1 and "--destination only" in wrong.stderr
    side = tmp_path / "side.json"
    ok = tool(
        models,
        "-i",
        str(media["mp4"]),
        "--format",
        "json",
        "--destination",
        str(side),
        str(tmp_path / "c.mkv"),
    )
    assert ok.returncode == 0, ok.stderr
    assert __import__("json").loads(side.read_text())["segments"] is not None
    assert "Subtitle: subrip" in " ".join(
        stream_tags(tmp_path / "c.mkv")
    )  # the track stays a subtitle format


def test_mov_gets_the_bibliographic_language_code(models, media, tmp_path):
    out = tmp_path / "clip.mov"
    run = tool(models, "-i", str(media["mp4"]), "--language", "de", str(out))
    assert run.returncode == 0, run.stderr
    assert any("(ger): Subtitle" in line for line in stream_tags(out)), stream_tags(out)
    mp4 = tmp_path / "clip.mp4"
    assert tool(models, "-i", str(media["mp4"]), "--language", "de", str(mp4)).returncode == 0
    assert any("(deu): Subtitle" in line for line in stream_tags(mp4))


def test_burn_keeps_the_other_tracks_unless_told(models, media, tmp_path):
    kept = tmp_path / "kept.mkv"
    run = tool(models, "-i", str(media["mkv"]), "--audio-track", "1", "--burn", "-c:v", "mpeg4", str(kept))
    assert run.returncode == 0, run.stderr
    assert probe(kept).audio_streams == 2
    only = tmp_path / "only.mkv"
    run = tool(models, "-i", str(media["mkv"]), "--audio-track", "1", "--burn", "--drop-other-tracks",
               "-c:v", "mpeg4", str(only))  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert probe(only).audio_streams == 1


def test_a_url_input(models, media, tmp_path):
    from tests.http_media import MediaServer

    served = tmp_path / "www"
    served.mkdir()
    ffmpeg("-i", str(media["mp4"]), "-c", "copy", "-movflags", "+faststart", str(served / "clip.mp4"))
    with MediaServer(served) as server:
        run = tool(models, "-i", f"{server.url}/clip.mp4", str(tmp_path / "clip.mkv"))
    assert run.returncode == 0, run.stderr
    assert probe(tmp_path / "clip.mkv").subtitle_streams == 1 and server.seen


def test_an_mp4_with_mov_text_muxes_into_mkv(models, media, tmp_path):
    """Matroska takes srt but not mp4's mov_text: the existing track is converted, decided before transcribing."""
    mp4 = tmp_path / "subbed.mp4"
    ffmpeg("-i", str(media["with_subs"]), "-map", "0", "-c", "copy", "-c:s", "mov_text", str(mp4))
    out = tmp_path / "subbed.mkv"
    run = tool(models, "-i", str(mp4), str(out))
    assert run.returncode == 0, run.stderr
    assert probe(out).subtitle_streams == 2 and "an existing track" in subtitle_text(out, 0)
