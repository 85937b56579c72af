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
import os
from dataclasses import dataclass, field

import numpy as np

from .errors import ModelError
from .gguf_export import DECODER_QUANTS, decoder_file
from .llama_runtime import llama
from .model_folder import ModelInfo
from .prompt import Prompt


@dataclass(frozen=True)
class DecoderOptions:
    quant: str | None = None  # f32, f16, q8_0, q4_k; None picks the best the folder has for the device
    threads: int = 0  # 0: all cores
    gpu_layers: int = 0  # layers offloaded when llama.cpp has a GPU backend; -1 = all
    device_index: int = 0
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

    A pattern of p tokens counts as a loop when it repeats max(4, 32 // p) times in a row at the tail:
    32 copies of one token, 16 of two, 4 of eight or more. The cut keeps one copy of the shortest period.
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


def default_quant(available: list[str], gpu: bool) -> str:
    """The CPU default is q8_0 (see README, speed); on a GPU f16 where present."""
    order = ["f16", "q8_0", "f32", "q4_k"] if gpu else ["q8_0", "q4_k", "f16", "f32"]
    for q in order:
        if q in available:
            return q
    raise ModelError("model folder has no decoder; run `qwen3asr convert`")


class TextDecoder:
    """One llama.cpp model and context for a model folder."""

    def __init__(self, info: ModelInfo, options: DecoderOptions = DecoderOptions(), embeddings: bool = False):
        L = llama()
        self.L = L
        self.info = info
        self.options = options
        available = [q for q in DECODER_QUANTS if decoder_file(q) in info.files]
        gpu = options.gpu_layers != 0 and bool(L.llama_supports_gpu_offload())
        self.quant = options.quant or default_quant(available, gpu)
        path = info.path(decoder_file(self.quant))
        mp = L.llama_model_default_params()
        mp.n_gpu_layers = options.gpu_layers if gpu else 0
        mp.main_gpu = options.device_index
        mp.use_extra_bufts = options.extra_buffer_types
        self.model = L.llama_model_load_from_file(str(path).encode(), mp)
        if not self.model:
            raise ModelError(
                f"{path}: llama.cpp cannot load it; convert the model again (`qwen3asr convert`)"
            )
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        self.n_embd = L.llama_model_n_embd(self.model)
        if self.n_embd != info.text.hidden_size or self.n_vocab != info.text.vocab_size:
            raise ModelError(f"{path}: does not match model.json (dims); convert the model again")
        cp = L.llama_context_default_params()
        cp.n_ctx = options.context_tokens
        cp.n_batch = cp.n_ubatch = options.batch_tokens
        threads = options.threads or os.cpu_count() or 1
        cp.n_threads = cp.n_threads_batch = threads
        flash = options.flash_attention if options.flash_attention is not None else not options.kv_f32
        cp.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash else L.LLAMA_FLASH_ATTN_TYPE_DISABLED
        if options.kv_f32:
            cp.type_k = cp.type_v = 0  # GGML_TYPE_F32
        cp.no_perf = True
        if embeddings:
            cp.embeddings = True
            cp.pooling_type = L.LLAMA_POOLING_TYPE_NONE
        self.ctx = L.llama_init_from_model(self.model, cp)
        if not self.ctx:
            raise ModelError(
                f"{path}: llama.cpp could not create a context ({options.context_tokens} tokens)"
            )
        self.context_tokens = options.context_tokens
        self.batch_tokens = options.batch_tokens
        self._tok_batch = L.llama_batch_init(self.batch_tokens, 0, 1)
        self._emb_batch = L.llama_batch_init(self.batch_tokens, self.n_embd, 1)
        self.eos_ids = set(info.eos_token_ids) | {info.token_ids["im_end"]}
        self._piece_buf = ctypes.create_string_buffer(256)

    def close(self) -> None:
        L = self.L
        if getattr(self, "ctx", None):
            L.llama_batch_free(self._tok_batch)
            L.llama_batch_free(self._emb_batch)
            L.llama_free(self.ctx)
            L.llama_model_free(self.model)
            self.ctx = None

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

    def _decode_tokens(self, tokens: list[int], start_pos: int, want_last: bool) -> None:
        b = self._tok_batch
        for first in range(0, len(tokens), self.batch_tokens):
            piece = tokens[first : first + self.batch_tokens]
            for i, tok in enumerate(piece):
                b.token[i] = tok
                b.pos[i] = start_pos + first + i
                b.n_seq_id[i] = 1
                b.seq_id[i][0] = 0
                b.logits[i] = 0
            if want_last and first + len(piece) == len(tokens):
                b.logits[len(piece) - 1] = 1
            b.n_tokens = len(piece)
            self._check(self.L.llama_decode(self.ctx, b))

    def _decode_embeddings(self, embeddings: np.ndarray, start_pos: int, want_outputs: bool = False) -> None:
        b = self._emb_batch
        emb = np.ascontiguousarray(embeddings, dtype=np.float32)
        for first in range(0, emb.shape[0], self.batch_tokens):
            piece = emb[first : first + self.batch_tokens]
            n = piece.shape[0]
            ctypes.memmove(b.embd, piece.ctypes.data, piece.nbytes)
            for i in range(n):
                b.pos[i] = start_pos + first + i
                b.n_seq_id[i] = 1
                b.seq_id[i][0] = 0
                b.logits[i] = 1 if want_outputs else 0
            b.n_tokens = n
            self._check(self.L.llama_decode(self.ctx, b))

    def _check(self, rc: int) -> None:
        if rc != 0:
            raise ModelError(
                f"llama.cpp decode failed (code {rc}); the prompt may exceed the context "
                f"({self.context_tokens} tokens)"
            )

    def hidden_states(
        self, prefix: list[int], audio: np.ndarray, text: list[int], outputs: list[bool]
    ) -> np.ndarray:
        """Final-normed hidden states [n_outputs, hidden] at the `text` positions flagged in `outputs`, after
        `prefix` tokens and `audio` embeddings (needs a context made with embeddings=True)."""
        total = len(prefix) + audio.shape[0] + len(text)
        if total >= self.context_tokens:
            raise ModelError(
                f"input of {total} tokens exceeds the aligner context ({self.context_tokens}); "
                "align shorter pieces"
            )
        self.reset()
        self._decode_tokens(prefix, 0, False)
        self._decode_embeddings(audio, len(prefix))
        start = len(prefix) + audio.shape[0]
        rows = []
        b = self._tok_batch
        for first in range(0, len(text), self.batch_tokens):
            piece = text[first : first + self.batch_tokens]
            flags = outputs[first : first + self.batch_tokens]
            for i, tok in enumerate(piece):
                b.token[i] = tok
                b.pos[i] = start + first + i
                b.n_seq_id[i] = 1
                b.seq_id[i][0] = 0
                b.logits[i] = 1 if flags[i] else 0
            b.n_tokens = len(piece)
            self._check(self.L.llama_decode(self.ctx, b))
            for i, flag in enumerate(flags):
                if flag:
                    ptr = self.L.llama_get_embeddings_ith(self.ctx, i)
                    rows.append(np.ctypeslib.as_array(ptr, shape=(self.n_embd,)).copy())
        return np.stack(rows) if rows else np.zeros((0, self.n_embd), np.float32)

    def step(self, token: int, position: int) -> np.ndarray:
        """Feed one token at `position`; returns the next-token logits (a view valid until the next call)."""
        self._decode_tokens([token], position, True)
        return self.logits()

    def logits(self, index: int = -1) -> np.ndarray:
        ptr = self.L.llama_get_logits_ith(self.ctx, index)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))

    def prefill(self, prompt: Prompt, audio: np.ndarray) -> int:
        """Evaluate the whole prompt with `audio` [n_audio, hidden] injected; returns the prompt length."""
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
        self.reset()
        self._decode_tokens(prompt.prefix, 0, False)
        self._decode_embeddings(audio, len(prompt.prefix))
        self._decode_tokens(prompt.suffix, len(prompt.prefix) + prompt.n_audio, True)
        return total

    def generate(
        self,
        prompt: Prompt,
        audio: np.ndarray,
        max_new_tokens: int,
        temperatures: tuple[float, ...] | None = None,
    ) -> Generation:
        """Greedy generation with the repetition guard and temperature fallback (`temperatures` overrides
        the options' schedule; (0.0,) is greedy only)."""
        temperatures = temperatures or self.options.temperatures
        n_prompt = self.prefill(prompt, audio)
        first = self.logits().copy()
        budget = max(1, min(max_new_tokens, self.context_tokens - n_prompt - 1))
        best: Generation | None = None
        for attempt, temperature in enumerate(temperatures, start=1):
            if attempt > 1:
                self.L.llama_memory_seq_rm(self.L.llama_get_memory(self.ctx), 0, n_prompt, -1)
            rng = np.random.default_rng(self.options.seed + attempt)
            gen = self._sample(first, n_prompt, budget, temperature, rng)
            gen.attempts, gen.prompt_tokens, gen.logits_first = attempt, n_prompt, first
            if best is None:
                best = gen
            if gen.finished and not gen.looped:
                return gen
        # Every try looped or ran out of budget: keep the greedy output, its runaway part cut to one copy.
        assert best is not None
        cut = loop_start(best.tokens)
        if cut is not None:
            best.tokens = best.tokens[:cut]
        best.attempts = len(temperatures)
        return best

    def _sample(self, first: np.ndarray, n_prompt: int, budget: int, temperature: float, rng) -> Generation:
        tokens: list[int] = []
        logits = first
        pos = n_prompt
        while len(tokens) < budget:
            token = self._pick(logits, temperature, rng)
            if token in self.eos_ids:
                return Generation(tokens, True, False, temperature)
            tokens.append(token)
            if loop_start(tokens) is not None:
                return Generation(tokens, False, True, temperature)
            logits = self.step(token, pos)
            pos += 1
        return Generation(tokens, False, False, temperature)

    @staticmethod
    def _pick(logits: np.ndarray, temperature: float, rng) -> int:
        if temperature <= 0:
            return int(np.argmax(logits))
        z = logits.astype(np.float64) / temperature
        z -= z.max()
        p = np.exp(z)
        p /= p.sum()
        return int(rng.choice(p.size, p=p))
