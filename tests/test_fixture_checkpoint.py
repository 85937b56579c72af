"""The random-weight checkpoints have the official Hugging Face layout: config keys, tensor names, tokenizer."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer

from tests.fixtures.checkpoint import PRESETS, make_checkpoint, preset_geometry
from tests.reference import reference_model

# Official key sets (Qwen3-ASR-0.6B and Qwen3-ForcedAligner-0.6B config.json, transformers 4.57.6 dump).
TOP_KEYS_ASR = {"architectures", "model_type", "support_languages", "thinker_config", "transformers_version"}
TOP_KEYS_ALIGNER = TOP_KEYS_ASR | {"timestamp_token_id", "timestamp_segment_time"}
THINKER_KEYS = {
    "model_type",
    "architectures",
    "audio_config",
    "audio_end_token_id",
    "audio_start_token_id",
    "audio_token_id",
    "dtype",
    "initializer_range",
    "text_config",
}
AUDIO_KEYS = {
    "conv_chunksize",
    "d_model",
    "downsample_hidden_size",
    "encoder_attention_heads",
    "encoder_ffn_dim",
    "encoder_layers",
    "max_source_positions",
    "n_window",
    "n_window_infer",
    "num_mel_bins",
    "output_dim",
    "scale_embedding",
    "activation_function",
    "model_type",
}
TEXT_KEYS = {
    "head_dim",
    "hidden_act",
    "hidden_size",
    "intermediate_size",
    "max_position_embeddings",
    "num_attention_heads",
    "num_hidden_layers",
    "num_key_value_heads",
    "rms_norm_eps",
    "rope_scaling",
    "rope_theta",
    "tie_word_embeddings",
    "vocab_size",
    "attention_bias",
    "model_type",
}


@pytest.mark.parametrize("preset", ["tiny", "aligner-tiny"])
def test_config_layout_is_official(tmp_path, preset):
    folder = make_checkpoint(tmp_path / preset, preset)
    cfg = json.loads((folder / "config.json").read_text())
    aligner = preset.startswith("aligner")
    assert set(cfg) == (TOP_KEYS_ALIGNER if aligner else TOP_KEYS_ASR)
    thinker = cfg["thinker_config"]
    assert set(thinker) == THINKER_KEYS | ({"classify_num"} if aligner else set())
    assert thinker["model_type"] == ("qwen3_forced_aligner" if aligner else "qwen3_asr")
    assert set(thinker["audio_config"]) >= AUDIO_KEYS
    assert set(thinker["text_config"]) >= TEXT_KEYS
    assert thinker["audio_config"]["model_type"] == "qwen3_asr_audio_encoder"
    rope = thinker["text_config"]["rope_scaling"]
    assert sum(rope["mrope_section"]) == thinker["text_config"]["head_dim"] // 2


@pytest.mark.parametrize("preset", ["tiny", "aligner-tiny"])
def test_tensors_are_bf16_with_official_names_and_load_into_reference(tmp_path, preset):
    folder = make_checkpoint(tmp_path / preset, preset)
    state = load_file(str(folder / "model.safetensors"))
    assert {t.dtype for t in state.values()} == {torch.bfloat16}
    assert all(k.startswith("thinker.") for k in state)
    assert "thinker.audio_tower.conv2d1.weight" in state and "thinker.model.embed_tokens.weight" in state
    assert ("thinker.lm_head.weight" in state) == preset.startswith("aligner")
    if preset.startswith("aligner"):
        assert tuple(state["thinker.lm_head.weight"].shape) == (5000, PRESETS[preset]["text"]["hidden_size"])
    reference_model(folder)  # strict: raises on any missing or unexpected tensor


def test_special_tokens_sit_at_config_ids(tmp_path):
    folder = make_checkpoint(tmp_path / "t", "tiny")
    cfg = json.loads((folder / "config.json").read_text())["thinker_config"]
    tok = AutoTokenizer.from_pretrained(str(folder))
    assert tok.convert_tokens_to_ids("<|audio_pad|>") == cfg["audio_token_id"]
    assert tok.convert_tokens_to_ids("<|audio_start|>") == cfg["audio_start_token_id"]
    assert tok.convert_tokens_to_ids("<|audio_end|>") == cfg["audio_end_token_id"]
    assert tok.convert_tokens_to_ids("<|im_start|>") == 1001
    assert max(tok.get_vocab().values()) < cfg["text_config"]["vocab_size"]
    text = "language English<asr_text>hello world 你好"
    assert tok.decode(tok.encode(text)) == text
    assert tok.encode("<asr_text>") == [tok.convert_tokens_to_ids("<asr_text>")]


def test_official_presets_have_official_geometry_and_ids():
    assert preset_geometry("0.6b")["audio"]["d_model"] == 896
    assert preset_geometry("1.7b")["text"]["hidden_size"] == 2048
    assert preset_geometry("aligner-0.6b")["text"]["vocab_size"] == 152064
    for preset in ("0.6b", "1.7b", "aligner-0.6b"):
        assert preset_geometry(preset)["first_added_id"] == 151643  # <|endoftext|>; <|audio_pad|> is 151676


def test_seed_changes_weights_and_is_deterministic(tmp_path):
    a = load_file(str(make_checkpoint(tmp_path / "a", "tiny", seed=1) / "model.safetensors"))
    b = load_file(str(make_checkpoint(tmp_path / "b", "tiny", seed=1) / "model.safetensors"))
    c = load_file(str(make_checkpoint(tmp_path / "c", "tiny", seed=2) / "model.safetensors"))
    key = "thinker.audio_tower.conv2d2.weight"
    assert torch.equal(a[key], b[key]) and not torch.equal(a[key], c[key])
    assert float(a[key].float().std()) > 0.02  # drawn larger than the default initialiser


def test_command_line(tmp_path):
    out = tmp_path / "cli"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fixtures.checkpoint",
            "--preset",
            "aligner-tiny",
            "--out",
            str(out),
            "--seed",
            "3",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "aligner-tiny" in run.stdout
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["timestamp_token_id"] == 1062 and cfg["thinker_config"]["classify_num"] == 5000
    assert np.isclose(cfg["timestamp_segment_time"], 80)
