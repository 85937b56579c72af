"""The text decoder: a GGUF Qwen3 model run by llama.cpp, with audio embeddings injected.

The prompt goes in as three llama_decode calls: the prefix tokens, all audio embeddings of the chunk at once
(through llama_batch.embd at the audio positions; llama.cpp prefills fastest in one big batch), and the
suffix tokens. Decoding is greedy. A repetition guard watches the generated tokens; when the output loops or
runs out of its token budget, generation is retried from the cached prompt with temperature fallback, and if
every try loops the greedy output is cut back to one copy of the repeated part. No marker is ever added.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
from dataclasses import dataclass, field

import numpy as np

from .errors import ModelError
from .gguf_export import DECODER_QUANTS, TOKENIZER_FILE, decoder_file, embedding_rows, load_embeddings
from .llama_runtime import Device, clear_errors, gpu_devices, last_error, llama, native_bf16
from .model_folder import ModelInfo
from .prompt import Prompt


@dataclass(frozen=True)
class DecoderOptions:
    quant: str | None = None  # f32, f16, bf16, q8_0, q6_k, q4_k; None: the best the folder has for the device
    threads: int = 0  # 0: all cores
    gpu_layers: int = 0  # layers offloaded when llama.cpp has a GPU backend; -1 = all
    device_index: int = 0
    gpu_asked: bool = False  # the user asked for a GPU (--device gpu|cuda|dml): say so if none decodes
    context_tokens: int = 4096
    batch_tokens: int = 1024  # the largest prefill handed to llama.cpp in one call
    kv_f32: bool = False  # f32 KV cache (exact parity); f16 halves its memory
    # llama.cpp flash attention. None: on with the f16 KV cache (prefill about 20 % faster: no transposed V
    # cache; logits stay within the q8_0 bar), off with kv_f32 (the exact path the f32 parity test uses).
    flash_attention: bool | None = None
    # llama.cpp's extra CPU buffer types (AMX and weight repacking). Off by default: on the AMX machines
    # tested, the AMX matrix kernel of llama-cpp-python 0.3.36 crashed on the first prefill (q8_0, q4_k).
    extra_buffer_types: bool = False
    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8)  # greedy first, then the fallbacks
    seed: int = 0


@dataclass
class Generation:
    tokens: list[int]
    finished: bool  # ended on an end-of-turn token
    looped: bool
    temperature: float
    attempts: int = 1
    prompt_tokens: int = 0
    logits_first: np.ndarray | None = field(default=None, repr=False)


def _primitive_period(pattern: list[int]) -> int:
    p = len(pattern)
    for q in range(1, p):
        if p % q == 0 and pattern == pattern[:q] * (p // q):
            return q
    return p


def loop_start(tokens: list[int], max_pattern: int = 24) -> int | None:
    """Where a runaway repetition at the end of `tokens` begins (after its first copy), else None.

    A run of p tokens (p up to `max_pattern`) counts as a loop when it repeats max(4, 32 // p) times in a row
    at the tail. A shorter pattern repeated is also a longer one repeated (one token 28 times is a 7-token run
    4 times), so a pattern of one token is caught after 28 copies, two tokens 15, three 10, four 8, five 6,
    six 5, seven or more 4. The cut keeps one copy of the shortest period.
    """
    n = len(tokens)
    for p in range(1, max_pattern + 1):
        need = max(4, 32 // p)
        if n < p * need:
            continue
        if tokens[n - p * need :] != tokens[n - p :] * need:
            continue
        q = _primitive_period(tokens[n - p :])
        pattern = tokens[n - q :]
        copies = 1
        while copies * q + q <= n and tokens[n - (copies + 1) * q : n - copies * q] == pattern:
            copies += 1
        return n - (copies - 1) * q
    return None


def quant_order(gpu: bool, bf16: bool) -> list[str]:
    """Decoder types from best to worst for a device (README, default pairing). On a GPU f16. On a CPU with
    bf16 dot-product instructions bf16: the official weights exactly, prefill about twice as fast as q8_0 and
    batched decoding faster. On other CPUs q8_0, whose int8 kernels beat the emulated bf16 ones."""
    if gpu:
        return ["f16", "bf16", "q8_0", "f32", "q6_k", "q4_k"]
    if bf16:
        return ["bf16", "q8_0", "f16", "q6_k", "q4_k", "f32"]
    return ["q8_0", "q6_k", "q4_k", "f16", "bf16", "f32"]


def default_quant(available: list[str], gpu: bool, bf16: bool = False) -> str:
    """The best decoder type a model folder has for the device."""
    for q in quant_order(gpu, bf16):
        if q in available:
            return q
    raise ModelError("model folder has no decoder; run `qwen3asr convert`")


def preferred_quant() -> str:
    """What `qwen3asr convert` writes by default: the CPU default of this machine (bf16 or q8_0)."""
    return quant_order(False, native_bf16())[0]


@functools.cache
def _say_cpu_decoding() -> None:
    sys.stderr.write(
        "note: the decoder runs on the CPU: this llama.cpp has no GPU backend or sees no GPU "
        "(`qwen3asr devices`; README, Install)\n"
    )


class TextDecoder:
    """One llama.cpp model and context for a model folder."""

    def __init__(self, info: ModelInfo, options: DecoderOptions = DecoderOptions()):
        L = llama()
        self.L = L
        self.info = info
        self.options = options
        available = [q for q in DECODER_QUANTS if decoder_file(q) in info.files]
        self.device = self._device(options)
        gpu = self.device is not None
        self.quant = options.quant or default_quant(available, gpu, native_bf16())
        path = info.path(decoder_file(self.quant))
        mp = L.llama_model_default_params()
        mp.n_gpu_layers = options.gpu_layers if gpu else 0
        if gpu:
            # One GPU, the one asked for: llama.cpp honours main_gpu only without a layer split across GPUs
            # (src/llama.cpp, llama_model_load's LLAMA_SPLIT_MODE_NONE), and these models fit on one.
            mp.split_mode = L.LLAMA_SPLIT_MODE_NONE
            mp.main_gpu = self.device.index
        mp.use_extra_bufts = options.extra_buffer_types
        self.path = path
        self._model_params = mp
        self._closed = False
        self.model = self._load_model()
        # The aligner's model outputs its timestamp classes and has no tokenizer: that is in a vocabulary-only
        # GGUF beside it, and its inputs are looked up in its embedding table (engine/gguf_export.py notes).
        self.classes = info.kind == "aligner"
        self._vocab_model = None
        self._table = None
        n_out = info.text.vocab_size
        if self.classes:
            n_out = int(info.raw["aligner"]["classify_num"])
            vp = L.llama_model_default_params()
            vp.vocab_only = True
            self._vocab_model = L.llama_model_load_from_file(str(info.path(TOKENIZER_FILE)).encode(), vp)
            if not self._vocab_model:
                raise ModelError(
                    f"{info.folder / TOKENIZER_FILE}: llama.cpp cannot load it; convert the model again"
                )
            self._table = load_embeddings(info.path(info.raw["aligner"]["embeddings"]))
        self._vocab = L.llama_model_get_vocab(self._vocab_model or self.model)
        self.n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(self.model))
        self.n_embd = L.llama_model_n_embd(self.model)
        if self._table is not None and self._table.shape != (info.text.vocab_size, info.text.hidden_size):
            raise ModelError(f"{path}: the embedding table does not match model.json (dims); convert again")
        if self.n_embd != info.text.hidden_size or self.n_vocab != n_out:
            raise ModelError(f"{path}: does not match model.json (dims); convert the model again")
        self.context_tokens = options.context_tokens
        self.batch_tokens = options.batch_tokens
        # The context (KV cache) is made on first use, sized for what is asked of it (see _ensure_context).
        self.ctx = None
        self.n_seq = 0
        self.seq_tokens = 0
        self.eos_ids = set(info.eos_token_ids) | {info.token_ids["im_end"]}
        self._piece_buf = ctypes.create_string_buffer(256)

    def _load_model(self):
        clear_errors()
        model = self.L.llama_model_load_from_file(str(self.path).encode(), self._model_params)
        if not model:
            reason = f" ({last_error()})" if last_error() else ""
            if self.device is not None:
                raise ModelError(
                    f"{self.path}: llama.cpp cannot load it on GPU {self.device.index} "
                    f"({self.device.description}{', ' + last_error() if last_error() else ''}); if its memory "
                    "is full, offload fewer layers (--gpu-layers N) or use --device cpu"
                )
            raise ModelError(
                f"{self.path}: llama.cpp cannot load it{reason}; convert the model again (`qwen3asr convert`)"
            )
        return model

    def _weights(self):
        """The llama.cpp model, mapped again if release_weights gave it back. The file is checked again against
        model.json first (size and both ends: engine/model_folder.py ModelInfo.path), since the folder may have
        been removed or converted again since the job began."""
        if not self.model:
            if self._closed:
                raise ModelError(f"{self.path}: the decoder was closed")
            self.info.path(self.path.name)
            model = self._load_model()
            L = self.L
            if L.llama_model_n_embd(model) != self.n_embd or (
                self._vocab_model is None
                and L.llama_vocab_n_tokens(L.llama_model_get_vocab(model)) != self.n_vocab
            ):
                L.llama_model_free(model)
                raise ModelError(f"{self.path}: changed since the job began (dims differ); run the job again")
            self.model = model
            if self._vocab_model is None:
                self._vocab = L.llama_model_get_vocab(model)
        return self.model

    @property
    def vocab(self):
        if self._vocab_model is None:
            self._weights()
        return self._vocab

    @property
    def weights_releasable(self) -> bool:
        """Whether release_weights gives memory back cheaply: on the CPU the weights are the GGUF file mapped
        into memory (llama.cpp's default mmap, no repacked copies), so mapping them again reads the page cache
        (0.15-0.26 s for the 0.6B model's 637 MB q8_0 GGUF on a 2-core Zen 4); on a GPU they would be uploaded
        again."""
        return self.device is None and not self.options.extra_buffer_types

    @staticmethod
    def _device(options: DecoderOptions) -> Device | None:
        """The GPU the decoder offloads to, or None (no layers asked for, or a CPU-only llama.cpp)."""
        if options.gpu_layers == 0:
            return None
        try:
            gpus = gpu_devices()
        except (OSError, AttributeError):  # ggml's device list unreadable: llama.cpp checks the index itself
            if not llama().llama_supports_gpu_offload():
                return None
            return Device(options.device_index, "GPU", f"GPU {options.device_index}", 0, 0)
        if not gpus:
            if options.gpu_asked:
                _say_cpu_decoding()
            return None
        if not 0 <= options.device_index < len(gpus):
            names = ", ".join(f"{d.index}: {d.description}" for d in gpus)
            raise ModelError(
                f"--device-index {options.device_index}: llama.cpp sees {len(gpus)} GPU"
                f"{'s' if len(gpus) != 1 else ''} ({names}); choose one of these"
            )
        return gpus[options.device_index]

    def _make_context(self, n_seq: int, seq_tokens: int) -> None:
        """A llama.cpp context for `n_seq` sequences of up to `seq_tokens` each (one KV stream per sequence)."""
        L, options = self.L, self.options
        self._free_context()
        cp = L.llama_context_default_params()
        cp.n_ctx = n_seq * seq_tokens
        cp.n_seq_max = n_seq
        cp.kv_unified = False
        cp.n_batch = cp.n_ubatch = max(options.batch_tokens, n_seq)
        threads = options.threads or os.cpu_count() or 1
        cp.n_threads = cp.n_threads_batch = threads
        flash = options.flash_attention if options.flash_attention is not None else not options.kv_f32
        cp.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash else L.LLAMA_FLASH_ATTN_TYPE_DISABLED
        if options.kv_f32:
            cp.type_k = cp.type_v = 0  # GGML_TYPE_F32
        cp.no_perf = True
        clear_errors()
        self.ctx = L.llama_init_from_model(self._weights(), cp)
        if not self.ctx:
            where = f" on GPU {self.device.index} ({self.device.description})" if self.device else ""
            reason = f": {last_error()}" if last_error() else ""
            hint = "; offload fewer layers (--gpu-layers N) or use --device cpu" if self.device else ""
            raise ModelError(
                f"{self.path}: llama.cpp could not create a context ({n_seq} x {seq_tokens} tokens)"
                f"{where}{reason}{hint}"
            )
        self.n_seq, self.seq_tokens = n_seq, seq_tokens
        self._tok_batch = L.llama_batch_init(max(self.batch_tokens, n_seq), 0, 1)
        self._emb_batch = L.llama_batch_init(self.batch_tokens, self.n_embd, 1)

    def _ensure_context(self, n_seq: int, tokens_per_seq: int) -> None:
        """Keep the current context when it holds `n_seq` sequences of `tokens_per_seq`, else make one."""
        if self.n_seq >= n_seq and self.seq_tokens >= tokens_per_seq:
            return
        # Just what is asked, in 256-token steps, up to context_tokens (the limit): the KV cache is memory
        # touched whole when made (448 MiB at 4096 tokens of the 0.6B model), and a 30 s chunk needs ~600.
        seq_tokens = min(-(-tokens_per_seq // 256) * 256, max(self.context_tokens, tokens_per_seq))
        self._make_context(n_seq, seq_tokens)

    def release_context(self) -> None:
        """Give back the KV cache and compute buffers until the next request makes a context again (the
        pipeline does so while the aligner runs: the two are never needed at once)."""
        self._free_context()
        self.n_seq = self.seq_tokens = 0

    def release_weights(self) -> None:
        """Give back the context and unmap the weights until the next use maps them again (the pipeline
        does so for whichever of the ASR decoder and the aligner is not running, when weights_releasable: the
        two models are never resident at once, which keeps a whole job's peak memory at one model's)."""
        self.release_context()
        if getattr(self, "model", None):
            self.L.llama_model_free(self.model)
            self.model = None

    def _free_context(self) -> None:
        if getattr(self, "ctx", None):
            self.L.llama_batch_free(self._tok_batch)
            self.L.llama_batch_free(self._emb_batch)
            self.L.llama_free(self.ctx)
            self.ctx = None

    def close(self) -> None:
        self._closed = True
        self._free_context()
        if getattr(self, "model", None):
            self.L.llama_model_free(self.model)
            self.model = None
        if getattr(self, "_vocab_model", None):
            self.L.llama_model_free(self._vocab_model)
            self._vocab_model = None
        self._table = None  # the embedding table's memory map

    def __del__(self):
        with contextlib.suppress(Exception):
            self.close()

    # Tokens and text
    def tokenize(self, text: str) -> list[int]:
        """Token ids of plain text (special-token text is not parsed as special)."""
        raw = text.encode("utf-8")
        cap = len(raw) + 8
        buf = (self.L.llama_token * cap)()
        n = self.L.llama_tokenize(self.vocab, raw, len(raw), buf, cap, False, False)
        if n < 0:
            buf = (self.L.llama_token * -n)()
            n = self.L.llama_tokenize(self.vocab, raw, len(raw), buf, -n, False, False)
        return list(buf[:n])

    def token_bytes(self, token: int) -> bytes:
        n = self.L.llama_token_to_piece(self.vocab, token, self._piece_buf, len(self._piece_buf), 0, False)
        if n < 0:
            self._piece_buf = ctypes.create_string_buffer(-n)
            n = self.L.llama_token_to_piece(self.vocab, token, self._piece_buf, -n, 0, False)
        return self._piece_buf.raw[:n]

    def detokenize(self, tokens: list[int]) -> str:
        return b"".join(self.token_bytes(t) for t in tokens).decode("utf-8", errors="replace")

    # Evaluation
    def reset(self) -> None:
        self.L.llama_memory_clear(self.L.llama_get_memory(self.ctx), True)

    @staticmethod
    def _slot(b, i: int, position: int, seq: int, output: bool) -> None:
        """Batch entry i: its position, its one sequence and whether it gives an output row."""
        b.pos[i] = position
        b.n_seq_id[i] = 1
        b.seq_id[i][0] = seq
        b.logits[i] = 1 if output else 0

    def _decode_tokens(self, tokens: list[int], start_pos: int, want_last: bool, seq: int = 0) -> None:
        b = self._tok_batch
        for first in range(0, len(tokens), self.batch_tokens):
            piece = tokens[first : first + self.batch_tokens]
            last = want_last and first + len(piece) == len(tokens)
            for i, tok in enumerate(piece):
                b.token[i] = tok
                self._slot(b, i, start_pos + first + i, seq, last and i == len(piece) - 1)
            b.n_tokens = len(piece)
            self._check(self.L.llama_decode(self.ctx, b))

    def _decode_embeddings(
        self, embeddings: np.ndarray, start_pos: int, outputs: list[bool] | None = None, seq: int = 0
    ) -> list[np.ndarray]:
        """Rows of `embeddings` at positions from `start_pos`; returns copies of the logits of the rows
        flagged in `outputs` (none if not given)."""
        b = self._emb_batch
        emb = np.ascontiguousarray(embeddings, dtype=np.float32)
        rows = []
        for first in range(0, emb.shape[0], self.batch_tokens):
            piece = emb[first : first + self.batch_tokens]
            n = piece.shape[0]
            flags = outputs[first : first + n] if outputs is not None else [False] * n
            ctypes.memmove(b.embd, piece.ctypes.data, piece.nbytes)
            for i in range(n):
                self._slot(b, i, start_pos + first + i, seq, flags[i])
            b.n_tokens = n
            self._check(self.L.llama_decode(self.ctx, b))
            rows += [self.logits(i).copy() for i in range(n) if flags[i]]
        return rows

    def _check(self, rc: int) -> None:
        if rc != 0:
            raise ModelError(
                f"llama.cpp decode failed (code {rc}); the prompt may exceed the context "
                f"({self.context_tokens} tokens)"
            )

    def slot_logits(
        self, prefix: list[int], audio: np.ndarray, text: list[int], outputs: list[bool]
    ) -> np.ndarray:
        """The aligner's class logits [n_outputs, classes] at the `text` positions flagged in `outputs`, after
        `prefix` tokens and `audio` embeddings. Every input goes in as an embedding (the aligner's model has
        no vocabulary, engine/gguf_export.py), and only the flagged rows pass through its class head."""
        if not self.classes:
            raise ValueError("slot_logits needs a forced aligner's decoder")
        total = len(prefix) + audio.shape[0] + len(text)
        if total >= self.context_tokens:
            raise ModelError(
                f"input of {total} tokens exceeds the aligner context ({self.context_tokens}); "
                "align shorter pieces"
            )
        self._ensure_context(1, total + 1)
        self.reset()
        inputs = np.concatenate(
            [
                embedding_rows(self._table, prefix),
                np.asarray(audio, np.float32),
                embedding_rows(self._table, text),
            ]
        )
        flags = [False] * (len(prefix) + audio.shape[0]) + list(outputs)
        rows = self._decode_embeddings(inputs, 0, flags)
        return np.stack(rows) if rows else np.zeros((0, self.n_vocab), np.float32)

    def _step_many(self, items: list[tuple[int, int, int]]) -> list[np.ndarray]:
        """One llama_decode for (sequence, token, position) items, one token per sequence: the weights are
        read once for all of them. Returns each item's next-token logits (views valid until the next call)."""
        b = self._tok_batch
        for i, (seq, token, position) in enumerate(items):
            b.token[i] = token
            self._slot(b, i, position, seq, True)
        b.n_tokens = len(items)
        self._check(self.L.llama_decode(self.ctx, b))
        return [self.logits(i) for i in range(len(items))]

    def step_batch(self, tokens: list[int], positions: list[int]) -> list[np.ndarray]:
        """One token for each of sequences 0..n-1 in one llama_decode (see generate_batch)."""
        return self._step_many([(i, t, p) for i, (t, p) in enumerate(zip(tokens, positions, strict=True))])

    def logits(self, index: int = -1) -> np.ndarray:
        ptr = self.L.llama_get_logits_ith(self.ctx, index)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))

    def _prompt_length(self, prompt: Prompt, audio: np.ndarray) -> int:
        if audio.shape != (prompt.n_audio, self.n_embd):
            raise ValueError(
                f"audio embeddings {audio.shape} do not fit the prompt ({prompt.n_audio}, {self.n_embd})"
            )
        total = len(prompt.prefix) + prompt.n_audio + len(prompt.suffix)
        if total >= self.context_tokens:
            raise ModelError(
                f"prompt of {total} tokens exceeds the decoder context ({self.context_tokens}); "
                "use shorter chunks"
            )
        return total

    def _prefill_seq(self, prompt: Prompt, audio: np.ndarray, seq: int) -> None:
        self._decode_tokens(prompt.prefix, 0, False, seq)
        self._decode_embeddings(audio, len(prompt.prefix), seq=seq)
        self._decode_tokens(prompt.suffix, len(prompt.prefix) + prompt.n_audio, True, seq)

    def prefill_batch(
        self, prompts: list[Prompt], audios: list[np.ndarray], extra_tokens: list[int] | None = None
    ) -> tuple[list[int], list[np.ndarray]]:
        """Prompt i with its audio as sequence i, each in its own llama_decode calls (one chunk's audio
        already fills the prefill's matrix products), with room for extra_tokens[i] more tokens. Returns
        the prompt lengths and copies of each sequence's first-token logits."""
        totals = [self._prompt_length(p, a) for p, a in zip(prompts, audios, strict=True)]
        return totals, self._prefill_all(prompts, audios, totals, extra_tokens or [1] * len(prompts))

    def _prefill_all(
        self, prompts: list[Prompt], audios: list[np.ndarray], totals: list[int], extra: list[int]
    ) -> list[np.ndarray]:
        self._ensure_context(len(prompts), max(t + e + 1 for t, e in zip(totals, extra, strict=True)))
        self.reset()
        firsts = []
        for seq, (prompt, audio) in enumerate(zip(prompts, audios, strict=True)):
            self._prefill_seq(prompt, audio, seq)
            firsts.append(self.logits().copy())
        return firsts

    def generate_batch(
        self,
        prompts: list[Prompt],
        audios: list[np.ndarray],
        max_new_tokens: list[int],
        temperatures: tuple[float, ...] | None = None,
    ) -> list[Generation]:
        """Greedy generation with the repetition guard and temperature fallback (`temperatures` overrides the
        options' schedule) for several chunks at once: each is its own sequence, and they decode in lockstep,
        one llama_decode per step for all of them (decoding is memory-bound: the weights are read once per
        step whatever the number of sequences). A sequence that loops or runs out of budget is retried alone
        with the temperature fallback afterwards; the results equal separate one-chunk calls."""
        temperatures = temperatures or self.options.temperatures
        totals = [self._prompt_length(p, a) for p, a in zip(prompts, audios, strict=True)]
        budgets = [
            max(1, min(m, self.context_tokens - t - 1)) for m, t in zip(max_new_tokens, totals, strict=True)
        ]
        firsts = self._prefill_all(prompts, audios, totals, budgets)
        rngs = [np.random.default_rng(self.options.seed + 1) for _ in prompts]
        seqs = list(range(len(prompts)))
        greedy = self._sample(seqs, firsts, totals, budgets, temperatures[0], rngs)
        results = []
        for seq, gen in enumerate(greedy):
            gen.prompt_tokens, gen.logits_first = totals[seq], firsts[seq]
            if not gen.finished or gen.looped:
                gen = self._fall_back(seq, gen, totals[seq], budgets[seq], temperatures)
            results.append(gen)
        return results

    def _fall_back(
        self, seq: int, greedy: Generation, n_prompt: int, budget: int, temperatures: tuple[float, ...]
    ) -> Generation:
        """Retry sequence `seq` from its cached prompt at each further temperature; if every try loops or
        runs out of budget, keep the greedy output with its runaway part cut to one copy."""
        first = greedy.logits_first
        for attempt, temperature in enumerate(temperatures[1:], start=2):
            self.L.llama_memory_seq_rm(self.L.llama_get_memory(self.ctx), seq, n_prompt, -1)
            rng = np.random.default_rng(self.options.seed + attempt)
            gen = self._sample([seq], [first], [n_prompt], [budget], temperature, [rng])[0]
            gen.attempts, gen.prompt_tokens, gen.logits_first = attempt, n_prompt, first
            if gen.finished and not gen.looped:
                return gen
        cut = loop_start(greedy.tokens)
        if cut is not None:
            greedy.tokens = greedy.tokens[:cut]
        greedy.attempts = len(temperatures)
        return greedy

    def _sample(
        self,
        seqs: list[int],
        firsts: list[np.ndarray],
        starts: list[int],
        budgets: list[int],
        temperature: float,
        rngs: list,
    ) -> list[Generation]:
        """Sample the sequences `seqs` in lockstep from their first logits until each ends (end of turn,
        loop, or budget)."""
        n = len(seqs)
        tokens: list[list[int]] = [[] for _ in range(n)]
        done: list[Generation | None] = [None] * n
        logits = list(firsts)
        pos = list(starts)
        active = list(range(n))
        while active:
            feed = []
            for k in active:
                if len(tokens[k]) >= budgets[k]:
                    done[k] = Generation(tokens[k], False, False, temperature)
                    continue
                token = self._pick(logits[k], temperature, rngs[k])
                if token in self.eos_ids:
                    done[k] = Generation(tokens[k], True, False, temperature)
                    continue
                tokens[k].append(token)
                if loop_start(tokens[k]) is not None:
                    done[k] = Generation(tokens[k], False, True, temperature)
                    continue
                feed.append((k, token))
            if not feed:
                break
            rows = self._step_many([(seqs[k], token, pos[k]) for k, token in feed])
            for row, (k, _) in zip(rows, feed, strict=True):
                logits[k] = row
                pos[k] += 1
            active = [k for k, _ in feed]
        return [g for g in done if g is not None]

    @staticmethod
    def _pick(logits: np.ndarray, temperature: float, rng) -> int:
        if temperature <= 0:
            return int(np.argmax(logits))
        z = logits.astype(np.float64) / temperature
        z -= z.max()
        p = np.exp(z)
        p /= p.sum()
        return int(rng.choice(p.size, p=p))
