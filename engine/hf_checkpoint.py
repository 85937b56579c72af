"""Read an official Hugging Face checkpoint folder (Qwen3-ASR or Qwen3-ForcedAligner): config, token ids.

Every number the engine uses later (dims, windows, special token ids) is read here from the checkpoint's own
files and carried into model.json; nothing about a particular model size is assumed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CheckpointError
from .safetensors_io import TensorStore

AUDIO_PREFIX = "thinker.audio_tower."

# Tokens the engine needs, by their text in the tokenizer (ids come from tokenizer_config.json).
NAMED_TOKENS = {
    "endoftext": "<|endoftext|>",
    "im_start": "<|im_start|>",
    "im_end": "<|im_end|>",
    "audio_start": "<|audio_start|>",
    "audio_end": "<|audio_end|>",
    "audio_pad": "<|audio_pad|>",
    "asr_text": "<asr_text>",
    "timestamp": "<timestamp>",
    "non_speech": "<non_speech>",
}


@dataclass(frozen=True)
class AudioDims:
    """The audio encoder's geometry (thinker_config.audio_config)."""

    num_mel_bins: int
    d_model: int
    encoder_layers: int
    encoder_attention_heads: int
    encoder_ffn_dim: int
    downsample_hidden_size: int
    output_dim: int
    n_window: int
    n_window_infer: int

    @property
    def chunk_frames(self) -> int:
        """Mel frames per convolutional chunk (2 * n_window = 100 in the released models)."""
        return 2 * self.n_window

    @property
    def tokens_per_chunk(self) -> int:
        """Encoder tokens from one full chunk: three stride-2 convolutions over the time axis."""
        return conv_out_len(self.chunk_frames)

    @property
    def window_tokens(self) -> int:
        """Tokens per attention window: whole chunks, n_window_infer frames (104 = 8 s in the released models)."""
        return self.tokens_per_chunk * (self.n_window_infer // self.chunk_frames)

    @property
    def conv_freq_bins(self) -> int:
        """Mel axis length after the three stride-2 convolutions (16 for 128 bins)."""
        return conv_out_len(self.num_mel_bins)


def conv_out_len(n: int) -> int:
    """Length after three (kernel 3, stride 2, padding 1) convolutions; zero stays zero."""
    for _ in range(3):
        n = (n - 1) // 2 + 1 if n > 0 else 0
    return n


def audio_tokens_for_frames(n_frames: int, dims: AudioDims) -> int:
    """Encoder tokens for `n_frames` mel frames: full chunks give tokens_per_chunk, the tail its own count."""
    full, tail = divmod(n_frames, dims.chunk_frames)
    return full * dims.tokens_per_chunk + conv_out_len(tail)


@dataclass(frozen=True)
class TextDims:
    """The Qwen3 text model's geometry (thinker_config.text_config)."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    max_position_embeddings: int
    tie_word_embeddings: bool


@dataclass(frozen=True)
class Checkpoint:
    """What conversion needs from one checkpoint folder."""

    folder: Path
    kind: str  # "asr" or "aligner"
    config: dict
    audio: AudioDims
    text: TextDims
    token_ids: dict[str, int]
    eos_token_ids: tuple[int, ...]
    languages: tuple[str, ...]
    classify_num: int | None = None
    timestamp_segment_ms: int | None = None
    tensors: TensorStore = field(repr=False, compare=False, default=None)  # type: ignore[assignment]


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(
            f"{path.parent}: no {path.name}; point at a full Hugging Face checkpoint folder "
            "(or run `qwen3asr models pull NAME`)"
        ) from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable ({exc}); download the checkpoint again") from exc


def _token_ids(folder: Path, thinker: dict, top: dict) -> dict[str, int]:
    by_text: dict[str, int] = {}
    tok_cfg_path = folder / "tokenizer_config.json"
    if tok_cfg_path.exists():
        for tid, entry in _read_json(tok_cfg_path).get("added_tokens_decoder", {}).items():
            by_text[entry["content"]] = int(tid)
    tok_json = folder / "tokenizer.json"
    if tok_json.exists():
        for entry in _read_json(tok_json).get("added_tokens", []):
            by_text.setdefault(entry["content"], int(entry["id"]))
    ids = {name: by_text[text] for name, text in NAMED_TOKENS.items() if text in by_text}
    # The config is the authority for the audio placeholders and the aligner's slot token.
    for name, key in (
        ("audio_pad", "audio_token_id"),
        ("audio_start", "audio_start_token_id"),
        ("audio_end", "audio_end_token_id"),
    ):
        if key in thinker:
            ids[name] = int(thinker[key])
    if "timestamp_token_id" in top:
        ids["timestamp"] = int(top["timestamp_token_id"])
    missing = [n for n in ("im_start", "im_end", "audio_start", "audio_end", "audio_pad") if n not in ids]
    if missing:
        raise CheckpointError(
            f"{folder}: tokenizer files lack {', '.join(NAMED_TOKENS[m] for m in missing)}; "
            "the folder needs tokenizer_config.json from the same checkpoint"
        )
    return ids


def load_checkpoint(folder: Path | str) -> Checkpoint:
    """Read config.json, tokenizer ids and the tensor index of a Qwen3-ASR / ForcedAligner checkpoint."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(
            f"{folder}: no such checkpoint folder; download one (for example Qwen/Qwen3-ASR-0.6B) "
            "or run `qwen3asr models pull NAME`"
        )
    top = _read_json(folder / "config.json")
    thinker = top.get("thinker_config")
    if top.get("model_type") != "qwen3_asr" or not isinstance(thinker, dict):
        raise CheckpointError(
            f"{folder}: config.json is not a Qwen3-ASR checkpoint (model_type {top.get('model_type')!r}); "
            "use Qwen/Qwen3-ASR-0.6B, Qwen/Qwen3-ASR-1.7B or Qwen/Qwen3-ForcedAligner-0.6B"
        )
    a, t = thinker["audio_config"], thinker["text_config"]
    audio = AudioDims(
        num_mel_bins=int(a["num_mel_bins"]),
        d_model=int(a["d_model"]),
        encoder_layers=int(a["encoder_layers"]),
        encoder_attention_heads=int(a["encoder_attention_heads"]),
        encoder_ffn_dim=int(a["encoder_ffn_dim"]),
        downsample_hidden_size=int(a["downsample_hidden_size"]),
        output_dim=int(a["output_dim"]),
        n_window=int(a["n_window"]),
        n_window_infer=int(a["n_window_infer"]),
    )
    if audio.n_window_infer % audio.chunk_frames:
        raise CheckpointError(f"{folder}: n_window_infer must be a multiple of 2*n_window")
    text = TextDims(
        vocab_size=int(t["vocab_size"]),
        hidden_size=int(t["hidden_size"]),
        intermediate_size=int(t["intermediate_size"]),
        num_hidden_layers=int(t["num_hidden_layers"]),
        num_attention_heads=int(t["num_attention_heads"]),
        num_key_value_heads=int(t["num_key_value_heads"]),
        head_dim=int(t.get("head_dim") or t["hidden_size"] // t["num_attention_heads"]),
        rms_norm_eps=float(t["rms_norm_eps"]),
        rope_theta=float(t.get("rope_theta") or (t.get("rope_parameters") or {}).get("rope_theta", 1e6)),
        max_position_embeddings=int(t["max_position_embeddings"]),
        tie_word_embeddings=bool(t.get("tie_word_embeddings", False)),
    )
    is_aligner = "forced_aligner" in str(thinker.get("model_type", ""))
    eos = folder / "generation_config.json"
    eos_ids = _read_json(eos).get("eos_token_id") if eos.exists() else None
    ids = _token_ids(folder, thinker, top)
    if eos_ids is None:
        eos_ids = [ids["im_end"]] + ([ids["endoftext"]] if "endoftext" in ids else [])
    eos_ids = [eos_ids] if isinstance(eos_ids, int) else list(eos_ids)
    return Checkpoint(
        folder=folder,
        kind="aligner" if is_aligner else "asr",
        config=top,
        audio=audio,
        text=text,
        token_ids=ids,
        eos_token_ids=tuple(int(i) for i in eos_ids),
        languages=tuple(top.get("support_languages", [])),
        classify_num=int(thinker["classify_num"]) if is_aligner else None,
        timestamp_segment_ms=int(top.get("timestamp_segment_time", 80)) if is_aligner else None,
        tensors=TensorStore(folder),
    )
