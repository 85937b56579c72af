"""The independent reference: transformers' native Qwen3ASR (torch, fp32, eager) on a checkpoint folder.

The checkpoint is in the official layout (`thinker.*`); transformers' native classes use the "-hf" naming, so
the tensors are renamed with the prefix maps of transformers' own converter (`STATE_DICT_MAPPING_ASR` and
`STATE_DICT_MAPPING_FORCED_ALIGNER` in src/transformers/models/qwen3_asr/convert_qwen3_asr_to_hf.py).
Loading is strict: a missing or unexpected tensor fails, which also checks that the fixtures use the official
names.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from transformers import Qwen3ASRConfig, Qwen3ASRForConditionalGeneration, Qwen3ASRForTokenClassification

_RENAMES = [
    ("thinker.audio_tower.proj1.", "model.multi_modal_projector.linear_1."),
    ("thinker.audio_tower.proj2.", "model.multi_modal_projector.linear_2."),
    ("thinker.audio_tower.", "model.audio_tower."),
    ("thinker.model.", "model.language_model."),
]
_AUDIO_KEYS = (
    "num_mel_bins",
    "encoder_layers",
    "encoder_attention_heads",
    "encoder_ffn_dim",
    "d_model",
    "output_dim",
    "n_window",
    "n_window_infer",
    "downsample_hidden_size",
    "activation_function",
)
_TEXT_KEYS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "rms_norm_eps",
    "max_position_embeddings",
    "tie_word_embeddings",
)


def reference_config(folder: Path) -> tuple[Qwen3ASRConfig, bool]:
    """transformers' config for the checkpoint in `folder` (its config.json in the official layout), and
    whether it is a forced aligner."""
    cfg = json.loads((Path(folder) / "config.json").read_text())
    thinker = cfg["thinker_config"]
    audio = {k: thinker["audio_config"][k] for k in _AUDIO_KEYS}
    audio["model_type"] = "qwen3_asr_encoder"
    text = {k: thinker["text_config"][k] for k in _TEXT_KEYS}
    text.update(
        model_type="qwen3",
        rope_parameters={"rope_type": "default", "rope_theta": thinker["text_config"]["rope_theta"]},
    )
    kwargs = dict(
        audio_config=audio,
        text_config=text,
        audio_token_id=thinker["audio_token_id"],
        tie_word_embeddings=text["tie_word_embeddings"],
    )
    aligner = "forced_aligner" in thinker["model_type"]
    if aligner:
        kwargs.update(timestamp_token_id=cfg["timestamp_token_id"], num_labels=thinker["classify_num"])
    return Qwen3ASRConfig(**kwargs), aligner


def native_name(key: str, aligner: bool) -> str:
    """transformers' name for an official (`thinker.*`) tensor name."""
    for old, new in _RENAMES:
        if key.startswith(old):
            return new + key[len(old) :]
    if key == "thinker.lm_head.weight":
        return "score.weight" if aligner else "lm_head.weight"
    return key


def reference_model(folder: Path):
    """The transformers model for the checkpoint in `folder`, weights loaded strictly, fp32, eval mode."""
    config, aligner = reference_config(folder)
    state = load_file(str(Path(folder) / "model.safetensors"))
    renamed = {native_name(key, aligner): value.float() for key, value in state.items()}
    model = (Qwen3ASRForTokenClassification if aligner else Qwen3ASRForConditionalGeneration)(config)
    model.config._attn_implementation = "eager"
    for sub in (model.config.audio_config, model.config.text_config):
        sub._attn_implementation = "eager"
    if config.text_config.tie_word_embeddings and not aligner:
        renamed.setdefault("lm_head.weight", renamed["model.language_model.embed_tokens.weight"])
    missing, unexpected = model.load_state_dict(renamed, strict=False)
    if missing or unexpected:
        raise AssertionError(
            f"checkpoint does not match the reference: missing {missing}, unexpected {unexpected}"
        )
    return model.float().eval()


@torch.no_grad()
def reference_audio_embeddings(model, mel: np.ndarray, n_window: int = 50) -> np.ndarray:
    """Encoder + projector output [tokens, output_dim] for one mel [n_mels, L]; L padded to whole chunks."""
    feats, mask = padded_features(mel, n_window)
    return model.get_audio_features(feats, mask).pooler_output.numpy()


def padded_features(mel: np.ndarray, n_window: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    """Mel right-padded to whole chunks plus its mask, as transformers' feature extractor hands them over."""
    chunk = 2 * n_window
    n_mels, n_frames = mel.shape
    padded = -(-n_frames // chunk) * chunk
    feats = torch.zeros(1, n_mels, padded)
    feats[0, :, :n_frames] = torch.from_numpy(mel)
    mask = torch.zeros(1, padded, dtype=torch.long)
    mask[0, :n_frames] = 1
    return feats, mask


@torch.no_grad()
def reference_logits(model, prompt_ids: list[int], mel: np.ndarray) -> np.ndarray:
    """Last-position logits of the full model on a prompt whose audio placeholders match `mel`."""
    feats, mask = padded_features(mel)
    ids = torch.tensor([prompt_ids])
    out = model(
        input_ids=ids, input_features=feats, input_features_mask=mask, attention_mask=torch.ones_like(ids)
    )
    return out.logits[0, -1].numpy()


@torch.no_grad()
def reference_generate(
    model, prompt_ids: list[int], mel: np.ndarray, max_new_tokens: int, eos_token_ids: list[int]
) -> list[int]:
    """transformers' greedy generate on the same prompt and audio; returns the new token ids (no eos)."""
    feats, mask = padded_features(mel)
    ids = torch.tensor([prompt_ids])
    out = model.generate(
        input_ids=ids,
        input_features=feats,
        input_features_mask=mask,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        eos_token_id=eos_token_ids,
        pad_token_id=eos_token_ids[0],
    )
    new = out[0, len(prompt_ids) :].tolist()
    return [t for t in new if t not in eos_token_ids][: len(new)] if new and new[-1] in eos_token_ids else new


@torch.no_grad()
def reference_aligner_classes(model, input_ids: list[int], mel: np.ndarray, timestamp_id: int) -> np.ndarray:
    """transformers' Qwen3ASRForTokenClassification: the argmax class at every <timestamp> position."""
    feats, mask = padded_features(mel)
    ids = torch.tensor([input_ids])
    logits = model(
        input_ids=ids, input_features=feats, input_features_mask=mask, attention_mask=torch.ones_like(ids)
    ).logits[0]
    return logits.argmax(-1)[ids[0] == timestamp_id].numpy()
