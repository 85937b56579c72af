"""Two hours of media through the tiny model: memory stays flat (compared with two minutes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pysubs2
import pytest

from tests.media import ffmpeg

QWEN3ASR = str(Path(sys.executable).parent / "qwen3asr")


def tone_with_pauses(path: Path, seconds: int) -> Path:
    """A gliding tone with a 1 s pause every 7 s, as 16 kHz PCM (fast to make, any length)."""
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"aevalsrc='0.3*sin(2*PI*(180+40*sin(t))*t)*gt(mod(t\\,7)\\,1)':s=16000:d={seconds}",
        "-c:a",
        "pcm_s16le",
        str(path),
    )
    return path


def peak_rss_mb(cmd: list[str]) -> tuple[int, float]:
    """Run `cmd`; its exit code and peak resident memory in MB (from wait4, this child alone)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 1024


@pytest.mark.slow
def test_two_hours_in_flat_memory(models, tmp_path):
    short = tone_with_pauses(tmp_path / "two_minutes.wav", 120)
    long = tone_with_pauses(tmp_path / "two_hours.wav", 7200)
    args = [
        "transcribe",
        "--model",
        str(models("tiny")),
        "--no-align",
        "--no-fallback",
        "--device",
        "cpu",
        "--quiet",
        "--format",
        "srt",
        "-o",
        str(tmp_path / "out"),
    ]
    rc_short, mb_short = peak_rss_mb([QWEN3ASR, *args, str(short)])
    rc_long, mb_long = peak_rss_mb([QWEN3ASR, *args, str(long)])
    assert rc_short == 0 and rc_long == 0
    print(f"peak RSS: 2 min {mb_short:.0f} MB, 2 h {mb_long:.0f} MB")
    # The whole 2-hour signal would be 460 MB as float32; memory must not follow it.
    assert mb_long < mb_short + 60
    subs = pysubs2.load(str(tmp_path / "out" / "two_hours.srt"))
    assert subs and subs[-1].end <= 7_200_500
    assert all(a.end <= b.start for a, b in zip(subs, subs[1:], strict=False))
