"""Each writer's output read back by pysubs2 or a parser; atomic, no-clobber writing."""

import json
import re

import pysubs2
import pytest

from qwen3asr_plugin.engine.errors import Qwen3ASRError
from qwen3asr_plugin.engine.files import write_atomic
from qwen3asr_plugin.engine.records import Cue, Segment, Transcript, Word
from qwen3asr_plugin.engine.writers import BUILTIN_WRITERS, render

SEGMENTS = [
    Segment(
        0,
        0.5,
        4.2,
        "Hello, world! {Braces} stay readable.",
        "English",
        words=(
            Word(0.5, 1.0, "Hello,"),
            Word(1.1, 1.6, " world!"),
            Word(2.0, 4.2, " {Braces} stay readable."),
        ),
    ),
    Segment(1, 65.0, 67.5, "你好，“世界”。", "Chinese", words=(Word(65.0, 67.5, "你好，“世界”。"),)),
]
CUES = [
    Cue(0.5, 1.9, ("Hello, world!",)),
    Cue(2.0, 4.7, ("{Braces} stay", "readable.")),
    Cue(65.0, 3725.25, ("你好，“世界”。",)),
]
TRANSCRIPT = Transcript(
    segments=tuple(SEGMENTS), cues=tuple(CUES), language="English", duration=3730.0, source="x.mp4"
)


@pytest.mark.parametrize("fmt", ["srt", "vtt", "ass"])
def test_subtitle_formats_read_back(fmt, tmp_path):
    path = tmp_path / f"out.{fmt}"
    write_atomic(path, render(fmt, TRANSCRIPT))
    subs = pysubs2.load(str(path))
    assert len(subs) == 3
    assert [(e.start, e.end) for e in subs] == [(500, 1900), (2000, 4700), (65000, 3725250)]
    assert subs[0].plaintext == "Hello, world!"
    assert subs[1].plaintext == "(Braces) stay\nreadable."
    assert subs[2].plaintext == "你好，“世界”。"


def test_srt_text_is_exact():
    text = render("srt", TRANSCRIPT)
    assert text.startswith("1\n00:00:00,500 --> 00:00:01,900\nHello, world!\n\n")
    assert "01:02:05,250" in text
    assert render("vtt", TRANSCRIPT).startswith("WEBVTT\n")


def test_json_has_segments_with_words():
    data = json.loads(render("json", TRANSCRIPT))
    assert data["language"] == "English" and data["duration"] == 3730.0
    assert data["segments"][0]["words"][1] == {"start": 1.1, "end": 1.6, "word": " world!"}
    assert data["cues"][1]["text"] == "{Braces} stay\nreadable."


def test_txt_and_lrc():
    assert render("txt", TRANSCRIPT) == "Hello, world! {Braces} stay readable.\n你好，“世界”。\n"
    lrc = render("lrc", TRANSCRIPT).splitlines()
    assert lrc[0] == "[00:00.50]Hello, world!"
    assert all(re.fullmatch(r"\[\d{2,}:\d{2}\.\d{2}\].+", line) for line in lrc)
    assert lrc[2].startswith("[01:05.00]")


def test_unknown_format_and_registry():
    assert set(BUILTIN_WRITERS) >= {"srt", "vtt", "ass", "json", "txt", "lrc"}
    with pytest.raises(Qwen3ASRError, match="unknown output format"):
        render("docx", TRANSCRIPT)


def test_no_silent_overwrite_and_no_temp_files(tmp_path):
    path = tmp_path / "a.srt"
    path.write_text("precious")
    with pytest.raises(Qwen3ASRError, match="use --overwrite"):
        write_atomic(path, "new")
    assert path.read_text() == "precious"
    write_atomic(path, "new", overwrite=True)
    assert path.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.srt"]
