"""Subtitle and transcript writers: srt, vtt and ass through pysubs2; json, txt and lrc here.

Each writer turns a Transcript (segments with words, and the cues built from them) into text. Writers live
in a registry that plugins extend (register_output_formats); files.write_atomic puts the text in place.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from .errors import Qwen3ASRError
from .records import Transcript

Writer = Callable[[Transcript], str]
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BREAKS = re.compile(r"[\t\n\r\v\f\x85\u2028\u2029]+")


def clean(text: str) -> str:
    """One line of text with nothing a reader could trip on: line and tab characters (a stray CR breaks
    SubRip readers, a newline inside a txt or lrc line splits it) become a space, other control characters
    (NUL, ESC, BEL, DEL) go."""
    return _CONTROL.sub("", _BREAKS.sub(" ", text))


def _pysubs2(transcript: Transcript, format_: str) -> str:
    import pysubs2

    subs = pysubs2.SSAFile()
    for cue in transcript.cues:
        # Braces delimit ASS override tags (pysubs2 drops them from srt and vtt too): they become parentheses.
        text = "\\N".join(clean(line).replace("{", "(").replace("}", ")") for line in cue.lines)
        subs.append(pysubs2.SSAEvent(start=round(cue.start * 1000), end=round(cue.end * 1000), text=text))
    if format_ == "ass":
        style = subs.styles["Default"]
        style.fontsize = 20
        style.marginv = 20
    return subs.to_string(format_)


def _srt(t: Transcript) -> str:
    return _pysubs2(t, "srt")


def _vtt(t: Transcript) -> str:
    return _pysubs2(t, "vtt")


def _ass(t: Transcript) -> str:
    return _pysubs2(t, "ass")


def _json(t: Transcript) -> str:
    def seg(s) -> dict:
        d = {"id": s.id, "start": s.start, "end": s.end, "text": clean(s.text), "language": s.language}
        if s.words is not None:
            d["words"] = [{"start": w.start, "end": w.end, "word": clean(w.word)} for w in s.words]
        return d

    data = {
        "source": t.source,
        "language": t.language,
        "duration": round(t.duration, 3),
        "segments": [seg(s) for s in t.segments],
        "cues": [{"start": c.start, "end": c.end, "text": "\n".join(map(clean, c.lines))} for c in t.cues],
    }
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def _txt(t: Transcript) -> str:
    return "".join(clean(s.text).strip() + "\n" for s in t.segments)


def _lrc(t: Transcript) -> str:
    def stamp(seconds: float) -> str:
        cs = int(round(seconds * 100))
        return f"[{cs // 6000:02d}:{cs // 100 % 60:02d}.{cs % 100:02d}]"

    lines = [f"{stamp(c.start)}{clean(' '.join(c.lines))}" for c in t.cues]
    return "\n".join(lines) + ("\n" if lines else "")


BUILTIN_WRITERS: dict[str, tuple[Writer, str]] = {
    "srt": (_srt, "SubRip"),
    "vtt": (_vtt, "WebVTT"),
    "ass": (_ass, "Advanced SubStation Alpha"),
    "json": (_json, "segments with words, and cues"),
    "txt": (_txt, "plain text, a segment per line"),
    "lrc": (_lrc, "LRC lyrics"),
}


def render(format_: str, transcript: Transcript, writers: dict[str, Writer] | None = None) -> str:
    """The text of `transcript` in `format_`, from `writers` (name -> writer; the built-ins by default)."""
    writers = writers if writers is not None else {k: w for k, (w, _) in BUILTIN_WRITERS.items()}
    try:
        writer = writers[format_.lower()]
    except KeyError:
        raise Qwen3ASRError(f"unknown output format {format_!r}; choose from {', '.join(writers)}") from None
    return writer(transcript)
