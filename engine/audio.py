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


def load_wav(path: Path | str) -> np.ndarray:
    """A WAV file as 16 kHz mono float32."""
    from scipy.io import wavfile

    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    try:
        rate, data = wavfile.read(path)
    except (ValueError, OSError) as exc:
        raise AudioError(f"{path}: not a readable WAV file ({exc})") from exc
    return to_mono_16k(data, rate)


def load_audio(path: Path | str) -> np.ndarray:
    """A media file as 16 kHz mono float32: WAV directly, anything else through ffmpeg when it is on PATH."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder; give an audio or video file")
    if path.suffix.lower() == ".wav":
        try:
            return load_wav(path)
        except AudioError:
            pass  # a WAV codec scipy does not read (e.g. mu-law): try ffmpeg
    return _load_with_ffmpeg(path)


def _load_with_ffmpeg(path: Path) -> np.ndarray:
    import shutil
    import subprocess

    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise AudioError(
            f"{path}: reading this format needs ffmpeg; install it (e.g. apt install ffmpeg) "
            "or convert the file to WAV"
        )
    run = subprocess.run(
        [
            ffmpeg,
            "-nostdin",
            "-v",
            "error",
            "-i",
            str(path),
            "-vn",
            "-ac",
            "1",
            "-ar",
            str(SAMPLE_RATE),
            "-f",
            "f32le",
            "-",
        ],
        capture_output=True,
    )
    if run.returncode != 0:
        reason = run.stderr.decode("utf-8", "replace").strip().splitlines()
        raise AudioError(f"{path}: ffmpeg cannot read it ({reason[-1] if reason else 'unknown error'})")
    x = np.frombuffer(run.stdout, dtype="<f4").astype(np.float32)
    if x.size == 0:
        raise AudioError(f"{path}: has no audio stream")
    return normalize_peak(x)
