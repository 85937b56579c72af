"""The ffmpeg host: one command from a video to a subtitled video.

    qwen3asr-ffmpeg -i IN [options] [extra ffmpeg arguments] OUT

Transcribes the chosen audio stream of IN, then either muxes the subtitles into OUT as a soft track with
stream copy (mov_text in mp4/mov, srt or ass in mkv, webvtt in webm; language and title set; existing
subtitle tracks kept), or burns them into the picture (`--burn`, through ffmpeg's subtitles filter), or, when
OUT is a subtitle file (.srt/.vtt/.ass), writes just that. Extra arguments go to ffmpeg as they are. The input
is never modified, and OUT appears only when complete (written to a temporary name, then renamed). Option
names follow ffmpeg 8's whisper filter where they overlap: --language, --destination, --format.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from qwen3asr_plugin import Qwen3ASRError, hookimpl
from qwen3asr_plugin.api import (
    ISO639_2,
    cli_parents,
    engine_options,
    ffmpeg_exe,
    load_engine,
    probe,
    render_subtitles,
    run_options,
    transcribe_to_transcript,
    write_atomic,
)

SUBTITLE_SUFFIXES = {".srt": "srt", ".vtt": "vtt", ".ass": "ass"}


class FfmpegError(Qwen3ASRError):
    """ffmpeg failed, or the output cannot be made as asked."""


def subtitle_codec(out: Path, fmt: str) -> str:
    suffix = out.suffix.lower()
    if suffix in (".mp4", ".mov", ".m4v"):
        return "mov_text"
    if suffix == ".webm":
        return "webvtt"
    if suffix == ".mkv":
        return "ass" if fmt == "ass" else "webvtt" if fmt == "vtt" else "srt"
    raise FfmpegError(
        f"{out}: cannot carry soft subtitles here; use .mkv, .mp4, .mov or .webm, "
        "or --burn, or a .srt/.vtt/.ass output"
    )


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(
        prog="qwen3asr-ffmpeg", description=__doc__.split("\n")[0], parents=cli_parents()
    )
    p.add_argument("-i", dest="input", required=True, help="the input media")
    p.add_argument("--format", default=None, help="subtitle format: srt, ass or vtt (default by container)")
    p.add_argument("--destination", help="also write the subtitles to this file (a sidecar)")
    p.add_argument(
        "--burn", action="store_true", help="burn the subtitles into the picture (re-encodes video)"
    )
    p.add_argument("--title", default="Qwen3-ASR", help="subtitle track title")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("-y", "--overwrite", action="store_true", help="replace OUT if it exists")
    args, rest = p.parse_known_args(argv)
    if not rest or rest[-1].startswith("-"):
        p.error("the last argument must be the output file")
    return args, rest


def _ffmpeg(argv: list[str]) -> None:
    run = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *argv], capture_output=True
    )
    if run.returncode != 0:
        lines = run.stderr.decode("utf-8", "replace").strip().splitlines()
        raise FfmpegError(f"ffmpeg failed: {lines[-1] if lines else 'unknown error'}")


def run(argv: list[str]) -> int:
    args, rest = parse_args(argv)
    src, out, extra = Path(args.input), Path(rest[-1]), rest[:-1]
    try:
        if out.exists() and not args.overwrite:
            raise FfmpegError(f"{out}: exists; use -y to replace it")
        if out.resolve() == src.resolve():
            raise FfmpegError(f"{out}: is the input; write to another file (the input is never modified)")
        info = probe(src)
        if info.audio_streams == 0:
            raise FfmpegError(f"{src}: has no audio stream; there is nothing to transcribe")
        sidecar_only = out.suffix.lower() in SUBTITLE_SUFFIXES
        fmt = args.format or (SUBTITLE_SUFFIXES.get(out.suffix.lower()) if sidecar_only else "srt")
        if not sidecar_only and not args.burn:
            subtitle_codec(out, fmt)  # fail before the long transcription if OUT cannot carry subtitles
        options = run_options(args)  # reads --replace before any model loads
        engine = load_engine(args.engine, **engine_options(args))

        def write(transcript):
            with tempfile.TemporaryDirectory(prefix="qwen3asr-ffmpeg-") as tmp:
                sub = Path(tmp) / f"subtitles.{fmt}"
                sub.write_text(render_subtitles(transcript, fmt), encoding="utf-8")
                written = []
                if args.destination:
                    written.append(_publish(sub, Path(args.destination), args.overwrite))
                if sidecar_only:
                    written.append(_publish(sub, out, args.overwrite))
                else:
                    language = ISO639_2.get(transcript.language or "", "und")
                    written.append(_mux(src, sub, out, args, extra, info.subtitle_streams, fmt, language))
                return written

        transcript = transcribe_to_transcript(engine, src, options, write=write)
        print(
            f"{out}: {len(transcript.cues)} subtitles, language {transcript.language or 'none'}",
            file=sys.stderr,
        )
        return 0
    except Qwen3ASRError as exc:
        print(f"qwen3asr-ffmpeg: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("qwen3asr-ffmpeg: interrupted", file=sys.stderr)
        return 130


def _mux(src: Path, sub: Path, out: Path, args, extra: list[str], n: int, fmt: str, language: str) -> Path:
    """OUT with the subtitles burnt in or as a new soft track (the n-th subtitle stream), atomically."""
    partial = out.with_name(f".{out.stem}.partial-{os.getpid()}{out.suffix}")
    if args.burn:
        argv = [
            "-i",
            str(src),
            "-map",
            "0:v:0",
            "-map",
            f"0:a:{args.audio_track}?",
            "-vf",
            f"subtitles=filename={_filter_path(sub)}",
            "-c:a",
            "copy",
        ]
    else:
        argv = [
            "-i",
            str(src),
            "-i",
            str(sub),
            "-map",
            "0",
            "-map",
            "1",
            "-c",
            "copy",
            f"-c:s:{n}",
            subtitle_codec(out, fmt),
            f"-metadata:s:s:{n}",
            f"language={language}",
            f"-metadata:s:s:{n}",
            f"title={args.title}",
        ]
    try:
        _ffmpeg([*argv, *extra, str(partial)])
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return out


def _publish(sub: Path, target: Path, overwrite: bool) -> Path:
    write_atomic(target, sub.read_text(encoding="utf-8"), overwrite=overwrite)
    return target


def _filter_path(path: Path) -> str:
    """A path quoted for an ffmpeg filter argument."""
    return "'" + str(path).replace("\\", "/").replace("'", r"'\''").replace(":", r"\:") + "'"


def main(argv: list[str] | None = None) -> int:
    return run(sys.argv[1:] if argv is None else argv)


class FfmpegHost:
    def install(self) -> str:
        return "nothing to install: run `qwen3asr-ffmpeg -i IN OUT` (or `qwen3asr ffmpeg -i IN OUT`)"

    def uninstall(self) -> str:
        return "nothing to remove"

    def status(self) -> str:
        return "built in (qwen3asr-ffmpeg)"


@hookimpl(trylast=True)
def register_hosts(register):
    register("ffmpeg", FfmpegHost(), "transcribe and mux, burn or write subtitles in one command")
