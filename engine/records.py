"""The records that pass between stages and to plugins: words, segments, run info, cues and transcripts.

Small dataclasses, frozen but for the run info (which fills in as a run goes), in one light module (as
faster-whisper keeps `Word`, `Segment` and `TranscriptionInfo` together), so a format or post-processing
plugin can import them without loading the encoder, the decoder or onnxruntime. Times are seconds from the
start of the input.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Word:
    """A piece of the original text (punctuation and leading space included) with its times; the words of a
    segment join to its text exactly."""

    start: float
    end: float
    word: str


@dataclass(frozen=True)
class Segment:
    """One recognised stretch of speech (an engine chunk of up to ~30 s, or what a remote engine returns)."""

    id: int
    start: float
    end: float
    text: str
    language: str | None
    tokens: tuple[int, ...] = ()
    temperature: float = 0.0
    words: tuple[Word, ...] | None = None


@dataclass
class TranscriptionInfo:
    """About one input: the (first) language and the duration. Filled in as the segments are consumed, and
    final only once their iteration ends (the duration then counts every sample read; `languages` lists
    each language heard, in order)."""

    language: str | None
    duration: float
    languages: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Cue:
    """One subtitle: its lines as shown, its times and language, and the timed words it was made from (only
    measured ones: none when the words had no timings). A postprocess_cues hook that rewrites `lines` should
    keep `words` consistent, or drop them."""

    start: float
    end: float
    lines: tuple[str, ...]
    language: str | None = None
    words: tuple[Word, ...] = ()

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass(frozen=True)
class Transcript:
    """Everything about one transcribed input, as writers and front ends receive it: the segments (post-
    processed, in time order), the cues built from them (post-processed), language and duration."""

    segments: tuple[Segment, ...]
    cues: tuple[Cue, ...]
    language: str | None = None
    duration: float = 0.0
    source: str = ""

    @property
    def text(self) -> str:
        """The segments' text in one string: joined by spaces, without one before a CJK segment."""
        return join_texts(s.text for s in self.segments)


def separator(text: str) -> str:
    """What goes between earlier text and `text`: a space, but none before Chinese, Japanese or other
    full-width text."""
    return " " if text and unicodedata.east_asian_width(text[0]) not in "WF" else ""


def join_texts(texts) -> str:
    out = ""
    for text in texts:
        if text:
            out += (separator(text) if out else "") + text
    return out
