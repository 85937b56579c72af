"""Property-based: any word list gives valid, monotonic, non-overlapping subtitles in every format."""

from __future__ import annotations

import json
import re

import pysubs2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qwen3asr_plugin.engine.cues import TimedWord, build_cues
from qwen3asr_plugin.engine.records import Segment, Transcript
from qwen3asr_plugin.engine.writers import render

CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")

times = st.floats(min_value=-5.0, max_value=4000.0) | st.sampled_from(
    [float("nan"), float("inf"), -float("inf")]
)
texts = st.text(min_size=0, max_size=12) | st.text("ab \x00\x1b\r\n\t\x07\x7f\u2028", max_size=8)
languages = st.sampled_from([None, "English", "Chinese", "Japanese", "Korean", "German"])
words = st.lists(st.builds(TimedWord, times, times, texts, languages), max_size=80)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(words, st.none() | st.floats(min_value=0.5, max_value=5000.0))
def test_cues_are_always_valid(word_list, duration):
    cues = build_cues(word_list, duration=duration)
    for cue in cues:
        assert cue.end - cue.start >= 0.0099
        assert cue.start >= 0.0
        assert cue.text.strip()
        assert all(line == line.strip() and line for line in cue.lines)
    for a, b in zip(cues, cues[1:], strict=False):
        assert a.end <= b.start

    # Nothing is lost: every non-blank word's text appears, in order, in the cues.
    def squeeze(text: str) -> str:
        return "".join(text.split())

    assert squeeze("".join("".join(c.lines) for c in cues)) == squeeze("".join(w.word for w in word_list))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(words)
def test_every_writer_gives_a_readable_file(word_list):
    cues = build_cues(word_list)
    segment = Segment(0, 0.0, 1.0, "".join(w.word for w in word_list).strip() or "-", None)
    transcript = Transcript(segments=(segment,), cues=tuple(cues), duration=10.0)
    for fmt in ("srt", "vtt", "ass"):
        subs = pysubs2.SSAFile.from_string(render(fmt, transcript), format_=fmt)
        starts = [e.start for e in subs]
        assert starts == sorted(starts)
        assert all(e.end >= e.start for e in subs)
        assert all(a.end <= b.start for a, b in zip(subs, subs[1:], strict=False))
    for fmt in ("srt", "vtt", "ass", "txt", "lrc"):
        text = render(fmt, transcript)
        assert not CONTROL.search(text.replace("\n", "")), fmt  # no CR, NUL, ESC... inside a line
        if fmt in ("txt", "lrc"):  # one line per segment or cue
            assert text.count("\n") == (len(transcript.segments) if fmt == "txt" else len(cues))
    data = json.loads(render("json", transcript))
    strings = [s["text"] for s in data["segments"]] + [c["text"].replace("\n", "") for c in data["cues"]]
    assert not any(CONTROL.search(x) for x in strings)
