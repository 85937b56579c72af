"""One runner from a source to a transcript, for every front end (the CLI batch, the server, the hosts).

It calls the engine, runs the post-processing hooks on each segment, sends the events (progress, segment,
language, complete, failure), stops when `should_cancel` says so, refuses a truncated input, builds the cues
and runs the cue post-processing. A front end adds only what is its own: where the input comes from, where the
output goes, and its wire format. In the style of faster-whisper, where later stages are generators on the
segment stream, a `Transcription` yields post-processed segments as they come and ends in a `Transcript`.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

from .engine.cues import build_cues, timed_words
from .engine.errors import Qwen3ASRError
from .engine.records import Segment, Transcript, TranscriptionInfo
from .hookspecs import Engine
from .plugins import chain, hook

# The keywords the runner passes to Engine.transcribe besides the source: the protocol's, by construction.
ENGINE_KEYWORDS = tuple(
    name for name in inspect.signature(Engine.transcribe).parameters if name not in ("self", "source")
)


class Cancelled(Qwen3ASRError):
    """A plugin's should_cancel hook (or the front end) stopped this input; nothing is written for it."""


@dataclass(frozen=True)
class Resume:
    """A transcript to go on with: the time ranges (seconds) already transcribed and their segments. The run
    keeps those segments and transcribes only the rest, from `start_seconds` on, then what is before it."""

    done: tuple[tuple[float, float], ...] = ()
    segments: tuple[Segment, ...] = ()


def merge_ranges(ranges: Iterable[Sequence[float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted((float(a), float(b)) for a, b in ranges if b > a):
        if out and a <= out[-1][1] + 1e-6:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def gaps(done: Sequence[tuple[float, float]], duration: float, start: float = 0.0, least: float = 0.5):
    """The ranges of [0, duration) not in `done` (merged), longer than `least` seconds, in the order a player
    wants them: from `start` to the end of its gap, then the later gaps, then the earlier ones (and the part of
    start's gap before it last)."""
    out, at = [], 0.0
    for a, b in [*merge_ranges(done), (duration, duration)]:
        if a - at >= least:
            out.append((at, min(a, duration)))
        at = max(at, b)
    later = [(max(a, start), b) for a, b in out if b > start and b - max(a, start) >= least]
    before = [(a, min(b, start)) for a, b in out if a < start and min(b, start) - a >= least]
    return later + before


@dataclass(frozen=True)
class RunOptions:
    """What a front end asks of one run: the engine's options, the cue rules and the post-processing."""

    language: str | None = None  # None: detect
    context: str | None = None  # background text for the model (names, terms)
    audio_track: int = 0
    vad_filter: bool = True  # transcribe only the speech Silero VAD finds (bench/vad.py: the better default)
    vad_parameters: Mapping[str, float] | None = None  # VadOptions fields (engine/vad.py) to change
    temperature_fallback: bool = True
    start_seconds: float | None = None  # begin here, then do the beginning (players)
    batch_size: int | None = None  # chunks decoded together (None: the engine's default)
    first_batch_size: int | None = None  # 1: the first segment as soon as possible (progressive outputs)
    cue_rules: Mapping[str, float | int | None] = field(default_factory=dict)  # CueRules overrides
    postprocess: Mapping[str, object] = field(default_factory=dict)  # postprocess hooks' `options`
    resume: Resume | None = None  # go on with a transcript; the run then tracks the ranges it has done
    # added to every time (segments, words, cues): a recording that starts this far into what a player shows
    time_offset: float = 0.0


def shifted(segment: Segment, seconds: float) -> Segment:
    """`segment` with its times and its words' times `seconds` later."""
    if not seconds:
        return segment
    words = segment.words
    if words is not None:
        words = tuple(
            replace(w, start=round(w.start + seconds, 3), end=round(w.end + seconds, 3)) for w in words
        )
    return replace(
        segment, start=round(segment.start + seconds, 3), end=round(segment.end + seconds, 3), words=words
    )


def announced_duration(source: str) -> float | None:
    """The duration a local media file's container announces (None for other sources or unreadable files)."""
    from .engine.media import is_url, probe

    if not (os.path.isfile(source) or is_url(source)):
        return None
    try:
        return probe(source).duration
    except Qwen3ASRError:
        return None  # maybe a source only a plugin's load_audio reads; the engine will tell


class Transcription:
    """One run of `engine` over `source`. Iterate it for the post-processed segments as they arrive (in the
    engine's order); `snapshot()` is the transcript so far and `finish()` the whole one.

    Events go to every plugin's hooks and to this run's own `listeners` (objects with methods named like the
    event hooks, such as the CLI's progress reporter), in one call per event. `should_stop()` lets the front
    end stop the run between chunks, as a plugin's should_cancel does."""

    def __init__(
        self,
        engine: Engine,
        source: str | os.PathLike,
        options: RunOptions = RunOptions(),
        *,
        listeners: Sequence[object] = (),
        should_stop: Callable[[], bool] | None = None,
    ):
        self.engine, self.source, self.options = engine, str(source), options
        self.listeners, self.should_stop = tuple(listeners), should_stop
        self.hooks = hook()
        self.segments: list[Segment] = []
        self.info: TranscriptionInfo | None = None
        self._stream: Iterator[Segment] | None = None
        self._languages: set[str] = set()
        self._error: Exception | None = None
        self.done: list[tuple[float, float]] = merge_ranges(options.resume.done) if options.resume else []

    @cached_property
    def announced(self) -> float | None:
        """The duration the container announces (probed once, when first asked)."""
        return announced_duration(self.source)

    def _event(self, name: str, **kwargs) -> None:
        extra = [getattr(x, name) for x in self.listeners if hasattr(x, name)]
        getattr(self.hooks, name).call_extra(extra, {"source": self.source, **kwargs})

    def _progress(self, seconds: float) -> None:
        self._event("on_progress", seconds=seconds, duration=self.announced)
        if self.hooks.should_cancel(source=self.source) or (self.should_stop and self.should_stop()):
            raise Cancelled(f"{self.source}: cancelled")

    def __iter__(self) -> Iterator[Segment]:
        if self._stream is None:
            self._stream = self._run()
        return self._stream

    def _run(self) -> Iterator[Segment]:
        try:
            keywords = {
                name: getattr(self.options, name) for name in ENGINE_KEYWORDS if name != "on_progress"
            }
            taken = inspect.signature(self.engine.transcribe).parameters
            if "vad_parameters" not in taken and not any(p.kind == p.VAR_KEYWORD for p in taken.values()):
                del keywords["vad_parameters"]  # an engine written before it: VAD on or off is all it takes
            if self.options.resume is not None and self._windows():
                yield from self._resumed(keywords)
            else:
                self.done = []  # a fresh start: what an earlier run did is done again
                segments, self.info = self.engine.transcribe(
                    self.source, on_progress=self._progress, **keywords
                )
                for segment in segments:
                    yield self._add(segment)
            self._check_length()
        except Qwen3ASRError as exc:
            self.fail(exc)
            raise

    def _windows(self) -> bool:
        """Whether the engine names `end_seconds` (one window of the input) and the input's length is known;
        otherwise each call would do the whole input, so a resumed run starts afresh."""
        return "end_seconds" in inspect.signature(self.engine.transcribe).parameters and bool(self.announced)

    def _resumed(self, keywords: dict) -> Iterator[Segment]:
        """The resumed transcript's segments (kept, no events), then each gap in the player's order, one
        engine call per gap (`end_seconds`), with `done` growing after every chunk."""
        duration = self.announced
        # Only segments inside the ranges done count: a run stopped after a segment but before its range was
        # recorded has that chunk done again.
        self.segments.extend(
            s for s in self.options.resume.segments if any(x <= s.start < y for x, y in self.done)
        )
        self._languages.update(s.language for s in self.segments if s.language)
        self.info = TranscriptionInfo(next((s.language for s in self.segments if s.language), None), duration)
        count = len(self.segments)
        for a, b in gaps(self.done, duration, self.options.start_seconds or 0.0):
            reached = [a]

            def progress(seconds: float, a: float = a, reached: list[float] = reached) -> None:
                # A chunk's progress comes before its segments: the chunk before it is complete now.
                self.done = merge_ranges([*self.done, (a, reached[0])])
                reached[0] = seconds
                self._progress(sum(y - x for x, y in self.done))

            segments, info = self.engine.transcribe(
                self.source, on_progress=progress, **{**keywords, "start_seconds": a}, end_seconds=b
            )
            for segment in segments:
                yield self._add(replace(segment, id=count))
                count += 1
            self.done = merge_ranges([*self.done, (a, b)])
            self._progress(sum(y - x for x, y in self.done))
            self.info.language = self.info.language or info.language
            self.info.languages.extend(x for x in info.languages if x not in self.info.languages)
        self.info.duration = duration

    def _add(self, segment: Segment) -> Segment:
        segment = shifted(segment, self.options.time_offset)
        segment = chain(
            "postprocess_segment", segment, language=segment.language, options=self.options.postprocess
        )
        if segment.language and segment.language not in self._languages:
            self._languages.add(segment.language)
            self._event("on_language", language=segment.language)
        self.segments.append(segment)
        self._event("on_segment", segment=segment)
        return segment

    def _check_length(self) -> None:
        got, announced = self.info.duration, self.announced
        if announced and got < 0.9 * announced - 1.0:
            raise Qwen3ASRError(
                f"{self.source}: truncated or damaged: its audio ends at {got:.1f} s of the "
                f"{announced:.1f} s the file announces; repair or download it again"
            )

    def snapshot(self) -> Transcript:
        """The transcript of the segments so far (time order, cues built and post-processed)."""
        if self.info is None:  # not started
            return Transcript((), (), None, 0.0, self.source)
        segments = tuple(sorted(self.segments, key=lambda s: s.start))
        duration = self.info.duration
        if duration is not None:
            duration += self.options.time_offset
        cues = build_cues(timed_words(segments), duration=duration, **self.options.cue_rules)
        cues = chain("postprocess_cues", cues, language=self.info.language, options=self.options.postprocess)
        return Transcript(segments, tuple(cues), self.info.language, duration, self.source)

    def finish(self, write: Callable[[Transcript], Iterable[str | os.PathLike]] | None = None) -> Transcript:
        """Run to the end and return the transcript; `write(transcript)` puts the outputs in place and returns
        their paths (for the on_complete event). Failures are sent as on_failure and raised."""
        for _ in self:
            pass
        if self._error is not None:  # the iteration failed earlier (and said so): no outputs
            raise self._error
        try:
            transcript = self.snapshot()
            outputs = [str(p) for p in write(transcript)] if write else []
        except Qwen3ASRError as exc:
            self.fail(exc)
            raise
        self._event("on_complete", outputs=outputs, info=self.info)
        return transcript

    def fail(self, error: Exception) -> None:
        """Send the on_failure event for this source (once, however many layers report the error)."""
        if self._error is None:
            self._error = error
            self._event("on_failure", error=error)


def transcribe_to_transcript(
    engine: Engine,
    source: str | os.PathLike,
    options: RunOptions = RunOptions(),
    *,
    write: Callable[[Transcript], Iterable[str | os.PathLike]] | None = None,
    listeners: Sequence[object] = (),
    should_stop: Callable[[], bool] | None = None,
) -> Transcript:
    """The whole run for one source: segments post-processed, events sent, cues built; see Transcription."""
    return Transcription(engine, source, options, listeners=listeners, should_stop=should_stop).finish(write)
