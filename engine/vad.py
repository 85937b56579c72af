"""Voice activity detection with Silero VAD (v6, MIT licence: data/SILERO_VAD_LICENSE), run by onnxruntime.

The model ships in this package (data/silero_vad.onnx, from the `silero-vad` 6.2.3 wheel), as faster-whisper
ships it, so nothing is downloaded and torch is not needed. It scores windows of 512 samples (32 ms at 16 kHz),
each seen with the 64 samples before it and the recurrent state the previous window left (the model's own
wrapper, silero_vad/utils_vad.py OnnxWrapper, feeds it so). Scoring streams over blocks of any size, so memory
stays flat on hours of audio; `speech_regions` turns the scores into speech regions with the usual knobs,
defaults as faster-whisper's VadOptions.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import SAMPLE_RATE

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

    def scores(self, blocks: Iterable[np.ndarray]) -> Iterator[float]:
        """One speech score (0-1) per 32 ms window, in order; the last window is zero-padded."""
        state = np.zeros((2, 1, 128), np.float32)
        context = np.zeros(CONTEXT, np.float32)
        rate = np.array(SAMPLE_RATE, np.int64)
        pending = np.zeros(0, np.float32)
        for block in blocks:
            pending = np.concatenate([pending, np.asarray(block, np.float32).ravel()])
            whole = pending.size // WINDOW * WINDOW
            for at in range(0, whole, WINDOW):
                window = pending[at : at + WINDOW]
                x = np.concatenate([context, window])[None, :]
                out, state = self.session.run(None, {"input": x, "state": state, "sr": rate})
                context = window[-CONTEXT:]
                yield float(out[0, 0])
            pending = pending[whole:]
        if pending.size:
            window = np.concatenate([pending, np.zeros(WINDOW - pending.size, np.float32)])
            out, state = self.session.run(
                None, {"input": np.concatenate([context, window])[None, :], "state": state, "sr": rate}
            )
            yield float(out[0, 0])


def speech_regions(
    scores: Iterable[float], options: VadOptions = VadOptions(), duration: float | None = None
) -> list[tuple[float, float]]:
    """Speech regions (seconds) from window scores: a region starts at a window scoring at least the
    threshold and ends at the start of the first run of windows below the negative threshold that lasts
    `min_silence_seconds` (or at the end); regions shorter than `min_speech_seconds` go; each is padded by
    `speech_pad_seconds`, split evenly where neighbours are closer than twice that."""
    low = options.neg_threshold if options.neg_threshold is not None else max(options.threshold - 0.15, 0.01)
    regions: list[list[float]] = []
    start = None  # the current region's start, while in speech
    quiet_since = None  # the first window of the current run below `low`, while in speech
    n = 0
    for n, score in enumerate(scores, start=1):
        t = (n - 1) * WINDOW_SECONDS
        if start is None:
            if score >= options.threshold:
                start, quiet_since = t, None
            continue
        if score >= low:
            quiet_since = None
            continue
        if quiet_since is None:
            quiet_since = t
        if t + WINDOW_SECONDS - quiet_since >= options.min_silence_seconds:
            regions.append([start, quiet_since])
            start = quiet_since = None
    end = n * WINDOW_SECONDS if duration is None else duration
    if start is not None:
        regions.append([start, quiet_since if quiet_since is not None else end])
    regions = [r for r in regions if r[1] - r[0] >= max(options.min_speech_seconds, WINDOW_SECONDS)]
    pad = options.speech_pad_seconds
    padded = []
    for i, (a, b) in enumerate(regions):
        first = max(a - pad, (regions[i - 1][1] + a) / 2 if i else 0.0)
        last = min(b + pad, (b + regions[i + 1][0]) / 2 if i + 1 < len(regions) else end)
        padded.append((round(first, 3), round(last, 3)))
    return padded
