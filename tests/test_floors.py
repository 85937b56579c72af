"""The FLOP counts behind `qwen3asr bench`'s floors (engine/floors.py), against the shapes of the weights in
the checkpoints themselves: each matrix is used once per token (convolutions once per output position), so
a formula that took one dimension for another, or left a projection out, misses."""

from __future__ import annotations

import numpy as np
import pytest

from qwen3asr_plugin.engine.floors import encoder_flops, measure, text_flops
from qwen3asr_plugin.engine.hf_checkpoint import AUDIO_PREFIX, audio_tokens_for_frames, load_checkpoint
from qwen3asr_plugin.engine.safetensors_io import TensorStore


def matrices(store: TensorStore, prefix: str, skip: tuple[str, ...] = ()) -> int:
    """Weights of the 2-D matrices under `prefix` (biases, norms and embeddings are not products)."""
    names = store.keys()
    return sum(
        int(np.prod(store.shape(k)))
        for k in names
        if k.startswith(prefix) and k.endswith(".weight") and len(store.shape(k)) == 2 and not any(s in k for s in skip)
    )  # fmt: skip


@pytest.mark.parametrize("geometry", ["0.6b-heads", "tiny", "aligner-0.6b-heads"])
def test_text_flops_use_every_matrix_once_per_token(checkpoints, geometry):
    folder = checkpoints(geometry)
    ckpt, store = load_checkpoint(folder), TensorStore(folder)
    dims = ckpt.text
    layers = matrices(store, "thinker.model.layers.")
    tokens, before, outputs = 37, 11, 5
    q = dims.num_attention_heads * dims.head_dim
    attended = tokens * before + tokens * (tokens + 1) / 2
    want = (
        2 * tokens * layers
        + dims.num_hidden_layers * 4 * q * attended
        + outputs * 2 * dims.hidden_size * dims.vocab_size
    )
    assert text_flops(dims, tokens, before, outputs) == pytest.approx(want, rel=1e-12)
    if "aligner" in geometry:  # its output layer is the class head (the converted decoder's output.weight)
        head = store.shape("thinker.lm_head.weight")
        want = want - outputs * 2 * dims.hidden_size * dims.vocab_size + outputs * 2 * head[0] * head[1]
        assert text_flops(dims, tokens, before, outputs, head[0]) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("geometry", ["0.6b-heads", "tiny", "aligner-0.6b-heads"])
def test_encoder_flops_use_every_weight_once_per_position(checkpoints, geometry):
    folder = checkpoints(geometry)
    dims, store = load_checkpoint(folder).audio, TensorStore(folder)
    chunks = 3
    n_frames = chunks * dims.chunk_frames - 17  # a short tail chunk, run padded
    # Convolutions: each output position of each of the three uses the whole kernel.
    want, f, t = 0.0, dims.num_mel_bins, dims.chunk_frames
    for i in (1, 2, 3):
        f, t = (f - 1) // 2 + 1, (t - 1) // 2 + 1
        want += 2 * int(np.prod(store.shape(f"{AUDIO_PREFIX}conv2d{i}.weight"))) * f * t * chunks
    assert (f, t) == (dims.conv_freq_bins, dims.tokens_per_chunk)
    conv_out = int(np.prod(store.shape(f"{AUDIO_PREFIX}conv_out.weight")))
    want += 2 * conv_out * chunks * dims.tokens_per_chunk  # conv_out on every padded chunk's rows
    tokens = audio_tokens_for_frames(n_frames, dims)  # the layers see the valid tokens only
    assert tokens < chunks * dims.tokens_per_chunk
    linear = matrices(store, AUDIO_PREFIX, skip=("conv2d", "conv_out"))  # the layers, proj1, proj2
    want += 2 * tokens * linear
    windows = [min(dims.window_tokens, tokens - i) for i in range(0, tokens, dims.window_tokens)]
    want += dims.encoder_layers * 4 * dims.d_model * sum(w * w for w in windows)  # attention in each window
    assert encoder_flops(dims, n_frames) == pytest.approx(want, rel=1e-12)


def test_the_machine_is_measured():
    machine = measure(threads=1, seconds=0.05)
    assert 1e9 < machine.sgemm < 1e14 and 1e8 < machine.bandwidth < 1e13
