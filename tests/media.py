"""Generated media for tests, made with the real ffmpeg the engine uses."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
from scipy.io import wavfile

from qwen3asr_plugin.engine.media import ffmpeg_exe


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def write_wav(path: Path, audio: np.ndarray, rate: int = 16_000) -> Path:
    wavfile.write(path, rate, np.asarray(audio, dtype=np.float32))
    return path


def video_with_audio(path: Path, wav: Path) -> Path:
    """A small video (test pattern) carrying `wav` as its audio, in the container `path` names."""
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=10",
        "-i",
        str(wav),
        "-shortest",
        "-c:v",
        "mpeg4",
        "-c:a",
        "aac",
        "-b:a",
        "64k",
        str(path),
    )
    return path


def two_track_mkv(path: Path, first: Path, second: Path) -> Path:
    """An mkv with a video stream and two audio streams (first, then second)."""
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=10",
        "-i",
        str(first),
        "-i",
        str(second),
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-map",
        "2:a",
        "-shortest",
        "-c:v",
        "mpeg4",
        "-c:a",
        "flac",
        str(path),
    )
    return path
