"""Run the split audio encoder with onnxruntime: mel [n_mels, L] -> audio embeddings [T, output_dim].

The frontend runs over whole chunks of chunk_frames mel frames, many per call; the tail chunk is zero-padded to
a full chunk as the reference does, and only its valid tokens are kept. The backend runs over whole attention
windows, a bounded group per call, so memory stays flat however long the input is; windows are independent,
so grouping does not change the result.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
from dataclasses import dataclass

import numpy as np

from .errors import ModelError
from .hf_checkpoint import audio_tokens_for_frames, conv_out_len
from .llama_runtime import native_bf16
from .model_folder import ModelInfo, backend_file, frontend_file
from .providers import choose_providers


def _glibc_trim():
    """glibc's malloc_trim, or None where the C library is not glibc (macOS, Windows, musl)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError, TypeError):
        return None


_TRIM = _glibc_trim() if platform.system() == "Linux" else None


def release_freed_memory() -> None:
    """Give the memory an encoder run freed back to the system. Without the arena, ONNX Runtime frees a run's
    activations to malloc, but glibc keeps most of them in its heaps: after each 30 s chunk of the 0.6B
    aligner's encoder about 330 MB stayed counted against the process (measured with /proc/self/status)."""
    if _TRIM is not None:
        _TRIM(0)


def _read_ahead(path) -> None:
    """Ask the kernel to read `path` into the page cache now, in large sequential reads, where the system
    allows it (posix_fadvise): unpacked weights are read through a memory map, page fault by page fault as the
    first run touches them, which from a cold disk cache took twice as long as reading the file whole (0.6B
    fp32 aligner encoder: the first subtitle 14.3 -> 29.7 s after the page cache was dropped)."""
    advise, willneed = getattr(os, "posix_fadvise", None), getattr(os, "POSIX_FADV_WILLNEED", None)
    if advise is None or willneed is None:
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        advise(fd, 0, 0, willneed)
    except OSError:
        pass
    finally:
        os.close(fd)


# Encoder precisions run with ONNX Runtime's weight prepacking off on the CPU (AudioEncoder).
UNPACKED_PRECISIONS = frozenset({"fp32", "q8"})


@dataclass(frozen=True)
class EncoderOptions:
    precision: str | None = None  # fp32, fp16, int8, q8; None picks by device
    device: str | None = None  # auto, gpu, dml, cuda, cpu
    device_index: int = 0
    threads: int = 0  # 0 lets onnxruntime decide
    frontend_chunks_per_call: int = 16
    backend_windows_per_call: int = 8


def default_precision(available: list[str], gpu: bool, exact: bool = False) -> str:
    """fp16 on a GPU provider (else fp32). On a CPU it pairs with the decoder's default (engine/decoder.py
    default_quant): beside q8_0 the q8 encoder, whose 8-bit weight blocks take a quarter of fp32's memory
    (peak of the whole job at the 0.6B dimensions 3.5 -> 2.3 GB) for 3 % more time, with float32 activations
    (cosine 0.99994 to the reference; int8's dynamic activations give 0.9985); fp32, the exact encoder, when
    `exact` (the decoder runs bf16, the official weights exactly, or the CPU is not an x86 one, where q8's
    speed was not measured). Whatever the folder has otherwise."""
    if gpu:
        order = ["fp16", "fp32", "q8", "int8"]
    else:
        order = ["fp32", "q8", "int8", "fp16"] if exact else ["q8", "fp32", "int8", "fp16"]
    for p in order:
        if p in available:
            return p
    raise ModelError("model folder has no encoder files; run `qwen3asr convert`")


class AudioEncoder:
    """The two ONNX sessions of one model folder."""

    def __init__(self, info: ModelInfo, options: EncoderOptions = EncoderOptions()):
        import onnxruntime as ort

        self.info = info
        self.options = options
        providers = choose_providers(options.device, options.device_index)
        gpu = providers[0][0] != "CPUExecutionProvider"
        self.precision = options.precision or default_precision(
            info.encoder_precisions,
            gpu,
            not gpu and (platform.machine().lower() not in ("x86_64", "amd64") or native_bf16()),
        )
        if self.precision not in info.encoder_precisions:
            raise ModelError(
                f"{info.folder}: no {self.precision} encoder; convert with "
                f"`qwen3asr convert SRC {info.folder} --encoder-precision {self.precision}`"
            )
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # No CPU memory arena: with it, ONNX Runtime keeps the largest activations it ever needed (~650 MB
        # after one 30 s chunk of the 0.6B encoder, held for the whole job beside both decoders); without it
        # they are freed after each run, at no measured cost in speed (README, Speed).
        so.enable_cpu_mem_arena = False
        self.gpu = gpu
        if not gpu and self.precision in UNPACKED_PRECISIONS:
            # The weights stay the `.data` file mapped into memory instead of being copied into packed
            # matrices when the session is made: the fp32 aligner encoder's session is made in 0.1 s instead
            # of 1.2-1.8 s, nothing is held twice while packing, and making it again is cheap (release).
            so.add_session_config_entry("session.disable_prepacking", "1")
        if options.threads:
            so.intra_op_num_threads = options.threads
        self._session_options = so
        self._providers = providers
        self._frontend = self._backend = None
        self._open()
        self.providers = self._frontend.get_providers()

    def _open(self) -> None:
        import onnxruntime as ort

        info, so = self.info, self._session_options
        for name in (frontend_file(self.precision), backend_file(self.precision)):
            if name + ".data" in info.files:
                data = info.path(name + ".data")  # external weights: present, the right size, intact ends
                if self.releasable:
                    _read_ahead(data)
        names = [p for p, _ in self._providers]
        opts = [o for _, o in self._providers]
        try:
            self._frontend = ort.InferenceSession(
                str(info.path(frontend_file(self.precision))), so, providers=names, provider_options=opts
            )
            self._backend = ort.InferenceSession(
                str(info.path(backend_file(self.precision))), so, providers=names, provider_options=opts
            )
        except ModelError:
            raise
        except Exception as exc:  # onnxruntime raises its own types for corrupt graphs
            raise ModelError(
                f"{info.folder}: cannot load the {self.precision} encoder ({str(exc).splitlines()[0]}); "
                f"convert the model again (`qwen3asr convert SRC {info.folder}`)"
            ) from exc

    @property
    def frontend(self):
        if self._frontend is None:
            self._open()
        return self._frontend

    @property
    def backend(self):
        if self._backend is None:
            self._open()
        return self._backend

    @property
    def releasable(self) -> bool:
        """Whether release() gives memory back cheaply: on the CPU with unpacked weights (UNPACKED_PRECISIONS),
        the sessions are made again in about 0.1 s and their weights read from the page cache."""
        return not self.gpu and self.precision in UNPACKED_PRECISIONS

    def release(self) -> None:
        """Close the sessions until the next encode makes them again (the pipeline does so for the model
        whose turn it is not, when releasable)."""
        self._frontend = self._backend = None
        release_freed_memory()

    def num_tokens(self, n_frames: int) -> int:
        return audio_tokens_for_frames(n_frames, self.info.audio)

    def frontend_tokens(self, mel: np.ndarray) -> np.ndarray:
        """Frontend output for mel [n_mels, L]: the valid tokens of every chunk, [T, d_model]."""
        dims = self.info.audio
        n_mels, n_frames = mel.shape
        if n_mels != dims.num_mel_bins:
            raise ValueError(f"mel has {n_mels} bins, the model expects {dims.num_mel_bins}")
        chunk = dims.chunk_frames
        n_chunks = -(-n_frames // chunk)
        tail = n_frames - (n_chunks - 1) * chunk
        step = max(1, self.options.frontend_chunks_per_call)
        out = np.empty((self.num_tokens(n_frames), dims.d_model), dtype=np.float32)
        row = 0
        for first in range(0, n_chunks, step):
            last = min(n_chunks, first + step)
            block = np.zeros((last - first, 1, n_mels, chunk), dtype=np.float32)
            piece = mel[:, first * chunk : last * chunk]
            full = piece.shape[1] // chunk
            block[:full, 0] = piece[:, : full * chunk].reshape(n_mels, full, chunk).transpose(1, 0, 2)
            if full < last - first:  # the zero-padded tail chunk
                block[full, 0, :, : piece.shape[1] - full * chunk] = piece[:, full * chunk :]
            tokens = self.frontend.run(None, {"mel_chunks": block})[0]
            for i in range(last - first):
                keep = dims.tokens_per_chunk if first + i < n_chunks - 1 else conv_out_len(tail)
                out[row : row + keep] = tokens[i, :keep]
                row += keep
        return out

    def backend_embeddings(self, frames: np.ndarray) -> np.ndarray:
        """Backend output for frontend tokens [T, d_model]: [T, output_dim], in groups of whole windows."""
        group = self.info.audio.window_tokens * max(1, self.options.backend_windows_per_call)
        out = np.empty((frames.shape[0], self.info.audio.output_dim), dtype=np.float32)
        for start in range(0, frames.shape[0], group):
            piece = np.ascontiguousarray(frames[start : start + group])
            out[start : start + piece.shape[0]] = self.backend.run(None, {"frames": piece})[0]
        return out

    def encode(self, mel: np.ndarray) -> np.ndarray:
        """Audio embeddings [T, output_dim] for mel [n_mels, L], ready to replace the audio placeholders."""
        if mel.shape[1] == 0:
            return np.zeros((0, self.info.audio.output_dim), dtype=np.float32)
        try:
            return self.backend_embeddings(self.frontend_tokens(np.asarray(mel, dtype=np.float32)))
        finally:
            release_freed_memory()
