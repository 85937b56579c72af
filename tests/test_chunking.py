"""Chunking: cuts at quiet points inside known silences, offsets from sample counts, streaming, VAD."""

import numpy as np
import pytest

from qwen3asr_plugin.engine.chunking import Chunk, ChunkOptions, iter_chunks, speech_regions
from tests.parity import speech_like

SR = 16_000


def split_audio(x: np.ndarray, options: ChunkOptions = ChunkOptions()) -> list[Chunk]:
    """All chunks of an in-memory array."""
    return list(iter_chunks([x], options))


def speech_with_silences(seconds_of_speech: list[float], silence: float = 0.6, seed: int = 0):
    """Speech-like bursts separated by digital silences; returns audio and the silence intervals (samples)."""
    parts, silences, pos = [], [], 0
    for i, sec in enumerate(seconds_of_speech):
        burst = speech_like(int(sec * SR), seed=seed + i)
        burst[np.abs(burst) < 1e-3] = 1e-3  # no accidental quiet samples inside speech
        parts.append(burst)
        pos += burst.size
        gap = np.zeros(int(silence * SR), np.float32)
        silences.append((pos, pos + gap.size))
        parts.append(gap)
        pos += gap.size
    return np.concatenate(parts), silences[:-1]


def test_cuts_land_inside_the_silences():
    rng = np.random.default_rng(1)
    audio, silences = speech_with_silences(list(rng.uniform(2.0, 6.0, 60)))
    chunks = split_audio(audio, ChunkOptions(max_seconds=30))
    assert len(chunks) > 5
    for chunk in chunks[1:]:
        cut = chunk.start_sample
        assert any(lo <= cut <= hi for lo, hi in silences), cut / SR
    assert all(c.n_samples <= 30 * SR for c in chunks)


def test_offsets_come_from_sample_counts():
    audio, _ = speech_with_silences([4.3] * 30)
    chunks = split_audio(audio)
    assert chunks[0].start_sample == 0
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.start_sample == a.start_sample + a.n_samples
    assert sum(c.n_samples for c in chunks) == audio.size
    assert chunks[-1].end_seconds == pytest.approx(audio.size / SR)


def test_streaming_blocks_give_the_same_chunks():
    audio, _ = speech_with_silences([3.7] * 40, seed=5)
    whole = split_audio(audio)
    rng = np.random.default_rng(2)
    edges = np.sort(rng.integers(0, audio.size, 40))
    blocks = np.split(audio, edges)
    streamed = list(iter_chunks(blocks))
    assert [(c.start_sample, c.n_samples) for c in streamed] == [(c.start_sample, c.n_samples) for c in whole]


def test_short_chunks_are_padded_but_keep_their_length():
    (chunk,) = split_audio(speech_like(SR // 5))
    assert chunk.audio.size == SR // 2 and chunk.n_samples == SR // 5
    assert chunk.end_seconds == pytest.approx(0.2)


def test_vad_skips_long_silence_and_keeps_speech():
    speech = speech_like(4 * SR)
    audio = np.concatenate([np.zeros(5 * SR, np.float32), speech, np.zeros(10 * SR, np.float32), speech])
    chunks = split_audio(audio, ChunkOptions(vad=True))
    covered = sum(c.n_samples for c in chunks)
    assert covered < audio.size - 12 * SR  # the 15 s of silence is (nearly) gone
    spans = [(c.start_sample, c.start_sample + c.n_samples) for c in chunks]
    for start in (5 * SR, 19 * SR):  # both speech bursts are inside kept spans
        assert any(a <= start + SR and start + 3 * SR <= b for a, b in spans)
    assert speech_regions(np.zeros(SR * 10, np.float32), ChunkOptions(vad=True)) == []
    assert split_audio(np.zeros(SR * 10, np.float32), ChunkOptions(vad=True)) == []
