"""Side by side at the real dimensions: this engine against transformers' native Qwen3ASR (fp32, windowed
attention), on the same random weights and audio, with the same forced number of output tokens.

    python -m bench.side_by_side [--preset 0.6b|1.7b] [--seconds 60] [--tokens 200] [--threads 2] [--batch 4]
        [--work DIR] [--no-mtmd] [--no-align] [--no-faster-whisper]

Ours runs in this machine's default pairing (fp32 encoder; bf16 decoder where llama.cpp has bf16 dot products,
else q8_0), one chunk at a time and batched, and with the other CPU decoder type and the int8 encoder.

Also prints the machine's limits the engine is compared against: measured SGEMM throughput (numpy, ONNX
Runtime and torch; the fastest counts) and memory bandwidth (read and copy), and what they imply (decode
floor: weight bytes per token over bandwidth). Then llama.cpp's own Qwen3-ASR path (libmtmd, bench/mtmd.py:
the checkpoint converted by llama.cpp's converter, q8_0 text and f16 mmproj) on the same audio and forced
tokens, ours with the aligner (the whole job), and faster-whisper at Whisper large-v3-turbo's dimensions
(int8, bench/faster_whisper.py; `pip install faster-whisper` first), with the ratios.
Weights are random, so only speed means anything; all figures are from one run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import prepare_model


def sgemm_gflops(n: int = 2048, repeats: int = 5, threads: int = 2) -> dict[str, float]:
    """fp32 matrix product n x n x n, best of `repeats`, through numpy's BLAS, ONNX Runtime's MLAS and torch (the
    reference's own). A library may pick older kernels on a CPU it does not know, so the fastest is the
    machine's limit."""
    import torch

    from qwen3asr_plugin.engine.floors import onnxruntime_sgemm

    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    a @ b
    out = {"numpy": 2 * n**3 / min(_timed(lambda: a @ b) for _ in range(repeats)) / 1e9}
    out["onnxruntime"] = onnxruntime_sgemm(threads, n, n, n) / 1e9
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    ta @ tb
    out["torch"] = 2 * n**3 / min(_timed(lambda: ta @ tb) for _ in range(repeats)) / 1e9
    return out


def bandwidth_gbs(n_bytes: int = 1 << 30) -> tuple[float, float]:
    """(read GB/s through a dot product, copy GB/s counted as bytes copied)."""
    a = np.ones(n_bytes // 4, dtype=np.float32)
    b = np.empty_like(a)
    read = min(_timed(lambda: np.dot(a, a)) for _ in range(3))
    copy = min(_timed(lambda: np.copyto(b, a)) for _ in range(3))
    return a.nbytes / read / 1e9, a.nbytes / copy / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def reference_times(
    folder: Path, token_ids: dict, audio: np.ndarray, tokens: int, chunk_seconds: float
) -> dict:
    import torch
    from transformers import AutoTokenizer, LogitsProcessor, LogitsProcessorList, WhisperFeatureExtractor

    from qwen3asr_plugin.engine.prompt import build_asr_prompt
    from tests.reference import padded_features, reference_model

    model = reference_model(folder)
    fe = WhisperFeatureExtractor(feature_size=128)
    n = int(chunk_seconds * 16000)
    chunks = [audio[i : i + n] for i in range(0, audio.size, n)]
    per_chunk = max(1, tokens // len(chunks))
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    stamps: list[float] = []

    class Stamp(LogitsProcessor):
        def __call__(self, input_ids, scores):
            stamps.append(time.perf_counter())
            return scores

    out = {"mel": 0.0, "encoder": 0.0, "prefill": 0.0, "decode": 0.0}
    with torch.inference_mode():
        for chunk in chunks:
            t0 = time.perf_counter()
            mel = fe(
                chunk,
                sampling_rate=16000,
                padding=True,
                truncation=False,
                return_attention_mask=True,
                return_tensors="np",
            )["input_features"][0]
            out["mel"] += time.perf_counter() - t0
            feats, mask = padded_features(mel)
            t0 = time.perf_counter()
            emb = model.get_audio_features(feats, mask).pooler_output
            out["encoder"] += time.perf_counter() - t0
            # The engine's own prompt (same template, same tokenizer), with the reference's audio placeholders.
            prompt = build_asr_prompt(
                lambda text: tokenizer.encode(text, add_special_tokens=False), token_ids, emb.shape[0]
            ).token_ids()
            input_ids = torch.tensor([prompt])
            stamps.clear()
            t0 = time.perf_counter()
            model.generate(
                input_ids=input_ids,
                input_features=feats,
                input_features_mask=mask,
                attention_mask=torch.ones_like(input_ids),
                do_sample=False,
                min_new_tokens=per_chunk,
                max_new_tokens=per_chunk,
                logits_processor=LogitsProcessorList([Stamp()]),
                pad_token_id=151643,
            )
            # The first stamp comes after the encoder and the prefill inside generate.
            out["prefill"] += stamps[0] - t0
            out["decode"] += stamps[-1] - stamps[0] + (stamps[-1] - stamps[0]) / max(1, len(stamps) - 1)
    # generate re-runs the encoder before its first step: take it out of the prefill figure.
    out["prefill"] = max(0.0, out["prefill"] - out["encoder"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="0.6b")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4, help="chunks decoded together (default 4)")
    parser.add_argument("--work", type=Path)
    parser.add_argument("--no-mtmd", action="store_true", help="leave out llama.cpp's own path (libmtmd)")
    parser.add_argument("--no-align", action="store_true", help="leave out our whole job (with the aligner)")
    parser.add_argument("--no-faster-whisper", action="store_true", help="leave out faster-whisper")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)

    from qwen3asr_plugin.engine.bench import run_bench, synthetic_speech
    from qwen3asr_plugin.engine.decoder import preferred_quant
    from qwen3asr_plugin.engine.llama_runtime import cpu_features
    from qwen3asr_plugin.engine.model_folder import load_model_info

    print("machine limits")
    sgemm = sgemm_gflops(threads=args.threads)
    gflops = max(sgemm.values())
    read_bw, copy_bw = bandwidth_gbs()
    print(
        f"  SGEMM 2048^3, {args.threads} threads: {gflops:.0f} GFLOP/s "
        f"(numpy {sgemm['numpy']:.0f}, onnxruntime {sgemm['onnxruntime']:.0f}, torch {sgemm['torch']:.0f})"
    )
    print(f"  memory bandwidth: read {read_bw:.1f} GB/s, copy {copy_bw:.1f} GB/s")

    work = args.work or Path(tempfile.mkdtemp(prefix="qwen3asr-sbs-"))
    ckpt, model = prepare_model(work, args.preset, ("fp32", "int8"), ("q8_0", "bf16"))
    info = load_model_info(model)
    audio = synthetic_speech(args.seconds)
    # The default pairing of this machine (fp32 encoder; bf16 decoder with bf16 dot products, else q8_0), and
    # the other CPU decoder type beside it.
    quant = preferred_quant()
    other = "q8_0" if quant == "bf16" else "bf16"
    features = " ".join(f for f in sorted(cpu_features()) if f.startswith("AVX") or f.startswith("AMX"))
    print(f"  llama.cpp CPU features: {features}; default decoder type here: {quant}")

    def bench(precision: str, q: str, batch: int):
        return run_bench(info, audio, args.tokens, args.threads, precision, q, batch_size=batch)

    default = f"fp32+{quant}"
    runs = {
        f"{default}, 1 at a time": bench("fp32", quant, 1),
        default: bench("fp32", quant, args.batch),
        f"fp32+{other}": bench("fp32", other, args.batch),
        f"int8+{quant}": bench("int8", quant, args.batch),
    }
    whole = None
    if not args.no_align:  # the job users run: word times from the aligner of the same size
        _, aligner = prepare_model(work, f"aligner-{args.preset}", ("fp32",), (quant,))
        whole = run_bench(
            info,
            audio,
            args.tokens,
            args.threads,
            "fp32",
            quant,
            load_model_info(aligner),
            batch_size=args.batch,
        )
    mtmd = None
    if not args.no_mtmd:
        from bench.mtmd import convert as mtmd_convert
        from bench.mtmd import run as mtmd_run

        n = 30 * 16_000
        pieces = [audio[i : i + n] for i in range(0, audio.size, n)]
        mtmd = mtmd_run(*mtmd_convert(ckpt, work), pieces, max(1, args.tokens // len(pieces)), args.threads)
    whisper = None
    if not args.no_faster_whisper:
        try:
            import faster_whisper  # noqa: F401
        except ImportError:
            print("faster-whisper is not installed (`pip install faster-whisper`); left out")
        else:
            from bench import faster_whisper as fw

            try:
                whisper = fw.run(fw.convert(work), audio, args.tokens, args.threads, args.batch, "int8")
            except Exception as exc:  # a peer's failure must not lose the other engines' figures
                print(f"faster-whisper left out: {exc}")
    ref = reference_times(ckpt, info.token_ids, audio, args.tokens, 30.0)
    times = {name: {st.name: st.seconds for st in stages} for name, stages in runs.items()}

    print(
        f"\n{args.preset}: {args.seconds:.0f} s of audio, {args.tokens} forced tokens, {args.threads} threads; "
        f"ours decodes {args.batch} chunks together unless noted"
    )
    print(f"{'stage':9} {'reference fp32':>15}" + "".join(f" {name:>24} {'ratio':>6}" for name in runs))
    print(f"{'':9} {'':>15}" + "".join(f" {'(default)' if n == default else '':>24} {'':>6}" for n in runs))
    for stage in ("mel", "encoder", "prefill", "decode"):
        r = ref[stage]
        print(
            f"{stage:9} {r:15.2f}" + "".join(f" {t[stage]:24.2f} {r / t[stage]:6.2f}" for t in times.values())
        )
    rt = sum(ref.values())
    totals = {name: sum(t[k] for k in ref) for name, t in times.items()}
    print(f"{'total':9} {rt:15.2f}" + "".join(f" {v:24.2f} {rt / v:6.2f}" for v in totals.values()))
    print(
        f"{'RTF':9} {rt / args.seconds:15.3f}"
        + "".join(f" {v / args.seconds:24.3f} {'':6}" for v in totals.values())
    )

    ours = totals[default]
    if mtmd:
        theirs = mtmd["encode+prefill"] + mtmd["decode"]
        print(
            f"\nllama.cpp's own path (libmtmd of llama-cpp-python, q8_0 text + f16 mmproj, bench/mtmd.py): "
            f"encode+prefill {mtmd['encode+prefill']:.2f} s, decode {mtmd['decode']:.2f} s, total {theirs:.2f} s "
            f"(RTF {theirs / args.seconds:.3f}; {mtmd['prompt tokens']} prompt tokens); ours ({default}) "
            f"{ours:.2f} s: {theirs / ours:.2f}x"
        )
    if whole:
        job = sum(st.seconds for st in whole if st.name != "load")
        align = next(st.seconds for st in whole if st.name == "align")
        line = f"ours, the whole job ({default}, aligner included): {job:.2f} s (align {align:.2f} s), RTF "
        line += f"{job / args.seconds:.3f}"
        if mtmd:
            line += f"; mtmd's ASR part alone takes {theirs / job:.2f}x that (target: 2x)"
        print(line)

    if whisper:
        print(
            f"faster-whisper (Whisper large-v3-turbo dimensions, CTranslate2 int8, bench/faster_whisper.py): "
            f"{whisper['tokens']} tokens; one window at a time {whisper['sequential']:.2f} s, windows together "
            f"{whisper['batched']:.2f} s (RTF {whisper['batched'] / args.seconds:.3f}); ours ({default}) "
            f"{ours:.2f} s: {min(whisper['sequential'], whisper['batched']) / ours:.2f}x"
            + (
                f"; ours, the whole job: {min(whisper['sequential'], whisper['batched']) / job:.2f}x"
                if whole
                else ""
            )
        )

    print(f"\nsummary: seconds for {args.seconds:.0f} s of audio and {args.tokens} tokens, this run")
    rows = [(f"ours, ASR part ({default})", ours)]
    if whole:
        rows.insert(0, ("ours, whole job (aligner included)", job))
    if mtmd:
        rows.append(("llama.cpp mtmd, ASR part", theirs))
    if whisper:
        rows.append(("faster-whisper large-v3-turbo int8", min(whisper["sequential"], whisper["batched"])))
    rows.append(("transformers reference fp32", rt))
    for name, seconds in rows:
        print(f"  {name:38} {seconds:8.2f} s  RTF {seconds / args.seconds:.3f}")

    t = info.text
    n_chunks = max(1, int(np.ceil(args.seconds / 30.0)))
    linear = t.num_hidden_layers * (
        t.hidden_size * t.head_dim * (2 * t.num_attention_heads + 2 * t.num_key_value_heads)
        + 3 * t.hidden_size * t.intermediate_size
    )
    head = t.vocab_size * t.hidden_size  # tied embeddings: read as the output layer for each logits row
    bytes_per_token = (linear + head) * {"q8_0": 34 / 32, "bf16": 2.0}[quant]  # q8_0: 34 bytes per 32 weights
    floor = bytes_per_token / (read_bw * 1e9)
    solo = times[f"{default}, 1 at a time"]["decode"] / args.tokens
    batched = times[default]["decode"] / args.tokens
    at_once = min(args.batch, n_chunks)
    print(
        f"\ndecode: one chunk at a time {1 / solo:.1f} tok/s = {100 * floor / solo:.0f} % of the bandwidth bound "
        f"({1 / floor:.1f} tok/s: {bytes_per_token / 1e9:.2f} GB of weights per token at {read_bw:.1f} GB/s); "
        f"{at_once} chunks together {1 / batched:.1f} tok/s ({solo / batched:.2f}x, one weight pass per step)"
    )
    # FLOPs as engine/floors.py counts them for `qwen3asr bench` (run_bench records them per stage)
    flops = {st.name: st.flops for st in runs[default]}
    enc_flops, pre_flops = flops["encoder"], flops["prefill"]
    print(
        f"encoder: {(enc_flops / times[default]['encoder']) / 1e9:.0f} GFLOP/s fp32 "
        f"({100 * enc_flops / times[default]['encoder'] / 1e9 / gflops:.0f} % of SGEMM)"
    )
    for name, tm in times.items():
        if name.endswith("at a time") or name.startswith("int8"):
            continue
        pre_time = tm["prefill"]
        print(
            f"prefill ({name.split('+')[1]}): {pre_flops / 1e9:.0f} GFLOP in {pre_time:.2f} s = "
            f"{pre_flops / pre_time / 1e9:.0f} GFLOP/s ({100 * pre_flops / pre_time / 1e9 / gflops:.0f} % of SGEMM)"
        )


if __name__ == "__main__":
    main()
