"""qwen3asr-example: a plugin written from the README's Plugins section alone; it implements every hook.

The test suite installs it as a real distribution (entry point `example` in the `qwen3asr` group).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace

import numpy as np

from qwen3asr_plugin import Segment, TranscriptionInfo, hookimpl


def _log(event: str, **data) -> None:
    path = os.environ.get("QWEN3ASR_EXAMPLE_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"event": event, **data}, ensure_ascii=False, default=str) + "\n")


class EchoEngine:
    """An Engine that reads the transcript from a .txt file next to the audio: a stand-in for a remote
    service. Its factory takes whatever options a front end has and uses none of them."""

    def __init__(self, **options):
        self.options = options

    def transcribe(
        self,
        source: str,
        *,
        language: str | None,
        context: str | None,
        audio_track: int,
        vad_filter: bool,
        vad_parameters: Mapping[str, float] | None,
        temperature_fallback: bool,
        start_seconds: float | None,
        batch_size: int,
        first_batch_size: int | None,
        on_progress: Callable[[float], None] | None,
    ) -> tuple[Iterable[Segment], TranscriptionInfo]:
        with open(os.path.splitext(source)[0] + ".txt", encoding="utf-8") as f:
            text = f.read().strip()
        if on_progress:
            on_progress(1.0)
        return iter([Segment(0, 0.0, 1.0, text, language or "English")]), TranscriptionInfo("English", 1.0)


class ExampleHost:
    def install(self):
        return "installed"

    def uninstall(self):
        return "removed"

    def status(self):
        return "example host"


def _shout(transcript) -> str:
    """A writer: a Transcript in, the file's text out."""
    return "".join(f"{c.start:.2f} {c.text.upper()}\n" for c in transcript.cues)


@hookimpl
def register_output_formats(register):
    register("shout", _shout, "upper-case cues")


@hookimpl
def register_engines(register):
    register("echo", EchoEngine, "the text of a sidecar .txt file")


@hookimpl
def register_hosts(register):
    register("example-host", ExampleHost(), "does nothing")


@hookimpl
def load_audio(source, sample_rate, audio_track):
    if not str(source).endswith(".tone"):
        return None
    with open(source, encoding="utf-8") as f:
        seconds = float(f.read().strip())
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return [(0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)]


@hookimpl
def postprocess_segment(segment):  # only the arguments it needs: the README says so
    return replace(segment, text=segment.text + " [checked]", words=None)


@hookimpl
def postprocess_cues(cues):
    return [replace(c, lines=tuple(line.replace("[checked]", "[ok]") for line in c.lines)) for c in cues]


@hookimpl
def on_progress(source, seconds, duration):
    _log("progress", source=source, seconds=seconds)


@hookimpl
def on_segment(source, segment):
    _log("segment", source=source, text=segment.text)


@hookimpl
def on_language(source, language):
    _log("language", source=source, language=language)


@hookimpl
def on_complete(source, outputs, info):
    _log("complete", source=source, outputs=outputs)


@hookimpl
def on_failure(source, error):
    _log("failure", source=source, error=str(error))


@hookimpl
def should_cancel(source):
    return True if "cancel-me" in str(source) else None
