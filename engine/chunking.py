"""Cutting long audio into ASR chunks at quiet moments (the official toolkit's rule, reference section 6.3).

A cut lands at the lowest-energy point within +-search of the nominal cut: a 100 ms moving sum of |x| picks
the quietest window, then the quietest sample inside it. Chunks are contiguous and carry their sample offset,
so timestamps come from sample counts, never from chunk index times size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .audio import SAMPLE_RATE


@dataclass(frozen=True)
class Chunk:
    start_sample: int
    audio: np.ndarray  # may be zero-padded past n_samples
    n_samples: int  # real samples

    @property
    def start_seconds(self) -> float:
        return self.start_sample / SAMPLE_RATE

    @property
    def end_seconds(self) -> float:
        return (self.start_sample + self.n_samples) / SAMPLE_RATE


def quiet_cut(x: np.ndarray, nominal: int, search: int, window: int = SAMPLE_RATE // 10) -> int:
    """The index of the quietest sample near `nominal` (within +-search samples)."""
    lo, hi = max(0, nominal - search), min(x.size, nominal + search)
    if hi - lo <= window:
        return nominal
    energy = np.convolve(np.abs(x[lo:hi]), np.ones(window, dtype=np.float32), mode="valid")
    start = lo + int(np.argmin(energy))
    return start + int(np.argmin(np.abs(x[start : start + window])))


def split_audio(
    x: np.ndarray, max_seconds: float = 30.0, search_seconds: float = 5.0, min_seconds: float = 0.5
) -> list[Chunk]:
    """Contiguous chunks of at most about `max_seconds`; chunks shorter than `min_seconds` are zero-padded."""
    max_len = int(max_seconds * SAMPLE_RATE)
    search = int(min(search_seconds, max_seconds / 3) * SAMPLE_RATE)
    chunks: list[Chunk] = []
    start = 0
    while start < x.size:
        end = x.size
        if x.size - start > max_len:
            end = quiet_cut(x, start + max_len - search, search)
            end = min(max(end, start + SAMPLE_RATE), start + max_len)
        piece = x[start:end]
        n = piece.size
        min_len = int(min_seconds * SAMPLE_RATE)
        if n < min_len:
            piece = np.pad(piece, (0, min_len - n))
        chunks.append(Chunk(start, piece, n))
        start = end
    return chunks
