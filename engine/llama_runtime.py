"""One-time llama.cpp set-up through llama-cpp-python: backend init and log routing."""

from __future__ import annotations

import ctypes
import os
import threading

_lock = threading.Lock()
_ready = False
_log_callback = None  # kept alive for as long as llama.cpp may call it


def llama():
    """The llama_cpp module, initialised once; llama.cpp's own logs go away unless QWEN3ASR_LLAMA_LOG=1."""
    global _ready, _log_callback
    import llama_cpp

    with _lock:
        if not _ready:
            if os.environ.get("QWEN3ASR_LLAMA_LOG") != "1":

                @llama_cpp.llama_log_callback
                def _quiet(level, text, user_data):  # noqa: ARG001
                    return None

                _log_callback = _quiet
                llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))
            llama_cpp.llama_backend_init()
            _ready = True
    return llama_cpp


def supports_gpu_offload() -> bool:
    return bool(llama().llama_supports_gpu_offload())


def cpu_features() -> set[str]:
    """The CPU features llama.cpp's CPU backend was built for and runs with (its system info, `NAME = 1`)."""
    info = llama().llama_print_system_info().decode("utf-8", "replace")
    found = set()
    for part in info.split("|"):
        name, _, value = part.rpartition("=")
        name = name.split(":")[-1].strip()
        if name and value.strip() == "1":
            found.add(name)
    return found


def native_bf16() -> bool:
    """True when llama.cpp multiplies bf16 weights with the CPU's own bf16 dot-product instructions
    (AVX512_BF16): bf16 weights then prefill about twice as fast as q8_0 and batch well when decoding.
    QWEN3ASR_NATIVE_BF16=0 or 1 overrides the detection."""
    forced = os.environ.get("QWEN3ASR_NATIVE_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    return "AVX512_BF16" in cpu_features()
