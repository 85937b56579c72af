"""Whisper-style log-mel features in NumPy/SciPy, equal to WhisperFeatureExtractor(feature_size=128).

Steps (as in transformers' src/transformers/models/whisper/feature_extraction_whisper.py): reflect-padded
STFT with a periodic Hann window, power spectrum, the last frame dropped (n_frames = n_samples // hop),
Slaney mel filters, log10 floored at 1e-10, clamped to (max - 8) over the whole clip, then (x + 4) / 4.
Output layout is [n_mels, n_frames].
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft

from .errors import AudioError


@dataclass(frozen=True)
class MelConfig:
    """Feature parameters; model.json carries them so nothing here is assumed per model."""

    sampling_rate: int = 16000
    n_fft: int = 400
    hop_length: int = 160
    num_mel_bins: int = 128
    min_frequency_hz: float = 0.0
    max_frequency_hz: float = 8000.0

    @classmethod
    def from_dict(cls, d: dict) -> MelConfig:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _hz_to_mel_slaney(hz: np.ndarray) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    min_log_hz, min_log_mel, logstep = 1000.0, 15.0, 27.0 / np.log(6.4)
    mel = 3.0 * hz / 200.0
    above = hz >= min_log_hz
    return np.where(above, min_log_mel + np.log(np.maximum(hz, 1e-10) / min_log_hz) * logstep, mel)


def _mel_to_hz_slaney(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    min_log_hz, min_log_mel, logstep = 1000.0, 15.0, np.log(6.4) / 27.0
    hz = 200.0 * mel / 3.0
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), hz)


@lru_cache(maxsize=8)
def mel_filters(config: MelConfig = MelConfig()) -> np.ndarray:
    """Slaney-scale, Slaney-normalised triangular filters, shape [n_fft // 2 + 1, num_mel_bins]."""
    n_freqs = config.n_fft // 2 + 1
    fft_hz = np.linspace(0.0, config.sampling_rate / 2, n_freqs)
    mel_edges = np.linspace(
        _hz_to_mel_slaney(config.min_frequency_hz),
        _hz_to_mel_slaney(config.max_frequency_hz),
        config.num_mel_bins + 2,
    )
    edge_hz = _mel_to_hz_slaney(mel_edges)
    widths = np.diff(edge_hz)
    slopes = edge_hz[None, :] - fft_hz[:, None]
    down = -slopes[:, :-2] / widths[:-1]
    up = slopes[:, 2:] / widths[1:]
    filters = np.maximum(0.0, np.minimum(down, up))
    filters *= 2.0 / (edge_hz[2:] - edge_hz[:-2])
    return filters.astype(np.float32)


@lru_cache(maxsize=8)
def _hann(n: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float32)  # periodic


def num_frames(n_samples: int, config: MelConfig = MelConfig()) -> int:
    """Mel frames for `n_samples` samples (the STFT's last frame is dropped)."""
    return n_samples // config.hop_length


def log_mel(audio: np.ndarray, config: MelConfig = MelConfig()) -> np.ndarray:
    """Log-mel features of mono float audio at config.sampling_rate: float32 [num_mel_bins, n_frames]."""
    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    if x.size == 0:
        raise AudioError("empty audio: there is nothing to transcribe")
    half = config.n_fft // 2
    n_frames = num_frames(x.size, config)
    if x.size <= half:  # reflect padding needs more samples than half a window
        x = np.pad(x, (0, half + 1 - x.size))
    padded = np.pad(x, (half, half), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, config.n_fft)[:: config.hop_length][:n_frames]
    spectrum = scipy.fft.rfft(frames * _hann(config.n_fft), axis=-1)
    power = spectrum.real**2 + spectrum.imag**2
    mel = power.astype(np.float32) @ mel_filters(config)
    log_spec = np.log10(np.maximum(mel, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max(initial=-10.0) - 8.0)
    return np.ascontiguousarray(((log_spec + 4.0) / 4.0).T, dtype=np.float32)
