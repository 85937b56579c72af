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
