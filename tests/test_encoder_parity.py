"""The split ONNX encoder vs transformers' native Qwen3ASR, same random weights (tests/parity.py bars)."""

import numpy as np
import pytest
import torch

from qwen3asr_plugin.engine.encoder import AudioEncoder, EncoderOptions
from qwen3asr_plugin.engine.mel import log_mel
from qwen3asr_plugin.engine.model_folder import load_model_info
from tests.parity import BARS, LENGTHS, cosine, measure, speech_like
from tests.reference import reference_audio_embeddings, reference_model

_refs: dict = {}


def _reference(checkpoints, geometry):
    if geometry not in _refs:
        _refs[geometry] = reference_model(checkpoints(geometry))
    return _refs[geometry]


@pytest.mark.parametrize("geometry", ["tiny", "0.6b-heads"])
@pytest.mark.parametrize("length", list(LENGTHS))
@pytest.mark.parametrize("precision", list(BARS))
def test_encoder_matches_reference(models, checkpoints, geometry, length, precision):
    r = measure(models(geometry), _reference(checkpoints, geometry), precision, LENGTHS[length])
    assert r["tokens"] == r["ref_tokens"]
    assert r["cosine"] >= BARS[precision], r
    if precision == "fp32":
        assert r["max_abs"] <= 1e-4 * max(1.0, r["ref_max_abs"]), r


def test_windows_and_tail_padding_show_with_fixture_weights(checkpoints):
    """The fixture's weights must make windowing and tail padding visible, or parity would prove little."""
    ref = _reference(checkpoints, "0.6b-heads")
    mel = log_mel(speech_like(LENGTHS["12.34s"]))
    windowed = reference_audio_embeddings(ref, mel)
    n = mel.shape[1]
    feats = torch.zeros(1, 128, 1300)
    feats[0, :, :n] = torch.from_numpy(mel)
    mask = torch.zeros(1, 1300, dtype=torch.long)
    mask[0, :n] = 1
    with torch.no_grad():
        full = ref.get_audio_features(
            feats, mask, cu_seqlens=torch.tensor([0, windowed.shape[0]], dtype=torch.int32)
        ).pooler_output
    # Full attention would fail the fp32 bar by orders of magnitude (our fp32 max diff is about 1e-6).
    assert cosine(windowed, full.numpy()) < BARS["fp32"]
    assert np.abs(windowed - full.numpy()).max() > 1e-2

    tower = ref.model.audio_tower
    tail = torch.from_numpy(mel[:, 1200:])[None, None]  # 34 frames
    padded = torch.nn.functional.pad(tail, (0, 100 - tail.shape[-1]))

    def stem(x):
        with torch.no_grad():
            for conv in (tower.conv2d1, tower.conv2d2, tower.conv2d3):
                x = torch.nn.functional.gelu(conv(x))
        return x

    unpadded = stem(tail)
    valid = unpadded.shape[-1]
    padded_out = stem(padded)[..., :valid]
    # Only the last valid token sees the padded region; it must change clearly, the others not at all.
    assert (unpadded[..., -1] - padded_out[..., -1]).abs().max() > 1e-2
    assert (unpadded[..., :-1] - padded_out[..., :-1]).abs().max() < 1e-5


def test_grouping_does_not_change_result(tiny_model):
    """Frontend chunk batches and backend window groups are a memory bound, never a numerical change."""
    info = load_model_info(tiny_model)
    mel = log_mel(speech_like(16_000 * 20 + 3_700), info.mel)  # 2023 frames: tail of 23 -> 3 tokens
    big = AudioEncoder(info, EncoderOptions(precision="fp32", device="cpu")).encode(mel)
    small = AudioEncoder(
        info,
        EncoderOptions(
            precision="fp32", device="cpu", frontend_chunks_per_call=3, backend_windows_per_call=1
        ),
    ).encode(mel)
    assert big.shape == small.shape == (info.audio.tokens_per_chunk * 20 + 3, info.audio.output_dim)
    np.testing.assert_allclose(big, small, atol=1e-5)


def test_window_is_read_from_config(tiny_model, models):
    """tiny uses 4 s windows (n_window_infer 400), the 0.6B layout 8 s: both come from config.json."""
    assert load_model_info(tiny_model).audio.window_tokens == 52
    assert load_model_info(models("0.6b-heads")).audio.window_tokens == 104


@pytest.mark.parametrize(("native_bf16", "expected"), [("0", "q8"), ("1", "fp32")])
def test_q8_weights_are_a_quarter_and_the_cpu_default_beside_q8_0(models, monkeypatch, native_bf16, expected):
    """q8 stores the linear layers' weights in 8-bit blocks of 32 with one float32 scale each (MatMulNBits):
    the backend's file is under 30 % of fp32's. The CPU runs it where the decoder's default is q8_0 (no bf16
    dot products), fp32 beside the exact bf16 decoder; a GPU takes fp16, then fp32."""
    from qwen3asr_plugin.engine.encoder import default_precision

    monkeypatch.setenv("QWEN3ASR_NATIVE_BF16", native_bf16)
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    info = load_model_info(models("0.6b-heads"))
    size = {p: info.files[f"encoder_backend.{p}.onnx.data"]["bytes"] for p in ("fp32", "q8")}
    assert size["q8"] < 0.3 * size["fp32"]
    assert AudioEncoder(info, EncoderOptions(device="cpu")).precision == expected
    assert default_precision(["fp32", "q8"], gpu=False) == "q8"
    assert default_precision(["fp32", "q8"], gpu=False, exact=True) == "fp32"
    assert default_precision(["fp32"], gpu=False) == "fp32"
    assert default_precision(["fp32", "q8"], gpu=True) == "fp32"
    assert default_precision(["fp16", "fp32", "q8"], gpu=True) == "fp16"


@pytest.mark.parametrize("k", [96, 100])
def test_q8_blocks_are_what_onnxruntime_multiplies(k):
    """The q8 layout as ONNX Runtime's MatMulNBits reads it (8 bits, blocks of 32, zero point 128, a last
    partial block zero-padded): its product equals the product with our own dequantized weights."""
    import onnxruntime as ort
    from onnx import TensorProto

    from qwen3asr_plugin.engine.onnx_graph import Q8_BLOCK, GraphBuilder, q8_blocks

    rng = np.random.default_rng(k)
    w = rng.standard_normal((40, k)).astype(np.float32)
    g = GraphBuilder("t", np.float32, 8)
    x = g.input("x", TensorProto.FLOAT, ["n", k])
    g.output(g.linear(x, w, None, "l"), "y", TensorProto.FLOAT, ["n", 40])
    session = ort.InferenceSession(g.model("t").SerializeToString(), providers=["CPUExecutionProvider"])
    a = rng.standard_normal((3, k)).astype(np.float32)
    q, scales = q8_blocks(w.T)
    step = np.repeat(scales.reshape(40, -1), Q8_BLOCK, axis=1)[:, :k]
    dequant = (q.astype(np.float32) - 128).reshape(40, -1)[:, :k] * step
    assert np.all(np.abs(dequant - w) <= 0.5 * step * (1 + 1e-6))  # rounded to the nearest step of its block
    np.testing.assert_allclose(session.run(None, {"x": a})[0], a @ dequant.T, rtol=1e-4, atol=1e-4)
    assert q.shape == (40, -(-k // Q8_BLOCK), Q8_BLOCK)
    assert np.all(np.abs(q.astype(np.int16) - 128).max(axis=-1) == 127)  # each block uses the whole range


def test_encoder_frees_each_runs_activations(tiny_model, monkeypatch):
    """No ONNX Runtime CPU arena (it kept the largest activations of any chunk for the whole job: 3.29 GB
    against 2.67 GB peak for a minute of the 0.6B pair), and glibc's heaps trimmed after each run, where the
    C library is glibc (2.51 GB with both; README Speed)."""
    import platform

    from qwen3asr_plugin.engine import encoder as encoder_module

    enc = AudioEncoder(load_model_info(tiny_model), EncoderOptions(precision="fp32", device="cpu"))
    for session in (enc.frontend, enc.backend):
        assert session.get_session_options().enable_cpu_mem_arena is False
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert encoder_module._TRIM is not None
    trims = []
    monkeypatch.setattr(encoder_module, "_TRIM", lambda pad: trims.append(pad))
    mel = log_mel(speech_like(16_000 * 3), enc.info.mel)
    enc.encode(mel)
    enc.encode(mel)
    assert trims == [0, 0]


def test_unpacked_encoder_is_read_ahead_released_and_made_again(tiny_model, monkeypatch):
    """On the CPU the fp32 encoder runs with ONNX Runtime's weight prepacking off: its weights stay the `.data`
    file mapped into memory (the 0.6B fp32 aligner encoder's session is made in 0.1 s instead of 1.2-1.8 s),
    which is read ahead into the page cache whenever the sessions are made (from a cold cache, page faults
    alone doubled the time to the first subtitle), so closing the sessions between turns (release) is cheap.
    Made again, they give the same embeddings."""
    import os

    if not hasattr(os, "posix_fadvise") or not os.path.isdir("/proc/self/fd"):
        pytest.skip(
            "posix_fadvise and /proc are Linux's (elsewhere the sessions are made without read-ahead)"
        )
    advised = []

    def fadvise(fd, offset, length, advice):
        advised.append((os.path.basename(os.readlink(f"/proc/self/fd/{fd}")), advice))

    monkeypatch.setattr(os, "posix_fadvise", fadvise)
    enc = AudioEncoder(load_model_info(tiny_model), EncoderOptions(precision="fp32", device="cpu"))
    datas = {"encoder_frontend.fp32.onnx.data", "encoder_backend.fp32.onnx.data"}
    assert {name for name, _ in advised} == datas
    assert {advice for _, advice in advised} == {os.POSIX_FADV_WILLNEED}
    for session in (enc.frontend, enc.backend):
        assert session.get_session_options().get_session_config_entry("session.disable_prepacking") == "1"
    assert enc.releasable
    mel = log_mel(speech_like(16_000 * 3), enc.info.mel)
    first = enc.encode(mel)
    enc.release()
    assert enc._frontend is None and enc._backend is None
    np.testing.assert_array_equal(enc.encode(mel), first)
    assert len(advised) == 4  # read ahead again for the new sessions
