"""Chunking: cuts at quiet points inside known silences, offsets from sample counts, streaming, and chunks
made of the speech Silero VAD finds (espeak-ng speech among noise and silence, tests/fixtures/trained/speech.py)."""

import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from qwen3asr_plugin.engine.chunking import Chunk, ChunkOptions, iter_chunks, source_word
from qwen3asr_plugin.engine.records import Word
from qwen3asr_plugin.engine.vad import VadOptions
from tests.fixtures.trained import speech
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
    chunks = split_audio(audio, ChunkOptions(max_seconds=30, first_max_seconds=None))
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


@pytest.fixture(scope="module")
def talk():
    """74 s: English, noise, silence, Mandarin, silence (espeak-ng speech, every unit's true times)."""
    return speech.talk(
        [("English", 30), ("noise", 8), ("silence", 6), ("Chinese", 18), ("silence", 12)], seed=11
    )


def vad_chunks(audio: np.ndarray, block: int | None = None, first_sample: int = 0, **vad) -> list[Chunk]:
    blocks = [audio] if block is None else [audio[i : i + block] for i in range(0, audio.size, block)]
    return list(iter_chunks(blocks, ChunkOptions(vad=VadOptions(**vad)), first_sample=first_sample))


def spans(chunks: list[Chunk]) -> list[tuple[int, int]]:
    return [(source, source + length) for c in chunks for _, source, length in c.pieces]


def test_vad_chunks_hold_every_word_and_leave_out_noise_and_silence(talk):
    chunks = vad_chunks(talk.audio)
    kept = spans(chunks)
    for _, w in talk.words:  # every spoken unit whole inside one piece: nothing said is skipped or cut
        assert any(a <= w.start * SR and w.end * SR <= b for a, b in kept), w
    for kind, a, b in talk.sections:
        if kind in ("noise", "silence"):  # nothing of them kept beyond the 0.4 s pads
            inside = sum(max(0, min(y, (b - 0.45) * SR) - max(x, (a + 0.45) * SR)) for x, y in kept)
            assert inside == 0, (kind, a, b)
    assert sum(y - x for x, y in kept) < talk.audio.size - 24 * SR  # 26 s of nothing said, less the pads
    for chunk in chunks:
        assert chunk.n_samples <= 30 * SR and chunk.n_samples == sum(n for _, _, n in chunk.pieces)
        at = 0
        for offset, source, length in chunk.pieces:  # the pieces are the input's samples, in order
            assert offset == at
            piece = chunk.audio[offset : offset + length]
            original = talk.audio[source : source + length]
            scale = np.abs(piece).max() / np.abs(original).max()
            np.testing.assert_allclose(piece, original * scale, atol=1e-6)
            at += length
        assert chunk.start_sample == chunk.pieces[0][1]
    assert [c.start_sample for c in chunks] == sorted(c.start_sample for c in chunks)
    assert len(chunks) >= 2 and max(len(c.pieces) for c in chunks) >= 2  # regions are joined into chunks


def test_vad_chunks_do_not_depend_on_the_blocks_and_keep_the_input_offset(talk):
    whole = vad_chunks(talk.audio)
    for block in (7_777, 160_000):
        streamed = vad_chunks(talk.audio, block=block, first_sample=SR * 100)
        assert [(c.start_sample - SR * 100, c.n_samples) for c in streamed] == [
            (c.start_sample, c.n_samples) for c in whole
        ]
        assert [(a - SR * 100, b - SR * 100) for a, b in spans(streamed)] == spans(whole)
        for x, y in zip(streamed, whole, strict=True):
            np.testing.assert_allclose(x.audio, y.audio, atol=1e-6)


def test_a_region_longer_than_a_chunk_is_cut_between_words():
    """With pauses of up to 3 s inside one region (min_silence 5 s), 70 s of talk is one region: it is cut
    into chunks of at most 30 s that follow each other without a gap, each cut between two words."""
    long = speech.talk([("English", 70)], seed=12)
    chunks = vad_chunks(long.audio, block=SR, min_silence_seconds=5.0)
    kept = spans(chunks)
    assert len(chunks) >= 3 and all(c.n_samples <= 30 * SR for c in chunks)
    assert all(len(c.pieces) == 1 for c in chunks)
    for (_, b), (a, _) in zip(kept, kept[1:], strict=False):
        assert a == b  # cut, not skipped
    for _, w in long.words:  # (a word's trimmed edge may be a sample or two past the quietest sample)
        assert any(a <= w.start * SR + 2 and w.end * SR - 2 <= b for a, b in kept), w


def test_no_speech_gives_no_chunks():
    rng = np.random.default_rng(0)
    silence = np.zeros(SR * 20, np.float32)
    assert vad_chunks(silence) == []
    assert vad_chunks(speech.noise(rng, 20.0, 0.2), block=SR) == []


def test_times_inside_a_joined_chunk_map_back_to_the_input():
    """Two regions joined, 1-2 s and 5-7 s of the input: a time in the chunk's audio is the input's time
    of the piece it falls in; a word ending on the join ends with the first piece."""
    chunk = Chunk(SR, np.zeros(3 * SR, np.float32), 3 * SR, ((0, SR, SR), (SR, 5 * SR, 2 * SR)))
    assert (chunk.start_seconds, chunk.end_seconds) == (1.0, 7.0)
    assert chunk.source_seconds(0.5) == 1.5
    assert chunk.source_seconds(1.0) == 5.0 and chunk.source_seconds(1.0, end=True) == 2.0
    assert chunk.source_seconds(2.5) == 6.5 and chunk.source_seconds(9.0) == 7.0
    assert source_word(chunk, Word(0.25, 1.0, "a")) == Word(1.25, 2.0, "a")
    assert source_word(chunk, Word(1.0, 1.5, "b")) == Word(5.0, 5.5, "b")
    plain = Chunk(SR * 3, np.zeros(SR, np.float32), SR)  # without VAD: the chunk's start plus the time
    assert plain.source_seconds(0.5) == 3.5 and plain.end_seconds == 4.0


# Sounds with nothing said, from ffmpeg's generators: noise of three colours, a chord that changes every
# second (music-like), a gliding tone and silence.
NON_SPEECH = (
    "anoisesrc=color=white:amplitude=0.2",
    "anoisesrc=color=pink:amplitude=0.4",
    "anoisesrc=color=brown:amplitude=0.6",
    "aevalsrc=0.2*sin(2*PI*(220+55*floor(mod(t\\,4)))*t)+0.1*sin(2*PI*(330+55*floor(mod(2*t\\,3)))*t)"
    "+0.05*sin(2*PI*660*t)",
    "aevalsrc=0.3*sin(2*PI*(180+40*sin(t))*t)",
    "anullsrc=channel_layout=mono",
)


def non_speech_blocks(seconds: int, piece: int = 60):
    """`seconds` of the sounds above, a `piece` of each in turn, generated by ffmpeg and read in 1 s blocks."""
    import subprocess

    for i, at in enumerate(range(0, seconds, piece)):
        source = NON_SPEECH[i % len(NON_SPEECH)]
        raw = subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                f"{source}:r={SR}" if "noise" in source else source,
            ]
            + ["-t", str(min(piece, seconds - at)), "-ar", str(SR), "-ac", "1", "-f", "f32le", "-"],
            capture_output=True,
            check=True,
        ).stdout
        x = np.frombuffer(raw, np.float32)
        yield from (x[j : j + SR] for j in range(0, x.size, SR))


@pytest.mark.skipif(not shutil.which("ffmpeg"), reason="tests/run.sh installs ffmpeg")
def test_an_hour_with_nothing_said_gives_no_decoder_call_in_flat_memory(models):
    """An hour of noise, music-like chords, tones and silence through the pipeline with VAD: no chunk
    reaches the decoder (so no subtitle), and the chunker holds no more than a few seconds of audio."""
    import tracemalloc

    from qwen3asr_plugin.api import ASRModel
    from qwen3asr_plugin.engine.pipeline import TranscribeOptions

    engine = ASRModel(models("tiny"), aligner=None, device="cpu")
    calls = []
    engine.pipeline.transcribe_chunks = lambda audios, *a, **k: calls.append(len(audios)) or []
    options = TranscribeOptions(chunking=ChunkOptions(vad=VadOptions()))
    tracemalloc.start()
    try:
        segments, info = engine.pipeline.transcribe_stream(non_speech_blocks(3600), options)
        assert list(segments) == []
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert calls == [] and info.duration == pytest.approx(3600, abs=0.1)
    assert peak < 16 << 20, peak  # the hour is 230 MB as float32 (measured: 12 MB, a minute of ffmpeg output)


def test_a_long_region_is_cut_as_it_is_heard_not_held_whole():
    """Streaming: the first chunk of a long region comes out once the limit of it has been read, long before
    the region (here all 70 s) ends, so memory does not follow the length of unbroken speech."""
    long = speech.talk([("English", 70)], seed=12)
    read = []

    def blocks():
        for i in range(0, long.audio.size, SR):
            read.append(i + SR)
            yield long.audio[i : i + SR]

    chunks = iter_chunks(blocks(), ChunkOptions(vad=VadOptions(min_silence_seconds=5.0)))
    first = next(chunks)
    assert first.n_samples <= 30 * SR and read[-1] <= 32 * SR, read[-1] / SR


def test_the_pipeline_gives_word_times_of_the_input_across_what_vad_left_out():
    """A chunk of two speech regions (1-2 s and 5-7 s): the aligner's times inside the joined audio come
    out as the input's times (engine/pipeline.py AsrPipeline._segment)."""
    from qwen3asr_plugin.engine.pipeline import AsrPipeline
    from qwen3asr_plugin.engine.records import TranscriptionInfo

    pipeline = AsrPipeline.__new__(AsrPipeline)
    pipeline.aligner = SimpleNamespace(
        align=lambda audio, text, language: [Word(0.2, 0.9, "a"), Word(1.1, 2.5, " b")]
    )
    chunk = Chunk(SR, np.zeros(3 * SR, np.float32), 3 * SR, ((0, SR, SR), (SR, 5 * SR, 2 * SR)))
    result = SimpleNamespace(
        parsed=SimpleNamespace(no_speech=False, text="a b", language="English"),
        tokens=[1],
        generation=SimpleNamespace(temperature=0.0),
    )
    segment = pipeline._segment(chunk, result, 0, TranscriptionInfo(language=None, duration=7.0))
    assert [(w.start, w.end) for w in segment.words] == [(1.2, 1.9), (5.1, 6.5)]
    assert (segment.start, segment.end) == (1.2, 6.5)


def test_the_engine_takes_the_vad_settings_it_is_given(models, talk):
    """`vad_parameters` reach the chunker through the engine (the runner passes RunOptions' own): a minimum
    speech length longer than any region leaves nothing to decode; the defaults decode the speech alone."""
    from qwen3asr_plugin.api import ASRModel

    engine = ASRModel(models("tiny"), aligner=None, device="cpu")
    decoded = []
    engine.pipeline.transcribe_chunks = lambda audios, *a, **k: (
        decoded.extend(x.size for x in audios)
        or [SimpleNamespace(parsed=SimpleNamespace(no_speech=True, text=""))] * len(audios)
    )
    audio = talk.audio[: SR * 40]
    list(engine.transcribe(audio, vad_parameters={"min_speech_seconds": 60.0})[0])
    assert decoded == []
    list(engine.transcribe(audio)[0])
    assert 0 < sum(decoded) < audio.size - 5 * SR  # the noise is left out
    decoded.clear()
    list(engine.transcribe(audio, vad_filter=False)[0])
    assert sum(decoded) == audio.size


def test_the_first_chunk_is_short_so_a_player_shows_subtitles_soon(talk):
    """At most 10 s (cut in its second half, in a pause where there is one), then chunks of up to 30 s
    again: with and without VAD."""
    rng = np.random.default_rng(3)
    audio, silences = speech_with_silences(list(rng.uniform(1.0, 4.0, 60)))
    chunks = split_audio(audio)
    assert 5 * SR <= chunks[0].n_samples <= 10 * SR
    assert any(lo <= chunks[0].n_samples <= hi for lo, hi in silences)
    assert all(c.n_samples > 19 * SR for c in chunks[1:-1]) and len(chunks) > 3
    assert split_audio(audio, ChunkOptions(first_max_seconds=None))[0].n_samples > 19 * SR
    spoken = vad_chunks(talk.audio)
    assert spoken[0].n_samples <= 10 * SR and max(c.n_samples for c in spoken[1:]) > 15 * SR


def test_sparse_speech_is_not_held_back_for_more_speech(talk):
    """2 s said, then a long silence: the chunk with it comes out once the first chunk's limit (10 s) of
    input has passed, not when 30 s of speech has piled up (a live input would lag by minutes)."""
    said = speech.talk([("English", 2)], seed=13).audio
    audio = np.concatenate([said, np.zeros(SR * 100, np.float32), said])
    read = []

    def blocks():
        for i in range(0, audio.size, SR):
            read.append(i + SR)
            yield audio[i : i + SR]

    first = next(iter_chunks(blocks(), ChunkOptions(vad=VadOptions())))
    assert first.start_sample < SR and read[-1] <= (said.size / SR + 12) * SR, read[-1] / SR


def test_without_word_times_regions_are_not_joined(talk):
    """Without an aligner a segment's words are spread over its span: a chunk per speech region keeps them
    off the non-speech that was cut out."""
    chunks = list(iter_chunks([talk.audio], ChunkOptions(vad=VadOptions(), join_regions=False)))
    assert len(chunks) >= 4 and all(len(c.pieces) == 1 for c in chunks)
    joined = vad_chunks(talk.audio)
    assert spans(joined) == spans(chunks)  # the same speech, cut the same way
