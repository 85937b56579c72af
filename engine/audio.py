"""Audio input as 16 kHz mono float32: NumPy arrays and WAV files (any media file arrives with the ffmpeg
reader). Loud input is scaled into [-1, 1] as the official pipeline does."""

from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np

from .errors import AudioError

SAMPLE_RATE = 16000


def to_mono_16k(audio: np.ndarray, sampling_rate: int) -> np.ndarray:
    """Mix channels (last axis or [channels, samples]) to mono and resample to 16 kHz."""
    x = np.asarray(audio)
    if x.ndim == 2:
        x = x.mean(axis=1 if x.shape[1] <= 8 else 0)
    elif x.ndim != 1:
        raise AudioError(f"audio array must be 1-D or 2-D, got shape {x.shape}")
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float32) / float(np.iinfo(x.dtype).max)
    x = x.astype(np.float32, copy=False)
    if sampling_rate != SAMPLE_RATE:
        from scipy.signal import resample_poly

        g = gcd(int(sampling_rate), SAMPLE_RATE)
        x = resample_poly(x, SAMPLE_RATE // g, int(sampling_rate) // g).astype(np.float32)
    return normalize_peak(x)


def normalize_peak(x: np.ndarray) -> np.ndarray:
    """If the peak exceeds 1.0, divide by it (the official float_range_normalize)."""
    peak = float(np.abs(x).max(initial=0.0))
    return (x / peak).astype(np.float32) if peak > 1.0 else x


def load_audio(path: Path | str, audio_track: int = 0) -> np.ndarray:
    """A whole media file as 16 kHz mono float32 (for short inputs; long ones stream through iter_audio)."""
    return normalize_peak(np.concatenate([np.zeros(0, np.float32), *iter_audio(path, audio_track)]))


def iter_audio(
    path: Path | str,
    audio_track: int = 0,
    start_seconds: float | None = None,
    duration_seconds: float | None = None,
):
    """Blocks of 16 kHz mono float32 decoded by ffmpeg, optionally a window of the file."""
    from .media import is_url, read_blocks

    if is_url(str(path)):
        return read_blocks(
            str(path), audio_track, start_seconds=start_seconds, duration_seconds=duration_seconds
        )
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder; give an audio or video file")
    return read_blocks(path, audio_track, start_seconds=start_seconds, duration_seconds=duration_seconds)
