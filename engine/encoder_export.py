"""Build the audio encoder's two ONNX graphs from checkpoint weights, without torch.

Both follow `Qwen3ASREncoder` and `Qwen3ASRMultiModalProjector` in transformers'
src/transformers/models/qwen3_asr/modeling_qwen3_asr.py.
Frontend (the encoder's conv stem): per chunk of 2*n_window mel frames, three stride-2 Conv2d + GELU, flatten
(time, channel*freq), conv_out, plus the sinusoidal position table restarted in every chunk.
Input `mel_chunks` [N, 1, n_mels, chunk_frames] -> `chunk_tokens` [N, tokens_per_chunk, d_model].

Backend (the encoder's layers, then the projector): pre-LN transformer layers with attention inside windows of
`window_tokens` tokens (8 chunks = 8 s in the released models), then ln_post, proj1, GELU, proj2.
Input `frames` [T, d_model], any T -> `embeddings` [T, output_dim]. The graph pads T up to whole windows and
masks the padded keys, so one call covers any number of windows and equals running each window alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto

from .hf_checkpoint import AUDIO_PREFIX, AudioDims, Checkpoint
from .onnx_graph import GraphBuilder

FP16_CLAMP = float(np.finfo(np.float16).max) - 1000.0  # the reference clamps fp16 activations per layer


def sinusoid_table(length: int, channels: int, max_timescale: float = 10000.0) -> np.ndarray:
    """Position table [length, channels]: sin then cos halves (transformers' SinusoidsPositionEmbedding)."""
    log_increment = np.log(max_timescale) / (channels // 2 - 1)
    inv = np.exp(-log_increment * np.arange(channels // 2, dtype=np.float32))
    t = np.arange(length, dtype=np.float32)[:, None] * inv[None, :]
    return np.concatenate([np.sin(t), np.cos(t)], axis=1).astype(np.float32)


def build_frontend(ckpt: Checkpoint, dtype=np.float32, weight_bits: int | None = None) -> onnx.ModelProto:
    dims: AudioDims = ckpt.audio
    get = ckpt.tensors.get
    g = GraphBuilder("encoder_frontend", dtype, weight_bits)
    x = g.to_compute(
        g.input("mel_chunks", TensorProto.FLOAT, ["chunks", 1, dims.num_mel_bins, dims.chunk_frames])
    )
    for i in (1, 2, 3):
        name = f"conv2d{i}"
        x = g.op(
            "Conv",
            [
                x,
                g.weight(name + ".weight", get(AUDIO_PREFIX + name + ".weight")),
                g.weight(name + ".bias", get(AUDIO_PREFIX + name + ".bias")),
            ],
            hint=name,
            kernel_shape=[3, 3],
            strides=[2, 2],
            pads=[1, 1, 1, 1],
        )
        x = g.gelu(x)
    # [N, C, F, T'] -> [N, T', C, F] -> [N, T', C*F]: feature index c*F + f, as the reference flattens.
    x = g.op("Transpose", [x], perm=[0, 3, 1, 2])
    x = g.op("Reshape", [x, g.ints([0, 0, dims.downsample_hidden_size * dims.conv_freq_bins])])
    x = g.linear(x, get(AUDIO_PREFIX + "conv_out.weight"), None, "conv_out")
    x = g.op("Add", [x, g.weight("positions", sinusoid_table(dims.tokens_per_chunk, dims.d_model))])
    g.output(
        g.to_float32(x), "chunk_tokens", TensorProto.FLOAT, ["chunks", dims.tokens_per_chunk, dims.d_model]
    )
    return g.model(
        "Qwen3-ASR audio encoder frontend: conv stem + conv_out + per-chunk positions",
        {"chunk_frames": dims.chunk_frames, "tokens_per_chunk": dims.tokens_per_chunk},
    )


def build_backend(ckpt: Checkpoint, dtype=np.float32, weight_bits: int | None = None) -> onnx.ModelProto:
    dims: AudioDims = ckpt.audio
    get = ckpt.tensors.get
    d, heads = dims.d_model, dims.encoder_attention_heads
    head_dim = d // heads
    window = dims.window_tokens
    g = GraphBuilder("encoder_backend", dtype, weight_bits)
    frames = g.to_compute(g.input("frames", TensorProto.FLOAT, ["tokens", d]))

    # Pad the token axis up to whole windows; keys past the real length get -inf-like scores.
    n_tokens = g.op("Shape", [frames], start=0, end=1)
    n_windows = g.op("Div", [g.op("Add", [n_tokens, g.ints([window - 1])]), g.ints([window])])
    n_padded = g.op("Mul", [n_windows, g.ints([window])])
    pads = g.op("Concat", [g.ints([0, 0]), g.op("Sub", [n_padded, n_tokens]), g.ints([0])], axis=0)
    x = g.op("Pad", [frames, pads])
    positions = g.op("Range", [g.ints(0), g.op("Squeeze", [n_padded]), g.ints(1)])
    valid = g.op("Less", [positions, n_tokens])
    key_bias = g.op("Where", [valid, g.scalar(0.0), g.scalar(float(np.finfo(g.dtype).min))])
    key_bias = g.op("Reshape", [key_bias, g.ints([-1, 1, 1, window])])  # [windows, 1, 1, window]
    scale = g.scalar(head_dim**-0.5)

    for i in range(dims.encoder_layers):
        p = f"{AUDIO_PREFIX}layers.{i}."
        n = f"layers.{i}"
        h = g.layer_norm(
            x,
            get(p + "self_attn_layer_norm.weight"),
            get(p + "self_attn_layer_norm.bias"),
            n + ".self_attn_layer_norm",
        )

        def heads_of(proj: str, perm: list[int], h=h, p=p, n=n) -> str:
            y = g.linear(
                h,
                get(p + f"self_attn.{proj}.weight"),
                get(p + f"self_attn.{proj}.bias"),
                f"{n}.self_attn.{proj}",
            )
            y = g.op("Reshape", [y, g.ints([-1, window, heads, head_dim])])
            return g.op("Transpose", [y], perm=perm)

        q = g.op("Mul", [heads_of("q_proj", [0, 2, 1, 3]), scale])  # [W, H, window, hd]
        k = heads_of("k_proj", [0, 2, 3, 1])  # [W, H, hd, window]
        v = heads_of("v_proj", [0, 2, 1, 3])
        scores = g.op("Add", [g.op("MatMul", [q, k]), key_bias])
        attn = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])
        attn = g.op("Reshape", [g.op("Transpose", [attn], perm=[0, 2, 1, 3]), g.ints([-1, d])])
        x = g.op(
            "Add",
            [
                x,
                g.linear(
                    attn,
                    get(p + "self_attn.out_proj.weight"),
                    get(p + "self_attn.out_proj.bias"),
                    n + ".self_attn.out_proj",
                ),
            ],
        )
        h = g.layer_norm(
            x, get(p + "final_layer_norm.weight"), get(p + "final_layer_norm.bias"), n + ".final_layer_norm"
        )
        h = g.gelu(g.linear(h, get(p + "fc1.weight"), get(p + "fc1.bias"), n + ".fc1"))
        x = g.op("Add", [x, g.linear(h, get(p + "fc2.weight"), get(p + "fc2.bias"), n + ".fc2")])
        if g.dtype == np.float16:
            x = g.op("Clip", [x, g.scalar(-FP16_CLAMP), g.scalar(FP16_CLAMP)])

    x = g.layer_norm(x, get(AUDIO_PREFIX + "ln_post.weight"), get(AUDIO_PREFIX + "ln_post.bias"), "ln_post")
    x = g.gelu(g.linear(x, get(AUDIO_PREFIX + "proj1.weight"), get(AUDIO_PREFIX + "proj1.bias"), "proj1"))
    x = g.linear(x, get(AUDIO_PREFIX + "proj2.weight"), get(AUDIO_PREFIX + "proj2.bias"), "proj2")
    x = g.op("Slice", [x, g.ints([0]), n_tokens, g.ints([0])])
    g.output(g.to_float32(x), "embeddings", TensorProto.FLOAT, ["tokens", dims.output_dim])
    return g.model(
        "Qwen3-ASR audio encoder backend: windowed transformer + projector",
        {"window_tokens": window},
    )


def quantize_int8(fp32_path: Path, out_path: Path) -> None:
    """Dynamic int8 quantization of the weight MatMuls (per output channel); activations stay float."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs advice about static pre-processing we do not need
    try:
        quantize_dynamic(
            str(fp32_path),
            str(out_path),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
            extra_options={"MatMulConstBOnly": True},
        )
    finally:
        root.setLevel(level)
