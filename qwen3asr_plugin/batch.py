"""Transcribing many files to subtitle files: inputs, output names, skip/overwrite, progressive rewrites, and
progress for people and for hosts. Each file goes through the runner (runner.Transcription)."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from .engine.errors import Qwen3ASRError
from .engine.files import write_atomic
from .engine.media import is_url, probe, source_stem
from .engine.records import Segment, Word
from .engine.writers import render
from .runner import Resume, RunOptions, Transcription

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


def collect_inputs(items: list[str]) -> list[Path | str]:
    """Files as given, URLs as given (str), and the media files inside folders (recursively, sorted)."""
    out: list[Path | str] = []
    for item in items:
        if is_url(item):
            out.append(item)
            continue
        path = Path(item)
        if path.is_dir():
            out.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES)
            )
        else:
            out.append(path)
    return out


def output_folder(source: Path | str, output_dir: Path | None) -> Path:
    """--output-dir, else the input's folder (the current one for a URL)."""
    return output_dir or (Path.cwd() if is_url(str(source)) else Path(source).parent)


def output_paths(source: Path | str, formats: list[str], output_dir: Path | None) -> dict[str, Path]:
    folder = output_folder(source, output_dir)
    return {fmt: folder / f"{source_stem(source)}.{fmt}" for fmt in formats}


class Reporter:
    """Progress for people: a bar with ETA on stderr, and each segment's text on stdout. Each run has it as a
    listener, so it hears the runner's events (on_progress, on_segment, on_complete, on_failure) in the same
    call as the plugins' hooks; file_start, update, skipped and done are the batch's own."""

    def __init__(self, show_text: bool = True, quiet: bool = False):
        self.show_text, self.quiet = show_text, quiet
        self.bar = None
        self.started = time.monotonic()

    def file_start(self, path: Path, duration: float | None, index: int, total: int) -> None:
        self.started = time.monotonic()
        if self.quiet:
            return
        from tqdm import tqdm

        known = round(duration or 0, 1) or None
        self.bar = tqdm(
            total=known,
            unit="s",
            desc=f"[{index}/{total}] {path if is_url(str(path)) else Path(path).name}",
            file=sys.stderr,
            leave=False,
            dynamic_ncols=True,
            disable=None,  # no bar when stderr is not a terminal (a script's log gets the summary lines)
            # Without a known length (an unreadable file, a plugin's source) there is no total to show.
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}]"
            if known
            else "{desc}: {n:.0f} s [{elapsed}]",
        )

    def on_progress(self, source, seconds, duration):
        if self.bar is not None:
            self.bar.update(round(seconds, 1) - self.bar.n)

    def on_segment(self, source, segment):
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

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_complete(self, source, outputs, info):
        self._close_bar()
        if not self.quiet:
            wall = time.monotonic() - self.started
            rtf = wall / info.duration if info.duration else 0.0
            print(
                f"{source}: {info.duration:.1f} s of audio in {wall:.1f} s (RTF {rtf:.3f}) -> {', '.join(outputs)}",
                file=sys.stderr,
            )

    def on_failure(self, source, error):
        self._close_bar()
        print(f"qwen3asr: error: {error}", file=sys.stderr)

    def done(self, summary: dict) -> None:
        if not self.quiet:
            print(
                f"done: {summary['files']} file(s), {summary['failed']} failed, "
                f"{summary['audio_seconds']:.1f} s of audio in {summary['wall_seconds']:.1f} s "
                f"(RTF {summary['rtf']:.3f})",
                file=sys.stderr,
            )


class SharedReporter:
    """A reporter for inputs transcribed at once: its calls are serialised, and for people one bar counts the
    batch's inputs instead of a bar per input (they would overwrite one another)."""

    def __init__(self, reporter: Reporter, total: int):
        import threading

        self.reporter, self.lock = reporter, threading.Lock()
        self.people = not isinstance(reporter, JsonReporter)
        self.bar = None
        if self.people and not reporter.quiet:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="file", desc="files", file=sys.stderr, disable=None)

    def _call(self, name: str, *args) -> None:
        with self.lock:
            if self.bar is not None and name in ("on_complete", "on_failure", "skipped"):
                self.bar.update(1)
            getattr(self.reporter, name)(*args)

    def file_start(self, path, duration, index, total):
        if not self.people:
            self._call("file_start", path, duration, index, total)

    def on_progress(self, source, seconds, duration):
        if not self.people:
            self._call("on_progress", source, seconds, duration)

    def on_segment(self, source, segment):
        self._call("on_segment", source, segment)

    def update(self, path, output, segments):
        self._call("update", path, output, segments)

    def ranges(self, source, done):
        if hasattr(self.reporter, "ranges"):
            self._call("ranges", source, done)

    def skipped(self, path):
        self._call("skipped", path)

    def on_complete(self, source, outputs, info):
        self._call("on_complete", source, outputs, info)

    def on_failure(self, source, error):
        self._call("on_failure", source, error)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def emit_json(**event) -> None:
    """One JSON line on stdout, in UTF-8 whatever stdout's encoding: on Windows a pipe gets the ANSI code page,
    which cannot hold most text (CJK raises UnicodeEncodeError in cp1252) and turns paths into bytes the host
    misreads. Not ASCII escapes: mpv's JSON parser rejects the surrogate pairs they need beyond the BMP
    (mpv-player/mpv misc/json.c). Undecodable bytes of POSIX paths go out as they were (surrogateescape)."""
    line = json.dumps(event, ensure_ascii=False) + "\n"
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:  # a text-only stream (a test's capture): it takes str
        sys.stdout.write(line)
        sys.stdout.flush()
        return
    try:
        data = line.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that is not an escaped byte
        data = line.encode("utf-8", "replace")
    sys.stdout.flush()
    buffer.write(data)
    buffer.flush()


class JsonReporter(Reporter):
    """One JSON object per line on stdout, for hosts (mpv, Subtitle Edit): file, progress, segment, update,
    skipped, output, error and done events."""

    def __init__(self):
        super().__init__(show_text=False, quiet=True)

    def _emit(self, **event) -> None:
        emit_json(**event)

    def status(self, message: str) -> None:
        """What happens before the first file (a model download, conversion, loading), for the host's screen."""
        self._emit(event="status", message=message)

    def file_start(self, path, duration, index, total):
        self.started = time.monotonic()
        self._emit(event="file", input=str(path), duration=duration, index=index, total=total)

    def on_progress(self, source, seconds, duration):
        elapsed = time.monotonic() - self.started
        percent = min(100.0, 100.0 * seconds / duration) if duration else None
        eta = elapsed * (duration - seconds) / seconds if duration and seconds > 0 else None
        self._emit(
            event="progress",
            input=source,
            seconds=round(seconds, 3),
            duration=duration,
            percent=None if percent is None else round(percent, 1),
            eta_seconds=None if eta is None else round(max(eta, 0.0), 1),
        )

    def on_segment(self, source, segment):
        self._emit(
            event="segment",
            input=source,
            start=segment.start,
            end=segment.end,
            text=segment.text,
            language=segment.language,
        )

    def update(self, path, output, segments):
        self._emit(event="update", input=str(path), output=str(output), segments=segments)

    def skipped(self, path):
        self._emit(event="skipped", input=str(path))

    def on_complete(self, source, outputs, info):
        from .engine.languages import NAME_TO_ISO

        self._emit(
            event="output",
            input=source,
            outputs=outputs,
            language=info.language,  # the main language heard ("English"), None when nothing was said
            language_code=NAME_TO_ISO.get(info.language or ""),  # ISO 639-1 ("en"), as subtitle names take
            audio_seconds=round(info.duration, 3),
            wall_seconds=round(time.monotonic() - self.started, 3),
        )

    def on_failure(self, source, error):
        self._emit(event="error", input=source, message=str(error))

    def ranges(self, source, done):
        self._emit(event="ranges", input=source, done=[[round(a, 3), round(b, 3)] for a, b in done])

    def done(self, summary):
        self._emit(event="done", **summary)


def _clock(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    return f"{h:02d}:{rest // 60000:02d}:{rest // 1000 % 60:02d}.{rest % 1000:03d}"


@dataclass
class BatchOptions:
    """What is the batch's own; `run` is what every input's run is asked (runner.RunOptions)."""

    formats: list[str]
    run: RunOptions = RunOptions()
    output_dir: Path | None = None
    overwrite: bool = False
    progressive: bool = False  # rewrite the first format's file after every segment (for players)
    skip_existing: bool = False  # resume a batch: inputs whose outputs all exist are skipped
    resume: bool = False  # keep <stem>.resume.json beside the outputs; go on from it when it is there
    verbose: bool = False  # an input's error also prints its traceback


def resume_path(source: Path | str, output_dir: Path | None) -> Path:
    return output_folder(source, output_dir) / f"{source_stem(source)}.resume.json"


def read_resume(path: Path, source: Path, audio_track: int = 0) -> Resume | None:
    """The transcript so far that `path` holds for `source` (None when there is none, or it is another
    file's or another audio track's: it is then replaced)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("source") != str(source) or data.get("audio_track", 0) != audio_track:
            return None
        segments = tuple(
            Segment(**{**s, "tokens": tuple(s.get("tokens") or ()), "words": _words(s.get("words"))})
            for s in data["segments"]
        )
        return Resume(tuple((float(a), float(b)) for a, b in data["done"]), segments)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise Qwen3ASRError(f"{path}: not a transcript to resume ({exc}); remove it to start afresh") from exc


def _words(words) -> tuple[Word, ...] | None:
    return None if words is None else tuple(Word(**w) for w in words)


class ResumeWriter:
    """A run's listener that keeps its resume file current after every chunk (atomically: a run killed at any
    moment leaves the last complete state) and tells the reporter which ranges are done."""

    def __init__(self, run: Transcription, path: Path, reporter: Reporter):
        self.run, self.path, self.reporter = run, path, reporter

    def on_progress(self, source, seconds, duration):
        state = {
            "source": source,
            "audio_track": self.run.options.audio_track,
            "duration": duration,
            "done": [[round(a, 3), round(b, 3)] for a, b in self.run.done],
            "segments": [asdict(s) for s in self.run.segments],
        }
        write_atomic(self.path, json.dumps(state, ensure_ascii=False), overwrite=True)
        if hasattr(self.reporter, "ranges"):
            self.reporter.ranges(source, self.run.done)

    def on_segment(self, source, segment):
        self.on_progress(source, None, self.run.announced)


def transcribe_files(engine, inputs: list[Path], options: BatchOptions, reporter: Reporter) -> dict:
    """Transcribe each input to its subtitle files; a failing file is reported and the batch goes on.

    Each input is one runner.Transcription, with the reporter as its listener: plugins see post-processing,
    events and cancellation there. Nothing is written for an input that fails or is cancelled; a progressive
    file this run created is removed then (one it replaced under --overwrite stays as far as it got)."""
    from .api import output_formats

    writers = output_formats()
    if options.output_dir is not None:
        options.output_dir.mkdir(parents=True, exist_ok=True)
    run_options = options.run
    if options.progressive:  # a player wants the first subtitle soonest: the first chunk is decoded alone
        run_options = replace(run_options, first_batch_size=1)
    started = time.monotonic()
    failed: list[str] = []
    durations: list[float] = []
    parallel = max(1, int(getattr(engine, "parallel_inputs", 1) or 1)) if len(inputs) > 1 else 1
    stopping = threading.Event()  # set when a parallel batch must end: every run stops at its next chunk
    if parallel > 1:
        reporter = SharedReporter(reporter, len(inputs))

    def one(index: int, path) -> None:
        if is_url(str(path)):  # a site's page resolved by yt-dlp names its outputs by its title
            with contextlib.suppress(Qwen3ASRError):
                probe(path)
        targets = output_paths(path, options.formats, options.output_dir)
        fmt, progressive = next(iter(targets.items()))
        created = options.progressive and not progressive.exists()
        state = resume_path(path, options.output_dir) if options.resume else None
        run = None
        try:
            resume = (read_resume(state, path, run_options.audio_track) or Resume()) if state else None
            listeners = [reporter]
            run = Transcription(
                engine,
                path,
                replace(run_options, resume=resume),
                listeners=listeners,
                should_stop=stopping.is_set,
            )
            if state is not None:
                listeners.append(ResumeWriter(run, state, reporter))
                run.listeners = tuple(listeners)
            existing = [str(p) for p in targets.values() if p.exists()]
            if options.skip_existing and len(existing) == len(targets):
                reporter.skipped(path)
                return
            if existing and not options.overwrite and not (resume and resume.done):  # our own, resumed
                raise Qwen3ASRError(f"{existing[0]}: exists; use --overwrite to replace it")
            reporter.file_start(path, run.announced, index, len(inputs))
            for count, _ in enumerate(run, start=1):
                if options.progressive:
                    write_atomic(progressive, render(fmt, run.snapshot(), writers), overwrite=True)
                    reporter.update(path, progressive, count)

            def write(transcript, targets=targets, resumed=bool(resume and resume.done)):
                rendered = {name: render(name, transcript, writers) for name in targets}
                for name, target in targets.items():
                    write_atomic(
                        target, rendered[name], overwrite=options.overwrite or options.progressive or resumed
                    )
                return list(targets.values())

            durations.append(run.finish(write).duration)
            if state is not None:
                state.unlink(missing_ok=True)  # complete: nothing left to resume
        except Qwen3ASRError as exc:
            failed.append(str(path))
            if options.verbose:
                traceback.print_exception(exc, file=sys.stderr)
            if run is not None:
                run.fail(exc)
            else:
                reporter.on_failure(str(path), exc)
            if created and not (state and state.exists()):
                progressive.unlink(missing_ok=True)
        except BaseException:  # Ctrl-C, SIGTERM: no partial file of ours stays behind (unless resumable)
            if created and not (state and state.exists()):
                progressive.unlink(missing_ok=True)
            raise

    if parallel == 1:
        for index, path in enumerate(inputs, start=1):
            one(index, path)
    else:  # an engine that serves several inputs at once (a remote cluster): keep it busy
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(parallel)
        futures = [pool.submit(one, i, p) for i, p in enumerate(inputs, start=1)]
        try:
            for future in futures:
                future.result()
        except BaseException:  # Ctrl-C or an unexpected error: stop the rest at their next chunk
            stopping.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            reporter.close()
    failed.sort(key=lambda name: [str(p) for p in inputs].index(name))
    audio_total = sum(durations)
    wall = time.monotonic() - started
    return {
        "files": len(inputs),
        "failed": len(failed),
        "failed_inputs": failed,
        "audio_seconds": round(audio_total, 3),
        "wall_seconds": round(wall, 3),
        "rtf": round(wall / audio_total, 4) if audio_total else 0.0,
    }
