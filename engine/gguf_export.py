"""Write the Qwen3 text model of a checkpoint as GGUF (architecture `qwen3`), without torch.

The thinker's text model is a plain Qwen3 causal LM: its interleaved MRoPE reduces exactly to 1-D RoPE
because every position is text-like (the official toolkit's `get_rope_index`, in QwenLM/Qwen3-ASR
qwen_asr/core/transformers_backend/modeling_qwen3_asr.py, gives audio tokens plain text positions), so
llama.cpp's `qwen3` architecture runs it unchanged. The byte-level BPE tokenizer goes inside the file so
llama.cpp tokenizes and detokenizes.
Other types (bf16, q8_0, q6_k, q4_k) come from llama.cpp's own quantizer, reached through llama-cpp-python.
bf16 keeps the official weights exactly (the checkpoints are published in bf16).

The forced aligner's output layer is its 5000-class timestamp head, not the vocabulary, so its GGUF says so:
no tokenizer (`tokenizer.ggml.model` "none", `qwen3.vocab_size` = classes, which llama.cpp reads as that
many dummy tokens: src/llama-vocab.cpp, llama_vocab::impl::load), `output.weight` = the head (kept f32), and
its inputs come as embeddings looked up from the checkpoint's table (`token_embd.<type>.npy`), with the
tokenizer in a tensor-less `tokenizer.gguf` beside it. llama.cpp then gives the class logits of just the
timestamp slots, where an embedding-mode context would run every token of the text through the 151,936-row
vocabulary layer and keep its floats (src/llama-context.cpp, decode: output_all).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .errors import CheckpointError, Qwen3ASRError
from .hf_checkpoint import Checkpoint

TEXT_PREFIX = "thinker.model."
DECODER_QUANTS = ("f32", "f16", "bf16", "q8_0", "q6_k", "q4_k")
# llama.cpp's llama_ftype values for the quantizer.
_LLAMA_FTYPE = {"f32": 0, "f16": 1, "bf16": 32, "q8_0": 7, "q6_k": 18, "q4_k": 15}  # q4_k = Q4_K_M


TOKENIZER_FILE = "tokenizer.gguf"  # the aligner's tokenizer (its decoder GGUF has none)


def decoder_file(quant: str) -> str:
    return f"decoder.{quant}.gguf"


def embeddings_file(dtype: str) -> str:
    return f"token_embd.{dtype}.npy"


def read_tokenizer(folder: Path) -> tuple[dict[str, int], list[str], dict[int, tuple[str, bool]]]:
    """(regular vocab, merges, added tokens by id -> (text, special)) from a checkpoint's tokenizer files."""
    added: dict[int, tuple[str, bool]] = {}
    tok_json = folder / "tokenizer.json"
    if (folder / "vocab.json").exists() and (folder / "merges.txt").exists():
        vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        lines = (folder / "merges.txt").read_text(encoding="utf-8").splitlines()
        merges = [line for line in lines if line and not line.startswith("#version")]
    elif tok_json.exists():
        model = json.loads(tok_json.read_text(encoding="utf-8"))["model"]
        vocab = model["vocab"]
        merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    else:
        raise CheckpointError(f"{folder}: no tokenizer (vocab.json + merges.txt or tokenizer.json)")
    if tok_json.exists():
        for entry in json.loads(tok_json.read_text(encoding="utf-8")).get("added_tokens", []):
            added[int(entry["id"])] = (entry["content"], bool(entry.get("special", True)))
    cfg = folder / "tokenizer_config.json"
    if cfg.exists():
        for tid, entry in json.loads(cfg.read_text(encoding="utf-8")).get("added_tokens_decoder", {}).items():
            added[int(tid)] = (entry["content"], bool(entry.get("special", True)))
    if not merges:
        raise CheckpointError(
            f"{folder}: tokenizer has no merges; llama.cpp needs a BPE vocabulary with merges"
        )
    return vocab, merges, added


def _token_table(ckpt: Checkpoint) -> tuple[list[str], list[int], list[str]]:
    import gguf

    vocab, merges, added = read_tokenizer(ckpt.folder)
    n = ckpt.text.vocab_size
    tokens = [f"[PAD{i}]" for i in range(n)]
    types = [int(gguf.TokenType.UNUSED)] * n
    for text, tid in vocab.items():
        if tid < n:
            tokens[tid], types[tid] = text, int(gguf.TokenType.NORMAL)
    for tid, (text, special) in added.items():
        if tid < n:
            tokens[tid] = text
            types[tid] = int(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
    return tokens, types, merges


def _text_tensors(ckpt: Checkpoint) -> Iterator[tuple[str, str]]:
    """(gguf name, checkpoint name) pairs in file order."""
    yield "token_embd.weight", TEXT_PREFIX + "embed_tokens.weight"
    for i in range(ckpt.text.num_hidden_layers):
        p = f"{TEXT_PREFIX}layers.{i}."
        b = f"blk.{i}."
        yield b + "attn_norm.weight", p + "input_layernorm.weight"
        yield b + "attn_q.weight", p + "self_attn.q_proj.weight"
        yield b + "attn_k.weight", p + "self_attn.k_proj.weight"
        yield b + "attn_v.weight", p + "self_attn.v_proj.weight"
        yield b + "attn_output.weight", p + "self_attn.o_proj.weight"
        yield b + "attn_q_norm.weight", p + "self_attn.q_norm.weight"
        yield b + "attn_k_norm.weight", p + "self_attn.k_norm.weight"
        yield b + "ffn_norm.weight", p + "post_attention_layernorm.weight"
        yield b + "ffn_gate.weight", p + "mlp.gate_proj.weight"
        yield b + "ffn_up.weight", p + "mlp.up_proj.weight"
        yield b + "ffn_down.weight", p + "mlp.down_proj.weight"
    yield "output_norm.weight", TEXT_PREFIX + "norm.weight"
    if ckpt.kind == "aligner" or not ckpt.text.tie_word_embeddings:
        yield "output.weight", "thinker.lm_head.weight"  # the aligner's: its class head


def _write_header(w, ckpt: Checkpoint, quant: str) -> None:
    t = ckpt.text
    w.add_name(ckpt.config.get("_name_or_path") or ckpt.folder.name)
    w.add_file_type(_LLAMA_FTYPE[quant])
    w.add_context_length(t.max_position_embeddings)
    w.add_embedding_length(t.hidden_size)
    w.add_block_count(t.num_hidden_layers)
    w.add_feed_forward_length(t.intermediate_size)
    w.add_head_count(t.num_attention_heads)
    w.add_head_count_kv(t.num_key_value_heads)
    w.add_key_length(t.head_dim)
    w.add_value_length(t.head_dim)
    w.add_rope_freq_base(t.rope_theta)
    w.add_layer_norm_rms_eps(t.rms_norm_eps)


def _write_tokenizer_keys(w, ckpt: Checkpoint) -> None:
    tokens, types, merges = _token_table(ckpt)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    ids = ckpt.token_ids
    w.add_eos_token_id(ids["im_end"])
    if "endoftext" in ids:
        w.add_pad_token_id(ids["endoftext"])
        w.add_bos_token_id(ids["endoftext"])
    w.add_add_bos_token(False)


def write_gguf(ckpt: Checkpoint, path: Path, quant: str = "f32") -> None:
    """Write the text model as an f32 or f16 GGUF to `path`, one tensor in memory at a time (the aligner's
    with its class head as the output layer and no tokenizer: see the module notes)."""
    import gguf

    if quant not in ("f32", "f16"):
        raise ValueError("write_gguf writes f32 or f16; quantize_gguf makes the others")
    t = ckpt.text
    aligner = ckpt.kind == "aligner"
    w = gguf.GGUFWriter(str(path), "qwen3")
    _write_header(w, ckpt, quant)
    if aligner:
        w.add_tokenizer_model("none")
        w.add_vocab_size(ckpt.classify_num)
    else:
        _write_tokenizer_keys(w, ckpt)

    store = ckpt.tensors
    names = list(_text_tensors(ckpt))
    shapes = {}
    for gguf_name, ckpt_name in names:
        shape = store.shape(ckpt_name)
        if gguf_name == "token_embd.weight" and shape[0] != t.vocab_size:
            raise CheckpointError(
                f"{ckpt.folder}: embed_tokens has {shape[0]} rows, config says {t.vocab_size}"
            )
        if aligner and gguf_name == "output.weight" and tuple(shape) != (ckpt.classify_num, t.hidden_size):
            raise CheckpointError(
                f"{ckpt.folder}: lm_head is {tuple(shape)}, expected ({ckpt.classify_num}, {t.hidden_size})"
            )
        if aligner and gguf_name == "token_embd.weight":
            # llama.cpp needs a table of vocab_size rows; the aligner's inputs come as embeddings instead
            shape = (ckpt.classify_num, t.hidden_size)
        shapes[gguf_name] = shape
        f16 = quant == "f16" and len(shape) == 2 and not (aligner and gguf_name == "output.weight")
        dtype = np.dtype(np.float16 if f16 else np.float32)
        w.add_tensor_info(gguf_name, shape, dtype, int(np.prod(shape)) * dtype.itemsize)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for gguf_name, ckpt_name in names:
        if aligner and gguf_name == "token_embd.weight":
            array = np.zeros(shapes[gguf_name], np.float32)  # never read (see above)
        else:
            array = store.get(ckpt_name)
        if quant == "f16" and array.ndim == 2 and not (aligner and gguf_name == "output.weight"):
            array = array.astype(np.float16)
        w.write_tensor_data(np.ascontiguousarray(array))
    w.close()


def write_tokenizer(ckpt: Checkpoint, path: Path) -> None:
    """The aligner's tokenizer as a GGUF with no tensors (llama.cpp loads it with vocab_only)."""
    import gguf

    w = gguf.GGUFWriter(str(path), "qwen3")
    _write_header(w, ckpt, "f32")
    _write_tokenizer_keys(w, ckpt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()


def write_embeddings(ckpt: Checkpoint, out: Path) -> str:
    """The input embedding table as .npy in `out`: raw bfloat16 bits (uint16) when every value is a bfloat16,
    as in the official checkpoints, else float32; exact either way. Returns the file name."""
    table = np.ascontiguousarray(ckpt.tensors.get(TEXT_PREFIX + "embed_tokens.weight"), dtype=np.float32)
    halves = table.view(np.uint16).reshape(*table.shape, 2)  # little-endian: [low, high] 16 bits of each
    low, high = (0, 1) if np.little_endian else (1, 0)
    if not halves[..., low].any():
        name = embeddings_file("bf16")
        np.save(out / name, np.ascontiguousarray(halves[..., high]))
    else:
        name = embeddings_file("f32")
        np.save(out / name, table)
    return name


def load_embeddings(path: Path) -> np.ndarray:
    """A table written by write_embeddings, memory-mapped (rows are read as they are used)."""
    return np.load(path, mmap_mode="r")


def embedding_rows(table: np.ndarray, ids: list[int]) -> np.ndarray:
    """float32 rows of a write_embeddings table."""
    rows = np.asarray(table[np.asarray(ids, dtype=np.int64)])
    if rows.dtype == np.uint16:
        return (rows.astype(np.uint32) << 16).view(np.float32)
    return rows.astype(np.float32, copy=False)


def quantize_gguf(src: Path, dest: Path, quant: str, threads: int = 0, quantize_output: bool = True) -> None:
    """llama.cpp's quantizer from an f32 GGUF to `quant` (bf16, q8_0, q6_k or q4_k)."""
    from .llama_runtime import clear_errors, last_error, llama

    llama_cpp = llama()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = _LLAMA_FTYPE[quant]
    params.quantize_output_tensor = quantize_output  # False: the aligner's class head stays f32
    params.nthread = threads or os.cpu_count() or 1
    clear_errors()
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dest).encode(), params)
    if rc != 0:
        # llama.cpp logs why (llama_model_quantize: "failed to quantize: <reason>"): say it, not only the code
        why = last_error() or f"code {rc}"
        raise Qwen3ASRError(f"{dest}: llama.cpp could not quantize the decoder to {quant}: {why}")
