"""What a stage of the job could take at best on this machine: its arithmetic over the measured matrix-product
speed, or the bytes it must read over the measured memory bandwidth. `qwen3asr bench` prints these beside
the measured times, so that a stage's distance from its floor says where speed is left.

FLOPs count the matrix products (two per multiply-add) of the official architecture from the model's own
dims (engine/encoder_export.py and llama.cpp's Qwen3 graph compute these): the encoder's three 3x3
stride-2 convolutions, conv_out, its layers (attention projections, windowed attention, MLP) and
proj1/proj2; the text model's projections, attention over the tokens before each one, MLP, and the output
layer for each token that yields logits. Norms, activations and the mel are left out (a few percent)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .hf_checkpoint import AudioDims, TextDims, audio_tokens_for_frames


@dataclass(frozen=True)
class Machine:
    sgemm: float  # FLOP/s of ONNX Runtime's f32 matrix product (MLAS), the encoder's own kernel
    bandwidth: float  # bytes/s read by ONNX Runtime summing a 512 MiB tensor


def encoder_flops(dims: AudioDims, n_frames: int) -> float:
    """FLOPs of the audio encoder over `n_frames` mel frames: the convolutions run on whole chunks (the tail
    one zero-padded, engine/encoder.py frontend_tokens), the layers on the valid tokens only, each attending
    within its window of `window_tokens` (the last window shorter)."""
    chunks = -(-n_frames // dims.chunk_frames)
    c, d = dims.downsample_hidden_size, dims.d_model
    f, t = dims.num_mel_bins, dims.chunk_frames
    per_chunk = 0.0
    c_in = 1
    for _ in range(3):
        f, t = (f - 1) // 2 + 1, (t - 1) // 2 + 1  # kernel 3, stride 2, padding 1
        per_chunk += 2 * 9 * c_in * c * f * t
        c_in = c
    per_chunk += 2 * (c * f) * d * t  # conv_out, one row per token
    tokens = audio_tokens_for_frames(n_frames, dims)
    full, last = divmod(tokens, dims.window_tokens)
    attended = full * dims.window_tokens**2 + last**2  # keys each token attends to, summed
    layer = tokens * 2 * (4 * d * d + 2 * d * dims.encoder_ffn_dim) + 2 * 2 * d * attended
    head = tokens * (2 * d * d + 2 * d * dims.output_dim)
    return chunks * per_chunk + dims.encoder_layers * layer + head


def text_flops(
    dims: TextDims, tokens: int, before: int = 0, outputs: int = 0, output_rows: int | None = None
) -> float:
    """FLOPs of the text model over `tokens` positions after `before` cached ones, `outputs` of them
    through the output layer of `output_rows` rows (the vocabulary; the aligner's: its classes)."""
    d, q, kv = (
        dims.hidden_size,
        dims.num_attention_heads * dims.head_dim,
        dims.num_key_value_heads * dims.head_dim,
    )
    projections = 2 * (d * q + 2 * d * kv + q * d + 3 * d * dims.intermediate_size)
    attended = tokens * before + tokens * (tokens + 1) / 2  # keys each position attends to, summed
    attention = 2 * 2 * q * attended
    rows = dims.vocab_size if output_rows is None else output_rows
    return dims.num_hidden_layers * (tokens * projections + attention) + outputs * 2 * d * rows


def _session(node, inputs, output, threads: int):
    import onnxruntime as ort
    from onnx import helper

    graph = helper.make_graph([node], "m", inputs, [output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _best(run, seconds: float) -> float:
    """The shortest of repeated runs (at least three, for at least `seconds`), after one to warm up."""
    run()
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 3:
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return min(times)


def onnxruntime_sgemm(
    threads: int, m: int = 512, k: int = 2048, n: int = 2048, seconds: float = 0.5
) -> float:
    """FLOP/s of ONNX Runtime's f32 MatMul (m x k by k x n) at `threads`."""
    from onnx import TensorProto, helper

    f32 = TensorProto.FLOAT
    mm = _session(
        helper.make_node("MatMul", ["a", "b"], ["c"]),
        [helper.make_tensor_value_info("a", f32, [m, k]), helper.make_tensor_value_info("b", f32, [k, n])],
        helper.make_tensor_value_info("c", f32, [m, n]),
        threads,
    )
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((k, n), dtype=np.float32)
    return 2 * m * k * n / _best(lambda: mm.run(None, {"a": a, "b": b}), seconds)


def read_bandwidth(threads: int, n_bytes: int = 1 << 29, seconds: float = 0.5) -> float:
    """Bytes/s ONNX Runtime reads summing an `n_bytes` tensor at `threads`."""
    from onnx import TensorProto, helper

    big = np.ones((n_bytes // 4,), np.float32)
    total = _session(
        helper.make_node("ReduceSum", ["x"], ["y"], keepdims=0),
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [big.size])],
        helper.make_tensor_value_info("y", TensorProto.FLOAT, []),
        threads,
    )
    return big.nbytes / _best(lambda: total.run(None, {"x": big}), seconds)


def measure(threads: int, seconds: float = 0.5) -> Machine:
    """This machine's f32 matrix-product speed and read bandwidth, through ONNX Runtime at `threads`."""
    return Machine(onnxruntime_sgemm(threads, seconds=seconds), read_bandwidth(threads, seconds=seconds))
