"""Word and character timestamps with Qwen3-ForcedAligner, as in qwen_asr/inference/qwen3_forced_aligner.py.

The aligner reads the audio and the transcript in one forward pass:
    <|audio_start|>{audio x N}<|audio_end|>unit1<timestamp><timestamp>unit2<timestamp><timestamp>...
and predicts, at each <timestamp> slot, one of `classify_num` classes of `timestamp_segment_ms` (80 ms). Its
Qwen3 body and its class head run in llama.cpp, which gives the class logits of the slots alone (the
converted decoder's output layer is the head: engine/gguf_export.py). The slot
values are made monotonic with the official longest-non-decreasing-subsequence repair, then paired as the
start and end of each unit. Units are words with punctuation stripped, and each CJK character on its own;
the returned words carry the original text back, punctuation and spacing included, so joining them gives
the transcript exactly.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import numpy as np

from .decoder import DecoderOptions, TextDecoder
from .encoder import AudioEncoder, EncoderOptions
from .errors import ModelError, Qwen3ASRError
from .mel import log_mel
from .model_folder import ModelInfo
from .records import Word

MAX_ALIGN_SECONDS = 180.0  # the official pipeline aligns at most 180 s at once

_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


def is_cjk(char: str) -> bool:
    code = ord(char)
    return any(lo <= code <= hi for lo, hi in _CJK_RANGES)


def is_kept(char: str) -> bool:
    """Letters, numbers and the apostrophe are kept in units; punctuation and symbols are not."""
    return char == "'" or unicodedata.category(char)[0] in "LN" or is_cjk(char)


@dataclass(frozen=True)
class Unit:
    """One aligned unit: its cleaned text and the span of the original text it came from."""

    text: str
    first: int  # index in the original text of its first kept character
    last: int  # index of its last kept character


def _default_units(text: str) -> list[Unit]:
    units: list[Unit] = []
    chars: list[str] = []
    first = last = -1

    def flush():
        nonlocal first
        if chars:
            units.append(Unit("".join(chars), first, last))
            chars.clear()
        first = -1

    for i, ch in enumerate(text):
        if is_cjk(ch):
            flush()
            units.append(Unit(ch, i, i))
        elif ch.isspace():
            flush()
        elif is_kept(ch):
            if not chars:
                first = i
            chars.append(ch)
            last = i
    flush()
    return units


def _units_from_words(text: str, words: list[str]) -> list[Unit]:
    """Units from a word segmenter's output (nagisa, soynlp), located in the original text."""
    units: list[Unit] = []
    cursor = 0
    for word in words:
        kept = "".join(c for c in word if is_kept(c))
        if not kept:
            continue
        positions = []
        for c in kept:
            found = text.find(c, cursor)
            if found < 0:
                break
            positions.append(found)
            cursor = found + 1
        if len(positions) == len(kept):
            units.append(Unit(kept, positions[0], positions[-1]))
    return units


def split_units(text: str, language: str | None = None) -> list[Unit]:
    """Units as the official aligner makes them. Japanese uses nagisa and Korean soynlp when installed;
    without them, Japanese falls back to one unit per character (kana and kanji) and Korean to
    space-separated words, both documented approximations of the official segmenters."""
    lang = (language or "").lower()
    if lang == "japanese":
        try:
            import nagisa
        except ImportError:
            return [Unit(c, i, i) for i, c in enumerate(text) if is_kept(c) and not c.isspace()]
        return _units_from_words(text, nagisa.tagging(text).words)
    if lang == "korean":
        try:
            from soynlp.tokenizer import LTokenizer
        except ImportError:
            return _default_units(text)
        return _units_from_words(text, LTokenizer().tokenize(text))
    return _default_units(text)


def fix_timestamps(values: list[float] | np.ndarray) -> list[int]:
    """The official monotonic repair: keep a longest non-decreasing subsequence; snap runs of up to two
    outliers to the nearer kept neighbour and interpolate longer runs between their neighbours."""
    data = [float(v) for v in values]
    n = len(data)
    if n == 0:
        return []
    best = [1] * n
    parent = [-1] * n
    for i in range(1, n):
        for j in range(i):
            if data[j] <= data[i] and best[j] + 1 > best[i]:
                best[i], parent[i] = best[j] + 1, j
    normal = [False] * n
    i = best.index(max(best))
    while i != -1:
        normal[i] = True
        i = parent[i]
    out = data[:]
    start = 0
    while start < n:
        if normal[start]:
            start += 1
            continue
        end = start
        while end < n and not normal[end]:
            end += 1
        left = next((out[k] for k in range(start - 1, -1, -1) if normal[k]), None)
        right = next((data[k] for k in range(end, n) if normal[k]), None)
        count = end - start
        for k in range(start, end):
            if left is None or right is None:
                out[k] = right if left is None else left
            elif count <= 2:
                out[k] = left if (k - (start - 1)) <= (end - k) else right
            else:
                out[k] = left + (right - left) / (count + 1) * (k - start + 1)
        start = end
    return [int(v) for v in out]


def attach_text(text: str, units: list[Unit], times: list[tuple[float, float]]) -> list[Word]:
    """Pieces of `text` per unit: each takes the punctuation right after it; whitespace and leading
    punctuation go with the next unit. The pieces join back to `text` exactly."""
    if not units:
        return []
    cuts = [0]
    for unit in units[:-1]:
        end = unit.last + 1
        while end < len(text) and not text[end].isspace() and not is_kept(text[end]):
            end += 1
        cuts.append(end)
    cuts.append(len(text))
    return [Word(s, e, text[cuts[k] : cuts[k + 1]]) for k, (s, e) in enumerate(times)]


class ForcedAligner:
    """A converted Qwen3-ForcedAligner folder: encoder sessions, llama.cpp body, class head."""

    def __init__(
        self,
        info: ModelInfo,
        encoder: EncoderOptions = EncoderOptions(),
        decoder: DecoderOptions = DecoderOptions(context_tokens=4096),
    ):
        if info.kind != "aligner":
            raise ModelError(
                f"{info.folder}: is an ASR model, not a forced aligner; give "
                "qwen3-forcedaligner-0.6b (or its folder) as the aligner"
            )
        self.info = info
        self.classes = int(info.raw["aligner"]["classify_num"])
        self.segment_ms = float(info.raw["aligner"]["timestamp_segment_ms"])
        self.encoder = AudioEncoder(info, encoder)
        self.decoder = TextDecoder(info, decoder)

    def input_ids(self, n_audio: int, units: list[Unit]) -> tuple[list[int], list[int]]:
        """(prefix through <|audio_start|>, text part from <|audio_end|> on) as the reference builds them."""
        ids = self.info.token_ids
        ts = ids["timestamp"]
        text_part = [ids["audio_end"]]
        for unit in units:
            text_part += self.decoder.tokenize(unit.text) + [ts, ts]
        return [ids["audio_start"]], text_part

    def slot_classes(self, audio: np.ndarray, units: list[Unit]) -> np.ndarray:
        """The predicted class of every <timestamp> slot (2 per unit), before repair."""
        embeddings = self.encoder.encode(log_mel(audio, self.info.mel))
        prefix, text_part = self.input_ids(embeddings.shape[0], units)
        ts = self.info.token_ids["timestamp"]
        logits = self.decoder.slot_logits(prefix, embeddings, text_part, [t == ts for t in text_part])
        return np.argmax(logits, axis=-1)

    def align(self, audio: np.ndarray, text: str, language: str | None = None) -> list[Word]:
        """Word timings for `text` spoken in `audio` (16 kHz mono), in seconds from the start of `audio`."""
        duration = audio.size / self.info.mel.sampling_rate
        if duration > MAX_ALIGN_SECONDS:
            raise Qwen3ASRError(
                f"alignment works on at most {MAX_ALIGN_SECONDS:.0f} s at once "
                f"(got {duration:.0f} s); split the audio and its text"
            )
        units = split_units(text, language)
        if not units:
            return []
        classes = self.slot_classes(audio, units)
        ms = fix_timestamps(classes.astype(np.float64) * self.segment_ms)
        times = []
        for k in range(len(units)):
            start = min(round(ms[2 * k] / 1000.0, 3), duration)
            end = min(max(round(ms[2 * k + 1] / 1000.0, 3), start), duration)
            times.append((start, end))
        return attach_text(text, units, times)
