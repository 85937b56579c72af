"""The `qwen3asr` command line: a thin layer over the engine; user errors become one line and exit 1."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__

EXIT_USER_ERROR = 1
EXIT_INTERRUPTED = 130


def _split_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _cmd_convert(args: argparse.Namespace) -> int:
    from .engine.convert import convert
    from .engine.model_folder import ENCODER_PRECISIONS

    precisions = (
        list(ENCODER_PRECISIONS) if args.encoder_precision == "all" else _split_list(args.encoder_precision)
    )
    dest = convert(
        args.src,
        args.dest,
        encoder_precisions=precisions,
        repo=args.repo,
        revision=args.revision,
        progress=None if args.quiet else (lambda msg: print(f"  {msg}", file=sys.stderr)),
    )
    print(f"converted {args.src} -> {dest}")
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
    p.set_defaults(func=_cmd_convert)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .engine.errors import Qwen3ASRError

    args = build_parser().parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
