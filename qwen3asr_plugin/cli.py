"""The `qwen3asr` command line: a thin layer over the engine; user errors become one line and exit 1."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import __version__

EXIT_USER_ERROR = 1
EXIT_INTERRUPTED = 130


def _positive_int(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"{value}: give a whole number of at least 1")
    return n


def _split_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _cmd_convert(args: argparse.Namespace) -> int:
    from .engine.convert import convert
    from .engine.gguf_export import DECODER_QUANTS
    from .engine.model_folder import ENCODER_PRECISIONS

    precisions = (
        list(ENCODER_PRECISIONS) if args.encoder_precision == "all" else _split_list(args.encoder_precision)
    )
    quants = list(DECODER_QUANTS) if args.decoder_quant == "all" else _split_list(args.decoder_quant)
    dest = convert(
        args.src,
        args.dest,
        encoder_precisions=precisions,
        decoder_quants=quants,
        repo=args.repo,
        revision=args.revision,
        progress=_say(args),
    )
    print(f"converted {args.src} -> {dest}")
    return 0


def _say(args: argparse.Namespace):
    return None if getattr(args, "quiet", False) else (lambda msg: print(f"  {msg}", file=sys.stderr))


def _read_replacements(path: Path | None) -> list[tuple[str, str]]:
    """A replacement table: one `old<TAB>new` pair per line (blank lines and # comments skipped)."""
    from .engine.errors import Qwen3ASRError

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


def _make_engine(args: argparse.Namespace):
    from .api import ASRModel
    from .engine.errors import Qwen3ASRError
    from .engine.model_store import DEFAULT_MODEL, presets, resolve_model
    from .plugins import registry

    engines = registry("register_engines")
    if args.engine not in engines:
        raise Qwen3ASRError(f"unknown engine {args.engine!r}; installed: {', '.join(engines)}")
    if args.engine != "local":
        return engines[args.engine]["value"](
            endpoint=args.endpoint, model=args.model or DEFAULT_MODEL, api_key=args.api_key
        )
    folder = resolve_model(args.model, pull_missing=True, progress=_say(args))
    # The aligner: --aligner, else the preset's own (none for a bare model folder), pulled on first use.
    aligner = (
        None
        if args.no_align
        else args.aligner or presets().get(args.model or DEFAULT_MODEL, {}).get("aligner")
    )
    if aligner:
        aligner = resolve_model(aligner, pull_missing=True, progress=_say(args))
    return ASRModel(
        folder,
        aligner=aligner,
        device=args.device,
        device_index=args.device_index,
        encoder_precision=args.encoder_precision,
        decoder_quant=args.decoder_quant,
        threads=args.threads,
        gpu_layers=args.gpu_layers,
    )


def _cmd_transcribe(args: argparse.Namespace) -> int:
    from .batch import BatchOptions, JsonReporter, Reporter, collect_inputs, transcribe_files
    from .engine.errors import Qwen3ASRError
    from .plugins import registry

    writers = registry("register_output_formats")
    formats = list(writers) if args.format == "all" else _split_list(args.format)
    for fmt in formats:
        if fmt not in writers:
            raise Qwen3ASRError(f"unknown output format {fmt!r}; choose from {', '.join(writers)} or all")
    replacements = _read_replacements(args.replace)
    model = _make_engine(args)
    inputs = collect_inputs(args.inputs)
    if not inputs:
        raise Qwen3ASRError(f"no media files in {', '.join(args.inputs)}")
    options = BatchOptions(
        formats=formats,
        output_dir=args.output_dir,
        overwrite=args.overwrite,
        language=args.language,
        context=args.context,
        audio_track=args.audio_track,
        vad_filter=args.vad,
        temperature_fallback=not args.no_fallback,
        cue_overrides={
            "max_line_chars": args.max_line_width,
            "max_lines": args.max_line_count,
            "min_duration_seconds": args.min_duration,
            "max_duration_seconds": args.max_duration,
            "max_chars_per_second": args.max_cps,
            "min_gap_seconds": args.min_gap,
        },
        postprocess={"replacements": replacements, "itn": args.itn},
        progressive=args.progressive,
        start_seconds=args.start,
        skip_existing=args.skip_existing,
        batch_size=args.batch_size,
    )
    reporter = JsonReporter() if args.json_progress else Reporter(quiet=args.quiet)
    summary = transcribe_files(model, inputs, options, reporter)
    reporter.done(summary)
    if summary["failed"]:
        if not args.json_progress:
            print(f"qwen3asr: {summary['failed']} of {summary['files']} inputs failed", file=sys.stderr)
        return EXIT_USER_ERROR
    return 0


def _cmd_align(args: argparse.Namespace) -> int:
    import json

    from .api import Aligner
    from .engine.errors import Qwen3ASRError
    from .engine.model_store import resolve_model

    try:
        text = args.text.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise Qwen3ASRError(
            f"{args.text}: cannot read the transcript ({exc}); give a UTF-8 text file"
        ) from exc
    folder = resolve_model(args.aligner, pull_missing=True, progress=_say(args))
    aligner = Aligner(folder, device=args.device, device_index=args.device_index, threads=args.threads)
    words = aligner.align(args.audio, text.strip(), language=args.language)
    for w in words:
        if args.json:
            print(json.dumps({"start": w.start, "end": w.end, "word": w.word}, ensure_ascii=False))
        else:
            print(f"{w.start:.3f}\t{w.end:.3f}\t{w.word}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from .engine.model_store import DEFAULT_MODEL
    from .server import serve

    args.engine = "local"
    model = _make_engine(args)
    model_id = args.model or DEFAULT_MODEL
    print(
        f"qwen3asr: serving {model_id} on http://{args.host}:{args.port}/v1 (POST /audio/transcriptions)",
        file=sys.stderr,
    )
    serve(
        model,
        Path(model_id).name if Path(model_id).exists() else model_id,
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        max_upload_bytes=int(args.max_upload_mb) << 20,
        max_queue=args.max_queue,
    )
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from .engine.bench import report, run_bench, synthetic_speech
    from .engine.model_folder import load_model_info
    from .engine.model_store import DEFAULT_MODEL, presets, resolve_model

    info = load_model_info(resolve_model(args.model, pull_missing=True, progress=_say(args)))
    aligner_info = None
    aligner = (
        None
        if args.no_align
        else args.aligner or presets().get(args.model or DEFAULT_MODEL, {}).get("aligner")
    )
    if aligner:
        aligner_info = load_model_info(resolve_model(aligner, pull_missing=True, progress=_say(args)))
    if args.audio:
        from .engine.audio import load_audio

        audio = load_audio(args.audio)[: int(args.seconds * 16000)]
    else:
        audio = synthetic_speech(args.seconds)
    threads = args.threads or (os.cpu_count() or 1)
    print(
        f"model {info.folder} ({info.source.get('repo') or 'local'}); {threads} threads; "
        f"{args.tokens} decoded tokens forced; {args.batch_size} chunks decoded together"
    )
    stages = run_bench(
        info,
        audio,
        args.tokens,
        threads,
        args.encoder_precision,
        args.decoder_quant,
        aligner_info,
        batch_size=args.batch_size,
    )
    print(report(stages, audio.size / 16000))
    return 0


def _cmd_hosts(args: argparse.Namespace) -> int:
    from .engine.errors import Qwen3ASRError
    from .plugins import registry

    hosts = registry("register_hosts")
    if args.action == "list":
        for name, entry in hosts.items():
            print(f"{name:16} {entry['value'].status()}  ({entry['description']})")
        return 0
    if not args.name or args.name not in hosts:
        raise Qwen3ASRError(f"unknown host {args.name!r}; choose from {', '.join(hosts) or 'none installed'}")
    host = hosts[args.name]["value"]
    print(host.install() if args.action == "install" else host.uninstall())
    return 0


def _cmd_plugins(args: argparse.Namespace) -> int:
    import json

    from .plugins import plugin_listing

    listing = plugin_listing()
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    for p in listing:
        version = f" {p['version']}" if p["version"] else ""
        print(f"{p['name']} ({p['distribution']}{version}): {', '.join(p['hooks']) or 'no hooks'}")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from .engine import model_store

    if args.action == "list":
        for name, preset in model_store.presets().items():
            state = "installed" if model_store.is_installed(name) else "not installed"
            default = " (default)" if preset.get("default") else ""
            print(f"{name:28} {preset['repo']:34} {state}{default}")
        print(f"models folder: {model_store.models_dir()}")
        return 0
    if args.action == "path":
        if args.name:
            print(model_store.resolve_model(args.name, pull_missing=False))
        else:
            print(model_store.models_dir())
        return 0
    names = args.name and [args.name] or [model_store.DEFAULT_MODEL]
    for name in names:
        dest = model_store.pull(name, revision=args.revision, progress=_say(args))
        print(f"{name}: {dest}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qwen3asr", description="Local speech-to-subtitles with Qwen3-ASR.")
    parser.add_argument("--version", action="version", version=f"qwen3asr-plugin {__version__}")
    parser.add_argument("--verbose", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("convert", help="convert a Hugging Face checkpoint folder into a model folder")
    p.add_argument(
        "src", type=Path, help="checkpoint folder (config.json, model.safetensors, tokenizer files)"
    )
    p.add_argument("dest", type=Path, help="model folder to write (new, empty, or an earlier conversion)")
    p.add_argument(
        "--encoder-precision", default="fp32", help="comma list of fp32, fp16, int8, or 'all' (default: fp32)"
    )
    p.add_argument(
        "--repo", help="Hugging Face repo id to record as the source (found automatically in a hub cache)"
    )
    p.add_argument("--revision", help="source revision to record")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument(
        "--decoder-quant",
        default="auto",
        help="comma list of f32, f16, bf16, q8_0, q6_k, q4_k, or 'all'; auto (the default) is bf16 on CPUs "
        "with bf16 dot products (AVX512_BF16), else q8_0",
    )
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser("transcribe", help="transcribe audio or video files into subtitles")
    p.add_argument("inputs", nargs="+", help="audio or video files, or folders of them")
    p.add_argument(
        "-f", "--format", default="srt", help="comma list of srt, vtt, ass, json, txt, lrc, or all"
    )
    p.add_argument("-o", "--output-dir", type=Path, help="write here instead of next to each input")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument(
        "--skip-existing",
        action="store_true",
        help="skip inputs whose outputs all exist (resume an interrupted batch)",
    )
    p.add_argument("--audio-track", type=int, default=0, help="which audio stream (0 = the first)")
    p.add_argument("--vad", action="store_true", help="skip long silence (energy-based) before recognition")
    p.add_argument("--json-progress", action="store_true", help="JSON event lines on stdout (for hosts)")
    p.add_argument(
        "--progressive",
        action="store_true",
        help="rewrite the (first) output after every segment, atomically, for players",
    )
    p.add_argument("--start", type=float, help="begin at this many seconds, then transcribe the beginning")
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
    p.add_argument("--engine", default="local", help="local, openai, or an engine a plugin registers")
    p.add_argument("--endpoint", help="openai engine: base URL (default http://127.0.0.1:8000/v1)")
    p.add_argument("--api-key", help="openai engine: API key (or QWEN3ASR_API_KEY)")
    p.add_argument(
        "--model", help="preset name or model folder (default: qwen3-asr-0.6b, pulled on first use)"
    )
    p.add_argument("--language", help="force the language (name or ISO code, e.g. English, en, zh)")
    p.add_argument("--context", help="background text for the model: names, terms, topic")
    p.add_argument("--device", default="auto", help="auto, cpu, gpu, cuda, dml (encoder and decoder)")
    p.add_argument("--device-index", type=int, default=0, help="which GPU")
    p.add_argument("--gpu-layers", type=int, default=None, help="decoder layers on the GPU (default: all)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: all cores)")
    p.add_argument("--encoder-precision", help="fp32, fp16 or int8 (default: the best the model folder has)")
    p.add_argument(
        "--decoder-quant", help="f32, f16, bf16, q8_0, q6_k or q4_k (default: the best the model folder has)"
    )
    p.add_argument("--no-fallback", action="store_true", help="greedy only: no temperature fallback on loops")
    p.add_argument(
        "--batch-size",
        type=_positive_int,
        default=4,
        help="30 s chunks decoded together: one pass over the weights per token for all (default 4; 1: one "
        "at a time, least memory)",
    )
    p.add_argument("--aligner", help="forced aligner preset or folder (default: the model preset's aligner)")
    p.add_argument("--no-align", action="store_true", help="no word timings (skips the aligner)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_cmd_transcribe)

    p = sub.add_parser("align", help="time an existing transcript against its audio (word by word)")
    p.add_argument("audio", help="audio or video file (at most 180 s)")
    p.add_argument("text", type=Path, help="UTF-8 text file with what is said")
    p.add_argument("--aligner", default="qwen3-forcedaligner-0.6b", help="aligner preset or folder")
    p.add_argument("--language", help="language of the text (matters for Japanese and Korean)")
    p.add_argument("--device", default="auto", help="auto, cpu, gpu, cuda, dml")
    p.add_argument("--device-index", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument(
        "--json", action="store_true", help="one JSON object per word instead of start<TAB>end<TAB>word"
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_cmd_align)

    p = sub.add_parser(
        "serve", help="an OpenAI-compatible speech-to-text server (for Subtitle Edit and others)"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", help="require this Bearer token (default: none)")
    p.add_argument("--max-upload-mb", type=float, default=512, help="largest upload accepted")
    p.add_argument("--max-queue", type=int, default=8, help="requests allowed to wait; more get 503")
    p.add_argument("--model", help="preset name or model folder (default: qwen3-asr-0.6b)")
    p.add_argument("--aligner", help="aligner preset or folder (default: the preset's own)")
    p.add_argument("--no-align", action="store_true", help="no word timings")
    p.add_argument("--device", default="auto")
    p.add_argument("--device-index", type=int, default=0)
    p.add_argument("--gpu-layers", type=int, default=None)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--encoder-precision")
    p.add_argument("--decoder-quant")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("bench", help="time each stage (mel, encoder, prefill, decode, align) on this machine")
    p.add_argument("--model", help="preset name or model folder (default: qwen3-asr-0.6b)")
    p.add_argument("--aligner", help="aligner preset or folder (default: the preset's own)")
    p.add_argument("--no-align", action="store_true")
    p.add_argument("--seconds", type=float, default=60.0, help="seconds of audio (default 60)")
    p.add_argument("--tokens", type=int, default=200, help="decoded tokens forced in all (default 200)")
    p.add_argument("--audio", help="a media file to use instead of the synthetic signal")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--encoder-precision")
    p.add_argument("--decoder-quant")
    p.add_argument("--batch-size", type=_positive_int, default=4, help="chunks decoded together (default 4)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_bench)

    sub.add_parser(
        "ffmpeg",
        add_help=False,
        help="transcribe and mux, burn or write subtitles: qwen3asr ffmpeg -i IN [options] OUT",
    )

    p = sub.add_parser("hosts", help="list, install or remove the host adapters (mpv, Subtitle Edit, ...)")
    p.add_argument("action", choices=["list", "install", "uninstall"])
    p.add_argument("name", nargs="?")
    p.set_defaults(func=_cmd_hosts)

    p = sub.add_parser("plugins", help="installed plugins and the hooks each implements")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_plugins)

    p = sub.add_parser("models", help="list, locate or download models")
    p.add_argument("action", choices=["list", "path", "pull"])
    p.add_argument("name", nargs="?", help="preset name (pull: default qwen3-asr-0.6b)")
    p.add_argument("--revision", help="checkpoint revision to pull")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_cmd_models)
    return parser


def _stop_on_sigterm() -> None:
    """SIGTERM stops like Ctrl-C: temporary files are removed and existing outputs stay as they were."""
    import contextlib
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    with contextlib.suppress(ValueError):  # not the main thread (embedded use)
        signal.signal(signal.SIGTERM, interrupt)


def main(argv: list[str] | None = None) -> int:
    from .engine.errors import Qwen3ASRError

    argv = sys.argv[1:] if argv is None else argv
    # `qwen3asr ffmpeg ...` is `qwen3asr-ffmpeg ...`, whose options are ffmpeg-like.
    if argv[:1] == ["ffmpeg"]:
        from .hosts.ffmpeg import main as ffmpeg_main

        return ffmpeg_main(argv[1:])
    args = build_parser().parse_args(argv)
    _stop_on_sigterm()
    try:
        return args.func(args)
    except Qwen3ASRError as exc:
        if args.verbose:
            raise
        print(f"qwen3asr: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("qwen3asr: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (e.g. `| head`): stop quietly
        sys.stderr.close()
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
