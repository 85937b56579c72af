"""llama.cpp's own Qwen3-ASR path (libmtmd) on a checkpoint, for the side-by-side comparison: the checkpoint
converted with llama.cpp's convert_hf_to_gguf.py (text model and audio projector, the `mmproj`), then run
through the libmtmd that llama-cpp-python builds and binds (llama_cpp.mtmd_cpp), the way llama.cpp's
`llama-mtmd-cli` runs it (tools/mtmd/mtmd-cli.cpp: mtmd_tokenize, mtmd_helper_eval_chunks, then one token per
llama_decode). The converter is the one in the llama-cpp-python source of the installed version, so library
and files match.

    python -m bench.mtmd CHECKPOINT --work DIR [--seconds 60] [--tokens 200] [--threads 2]
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.metadata
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
# The official chat template's rendering of one audio input with no context (tests/fixtures: chat_template.json).
PROMPT = "<|im_start|>system\n<|im_end|>\n<|im_start|>user\n{marker}<|im_end|>\n<|im_start|>assistant\n"


def llama_cpp_source(work: Path) -> Path:
    """llama.cpp as vendored in the llama-cpp-python sdist of the installed version."""
    version = importlib.metadata.version("llama_cpp_python")
    root = work / f"llama_cpp_python-{version}" / "vendor" / "llama.cpp"
    if not (root / "convert_hf_to_gguf.py").exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
             "-d", str(work), f"llama-cpp-python=={version}"],
            check=True,
        )  # fmt: skip
        with tarfile.open(work / f"llama_cpp_python-{version}.tar.gz") as tar:
            tar.extractall(work, filter="data")
    return root


# convert_hf_to_gguf.py identifies a tokenizer's pre-tokenizer by hashing how it splits a test text; the
# random-weight checkpoints' small BPE tokenizer is not one it knows. It splits as Qwen2's does, so say so.
# Qwen2Model.set_vocab tries sentencepiece first and takes the BPE vocabulary when there is no
# tokenizer.model; without the sentencepiece package installed it fails on the import instead.
CONVERT = """
import sys
sys.path[:0] = [{root!r}, {gguf!r}]
import convert_hf_to_gguf
from conversion.base import TextModel
TextModel.get_vocab_base_pre = lambda self, tokenizer: "qwen2"
def no_sentencepiece(self):
    raise FileNotFoundError("tokenizer.model")
TextModel._set_vocab_sentencepiece = no_sentencepiece
sys.argv = ["convert_hf_to_gguf.py", *{args!r}]
convert_hf_to_gguf.main()
"""


def convert(
    checkpoint: Path, work: Path, text_type: str = "q8_0", mmproj_type: str = "f16"
) -> tuple[Path, Path]:
    """(text GGUF, mmproj GGUF) made by llama.cpp's converter."""
    root = llama_cpp_source(work)
    text, mmproj = work / f"mtmd-text.{text_type}.gguf", work / f"mtmd-mmproj.{mmproj_type}.gguf"
    for out, extra, kind in ((text, [], text_type), (mmproj, ["--mmproj"], mmproj_type)):
        if not out.exists():
            args = [str(checkpoint), "--outfile", str(out), "--outtype", kind, *extra]
            code = CONVERT.format(root=str(root), gguf=str(root / "gguf-py"), args=args)
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            if done.returncode:
                # (the audio projector's conv2d{bid} names are mapped only for bid below the encoder's
                # layer count: a checkpoint with fewer than 3 encoder layers cannot be converted)
                raise RuntimeError(f"convert_hf_to_gguf.py {' '.join(args)}: {done.stderr.strip()[-1500:]}")
    return text, mmproj


def run(text: Path, mmproj: Path, chunks: list[np.ndarray], tokens_per_chunk: int, threads: int) -> dict:
    """Seconds spent loading, encoding with prefill (mtmd_helper_eval_chunks) and decoding, chunk by chunk."""
    import llama_cpp
    import llama_cpp.mtmd_cpp as mtmd

    L = llama_cpp
    L.llama_backend_init()
    t0 = time.perf_counter()
    mp = L.llama_model_default_params()
    model = L.llama_model_load_from_file(str(text).encode(), mp)
    if not model:
        raise RuntimeError(f"llama.cpp could not load {text}")
    cp = L.llama_context_default_params()
    cp.n_ctx, cp.n_batch, cp.n_ubatch = 4096, 2048, 2048
    cp.n_threads = cp.n_threads_batch = threads
    ctx = L.llama_init_from_model(model, cp)
    if not ctx:
        raise RuntimeError(f"llama.cpp could not make a context for {text}")
    mparams = mtmd.mtmd_context_params_default()
    mparams.use_gpu = False
    mparams.n_threads = threads
    mparams.print_timings = False
    mctx = mtmd.mtmd_init_from_file(str(mmproj).encode(), model, mparams)
    if not mctx:
        raise RuntimeError(f"libmtmd could not load {mmproj}")
    load = time.perf_counter() - t0
    vocab = L.llama_model_get_vocab(model)
    n_vocab = L.llama_vocab_n_tokens(vocab)
    prompt = PROMPT.format(marker=mtmd.mtmd_default_marker().decode()).encode()
    prefill = decode = 0.0
    n_prompt = 0
    for audio in chunks:
        L.llama_memory_clear(L.llama_get_memory(ctx), True)
        t0 = time.perf_counter()
        samples = np.ascontiguousarray(audio, dtype=np.float32)
        bitmap = mtmd.mtmd_bitmap_init_from_audio(
            samples.size, samples.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        )
        text_in = mtmd.mtmd_input_text(prompt, len(prompt), True, True)
        pieces = mtmd.mtmd_input_chunks_init()
        bitmaps = (mtmd.mtmd_bitmap_p_ctypes * 1)(bitmap)
        if mtmd.mtmd_tokenize(mctx, pieces, ctypes.byref(text_in), bitmaps, 1) != 0:
            raise RuntimeError("mtmd_tokenize failed")
        n_past = L.llama_pos(0)
        if mtmd.mtmd_helper_eval_chunks(mctx, ctx, pieces, 0, 0, 2048, True, ctypes.byref(n_past)) != 0:
            raise RuntimeError("mtmd_helper_eval_chunks failed")
        prefill += time.perf_counter() - t0
        n_prompt += n_past.value
        t0 = time.perf_counter()
        position = n_past.value
        for _ in range(tokens_per_chunk):  # forced length: greedy, whatever the random weights say
            logits = np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, -1), shape=(n_vocab,))
            token = (ctypes.c_int32 * 1)(int(np.argmax(logits)))
            batch = L.llama_batch_get_one(token, 1)
            if L.llama_decode(ctx, batch) != 0:
                raise RuntimeError("llama_decode failed")
            position += 1
        decode += time.perf_counter() - t0
        mtmd.mtmd_input_chunks_free(pieces)
        mtmd.mtmd_bitmap_free(bitmap)
    mtmd.mtmd_free(mctx)
    L.llama_free(ctx)
    L.llama_model_free(model)
    return {"load": load, "encode+prefill": prefill, "decode": decode, "prompt tokens": n_prompt}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--chunk", type=float, default=30.0)
    args = parser.parse_args()
    from qwen3asr_plugin.engine.bench import synthetic_speech

    args.work.mkdir(parents=True, exist_ok=True)
    text, mmproj = convert(args.checkpoint, args.work)
    audio = synthetic_speech(args.seconds)
    n = int(args.chunk * SAMPLE_RATE)
    chunks = [audio[i : i + n] for i in range(0, audio.size, n)]
    result = run(text, mmproj, chunks, max(1, args.tokens // len(chunks)), args.threads)
    work = result["encode+prefill"] + result["decode"]
    print(f"mtmd ({text.name} + {mmproj.name}), {args.threads} threads: " + ", ".join(
        f"{k} {v:.2f} s" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()
    ) + f"; RTF {work / args.seconds:.3f} without loading")  # fmt: skip


if __name__ == "__main__":
    main()
