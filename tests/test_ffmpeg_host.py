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
    assert silent.returncode == 0 and spoken.returncode == 0, silent.stderr + spoken.stderr
    assert len(pysubs2.load(str(tmp_path / "b.srt"))) >= 1
    # Track 0 is digital silence: the model hears no speech there, or far less than on track 1.
    assert len(pysubs2.load(str(tmp_path / "a.srt"))) <= len(pysubs2.load(str(tmp_path / "b.srt")))
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
