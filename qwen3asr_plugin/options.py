"""Command-line options that several commands share, declared once (argparse parents), and the two records
they become: the options an engine is built with (`load_engine`) and a run's options (`RunOptions`).
`qwen3asr transcribe`, `serve`, `align`, `bench` and the ffmpeg host take the parents they need."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .engine.errors import Qwen3ASRError
from .runner import RunOptions


def positive_int(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"{value}: give a whole number of at least 1")
    return n


def _parent() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(add_help=False)


def model_arguments() -> argparse.ArgumentParser:
    p = _parent()
    p.add_argument(
        "--model", help="preset name or model folder (default: qwen3-asr-0.6b, pulled on first use)"
    )
    p.add_argument("--aligner", help="forced aligner preset or folder (default: the model preset's aligner)")
    p.add_argument("--no-align", action="store_true", help="no word timings (skips the aligner)")
    p.add_argument(
        "--encoder-precision", help="fp32, fp16, int8 or q8 (default: the best the model folder has)"
    )
    p.add_argument(
        "--decoder-quant", help="f32, f16, bf16, q8_0, q6_k or q4_k (default: the best the model folder has)"
    )
    return p


def device_arguments() -> argparse.ArgumentParser:
    p = _parent()
    p.add_argument("--device", default="auto", help="auto, cpu, gpu, cuda, dml (encoder and decoder)")
    p.add_argument("--device-index", type=int, default=0, help="which GPU")
    p.add_argument("--gpu-layers", type=int, default=None, help="decoder layers on the GPU (default: all)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: all cores)")
    return p


def engine_arguments() -> argparse.ArgumentParser:
    p = _parent()
    p.add_argument("--engine", default="local", help="local, openai, or an engine a plugin registers")
    p.add_argument("--endpoint", help="openai engine: base URL (default http://127.0.0.1:8000/v1)")
    p.add_argument("--api-key", help="openai engine: API key (or QWEN3ASR_API_KEY)")
    p.add_argument(
        "--jobs",
        type=int,
        help="openai engine: chunk requests in flight at once (default 4; more for a cluster)",
    )
    return p


def recognition_arguments() -> argparse.ArgumentParser:
    p = _parent()
    p.add_argument("--language", help="force the language (name or ISO code, e.g. English, en, zh)")
    p.add_argument("--context", help="background text for the model: names, terms, topic")
    p.add_argument("--audio-track", type=int, default=0, help="which audio stream (0 = the first)")
    p.add_argument("--no-fallback", action="store_true", help="greedy only: no temperature fallback on loops")
    p.add_argument(
        "--batch-size",
        type=positive_int,
        help="30 s chunks decoded together: one pass over the weights per token for all (default 4; 1: one "
        "at a time, least memory)",
    )
    return p


def vad_arguments() -> argparse.ArgumentParser:
    """Silero VAD: what is transcribed (the CLI, its hosts and the server take the same)."""
    p = _parent()
    p.add_argument(
        "--vad",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="transcribe only the speech Silero VAD finds, skipping music, noise and silence",
    )
    p.add_argument("--vad-threshold", type=float, help="speech score a 32 ms window needs (default 0.5)")
    p.add_argument(
        "--vad-min-silence", type=float, help="seconds of non-speech that end a speech region (default 2)"
    )
    p.add_argument("--vad-min-speech", type=float, help="shorter speech regions are dropped (default 0)")
    p.add_argument("--vad-pad", type=float, help="seconds kept on each side of speech (default 0.4)")
    return p


def output_arguments() -> argparse.ArgumentParser:
    """Subtitle rules and post-processing: what turns segments into cues and text."""
    p = _parent()
    p.add_argument(
        "--max-line-width", type=float, help="characters per line (default by language: 42, CJK 16)"
    )
    p.add_argument("--max-line-count", type=int, help="lines per cue (default 2)")
    p.add_argument("--min-duration", type=float, help="shortest cue in seconds (default 0.833)")
    p.add_argument("--max-duration", type=float, help="longest cue in seconds (default 7)")
    p.add_argument("--max-cps", type=float, help="reading speed target, characters per second")
    p.add_argument("--min-gap", type=float, help="gap between cues in seconds (default 0.083)")
    p.add_argument("--replace", type=Path, help="replacement table: one `old<TAB>new` per line")
    p.add_argument("--itn", action="store_true", help="Chinese: write spoken numbers as digits (一百 -> 100)")
    return p


def cli_parents() -> list[argparse.ArgumentParser]:
    """All the shared parents, for a command that takes every transcription option (`qwen3asr transcribe`, a
    host's own command line); `engine_options(args)` and `run_options(args)` turn what they parse into
    load_engine's keywords and a RunOptions."""
    return [
        model_arguments(),
        device_arguments(),
        engine_arguments(),
        recognition_arguments(),
        vad_arguments(),
        output_arguments(),
    ]


def read_replacements(path: Path | None) -> list[tuple[str, str]]:
    """A replacement table: one `old<TAB>new` pair per line (blank lines and # comments skipped)."""
    if path is None:
        return []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise Qwen3ASRError(f"{path}: cannot read the replacement table ({exc})") from exc
    pairs = []
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if "\t" not in line:
            raise Qwen3ASRError(f"{path}:{number}: expected `old<TAB>new`")
        old, new = line.split("\t", 1)
        pairs.append((old, new))
    return pairs


def say(args: argparse.Namespace):
    """Progress lines (a model download, conversion) on stderr unless --quiet; `status` JSON events on stdout
    with --json-progress, so that a host shows them while they happen (it reads stderr only at the end)."""
    if getattr(args, "json_progress", False):
        from .batch import emit_json

        return lambda msg: emit_json(event="status", message=str(msg).strip())
    return None if getattr(args, "quiet", False) else (lambda msg: print(f"  {msg}", file=sys.stderr))


def engine_options(args: argparse.Namespace) -> dict:
    """Keywords for `load_engine` from whichever of the parents `args` has; each engine takes what it knows."""
    given = vars(args)
    options = {
        key: given[key]
        for key in (
            "model",
            "device",
            "device_index",
            "gpu_layers",
            "threads",
            "encoder_precision",
            "decoder_quant",
            "endpoint",
            "api_key",
            "jobs",
        )
        if given.get(key) is not None
    }
    if "no_align" in given:
        # The aligner: --aligner, else the model preset's own (none for a bare model folder); False: none.
        options["aligner"] = False if args.no_align else (args.aligner or True)
    options["progress"] = say(args)
    return options


def run_options(args: argparse.Namespace, **fixed) -> RunOptions:
    """A run's options from whichever of the recognition and output parents `args` has (and `fixed`)."""
    given = vars(args)
    found: dict = {}
    for key in ("language", "context", "audio_track", "batch_size"):
        if key in given:
            found[key] = given[key]
    if given.get("vad") is not None:
        found["vad_filter"] = args.vad
    vad = {
        name: given.get(key)
        for key, name in (
            ("vad_threshold", "threshold"),
            ("vad_min_silence", "min_silence_seconds"),
            ("vad_min_speech", "min_speech_seconds"),
            ("vad_pad", "speech_pad_seconds"),
        )
        if given.get(key) is not None
    }
    if vad:
        found["vad_parameters"] = vad
    if "no_fallback" in given:
        found["temperature_fallback"] = not args.no_fallback
    if "max_line_width" in given:
        found["cue_rules"] = {
            "max_line_chars": args.max_line_width,
            "max_lines": args.max_line_count,
            "min_duration_seconds": args.min_duration,
            "max_duration_seconds": args.max_duration,
            "max_chars_per_second": args.max_cps,
            "min_gap_seconds": args.min_gap,
        }
        found["postprocess"] = {"replacements": read_replacements(args.replace), "itn": args.itn}
    return RunOptions(**{**found, **fixed})
