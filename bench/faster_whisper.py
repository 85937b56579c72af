"""faster-whisper (CTranslate2) at Whisper large-v3-turbo's dimensions, for the side-by-side comparison.

Random weights in the Hugging Face layout of openai/whisper-large-v3-turbo (its config.json: 32 encoder layers
and 4 decoder layers, 1280 wide, 20 heads, 128 mel bins, 51,866 tokens), converted with CTranslate2's own
converter (ctranslate2.converters.TransformersConverter, as `ct2-transformers-converter` does), then run by
faster-whisper on the same audio with the same number of output tokens as the other engines: the end-of-text
token is suppressed and each 30 s window decodes exactly its share (max_new_tokens), greedy, no timestamps,
no fallback, no VAD. Run both ways faster-whisper offers: one window after another (WhisperModel.transcribe)
and windows decoded together (BatchedInferencePipeline, with the windows given as clip_timestamps).

The tokenizer is a stand-in with Whisper's special-token layout (end of text 50257, start of transcript
50258, 100 language tokens, task and no-timestamps tokens, 1501 timestamp tokens): the real one cannot be
downloaded here, and with random weights only the token count matters.

    pip install faster-whisper   # not a dependency of the project
    python -m bench.faster_whisper --work DIR [--seconds 60] [--tokens 200] [--threads 2] [--batch 4]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
WINDOW_SECONDS = 30
# openai/whisper-large-v3-turbo config.json
LARGE_V3_TURBO = {
    "d_model": 1280,
    "encoder_layers": 32,
    "encoder_attention_heads": 20,
    "encoder_ffn_dim": 5120,
    "decoder_layers": 4,
    "decoder_attention_heads": 20,
    "decoder_ffn_dim": 5120,
    "num_mel_bins": 128,
    "vocab_size": 51866,
    "max_source_positions": 1500,
    "max_target_positions": 448,
    "eos_token_id": 50257,
    "pad_token_id": 50257,
    "bos_token_id": 50257,
    "decoder_start_token_id": 50258,
}
EOT = 50257


def _tokenizer(folder: Path) -> None:
    """tokenizer.json with Whisper's special-token ids over a byte-level BPE of 50,257 entries."""
    from faster_whisper.tokenizer import _LANGUAGE_CODES
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    byte_chars = pre_tokenizers.ByteLevel.alphabet()
    chars = sorted(byte_chars)
    vocab = {c: i for i, c in enumerate(chars)}
    merges = []
    for a in chars:  # two-character merges until the regular vocabulary has Whisper's 50,257 entries
        for b in chars:
            if len(vocab) == EOT:
                break
            vocab[a + b] = len(vocab)
            merges.append((a, b))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = ["<|endoftext|>", "<|startoftranscript|>", *(f"<|{c}|>" for c in _LANGUAGE_CODES)]
    special += ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>"]
    special += ["<|notimestamps|>", *(f"<|{i * 0.02:.2f}|>" for i in range(1501))]
    tok.add_special_tokens(special)
    assert tok.get_vocab_size() == LARGE_V3_TURBO["vocab_size"], tok.get_vocab_size()
    assert tok.token_to_id("<|startoftranscript|>") == 50258 and tok.token_to_id("<|notimestamps|>") == 50364
    tok.save(str(folder / "tokenizer.json"))


def convert(work: Path, compute_type: str = "int8") -> Path:
    """The random large-v3-turbo checkpoint and its CTranslate2 model under `work` (made once)."""
    out = work / f"whisper-large-v3-turbo-ct2-{compute_type}"
    if (out / "model.bin").exists():
        return out
    ckpt = work / "whisper-large-v3-turbo-random"
    if not (ckpt / "config.json").exists():
        import torch
        from transformers import (
            GenerationConfig,
            PreTrainedTokenizerFast,
            WhisperConfig,
            WhisperFeatureExtractor,
            WhisperForConditionalGeneration,
        )

        torch.manual_seed(0)
        ckpt.mkdir(parents=True, exist_ok=True)
        model = WhisperForConditionalGeneration(WhisperConfig(**LARGE_V3_TURBO)).to(torch.float16)
        _tokenizer(ckpt)
        from faster_whisper.tokenizer import _LANGUAGE_CODES

        gen = GenerationConfig(
            decoder_start_token_id=50258,
            eos_token_id=EOT,
            pad_token_id=EOT,
            begin_suppress_tokens=[220, EOT],
            suppress_tokens=[],
            lang_to_id={f"<|{c}|>": 50259 + i for i, c in enumerate(_LANGUAGE_CODES)},
            task_to_id={"translate": 50359, "transcribe": 50360},
            no_timestamps_token_id=50364,
            alignment_heads=[[2, 4], [2, 11], [3, 3], [3, 6]],
            is_multilingual=True,
        )
        model.generation_config = gen
        model.save_pretrained(ckpt)
        PreTrainedTokenizerFast(tokenizer_file=str(ckpt / "tokenizer.json")).save_pretrained(ckpt)
        WhisperFeatureExtractor(feature_size=128).save_pretrained(ckpt)
        del model
    from ctranslate2.converters import TransformersConverter

    TransformersConverter(str(ckpt), copy_files=["tokenizer.json", "preprocessor_config.json"]).convert(
        str(out), quantization=compute_type, force=True
    )
    return out


def run(model_dir: Path, audio: np.ndarray, tokens: int, threads: int, batch: int, compute_type: str) -> dict:
    """Seconds for the whole transcription, one window at a time and `batch` windows together, and load."""
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    t0 = time.perf_counter()
    model = WhisperModel(str(model_dir), device="cpu", compute_type=compute_type, cpu_threads=threads)
    load = time.perf_counter() - t0
    n = WINDOW_SECONDS * SAMPLE_RATE
    windows = max(1, -(-audio.size // n))
    per_window = max(1, tokens // windows)
    common = dict(
        language="en",
        beam_size=1,
        temperature=0.0,
        # exactly per_window text tokens in each window, as the other engines are forced: end of text and
        # every special and timestamp token suppressed (random weights would emit some)
        suppress_tokens=list(range(EOT, LARGE_V3_TURBO["vocab_size"])),
        without_timestamps=True,
        condition_on_previous_text=False,
        compression_ratio_threshold=None,
        log_prob_threshold=None,
        no_speech_threshold=None,
    )
    # CTranslate2 generates at most half the total length it is given (src/models/whisper.cc, generate:
    # max_length = min(total_max_length / 2, total_max_length - start_step); OpenNMT/CTranslate2#1856), and
    # faster-whisper gives it the 4 prompt tokens plus max_new_tokens: ask for what makes per_window.
    if not 3 <= per_window <= 222:  # Whisper's 448 positions hold the 4 prompt tokens and twice these
        raise ValueError(f"{per_window} tokens per 30 s window: faster-whisper can force 3 to 222")
    common["max_new_tokens"] = 2 * per_window - 4
    # one warm-up window, as each engine's first call pays one-time costs
    list(model.transcribe(audio[:SAMPLE_RATE], **{**common, "max_new_tokens": 4})[0])
    t0 = time.perf_counter()
    segments = list(model.transcribe(audio, vad_filter=False, **common)[0])
    sequential = time.perf_counter() - t0
    decoded = sum(len(s.tokens) for s in segments)

    # (BatchedInferencePipeline.transcribe takes the clips in seconds)
    clips = [
        {"start": i * n / SAMPLE_RATE, "end": min(audio.size, (i + 1) * n) / SAMPLE_RATE}
        for i in range(windows)
    ]
    pipeline = BatchedInferencePipeline(model)
    t0 = time.perf_counter()
    batched_segments = list(pipeline.transcribe(audio, batch_size=batch, clip_timestamps=clips, **common)[0])
    batched = time.perf_counter() - t0
    return {
        "load": load,
        "sequential": sequential,
        "batched": batched,
        "tokens": decoded,
        "batched tokens": sum(len(s.tokens) for s in batched_segments),
        "windows": windows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--compute-type", default="int8")
    args = parser.parse_args()
    from qwen3asr_plugin.engine.bench import synthetic_speech

    args.work.mkdir(parents=True, exist_ok=True)
    folder = convert(args.work, args.compute_type)
    out = run(
        folder, synthetic_speech(args.seconds), args.tokens, args.threads, args.batch, args.compute_type
    )
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
