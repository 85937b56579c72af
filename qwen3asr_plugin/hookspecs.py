"""The hook specifications: what a qwen3asr plugin can implement.

A plugin is a module or object with functions marked `@qwen3asr_plugin.hookimpl`, registered through the
`qwen3asr` entry-point group; an implementation may declare only some of a hook's arguments. Registration
hooks take a `register` callback, so a spec never has to change when a plugin wants to pass more. Each hook is
documented under its own heading in the README (a test checks the arguments), and `Engine` is quoted there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Protocol, runtime_checkable

import pluggy

from .engine.records import Segment, TranscriptionInfo

hookspec = pluggy.HookspecMarker("qwen3asr")
hookimpl = pluggy.HookimplMarker("qwen3asr")


@runtime_checkable
class Engine(Protocol):
    """What a `register_engines` factory returns. The runner calls `transcribe` with exactly these keywords."""

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
        batch_size: int | None,
        first_batch_size: int | None,
        on_progress: Callable[[float], None] | None,
    ) -> tuple[Iterable[Segment], TranscriptionInfo]:
        """Segments of `source` (a path or URL), lazily, and its info (final once they are consumed); call
        `on_progress(seconds_done)` after each chunk (it raises to stop the run)."""


@hookspec
def register_engines(register):
    """Register transcription engines: `register(name, factory, description="")`.

    `factory(**options)` returns an `Engine` (the protocol above; extra keywords a factory does not know
    should be accepted and ignored). The built-ins are `local` (this machine) and `openai` (any
    OpenAI-compatible `/v1/audio/transcriptions` endpoint, such as `qwen3asr serve` or vLLM)."""


@hookspec
def register_output_formats(register):
    """Register output formats: `register(name, writer, description="")`, where `writer(transcript) -> str`
    turns a `Transcript` (segments with words, and cues) into the file's text."""


@hookspec
def register_hosts(register):
    """Register host adapters: `register(name, installer, description="")`; `installer` has `install()`,
    `uninstall()` and `status()` for `qwen3asr hosts install NAME`."""


@hookspec(firstresult=True)
def load_audio(source, sample_rate, audio_track):
    """Read a source ffmpeg cannot: return an iterable of mono float32 blocks at `sample_rate`, or None to
    let the next implementation (and finally ffmpeg) try. The first non-None result wins."""


@hookspec
def postprocess_segment(segment, language, options):
    """Rewrite a finished segment; return the new segment (or None to keep it unchanged). Every
    implementation runs, each on the previous one's result (replacement tables, Chinese inverse text
    normalization). Word texts must still join to the segment's text. `options` is the run's
    `RunOptions.postprocess` dict."""


@hookspec
def postprocess_cues(cues, language, options):
    """Rewrite the list of cues of one source; return a new list (or None to keep it). Every implementation
    runs, each on the previous one's result."""


@hookspec
def on_progress(source, seconds, duration):
    """Event: `seconds` of `source` are done (`duration` may be None when unknown)."""


@hookspec
def on_segment(source, segment):
    """Event: a segment of `source` is finished (after post-processing)."""


@hookspec
def on_language(source, language):
    """Event: the language of `source` was detected (or forced), once per new language."""


@hookspec
def on_complete(source, outputs, info):
    """Event: `source` is done; `outputs` are the files the front end wrote (none where it writes none: the
    server, the Python API), `info` its TranscriptionInfo."""


@hookspec
def on_failure(source, error):
    """Event: `source` failed with `error` (an exception); the batch goes on with the next input."""


@hookspec(firstresult=True)
def should_cancel(source):
    """Return True to stop transcribing `source` after the current chunk (checked after every chunk). No
    output is written for a cancelled input."""
