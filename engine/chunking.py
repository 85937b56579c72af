"""Cutting long audio into ASR chunks at quiet moments, streaming, with optional skipping of non-speech.

A cut lands at the lowest-energy point of a search window before the chunk limit (the official toolkit's
rule, `split_audio_into_chunks` in qwen_asr/inference/utils.py): a 100 ms moving sum of |x| picks the
quietest window, then the quietest sample inside it, so words are not cut in half. Chunks carry their sample
offset; timestamps come from those offsets, never from chunk index times size. Only about one chunk plus the
search window is held at a time.

The optional energy VAD drops runs of non-speech (frames below a level) longer than `min_silence_seconds`,
so nothing is transcribed over long silence. It does not tell music from speech.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from .audio import SAMPLE_RATE, normalize_peak


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


@dataclass(frozen=True)
class ChunkOptions:
    max_seconds: float = 30.0
    search_seconds: float = 10.0  # the cut is searched in the last `search_seconds` before the limit
    min_seconds: float = 0.5  # shorter chunks are zero-padded (as the reference pads them)
    vad: bool = False
    vad_threshold_db: float = -45.0  # frame RMS below this (dBFS) is non-speech
    min_silence_seconds: float = 2.0  # non-speech runs at least this long are skipped
    speech_pad_seconds: float = 0.3  # kept around speech at the edges of a skipped run


def quiet_cut(x: np.ndarray, lo: int, hi: int, window: int = SAMPLE_RATE // 10) -> int:
    """The index of the quietest sample in x[lo:hi], found through the quietest `window`."""
    lo, hi = max(0, lo), min(x.size, hi)
    if hi - lo <= window:
        return hi
    energy = np.convolve(np.abs(x[lo:hi]), np.ones(window, dtype=np.float32), mode="valid")
    start = lo + int(np.argmin(energy))
    return start + int(np.argmin(np.abs(x[start : start + window])))


def _make_chunk(offset: int, piece: np.ndarray, options: ChunkOptions) -> Chunk:
    n = piece.size
    min_len = int(options.min_seconds * SAMPLE_RATE)
    audio = normalize_peak(np.ascontiguousarray(piece, dtype=np.float32))
    if n < min_len:
        audio = np.pad(audio, (0, min_len - n))
    return Chunk(offset, audio, n)


def speech_regions(x: np.ndarray, options: ChunkOptions) -> list[tuple[int, int]]:
    """[start, end) sample ranges of `x` to keep: everything but non-speech runs of min_silence_seconds."""
    frame = SAMPLE_RATE * 30 // 1000
    n_frames = x.size // frame
    if n_frames == 0:
        return [(0, x.size)] if np.abs(x).max(initial=0.0) > 10 ** (options.vad_threshold_db / 20) else []
    rms = np.sqrt(np.mean(x[: n_frames * frame].reshape(n_frames, frame).astype(np.float64) ** 2, axis=1))
    speech = 20 * np.log10(rms + 1e-10) > options.vad_threshold_db
    min_run = int(options.min_silence_seconds * 1000 / 30)
    pad = int(options.speech_pad_seconds * SAMPLE_RATE)
    keep, i = [], 0
    start = 0
    while i < n_frames:
        if speech[i]:
            i += 1
            continue
        j = i
        while j < n_frames and not speech[j]:
            j += 1
        if j - i >= min_run or (i == 0 and j == n_frames):
            cut_lo = i * frame + (pad if i > 0 else 0)
            cut_hi = j * frame - (pad if j < n_frames else 0)
            if j == n_frames:
                cut_hi = x.size
            if cut_lo > start:
                keep.append((start, cut_lo))
            start = max(start, cut_hi)
        i = j
    if start < x.size:
        keep.append((start, x.size))
    return [(a, b) for a, b in keep if b - a >= frame]


def iter_chunks(
    blocks: Iterable[np.ndarray], options: ChunkOptions = ChunkOptions(), first_sample: int = 0
) -> Iterator[Chunk]:
    """Chunks of at most options.max_seconds from a stream of sample blocks, cut at quiet points; the
    stream's first sample sits at `first_sample` of the whole input."""
    max_len = int(options.max_seconds * SAMPLE_RATE)
    search = int(min(options.search_seconds, options.max_seconds / 3) * SAMPLE_RATE)
    buf = np.zeros(0, dtype=np.float32)
    offset = first_sample  # sample offset of buf[0] in the whole input

    def emit(piece: np.ndarray, start: int) -> Iterator[Chunk]:
        if not options.vad:
            yield _make_chunk(start, piece, options)
            return
        for a, b in speech_regions(piece, options):
            yield _make_chunk(start + a, piece[a:b], options)

    for block in blocks:
        buf = np.concatenate([buf, np.asarray(block, dtype=np.float32)])
        while buf.size > max_len:
            cut = quiet_cut(buf, max_len - search, max_len)
            cut = max(cut, SAMPLE_RATE)
            yield from emit(buf[:cut], offset)
            buf = buf[cut:]
            offset += cut
    if buf.size:
        yield from emit(buf, offset)
