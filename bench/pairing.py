"""Which encoder precision and decoder quantization to use by default on a CPU: speed at the real dimensions.

    python -m bench.pairing [--preset 0.6b] [--seconds 60] [--tokens 200] [--threads 2] [--work DIR]

Builds a random-weight checkpoint at the preset's real dimensions, converts it to every precision, then times
the encoder per precision and the decoder (prefill of the chunk's audio, then per-token decode) per
quantization on the same audio. Weights are random, so only the speed means anything; it does not depend on
weight values. All figures come from one run: compare ratios, not absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench import prepare_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="0.6b")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--chunk-seconds", type=float, default=30.0)
    parser.add_argument("--tokens", type=int, default=200, help="decoded tokens for the whole input")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--work", type=Path, help="keep the checkpoint and model here (reused if present)")
    args = parser.parse_args()

    from qwen3asr_plugin.engine.bench import run_bench
    from qwen3asr_plugin.engine.llama_runtime import native_bf16
    from qwen3asr_plugin.engine.model_folder import load_model_info
    from tests.parity import speech_like

    work = args.work or Path(tempfile.mkdtemp(prefix="qwen3asr-bench-"))
    t0 = time.perf_counter()
    _, model = prepare_model(
        work, args.preset, ("fp32", "fp16", "int8"), ("f16", "bf16", "q8_0", "q6_k", "q4_k")
    )
    print(f"checkpoint + conversion: {time.perf_counter() - t0:.0f} s")
    info = load_model_info(model)
    audio = speech_like(int(args.seconds * 16000))
    print(
        f"preset {args.preset}: {args.seconds:.0f} s audio in {args.chunk_seconds:.0f} s chunks, "
        f"{args.threads} threads, {args.tokens} decoded tokens in all; best of {args.repeats}; "
        f"llama.cpp bf16 dot products: {'yes' if native_bf16() else 'no (bf16 emulated)'}"
    )

    def best(precision: str, quant: str) -> dict[str, float]:
        runs = [
            {
                s.name: s.seconds
                for s in run_bench(
                    info, audio, args.tokens, args.threads, precision, quant, chunk_seconds=args.chunk_seconds
                )
            }
            for _ in range(args.repeats)
        ]
        return {stage: min(r[stage] for r in runs) for stage in runs[0]}

    print("\nencoder (all chunks)")
    for precision in ("fp32", "int8", "fp16"):
        t = best(precision, "q8_0")["encoder"]
        print(f"  {precision:5} {t:7.2f} s   RTF {t / args.seconds:.3f}")
    print("\ndecoder (prefill of every chunk's prompt, then decode)")
    for quant in ("bf16", "q8_0", "q6_k", "q4_k", "f16"):
        t = best("fp32", quant)
        print(
            f"  {quant:5} prefill {t['prefill']:6.2f} s   decode {t['decode']:6.2f} s "
            f"({args.tokens / t['decode']:5.1f} tok/s)"
        )


if __name__ == "__main__":
    main()
