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

import numpy as np


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


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

    from qwen3asr_plugin.engine.convert import convert
    from qwen3asr_plugin.engine.decoder import DecoderOptions, TextDecoder
    from qwen3asr_plugin.engine.encoder import AudioEncoder, EncoderOptions
    from qwen3asr_plugin.engine.mel import log_mel
    from qwen3asr_plugin.engine.model_folder import load_model_info
    from qwen3asr_plugin.engine.prompt import build_asr_prompt
    from tests.fixtures.checkpoint import make_checkpoint
    from tests.parity import speech_like

    work = args.work or Path(tempfile.mkdtemp(prefix="qwen3asr-bench-"))
    ckpt, model = work / f"ckpt-{args.preset}", work / f"model-{args.preset}"
    if not (model / "model.json").exists():
        t0 = time.perf_counter()
        make_checkpoint(ckpt, args.preset, seed=1)
        convert(
            ckpt, model, encoder_precisions=("fp32", "fp16", "int8"), decoder_quants=("f16", "q8_0", "q4_k")
        )
        print(f"checkpoint + conversion: {time.perf_counter() - t0:.0f} s")
    info = load_model_info(model)
    chunk_n = int(args.chunk_seconds * 16000)
    audio = speech_like(int(args.seconds * 16000))
    chunks = [audio[i : i + chunk_n] for i in range(0, audio.size, chunk_n)]
    mels = [log_mel(c, info.mel) for c in chunks]
    print(
        f"preset {args.preset}: {args.seconds:.0f} s audio in {len(chunks)} chunks, {args.threads} threads, "
        f"{args.tokens} decoded tokens in all"
    )

    print("\nencoder (all chunks)")
    embeddings = None
    for precision in ("fp32", "int8", "fp16"):
        enc = AudioEncoder(info, EncoderOptions(precision=precision, device="cpu", threads=args.threads))
        t = best_of(lambda enc=enc: [enc.encode(m) for m in mels], args.repeats)
        if precision == "fp32":
            embeddings = [enc.encode(m) for m in mels]
        print(f"  {precision:5} {t:7.2f} s   RTF {t / args.seconds:.3f}")

    print("\ndecoder (prefill of every chunk's prompt, then decode)")
    per_chunk = args.tokens // len(chunks)
    for quant in ("q8_0", "q4_k", "f16"):
        dec = TextDecoder(info, DecoderOptions(quant=quant, threads=args.threads))
        prompts = [build_asr_prompt(dec.tokenize, info.token_ids, e.shape[0]) for e in embeddings]

        def run(dec=dec, prompts=prompts):
            prefill = decode = 0.0
            for prompt, emb in zip(prompts, embeddings, strict=True):
                t0 = time.perf_counter()
                pos = dec.prefill(prompt, emb)
                t1 = time.perf_counter()
                for i in range(per_chunk):
                    token = int(np.argmax(dec.logits()))
                    dec.step(token, pos + i)
                decode += time.perf_counter() - t1
                prefill += t1 - t0
            return prefill, decode

        results = [run() for _ in range(args.repeats)]
        prefill = min(r[0] for r in results)
        decode = min(r[1] for r in results)
        n_prompt = sum(len(p.prefix) + p.n_audio + len(p.suffix) for p in prompts)
        print(
            f"  {quant:5} prefill {prefill:6.2f} s ({n_prompt / prefill:6.0f} tok/s)   "
            f"decode {decode:6.2f} s ({per_chunk * len(chunks) / decode:5.1f} tok/s)"
        )
        dec.close()


if __name__ == "__main__":
    main()
