"""The ffmpeg host: one command from a video to a subtitled video.

    qwen3asr-ffmpeg -i IN [options] [extra ffmpeg arguments] OUT

Transcribes the chosen audio stream of IN (a file or a URL), then either muxes the subtitles into OUT as a
soft track with stream copy (mov_text in mp4/mov, srt or ass in mkv, webvtt in webm; language and title set;
the input's other streams kept where OUT can carry them, checked before transcribing), or burns them into
the picture (`--burn`, through ffmpeg's subtitles filter), or, when OUT is a subtitle file (.srt/.vtt/.ass),
writes just that. Extra arguments go to ffmpeg as they are. The input
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
    is_url,
    load_engine,
    probe,
    render_subtitles,
    run_options,
    transcribe_to_transcript,
    write_atomic,
)

SUBTITLE_SUFFIXES = {".srt": "srt", ".vtt": "vtt", ".ass": "ass"}
TRACK_FORMATS = ("srt", "ass", "vtt")  # what a muxed track is made from
SIDECAR_FORMATS = {"srt": "srt", "ass": "ass", "vtt": "vtt", "json": "json", "txt": "txt", "text": "txt"}
TEXT_SUBTITLES = {"subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text"}
MP4_LIKE = (".mp4", ".mov", ".m4v")
WEBM_VIDEO, WEBM_AUDIO = {"vp8", "vp9", "av1"}, {"opus", "vorbis"}
# QuickTime (.mov) takes ISO 639-2/B language codes: ffmpeg's mov muxer leaves the tag empty for the /T ones
# (libavformat/isom.c, mov_mdhd_language_map); mp4 and mkv take /T.
BIBLIOGRAPHIC = {
    "sqi": "alb", "hye": "arm", "eus": "baq", "mya": "bur", "zho": "chi", "ces": "cze", "nld": "dut",
    "fra": "fre", "kat": "geo", "deu": "ger", "ell": "gre", "isl": "ice", "mkd": "mac", "mri": "mao",
    "msa": "may", "fas": "per", "ron": "rum", "slk": "slo", "bod": "tib", "cym": "wel",
}  # fmt: skip


class FfmpegError(Qwen3ASRError):
    """ffmpeg failed, or the output cannot be made as asked."""


def subtitle_codec(out: Path, fmt: str) -> str:
    suffix = out.suffix.lower()
    if suffix in MP4_LIKE:
        return "mov_text"
    if suffix == ".webm":
        return "webvtt"
    if suffix == ".mkv":
        return "ass" if fmt == "ass" else "webvtt" if fmt == "vtt" else "srt"
    raise FfmpegError(
        f"{out}: cannot carry soft subtitles here; use .mkv, .mp4, .mov or .webm, "
        "or --burn, or a .srt/.vtt/.ass output"
    )


def plan_streams(info, out: Path, burn: bool, extra: list[str]) -> tuple[list[str], int, list[str]]:
    """The -map/-c arguments that carry the input's streams into OUT, the number of subtitle streams they
    make, and a note for each stream OUT cannot carry (dropped). Checked before transcribing: a stream copy
    the container refuses (an SRT track into mp4, h264 into webm) would fail only after the whole job."""
    suffix = out.suffix.lower()
    argv, notes, subtitles = [], [], 0
    video_seen = False
    recoded = {a.split(":")[1] for a in extra if a.startswith("-c:") and len(a.split(":")) > 1} | (
        {"v", "a", "s"} if "-c" in extra else set()
    )
    for index, kind, codec in info.streams:
        where = f"stream {index} ({kind.lower()} {codec or '?'})"
        if kind == "Video":
            if burn and video_seen:
                notes.append(f"{where}: only the first video stream is kept when burning")
                continue
            if suffix == ".webm" and codec not in WEBM_VIDEO and "v" not in recoded and not burn:
                raise FfmpegError(
                    f"{out}: webm cannot hold {codec} video; use .mkv, or add -c:v libvpx-vp9 to re-encode it"
                )
            video_seen = True
            argv += ["-map", f"0:{index}"]
        elif kind == "Audio":
            if suffix == ".webm" and codec not in WEBM_AUDIO and "a" not in recoded:
                raise FfmpegError(
                    f"{out}: webm cannot hold {codec} audio; use .mkv, or add -c:a libopus to re-encode it"
                )
            argv += ["-map", f"0:{index}"]
        elif kind == "Subtitle":
            if suffix in MP4_LIKE + (".webm",) and codec not in TEXT_SUBTITLES:
                notes.append(f"{where}: {out.suffix} cannot carry picture-based subtitles; dropped")
                continue
            argv += ["-map", f"0:{index}"]
            # Matroska takes the text codecs but not mp4's mov_text: that becomes srt
            in_mkv = "srt" if codec == "mov_text" else "copy"
            target = "mov_text" if suffix in MP4_LIKE else "webvtt" if suffix == ".webm" else in_mkv
            argv += [f"-c:s:{subtitles}", target]
            subtitles += 1
        elif kind == "Attachment" and suffix in (".mkv", ".mka"):
            argv += ["-map", f"0:{index}"]  # fonts go along in Matroska (data streams it refuses)
        else:
            notes.append(f"{where}: {out.suffix} cannot carry it; dropped")
    return argv, subtitles, notes


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(
        prog="qwen3asr-ffmpeg", description=__doc__.split("\n")[0], parents=cli_parents()
    )
    p.add_argument("-i", dest="input", required=True, help="the input media")
    p.add_argument(
        "--format",
        default=None,
        choices=sorted(SIDECAR_FORMATS),
        help="subtitle format: srt, ass or vtt for the track (default by container); json and text (txt) for "
        "--destination only",
    )
    p.add_argument("--destination", help="also write the subtitles to this file (a sidecar; - for stdout)")
    p.add_argument(
        "--drop-other-tracks",
        action="store_true",
        help="with --burn, keep only the video and the transcribed audio (default: every audio and subtitle "
        "track OUT can carry)",
    )
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
    src = args.input if is_url(args.input) else Path(args.input)
    out, extra = Path(rest[-1]), rest[:-1]
    try:
        if out.exists() and not args.overwrite:
            raise FfmpegError(f"{out}: exists; use -y to replace it")
        if isinstance(src, Path) and out.resolve() == src.resolve():
            raise FfmpegError(f"{out}: is the input; write to another file (the input is never modified)")
        if (args.language or "").lower() == "auto":  # the whisper filter's default: detect
            args.language = None
        info = probe(src)
        if info.audio_streams == 0:
            raise FfmpegError(f"{src}: has no audio stream; there is nothing to transcribe")
        sidecar_only = out.suffix.lower() in SUBTITLE_SUFFIXES
        asked = SIDECAR_FORMATS.get(args.format or "")
        if sidecar_only and asked and asked != SUBTITLE_SUFFIXES[out.suffix.lower()]:
            raise FfmpegError(f"{out}: a {out.suffix} file cannot hold --format {args.format}")
        if asked in ("json", "txt") and not args.destination:
            raise FfmpegError(f"--format {args.format} is for --destination only; a track is srt, ass or vtt")
        fmt = (
            SUBTITLE_SUFFIXES[out.suffix.lower()]
            if sidecar_only
            else asked
            if asked in TRACK_FORMATS
            else "srt"
        )
        side_fmt = asked or fmt
        streams: tuple[list[str], int, list[str]] = ([], 0, [])
        if not sidecar_only:
            if not args.burn:
                subtitle_codec(out, fmt)  # fail before the long transcription if OUT cannot carry subtitles
            streams = plan_streams(info, out, args.burn, extra)
            for note in streams[2]:
                print(f"qwen3asr-ffmpeg: {note}", file=sys.stderr)
        options = run_options(args)  # reads --replace before any model loads
        engine = load_engine(args.engine, **engine_options(args))

        def write(transcript):
            with tempfile.TemporaryDirectory(prefix="qwen3asr-ffmpeg-") as tmp:
                sub = Path(tmp) / f"subtitles.{fmt}"
                sub.write_text(render_subtitles(transcript, fmt), encoding="utf-8")
                written = []
                if sidecar_only:
                    written.append(_publish(sub, out, args.overwrite))
                else:
                    language = ISO639_2.get(transcript.language or "", "und")
                    if out.suffix.lower() == ".mov":
                        language = BIBLIOGRAPHIC.get(language, language)
                    written.append(_mux(src, sub, out, args, extra, streams, fmt, language))
                if args.destination == "-":  # as the whisper filter's destination=- (pipe:1)
                    sys.stdout.write(render_subtitles(transcript, side_fmt))
                    sys.stdout.flush()
                elif args.destination:
                    text = render_subtitles(transcript, side_fmt)
                    write_atomic(Path(args.destination), text, overwrite=args.overwrite)
                    written.append(Path(args.destination))
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


def _mux(src, sub: Path, out: Path, args, extra: list[str], streams, fmt: str, language: str) -> Path:
    """OUT with the subtitles burnt in or as a new soft track after the input's own (`streams`, from
    plan_streams: the input's streams OUT can carry), atomically."""
    partial = out.with_name(f".{out.stem}.partial-{os.getpid()}{out.suffix}")
    maps, n, _ = streams
    if args.burn:
        argv = ["-i", str(src)]
        if args.drop_other_tracks:
            argv += ["-map", "0:v:0", "-map", f"0:a:{args.audio_track}?", "-c:a", "copy"]
        else:
            argv += [*maps, "-c:a", "copy"]
        argv += ["-vf", f"subtitles=filename={_filter_path(sub)}"]
    else:
        argv = [
            "-i",
            str(src),
            "-i",
            str(sub),
            "-c",
            "copy",
            *maps,
            "-map",
            "1",
            f"-c:s:{n}",
            subtitle_codec(out, fmt),
            f"-metadata:s:s:{n}",
            f"language={language}",
            f"-metadata:s:s:{n}",
            f"title={args.title}",
        ]
        if out.suffix.lower() in MP4_LIKE:
            # ffmpeg's mp4/mov muxer drops a stream's title; the track's name there is its handler name
            # (libavformat/movenc.c, mov_write_hdlr_tag: "hdlr.name is used by some players to identify the
            # content title of the track"), which players and ffprobe show.
            argv += [f"-metadata:s:s:{n}", f"handler_name={args.title}"]
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
