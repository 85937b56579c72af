"""The `qwen3asr` command line: a thin layer over the engine; user errors become one line and exit 1."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import __version__, options

EXIT_USER_ERROR = 1
EXIT_INTERRUPTED = 130


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
        progress=options.say(args),
    )
    print(f"converted {args.src} -> {dest}")
    return 0


def _cmd_transcribe(args: argparse.Namespace) -> int:
    from .api import load_engine, output_formats
    from .batch import MEDIA_SUFFIXES, BatchOptions, JsonReporter, Reporter, collect_inputs, transcribe_files
    from .engine.errors import Qwen3ASRError

    writers = output_formats()
    formats = list(writers) if args.format == "all" else _split_list(args.format)
    for fmt in formats:
        if fmt not in writers:
            raise Qwen3ASRError(f"unknown output format {fmt!r}; choose from {', '.join(writers)} or all")
    if args.time_offset and args.resume:
        raise Qwen3ASRError("--time-offset and --resume do not go together; choose one")
    if (args.time_offset or 0) < 0 or (args.follow is not None and args.follow <= 0):
        raise Qwen3ASRError("--time-offset must be 0 or more and --follow more than 0 seconds")
    # reads --replace before any model loads
    run = options.run_options(args, start_seconds=args.start, time_offset=args.time_offset or 0.0)
    if args.user_agent or args.http_header:
        from .engine.media import set_network_options

        set_network_options(args.user_agent, args.http_header or ())
    if args.follow:
        from .engine.media import set_follow

        set_follow(args.follow)
    inputs = collect_inputs(args.inputs)  # before the model loads: an empty folder is said at once
    if not inputs:
        raise Qwen3ASRError(
            f"no media files in {', '.join(args.inputs)} (none ending .mp4, .mkv, .wav, .mp3 or "
            f"{len(MEDIA_SUFFIXES) - 4} other media extensions); give media files or a folder that holds some"
        )
    if args.json_progress:
        JsonReporter().status("loading the model")
    engine = load_engine(args.engine, **options.engine_options(args))
    batch = BatchOptions(
        formats=formats,
        run=run,
        output_dir=args.output_dir,
        overwrite=args.overwrite,
        progressive=args.progressive,
        skip_existing=args.skip_existing,
        resume=args.resume,
        verbose=args.verbose,
    )
    reporter = JsonReporter() if args.json_progress else Reporter(quiet=args.quiet)
    summary = transcribe_files(engine, inputs, batch, reporter)
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

    try:
        text = args.text.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise Qwen3ASRError(
            f"{args.text}: cannot read the transcript ({exc}); give a UTF-8 text file"
        ) from exc
    aligner = Aligner(
        args.aligner,
        device=args.device,
        device_index=args.device_index,
        gpu_layers=args.gpu_layers,
        threads=args.threads,
        progress=options.say(args),
    )
    words = aligner.align(args.audio, text.strip(), language=args.language)
    for w in words:
        if args.json:
            print(json.dumps({"start": w.start, "end": w.end, "word": w.word}, ensure_ascii=False))
        else:
            print(f"{w.start:.3f}\t{w.end:.3f}\t{w.word}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from .api import load_engine
    from .engine.model_store import DEFAULT_MODEL
    from .server import serve

    run = options.run_options(args)
    engine_options = options.engine_options(args)
    engine_options.pop("api_key", None)  # serve's --api-key guards the server; the engine is local
    engine = load_engine("local", **engine_options)
    model_id = args.model or DEFAULT_MODEL
    url = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host}:{args.port}/v1"
    print(f"qwen3asr: serving {model_id} on {url} (POST /audio/transcriptions)", file=sys.stderr)
    if not args.quiet:
        from .se_settings import engine_instructions

        print(f"qwen3asr: {engine_instructions(url + '/audio/transcriptions', model_id)}", file=sys.stderr)
    serve(
        engine,
        Path(model_id).name if Path(model_id).exists() else model_id,
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        max_upload_bytes=int(args.max_upload_mb) << 20,
        max_queue=args.max_queue,
        run_options=run,
    )
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from .engine.audio import SAMPLE_RATE
    from .engine.bench import report, run_bench, synthetic_speech
    from .engine.model_folder import load_model_info
    from .engine.model_store import preset_aligner, resolve_model
    from .engine.pipeline import TranscribeOptions

    say = options.say(args)
    info = load_model_info(resolve_model(args.model, pull_missing=True, progress=say))
    aligner = None if args.no_align else args.aligner or preset_aligner(args.model)
    aligner_info = (
        load_model_info(resolve_model(aligner, pull_missing=True, progress=say)) if aligner else None
    )
    if args.audio:
        from .engine.audio import load_audio

        audio = load_audio(args.audio)[: int(args.seconds * SAMPLE_RATE)]
    else:
        audio = synthetic_speech(args.seconds)
    threads = args.threads or (os.cpu_count() or 1)
    batch_size = args.batch_size or TranscribeOptions.batch_size
    print(
        f"model {info.folder} ({info.source.get('repo') or 'local'}); {threads} threads; "
        f"{args.tokens} decoded tokens forced; {batch_size} chunks decoded together"
    )
    stages = run_bench(
        info,
        audio,
        args.tokens,
        threads,
        args.encoder_precision,
        args.decoder_quant,
        aligner_info,
        batch_size=batch_size,
    )
    from .engine.bench import peak_rss_mb
    from .engine.floors import measure

    peak = peak_rss_mb()
    print(report(stages, audio.size / SAMPLE_RATE, measure(threads), peak))
    return 0


def _cmd_hosts(args: argparse.Namespace) -> int:
    from .engine.errors import Qwen3ASRError
    from .plugins import registry

    hosts = registry("register_hosts")
    if args.action == "list":
        for name, entry in hosts.items():
            print(f"{name:16} {entry.value.status()}  ({entry.description})")
        return 0
    if not args.name or args.name not in hosts:
        raise Qwen3ASRError(f"unknown host {args.name!r}; choose from {', '.join(hosts) or 'none installed'}")
    host = hosts[args.name].value
    if args.action == "install" and args.configure:
        import inspect

        if "configure" not in inspect.signature(host.install).parameters:
            raise Qwen3ASRError(f"host {args.name!r} has nothing to configure; run without --configure")
        print(host.install(configure=True))
        return 0
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


def _cmd_devices(args: argparse.Namespace) -> int:
    import json

    import llama_cpp

    from .engine.llama_runtime import gpu_devices, library_path
    from .engine.providers import available_providers

    gpus = gpu_devices(memory=True)
    found = {
        "encoder": {"onnxruntime_providers": available_providers()},
        "decoder": {
            "llama_cpp_python": llama_cpp.__version__,
            "library": library_path(),
            "gpus": [
                {"index": d.index, "name": d.name, "description": d.description, "total_mib": d.total >> 20}
                for d in gpus
            ],
        },
    }
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    print(f"encoder (onnxruntime): {', '.join(found['encoder']['onnxruntime_providers'])}")
    print(f"decoder (llama.cpp through llama-cpp-python {llama_cpp.__version__}): {library_path()}")
    if not gpus:
        print("  CPU only: this llama.cpp has no GPU backend, or sees no GPU (see the README's Install)")
    for d in gpus:
        print(f"  --device-index {d.index}: {d.name}, {d.description}, {d.total >> 20} MiB")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from .engine import model_store

    if args.action == "list":
        for name, preset in model_store.presets().items():
            state = "installed" if model_store.is_installed(name) else "not installed"
            if model_store.folder_is_outdated(model_store.model_path(name)):
                state = "outdated (converted again on first use)"
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
        dest = model_store.pull(name, revision=args.revision, progress=options.say(args))
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
        "--encoder-precision",
        default="fp32,q8",
        help="comma list of fp32, fp16, int8, q8, or 'all' (default: fp32,q8)",
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

    model, device, _, _, vad, output = parents = options.cli_parents()

    p = sub.add_parser(
        "transcribe",
        parents=parents,
        help="transcribe audio or video files into subtitles",
    )
    p.add_argument("inputs", nargs="+", help="audio or video files, folders of them, or http(s) URLs")
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
    p.add_argument("--json-progress", action="store_true", help="JSON event lines on stdout (for hosts)")
    p.add_argument(
        "--progressive",
        action="store_true",
        help="rewrite the (first) output after every segment, atomically, for players",
    )
    p.add_argument("--start", type=float, help="begin at this many seconds, then transcribe the beginning")
    p.add_argument(
        "--follow",
        type=float,
        metavar="SECONDS",
        help="inputs are files still being written (a recording of a live stream): read on at their end until "
        "nothing new arrives for SECONDS",
    )
    p.add_argument(
        "--time-offset",
        type=float,
        metavar="SECONDS",
        help="add SECONDS to every time written (a recording that starts this far into what a player shows)",
    )
    p.add_argument("--user-agent", help="User-Agent for http(s) inputs (a player passes its own)")
    p.add_argument(
        "--http-header",
        action="append",
        metavar="'NAME: VALUE'",
        help="an HTTP header for http(s) inputs (repeat for more; e.g. a Cookie or Referer a site needs)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep STEM.resume.json beside the outputs while running; when it is there, go on from it (keep "
        "what is done, transcribe the rest from --start); removed when the input is done",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_cmd_transcribe)

    p = sub.add_parser(
        "align", parents=[device], help="time an existing transcript against its audio (word by word)"
    )
    p.add_argument("audio", help="audio or video file (at most 180 s)")
    p.add_argument("text", type=Path, help="UTF-8 text file with what is said")
    p.add_argument("--aligner", default="qwen3-forcedaligner-0.6b", help="aligner preset or folder")
    p.add_argument("--language", help="language of the text (matters for Japanese and Korean)")
    p.add_argument(
        "--json", action="store_true", help="one JSON object per word instead of start<TAB>end<TAB>word"
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_cmd_align)

    p = sub.add_parser(
        "serve",
        parents=[model, device, vad, output],
        help="an OpenAI-compatible speech-to-text server (for Subtitle Edit and others)",
        description="An OpenAI-compatible speech-to-text server: POST /v1/audio/transcriptions. For Subtitle "
        "Edit 5 (Video > Speech to text): engine 'OpenAI Compatible', URL "
        "http://127.0.0.1:8000/v1/audio/transcriptions, audio format wav and timeout 3600 s, so that long "
        "films come in pieces of about 12.6 min that each finish well inside the timeout on a CPU "
        "(`qwen3asr hosts install subtitle-edit --configure` sets these). A request whose client leaves "
        "stops between chunks.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", help="require this Bearer token (default: none)")
    p.add_argument("--max-upload-mb", type=float, default=512, help="largest upload accepted")
    p.add_argument("--max-queue", type=int, default=8, help="requests allowed to wait; more get 503")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser(
        "bench",
        parents=[model],
        help="time each stage (mel, encoder, prefill, decode, align) on this machine",
    )
    p.add_argument("--seconds", type=float, default=60.0, help="seconds of audio (default 60)")
    p.add_argument("--tokens", type=int, default=200, help="decoded tokens forced in all (default 200)")
    p.add_argument("--audio", help="a media file to use instead of the synthetic signal")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: all cores)")
    p.add_argument("--batch-size", type=options.positive_int, help="chunks decoded together (default 4)")
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
    p.add_argument(
        "--configure",
        action="store_true",
        help="also set the host's own options for qwen3asr (subtitle-edit: its speech-to-text engine, URL, "
        "audio format and timeout in SE's Settings.json, while SE is closed)",
    )
    p.set_defaults(func=_cmd_hosts)

    p = sub.add_parser("plugins", help="installed plugins and the hooks each implements")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_plugins)

    p = sub.add_parser("devices", help="where the encoder and the decoder can run (GPUs, providers, library)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_devices)

    p = sub.add_parser("models", help="list, locate or download models")
    p.add_argument("action", choices=["list", "path", "pull"])
    p.add_argument("name", nargs="?", help="preset name (pull: default qwen3-asr-0.6b)")
    p.add_argument("--revision", help="checkpoint revision to pull")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_cmd_models)
    for command in sub.choices.values():  # also after the command: `qwen3asr transcribe --verbose ...`
        command.add_argument(
            "--verbose", action="store_true", default=argparse.SUPPRESS, help="show tracebacks for errors"
        )
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
        from .plugins import load_plugins

        # The built-in host module, as the plugin manager registered it (the face never imports a host).
        return load_plugins().get_plugin("qwen3asr_plugin.hosts.ffmpeg").main(argv[1:])
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
