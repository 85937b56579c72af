"""Cutting long audio into ASR chunks, streaming: at quiet moments, or (with VAD) out of whole speech regions.

Without VAD a cut lands at the lowest-energy point of a search window before the chunk limit (the official
toolkit's rule, `split_audio_into_chunks` in qwen_asr/inference/utils.py): a 100 ms moving sum of |x| picks the
quietest window, then the quietest sample inside it, so words are not cut in half.

With VAD (Silero, engine/vad.py) only speech is transcribed: the speech regions are joined into chunks of up
to the limit, whole regions each, with the non-speech between them cut out (faster-whisper joins its VAD
regions so, `collect_chunks` in faster_whisper/vad.py; WhisperX merges them up to the chunk size,
`merge_chunks` in whisperx/vads/vad.py); a region longer than the limit is cut at its quietest point as
above. A chunk keeps where each of its pieces came from, so times inside it map back to the input's exactly
(`Chunk.source_seconds`). Timestamps come from sample counts, never from chunk index times size. Only about
one chunk plus the search window is held at a time (with VAD, plus the region being heard).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from .audio import SAMPLE_RATE, normalize_peak
from .records import Word
from .vad import WINDOW, SpeechTracker, VadOptions, silero


@dataclass(frozen=True)
class Chunk:
    start_sample: int
    audio: np.ndarray  # may be zero-padded past n_samples
    n_samples: int  # real samples
    # (at, source, length): audio[at : at + length] is the input's samples [source, source + length). One
    # piece unless VAD joined speech regions, leaving out what lies between them.
    pieces: tuple[tuple[int, int, int], ...] = ()

    @property
    def start_seconds(self) -> float:
        return self.start_sample / SAMPLE_RATE

    @property
    def end_sample(self) -> int:
        if self.pieces:
            _, source, length = self.pieces[-1]
            return source + length
        return self.start_sample + self.n_samples

    @property
    def end_seconds(self) -> float:
        return self.end_sample / SAMPLE_RATE

    def source_seconds(self, seconds: float, end: bool = False) -> float:
        """The input's time of `seconds` into this chunk's audio. A time on the edge of two pieces is the
        end of the first when `end` (a word that ends there), else the start of the second."""
        pieces = self.pieces or ((0, self.start_sample, self.n_samples),)
        at = seconds * SAMPLE_RATE
        chosen = pieces[-1]
        for piece in pieces:
            if (at <= piece[0] + piece[2]) if end else (at < piece[0] + piece[2]):
                chosen = piece
                break
        offset, source, length = chosen
        return (source + min(max(at - offset, 0.0), length)) / SAMPLE_RATE


def source_word(chunk: Chunk, word: Word) -> Word:
    """A word timed inside `chunk`'s audio, at the input's times."""
    start = round(chunk.source_seconds(word.start), 3)
    return Word(start, max(start, round(chunk.source_seconds(word.end, end=True), 3)), word.word)


# The first chunk's limit: its encoder, decoder and aligner work is a third of a full chunk's, so a player's
# first subtitle comes that much sooner. Every front end cuts so, so that all give the same subtitles.
FIRST_CHUNK_SECONDS = 10.0


@dataclass(frozen=True)
class ChunkOptions:
    max_seconds: float = 30.0
    search_seconds: float = 10.0  # the cut is searched in the last `search_seconds` before the limit
    min_seconds: float = 0.5  # shorter chunks are zero-padded (as the reference pads them)
    vad: VadOptions | None = None  # transcribe only the speech Silero VAD finds, with these settings
    first_max_seconds: float | None = FIRST_CHUNK_SECONDS  # the first chunk's limit (None: max_seconds)
    # VAD: join speech regions into chunks (the words then need times of their own, from an aligner: without
    # them a segment's words are spread over its span, which would cross what was cut out); False: a chunk
    # per region
    join_regions: bool = True


def quiet_cut(x: np.ndarray, lo: int, hi: int, window: int = SAMPLE_RATE // 10) -> int:
    """The index of the quietest sample in x[lo:hi], found through the quietest `window`."""
    lo, hi = max(0, lo), min(x.size, hi)
    if hi - lo <= window:
        return hi
    energy = np.convolve(np.abs(x[lo:hi]), np.ones(window, dtype=np.float32), mode="valid")
    start = lo + int(np.argmin(energy))
    return start + int(np.argmin(np.abs(x[start : start + window])))


def _make_chunk(offset: int, piece: np.ndarray, options: ChunkOptions, pieces=()) -> Chunk:
    n = piece.size
    min_len = int(options.min_seconds * SAMPLE_RATE)
    audio = normalize_peak(np.ascontiguousarray(piece, dtype=np.float32))
    if n < min_len:
        audio = np.pad(audio, (0, min_len - n))
    return Chunk(offset, audio, n, tuple(pieces))


def iter_chunks(
    blocks: Iterable[np.ndarray], options: ChunkOptions = ChunkOptions(), first_sample: int = 0
) -> Iterator[Chunk]:
    """Chunks of at most options.max_seconds from a stream of sample blocks; the stream's first sample sits
    at `first_sample` of the whole input."""
    if options.vad is not None:
        yield from _speech_chunks(blocks, options, first_sample)
        return
    max_len, limit = _limits(options)
    buf = np.zeros(0, dtype=np.float32)
    offset = first_sample  # sample offset of buf[0] in the whole input
    for block in blocks:
        buf = np.concatenate([buf, np.asarray(block, dtype=np.float32)])
        while buf.size > limit:
            cut = _cut_point(buf, options, limit)
            yield _make_chunk(offset, buf[:cut], options)
            buf = buf[cut:]
            offset += cut
            limit = max_len
    if buf.size:
        yield _make_chunk(offset, buf, options)


def _limits(options: ChunkOptions) -> tuple[int, int]:
    """(every chunk's limit, the first chunk's), in samples."""
    max_len = int(options.max_seconds * SAMPLE_RATE)
    first = options.first_max_seconds
    return max_len, min(max_len, int(first * SAMPLE_RATE)) if first else max_len


def _cut_point(x: np.ndarray, options: ChunkOptions, limit: int) -> int:
    """Where to cut `x` (longer than `limit`): its quietest point in the last search_seconds before the limit
    (at most half the limit: a short first chunk is cut in its second half), and at least 1 s in."""
    search = int(min(options.search_seconds * SAMPLE_RATE, limit / 2))
    return max(quiet_cut(x, limit - search, limit), SAMPLE_RATE)


def _speech_chunks(blocks: Iterable[np.ndarray], options: ChunkOptions, first_sample: int) -> Iterator[Chunk]:
    """Chunks made of the speech regions Silero VAD finds as the blocks arrive (positions below are samples
    of the stream; `first_sample` is added on the way out)."""
    assert options.vad is not None
    max_len, limit = _limits(options)
    scorer, tracker = silero().scorer(), SpeechTracker(options.vad)
    buf, buf_at = np.zeros(0, np.float32), 0  # the audio still needed, and the stream sample of buf[0]
    pending: list[tuple[int, np.ndarray]] = []  # the next chunk's regions so far: (start, audio)
    done = 0  # every sample before this is in a chunk or skipped

    def flush() -> Iterator[Chunk]:
        nonlocal limit
        if not pending:
            return
        limit = max_len
        pieces, at = [], 0
        for start, audio in pending:
            pieces.append((at, first_sample + start, audio.size))
            at += audio.size
        joined = np.concatenate([audio for _, audio in pending])
        pending.clear()
        yield _make_chunk(pieces[0][1], joined, options, pieces)

    def cut_long(a: int, hi: int) -> Iterator[Chunk]:
        """Chunks of the limit out of speech [a, hi) while more than the limit of it is held."""
        nonlocal done
        while hi - a > limit:
            yield from flush()
            cut = a + _cut_point(buf[a - buf_at : hi - buf_at], options, limit)
            pending.append((a, buf[a - buf_at : cut - buf_at].copy()))
            yield from flush()
            a = done = cut

    def add(region: tuple[int, int]) -> Iterator[Chunk]:
        nonlocal done
        a, b = max(region[0], done), region[1]
        if b <= a:
            return
        yield from cut_long(a, b)
        a = max(a, done)
        if sum(audio.size for _, audio in pending) + (b - a) > limit:
            yield from flush()
        pending.append((a, buf[a - buf_at : b - buf_at].copy()))
        done = b
        if not options.join_regions:
            yield from flush()

    read = 0
    for block in blocks:
        block = np.asarray(block, dtype=np.float32).ravel()
        buf = np.concatenate([buf, block])
        read += block.size
        for score in scorer.push(block):
            for region in tracker.push(score):
                yield from add(region)
        if tracker.start is not None and tracker.closed is None:  # a long region is cut as it is heard
            yield from cut_long(max(done, tracker.start - tracker.pad), tracker.windows * WINDOW)
        if pending and tracker.windows * WINDOW - pending[0][0] > limit:
            yield from flush()  # speech heard a chunk's length ago goes now (sparse speech, a live input)
        # what a region may still need: from a pad before the windows to come, the region waiting for its
        # end pad, and the open region (from where it was last cut)
        keep = tracker.windows * WINDOW - tracker.pad
        if tracker.closed is not None:
            keep = min(keep, tracker.closed[0])
        if tracker.start is not None:
            keep = min(keep, max(tracker.start - tracker.pad, done))
        keep = min(keep, read)
        if keep > buf_at:
            buf, buf_at = buf[keep - buf_at :], keep
    for score in scorer.finish():
        for region in tracker.push(score):
            yield from add(region)
    for region in tracker.finish(read):
        yield from add(region)
    yield from flush()
