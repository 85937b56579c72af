"""Voice activity detection with Silero VAD (v6, MIT licence: data/SILERO_VAD_LICENSE), run by onnxruntime.

The model ships in this package (data/silero_vad.onnx, from the `silero-vad` 6.2.3 wheel), as faster-whisper
ships it, so nothing is downloaded and torch is not needed. It scores windows of 512 samples (32 ms at 16 kHz),
each seen with the 64 samples before it and the recurrent state the previous window left (the model's own
wrapper, silero_vad/utils_vad.py OnnxWrapper, feeds it so). Scoring streams over blocks of any size, so memory
stays flat on hours of audio; `speech_regions` turns the scores into speech regions with the usual knobs,
defaults as faster-whisper's VadOptions.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from .audio import SAMPLE_RATE
from .errors import Qwen3ASRError

MODEL = Path(__file__).parent / "data" / "silero_vad.onnx"
WINDOW = 512  # samples per score at 16 kHz
CONTEXT = 64  # samples of the previous window each window is seen with
WINDOW_SECONDS = WINDOW / SAMPLE_RATE


@dataclass(frozen=True)
class VadOptions:
    """faster-whisper's defaults (faster_whisper/vad.py, VadOptions)."""

    threshold: float = 0.5  # a window with a score at least this is speech...
    neg_threshold: float | None = None  # ...and speech goes on until a score below this (threshold - 0.15)
    min_speech_seconds: float = 0.0  # shorter regions are dropped
    min_silence_seconds: float = 2.0  # a pause this long ends a region
    speech_pad_seconds: float = 0.4  # added on each side (never past the neighbours or the ends)


class SileroVad:
    """Scores of speech for a stream of 16 kHz mono float32 blocks."""

    def __init__(self, threads: int = 1):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(MODEL), options, providers=["CPUExecutionProvider"])

    def scorer(self) -> Scorer:
        """A fresh stream (the recurrent state starts at zero)."""
        return Scorer(self.session)

    def scores(self, blocks: Iterable[np.ndarray]) -> Iterator[float]:
        """One speech score (0-1) per 32 ms window, in order; the last window is zero-padded."""
        scorer = self.scorer()
        for block in blocks:
            yield from scorer.push(block)
        yield from scorer.finish()


def vad_options(parameters: Mapping[str, float] | None = None) -> VadOptions:
    """VadOptions with `parameters` (field names) changed; an unknown name or a bad value is an error."""
    known = {f.name for f in fields(VadOptions)}
    unknown = sorted(set(parameters or {}) - known)
    if unknown:
        raise Qwen3ASRError(f"unknown VAD parameter {unknown[0]!r}; known: {', '.join(sorted(known))}")
    options = VadOptions(**dict(parameters or {}))
    if (
        not 0 < options.threshold < 1
        or min(options.min_speech_seconds, options.min_silence_seconds, options.speech_pad_seconds) < 0
    ):
        raise Qwen3ASRError("VAD settings: the threshold is between 0 and 1 and durations are not negative")
    return options


@functools.cache
def silero() -> SileroVad:
    """One model per process (onnxruntime sessions may run from several threads at once)."""
    return SileroVad()


class Scorer:
    """One stream's scoring: `push` blocks of any size, get the scores of the windows they complete."""

    def __init__(self, session):
        self.session = session
        self.state = np.zeros((2, 1, 128), np.float32)
        self.context = np.zeros(CONTEXT, np.float32)
        self.rate = np.array(SAMPLE_RATE, np.int64)
        self.pending = np.zeros(0, np.float32)

    def _score(self, window: np.ndarray) -> float:
        x = np.concatenate([self.context, window])[None, :]
        out, self.state = self.session.run(None, {"input": x, "state": self.state, "sr": self.rate})
        self.context = window[-CONTEXT:]
        return float(out[0, 0])

    def push(self, block: np.ndarray) -> list[float]:
        self.pending = np.concatenate([self.pending, np.asarray(block, np.float32).ravel()])
        whole = self.pending.size // WINDOW * WINDOW
        out = [self._score(self.pending[at : at + WINDOW]) for at in range(0, whole, WINDOW)]
        self.pending = self.pending[whole:]
        return out

    def finish(self) -> list[float]:
        """The last, zero-padded window's score (none if the stream ended on a window's edge)."""
        if not self.pending.size:
            return []
        window = np.concatenate([self.pending, np.zeros(WINDOW - self.pending.size, np.float32)])
        self.pending = np.zeros(0, np.float32)
        return [self._score(window)]


class SpeechTracker:
    """Speech regions found as scores arrive, in samples of the stream, each given out once it is final.

    A region starts at a window scoring at least the threshold and ends at the start of the first run of
    windows below the negative threshold that lasts `min_silence_seconds` (or at the end); regions shorter
    than `min_speech_seconds` go; each is padded by `speech_pad_seconds`, split evenly where neighbours are
    closer than twice that. A region is final once no later region can come near it."""

    def __init__(self, options: VadOptions = VadOptions()):
        self.threshold = options.threshold
        neg = options.neg_threshold
        self.low = neg if neg is not None else max(options.threshold - 0.15, 0.01)
        self.min_silence = options.min_silence_seconds * SAMPLE_RATE
        self.min_speech = max(options.min_speech_seconds * SAMPLE_RATE, WINDOW)
        self.pad = int(round(options.speech_pad_seconds * SAMPLE_RATE))
        self.windows = 0  # windows seen
        self.start: int | None = None  # the open region's start, while in speech
        self.quiet_since: int | None = None  # the first window of the current quiet run, while in speech
        self.closed: tuple[int, int] | None = None  # a region (padded start, raw end) waiting for its end pad
        self.given = 0  # the padded end of the last region given out

    def push(self, score: float) -> list[tuple[int, int]]:
        t = self.windows * WINDOW
        self.windows += 1
        out = []
        # the waiting region's end pad is final once no region has started within two pads of it
        far = None if self.closed is None else self.closed[1] + 2 * self.pad
        if far is not None and t >= far and (self.start is None or self.start >= far):
            out.append(self._give(far - self.pad))
        if self.start is None:
            if score >= self.threshold:
                self.start, self.quiet_since = t, None
            return out
        if score >= self.low:
            self.quiet_since = None
            if self.closed is not None and t + WINDOW - self.start >= self.min_speech:
                # the open region will be kept (it ends no earlier than this window): the waiting one's end
                # is final now, halfway between them, and is not held until the open region ends
                out.append(self._give(min(self.closed[1] + self.pad, (self.closed[1] + self.start) // 2)))
            return out
        if self.quiet_since is None:
            self.quiet_since = t
        if t + WINDOW - self.quiet_since >= self.min_silence:
            out += self._close(self.start, self.quiet_since)
            self.start = self.quiet_since = None
        return out

    def finish(self, end: int | None = None) -> list[tuple[int, int]]:
        """The regions still open or waiting, once the stream has ended at sample `end` (default: the end of
        the last window)."""
        end = self.windows * WINDOW if end is None else end
        out = []
        if self.start is not None:
            out += self._close(self.start, self.quiet_since if self.quiet_since is not None else end)
            self.start = self.quiet_since = None
        if self.closed is not None:
            out.append(self._give(min(self.closed[1] + self.pad, end)))
        return out

    def _close(self, a: int, b: int) -> list[tuple[int, int]]:
        if b - a < self.min_speech:
            return []
        out = []
        first = max(a - self.pad, self.given)  # (the halfway point, if the previous region was given for it)
        if self.closed is not None:
            middle = (self.closed[1] + a) // 2
            out.append(self._give(min(self.closed[1] + self.pad, middle)))
            first = max(a - self.pad, middle)
        self.closed = (first, b)
        return out

    def _give(self, end: int) -> tuple[int, int]:
        assert self.closed is not None
        region = (self.closed[0], end)
        self.closed, self.given = None, end
        return region


def speech_regions(
    scores: Iterable[float], options: VadOptions = VadOptions(), duration: float | None = None
) -> list[tuple[float, float]]:
    """Speech regions (seconds) from window scores (the rules of SpeechTracker), for a whole stream that
    lasts `duration` seconds (default: to the end of the last window)."""
    tracker = SpeechTracker(options)
    found = [region for score in scores for region in tracker.push(score)]
    found += tracker.finish(None if duration is None else int(round(duration * SAMPLE_RATE)))
    return [(round(a / SAMPLE_RATE, 3), round(b / SAMPLE_RATE, 3)) for a, b in found]
