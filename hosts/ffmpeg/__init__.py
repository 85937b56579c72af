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

from qwen3asr_plugin import hookimpl
from qwen3asr_plugin.api import load_engine, render_subtitles

SUBTITLE_SUFFIXES = {".srt": "srt", ".vtt": "vtt", ".ass": "ass"}
# ISO 639-2 codes for the containers' language tags.
ISO639_2 = {
    "Arabic": "ara",
    "Cantonese": "yue",
    "Chinese": "zho",
    "Czech": "ces",
    "Danish": "dan",
    "Dutch": "nld",
    "English": "eng",
    "Filipino": "fil",
    "Finnish": "fin",
    "French": "fra",
    "German": "deu",
    "Greek": "ell",
    "Hindi": "hin",
    "Hungarian": "hun",
    "Indonesian": "ind",
    "Italian": "ita",
    "Japanese": "jpn",
    "Korean": "kor",
    "Macedonian": "mkd",
    "Malay": "msa",
    "Persian": "fas",
    "Polish": "pol",
    "Portuguese": "por",
    "Romanian": "ron",
    "Russian": "rus",
    "Spanish": "spa",
    "Swedish": "swe",
    "Thai": "tha",
    "Turkish": "tur",
    "Vietnamese": "vie",
}


class FfmpegError(Exception):
    pass


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
    p = argparse.ArgumentParser(prog="qwen3asr-ffmpeg", description=__doc__.split("\n")[0])
    p.add_argument("-i", dest="input", required=True, help="the input media")
    p.add_argument("--language", help="force the language (name or ISO code); default: detect")
    p.add_argument("--format", default=None, help="subtitle format: srt, ass or vtt (default by container)")
    p.add_argument("--destination", help="also write the subtitles to this file (a sidecar)")
    p.add_argument(
        "--burn", action="store_true", help="burn the subtitles into the picture (re-encodes video)"
    )
    p.add_argument("--audio-track", type=int, default=0, help="which audio stream to transcribe (from 0)")
    p.add_argument("--title", default="Qwen3-ASR", help="subtitle track title")
    p.add_argument("--model", help="preset name or model folder")
    p.add_argument("--engine", default="local", help="transcription engine (local, openai, ...)")
    p.add_argument("--endpoint", help="openai engine: server URL")
    p.add_argument("--aligner", help="aligner preset or folder (default: the model preset's own)")
    p.add_argument("--no-align", action="store_true", help="no word timings (faster, coarser cues)")
    p.add_argument("--device", default="auto", help="auto, cpu, gpu, cuda, dml")
    p.add_argument("-y", "--overwrite", action="store_true", help="replace OUT if it exists")
    args, rest = p.parse_known_args(argv)
    if not rest or rest[-1].startswith("-"):
        p.error("the last argument must be the output file")
    return args, rest


def _ffmpeg(argv: list[str]) -> None:
    from qwen3asr_plugin.engine.media import ffmpeg_exe

    run = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *argv], capture_output=True
    )
    if run.returncode != 0:
        lines = run.stderr.decode("utf-8", "replace").strip().splitlines()
        raise FfmpegError(f"ffmpeg failed: {lines[-1] if lines else 'unknown error'}")


def run(argv: list[str]) -> int:
    from qwen3asr_plugin.engine.errors import Qwen3ASRError
    from qwen3asr_plugin.engine.media import probe

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
        options = {"model": args.model} if args.model else {}
        if args.engine == "local":
            options["device"] = args.device
            options["aligner"] = False if args.no_align else (args.aligner or True)
        elif args.endpoint:
            options["endpoint"] = args.endpoint
        engine = load_engine(args.engine, **options)
        segments, tinfo = engine.transcribe(src, language=args.language, audio_track=args.audio_track)
        segments = list(segments)
        text = render_subtitles(segments, tinfo.duration, fmt, tinfo.language)
        language = ISO639_2.get(tinfo.language or "", "und")
        with tempfile.TemporaryDirectory(prefix="qwen3asr-ffmpeg-") as tmp:
            sub = Path(tmp) / f"subtitles.{fmt}"
            sub.write_text(text, encoding="utf-8")
            if args.destination:
                _publish(sub, Path(args.destination), args.overwrite)
            if sidecar_only:
                _publish(sub, out, args.overwrite)
            else:
                partial = out.with_name(f".{out.stem}.partial-{os.getpid()}{out.suffix}")
                try:
                    if args.burn:
                        _ffmpeg(
                            [
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
                                *extra,
                                str(partial),
                            ]
                        )
                    else:
                        n = info.subtitle_streams
                        _ffmpeg(
                            [
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
                                *extra,
                                str(partial),
                            ]
                        )
                    os.replace(partial, out)
                finally:
                    partial.unlink(missing_ok=True)
        print(f"{out}: {len(segments)} segments, language {tinfo.language or 'none'}", file=sys.stderr)
        return 0
    except (FfmpegError, Qwen3ASRError) as exc:
        print(f"qwen3asr-ffmpeg: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("qwen3asr-ffmpeg: interrupted", file=sys.stderr)
        return 130


def _publish(sub: Path, target: Path, overwrite: bool) -> None:
    from qwen3asr_plugin.engine.writers import write_atomic

    write_atomic(target, sub.read_text(encoding="utf-8"), overwrite=overwrite)


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
