"""Transcribing many files to subtitle files: inputs, output names, progress for people and for hosts."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .engine.cues import TimedWord, build_cues
from .engine.errors import Qwen3ASRError
from .engine.writers import Transcript, render, write_atomic
from .plugins import chain, hook, registry


class Cancelled(Qwen3ASRError):
    """A plugin's should_cancel hook stopped this input."""


MEDIA_SUFFIXES = {
    ".wav",
    ".mp3",
    ".m4a",
    ".aac",
    ".flac",
    ".ogg",
    ".opus",
    ".wma",
    ".aiff",
    ".aif",
    ".amr",
    ".mka",
    ".mp4",
    ".mkv",
    ".mov",
    ".avi",
    ".webm",
    ".m4v",
    ".wmv",
    ".flv",
    ".ts",
    ".mts",
    ".m2ts",
    ".mpg",
    ".mpeg",
    ".3gp",
    ".ogv",
    ".vob",
}


def collect_inputs(items: list[str]) -> list[Path]:
    """Files as given, and the media files inside folders (recursively, sorted)."""
    out: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            out.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES)
            )
        else:
            out.append(path)
    return out


def output_paths(source: Path, formats: list[str], output_dir: Path | None) -> dict[str, Path]:
    folder = output_dir or source.parent
    return {fmt: folder / f"{source.stem}.{fmt}" for fmt in formats}


def words_of(segments) -> list[TimedWord]:
    """Timed words of all segments; a segment without word timings spreads its words over its span."""
    words: list[TimedWord] = []
    for s in segments:
        if s.words:
            words.extend(TimedWord(w.start, w.end, w.word, s.language) for w in s.words)
            continue
        pieces = s.text.split(" ") if " " in s.text.strip() else list(s.text)
        pieces = [(" " if i and " " in s.text else "") + p for i, p in enumerate(pieces)]
        step = (s.end - s.start) / max(1, len(pieces))
        words.extend(
            TimedWord(s.start + i * step, s.start + (i + 1) * step, p, s.language)
            for i, p in enumerate(pieces)
        )
    return words


class Reporter:
    """Progress for people: a bar with ETA on stderr, and each segment's text on stdout."""

    def __init__(self, show_text: bool = True, quiet: bool = False):
        self.show_text, self.quiet = show_text, quiet
        self.bar = None

    def file_start(self, path: Path, duration: float | None, index: int, total: int) -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        self.bar = tqdm(
            total=round(duration or 0, 1) or None,
            unit="s",
            desc=f"[{index}/{total}] {path.name}",
            file=sys.stderr,
            leave=False,
            dynamic_ncols=True,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}]",
        )

    def progress(self, path: Path, seconds: float, duration: float | None) -> None:
        if self.bar is not None:
            self.bar.update(round(seconds, 1) - self.bar.n)

    def segment(self, path: Path, segment) -> None:
        if self.show_text and not self.quiet:
            line = f"[{_clock(segment.start)} --> {_clock(segment.end)}] {segment.text}"
            if self.bar is not None:
                self.bar.write(line, file=sys.stdout)
            else:
                print(line, flush=True)

    def update(self, path: Path, output: Path, segments: int) -> None:
        """A progressive output was rewritten."""

    def skipped(self, path: Path) -> None:
        if not self.quiet:
            print(f"{path}: skipped (its outputs exist)", file=sys.stderr)

    def file_done(self, path: Path, outputs: list[Path], audio_seconds: float, wall_seconds: float) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if not self.quiet:
            rtf = wall_seconds / audio_seconds if audio_seconds else 0.0
            names = ", ".join(str(p) for p in outputs)
            print(
                f"{path}: {audio_seconds:.1f} s of audio in {wall_seconds:.1f} s (RTF {rtf:.3f}) -> {names}",
                file=sys.stderr,
            )

    def error(self, path: Path, message: str) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        print(f"qwen3asr: error: {message}", file=sys.stderr)

    def done(self, summary: dict) -> None:
        if not self.quiet:
            print(
                f"done: {summary['files']} file(s), {summary['failed']} failed, "
                f"{summary['audio_seconds']:.1f} s of audio in {summary['wall_seconds']:.1f} s "
                f"(RTF {summary['rtf']:.3f})",
                file=sys.stderr,
            )


class JsonReporter(Reporter):
    """One JSON object per line on stdout, for hosts (mpv, Subtitle Edit): file, progress, segment, output,
    error and done events."""

    def __init__(self):
        super().__init__(show_text=False, quiet=True)
        self.started = time.monotonic()

    def _emit(self, **event) -> None:
        print(json.dumps(event, ensure_ascii=False), flush=True)

    def file_start(self, path, duration, index, total):
        self.started = time.monotonic()
        self._emit(event="file", input=str(path), duration=duration, index=index, total=total)

    def progress(self, path, seconds, duration):
        elapsed = time.monotonic() - self.started
        percent = min(100.0, 100.0 * seconds / duration) if duration else None
        eta = elapsed * (duration - seconds) / seconds if duration and seconds > 0 else None
        self._emit(
            event="progress",
            input=str(path),
            seconds=round(seconds, 3),
            duration=duration,
            percent=None if percent is None else round(percent, 1),
            eta_seconds=None if eta is None else round(max(eta, 0.0), 1),
        )

    def segment(self, path, segment):
        self._emit(
            event="segment",
            input=str(path),
            start=segment.start,
            end=segment.end,
            text=segment.text,
            language=segment.language,
        )

    def update(self, path, output, segments):
        self._emit(event="update", input=str(path), output=str(output), segments=segments)

    def skipped(self, path):
        self._emit(event="skipped", input=str(path))

    def file_done(self, path, outputs, audio_seconds, wall_seconds):
        self._emit(
            event="output",
            input=str(path),
            outputs=[str(p) for p in outputs],
            audio_seconds=round(audio_seconds, 3),
            wall_seconds=round(wall_seconds, 3),
        )

    def error(self, path, message):
        self._emit(event="error", input=str(path), message=message)

    def done(self, summary):
        self._emit(event="done", **summary)


def _clock(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    return f"{h:02d}:{rest // 60000:02d}:{rest // 1000 % 60:02d}.{rest % 1000:03d}"


@dataclass
class BatchOptions:
    formats: list[str]
    output_dir: Path | None = None
    overwrite: bool = False
    language: str | None = None
    context: str | None = None
    audio_track: int = 0
    vad_filter: bool = False
    temperature_fallback: bool = True
    cue_overrides: dict = field(default_factory=dict)
    postprocess: dict = field(default_factory=dict)  # options for postprocess hooks (replacements, itn)
    progressive: bool = False  # rewrite the first format's file after every segment (for players)
    start_seconds: float | None = None  # begin at this position, then do the beginning
    skip_existing: bool = False  # resume a batch: inputs whose outputs all exist are skipped
    batch_size: int = 4  # chunks decoded together


def transcribe_files(model, inputs: list[Path], options: BatchOptions, reporter: Reporter) -> dict:
    """Transcribe each input to its subtitle files; a failing file is reported and the batch goes on.

    Plugins see it all: post-processing hooks rewrite segments and cues, event hooks hear progress, segments,
    languages, completion and failure, and should_cancel can stop an input (nothing is written for it)."""
    from .engine.media import probe

    writers = {name: entry["value"] for name, entry in registry("register_output_formats").items()}
    hooks = hook()
    if options.output_dir is not None:
        options.output_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    failed: list[str] = []
    audio_total = 0.0
    for index, path in enumerate(inputs, start=1):
        t0 = time.monotonic()
        source = str(path)
        try:
            targets = output_paths(path, options.formats, options.output_dir)
            existing = [str(p) for p in targets.values() if p.exists()]
            if options.skip_existing and len(existing) == len(targets):
                reporter.skipped(path)
                continue
            if existing and not options.overwrite:
                raise Qwen3ASRError(f"{existing[0]}: exists; use --overwrite to replace it")
            try:
                duration = probe(path).duration
            except Qwen3ASRError:
                duration = None  # maybe a source only a plugin's load_audio reads; transcribe will tell
            reporter.file_start(path, duration, index, len(inputs))

            def progress(seconds, path=path, source=source, duration=duration):
                reporter.progress(path, seconds, duration)
                hooks.on_progress(source=source, seconds=seconds, duration=duration)
                if hooks.should_cancel(source=source):
                    raise Cancelled(f"{path}: cancelled")

            segments_iter, info = model.transcribe(
                path,
                language=options.language,
                context=options.context,
                audio_track=options.audio_track,
                vad_filter=options.vad_filter,
                temperature_fallback=options.temperature_fallback,
                on_progress=progress,
                start_seconds=options.start_seconds,
                batch_size=options.batch_size,
                # A player wants the first subtitle soonest: the first chunk is decoded on its own.
                first_batch_size=1 if options.progressive else None,
            )
            segments, languages = [], set()
            for segment in segments_iter:
                segment = chain(
                    "postprocess_segment", segment, language=segment.language, options=options.postprocess
                )
                if segment.language and segment.language not in languages:
                    languages.add(segment.language)
                    hooks.on_language(source=source, language=segment.language)
                segments.append(segment)
                reporter.segment(path, segment)
                hooks.on_segment(source=source, segment=segment)
                if options.progressive:
                    fmt, target = next(iter(targets.items()))
                    ordered = sorted(segments, key=lambda s: s.start)
                    partial = Transcript(
                        segments=ordered,
                        language=info.language,
                        duration=info.duration,
                        source=source,
                        cues=build_cues(words_of(ordered), duration=info.duration, **options.cue_overrides),
                    )
                    write_atomic(target, render(fmt, partial, writers), overwrite=True)
                    reporter.update(path, target, len(segments))
            if duration and info.duration < 0.9 * duration - 1.0:
                raise Qwen3ASRError(
                    f"{path}: truncated or damaged: its audio ends at {info.duration:.1f} s of the "
                    f"{duration:.1f} s the file announces; repair or download it again"
                )
            segments.sort(key=lambda s: s.start)
            cues = build_cues(words_of(segments), duration=info.duration, **options.cue_overrides)
            cues = chain("postprocess_cues", cues, language=info.language, options=options.postprocess)
            transcript = Transcript(
                segments=segments, cues=cues, language=info.language, duration=info.duration, source=source
            )
            rendered = {fmt: render(fmt, transcript, writers) for fmt in options.formats}
            for fmt, target in targets.items():
                write_atomic(target, rendered[fmt], overwrite=options.overwrite)
            audio_total += info.duration
            reporter.file_done(path, list(targets.values()), info.duration, time.monotonic() - t0)
            hooks.on_complete(source=source, outputs=[str(p) for p in targets.values()], info=info)
        except Qwen3ASRError as exc:
            failed.append(source)
            reporter.error(path, str(exc))
            hooks.on_failure(source=source, error=exc)
    wall = time.monotonic() - started
    return {
        "files": len(inputs),
        "failed": len(failed),
        "failed_inputs": failed,
        "audio_seconds": round(audio_total, 3),
        "wall_seconds": round(wall, 3),
        "rtf": round(wall / audio_total, 4) if audio_total else 0.0,
    }
