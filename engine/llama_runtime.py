"""One-time llama.cpp set-up through llama-cpp-python: backend init and log routing."""

from __future__ import annotations

import collections
import ctypes
import functools
import os
import sys
import threading
from dataclasses import dataclass

_lock = threading.Lock()
_ready = False
_log_callback = None  # kept alive for as long as llama.cpp may call it
_errors: collections.deque = collections.deque(maxlen=20)  # llama.cpp's latest error lines, for messages
GGML_LOG_LEVEL_ERROR = 4  # ggml.h, enum ggml_log_level


def llama():
    """The llama_cpp module, initialised once; llama.cpp's own logs go away unless QWEN3ASR_LLAMA_LOG=1,
    but its errors are kept for our messages (`last_error`)."""
    global _ready, _log_callback
    import llama_cpp

    with _lock:
        if not _ready:
            if os.environ.get("QWEN3ASR_LLAMA_LOG") != "1":

                @llama_cpp.llama_log_callback
                def _quiet(level, text, user_data):  # noqa: ARG001
                    if level == GGML_LOG_LEVEL_ERROR and text:
                        _errors.append(text.decode("utf-8", "replace").strip())

                _log_callback = _quiet
                llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))
            llama_cpp.llama_backend_init()
            _ready = True
            missing = missing_cpu_features(_features_of(llama_cpp))
            if missing:
                sys.stderr.write(
                    f"warning: llama-cpp-python was built for CPU features this CPU lacks ({', '.join(missing)}) "
                    "and may stop with an illegal instruction; rebuild it here: pip install --force-reinstall "
                    "--no-cache-dir --no-deps llama-cpp-python\n"
                )
    return llama_cpp


def clear_errors() -> None:
    _errors.clear()


def last_error() -> str | None:
    """llama.cpp's latest error line since `clear_errors()` (None when it logged none, or logs go to stderr)."""
    return _errors[-1] if _errors else None


@functools.cache
def cpu_features() -> frozenset[str]:
    """The CPU features llama.cpp's CPU backend was built for and runs with (its system info, `NAME = 1`)."""
    return _features_of(llama())


def _features_of(llama_cpp) -> frozenset[str]:
    info = llama_cpp.llama_print_system_info().decode("utf-8", "replace")
    found = set()
    for part in info.split("|"):
        name, _, value = part.rpartition("=")
        name = name.split(":")[-1].strip()
        if name and value.strip() == "1":
            found.add(name)
    return frozenset(found)


# llama.cpp's names for x86 CPU features and the flags Linux reports for them in /proc/cpuinfo.
_CPUINFO_FLAGS = {
    "SSE3": "pni",
    "SSSE3": "ssse3",
    "AVX": "avx",
    "AVX2": "avx2",
    "F16C": "f16c",
    "FMA": "fma",
    "BMI2": "bmi2",
    "AVX_VNNI": "avx_vnni",
    "AVX512": "avx512f",
    "AVX512_VBMI": "avx512vbmi",
    "AVX512_VNNI": "avx512_vnni",
    "AVX512_BF16": "avx512_bf16",
    "AMX_INT8": "amx_int8",
}


@functools.cache
def cpu_flags() -> frozenset[str] | None:
    """The CPU's feature flags as Linux reports them, or None where /proc/cpuinfo is not available."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        return None
    return None


def missing_cpu_features(
    features: frozenset[str] | None = None, flags: frozenset[str] | None = None
) -> list[str]:
    """llama.cpp features this CPU lacks: a llama-cpp-python built on another machine (a wheel cached from
    a newer CPU) would stop with an illegal instruction in the kernels that use them."""
    features = cpu_features() if features is None else features
    flags = cpu_flags() if flags is None else flags
    if not flags:
        return []
    return sorted(f for f in features if f in _CPUINFO_FLAGS and _CPUINFO_FLAGS[f] not in flags)


def native_bf16() -> bool:
    """True when llama.cpp multiplies bf16 weights with the CPU's own bf16 dot-product instructions
    (AVX512_BF16, built in and present on this CPU): bf16 weights then prefill about twice as fast as q8_0
    and batch well when decoding. QWEN3ASR_NATIVE_BF16=0 or 1 overrides the detection."""
    forced = os.environ.get("QWEN3ASR_NATIVE_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    return "AVX512_BF16" in cpu_features() and "AVX512_BF16" not in missing_cpu_features()


# ggml-backend.h, enum ggml_backend_dev_type
_DEV_GPU, _DEV_IGPU = 1, 2


@dataclass(frozen=True)
class Device:
    """A GPU llama.cpp can offload to; `index` is what `--device-index` (llama.cpp's main_gpu) counts."""

    index: int
    name: str  # the backend's device name, e.g. CUDA0, Vulkan0, Metal
    description: str
    free: int  # bytes
    total: int


def _ggml(llama_cpp) -> dict:
    """ggml's device API, from the ggml libraries beside the llama library in use (on Windows a DLL's
    dependencies are not searched through its own handle, so they are opened by name)."""
    import pathlib

    from llama_cpp._ctypes_extensions import load_shared_library

    folder = pathlib.Path(llama_cpp.llama_cpp._lib._name).parent
    libs = [load_shared_library(name, folder) for name in ("ggml-base", "ggml")]

    def symbol(name, restype, argtypes):
        for lib in libs:
            try:
                fn = getattr(lib, name)
            except AttributeError:
                continue
            fn.restype, fn.argtypes = restype, argtypes
            return fn
        raise AttributeError(f"{name} is in neither ggml library of {folder}")

    size_t, p = ctypes.c_size_t, ctypes.c_void_p
    return {
        "count": symbol("ggml_backend_dev_count", size_t, []),
        "get": symbol("ggml_backend_dev_get", p, [size_t]),
        "name": symbol("ggml_backend_dev_name", ctypes.c_char_p, [p]),
        "description": symbol("ggml_backend_dev_description", ctypes.c_char_p, [p]),
        "type": symbol("ggml_backend_dev_type", ctypes.c_int, [p]),
        "memory": symbol(
            "ggml_backend_dev_memory", None, [p, ctypes.POINTER(size_t), ctypes.POINTER(size_t)]
        ),
    }


def gpu_devices(memory: bool = False) -> list[Device]:
    """The GPUs the decoder can use, in the order llama.cpp numbers them for main_gpu (src/llama.cpp,
    llama_model_load's device list: discrete GPUs, and integrated ones only when there is no discrete one).
    Empty for a CPU-only build of llama.cpp. `memory` asks each GPU for its memory (on CUDA that makes a
    context on every GPU, so only `qwen3asr devices` asks). Raises OSError or AttributeError when the ggml
    libraries beside llama.cpp cannot be read."""
    L = llama()
    if not L.llama_supports_gpu_offload():
        return []
    api = _ggml(L)
    found: dict[int, list] = {_DEV_GPU: [], _DEV_IGPU: []}
    for i in range(api["count"]()):
        dev = api["get"](i)
        kind = api["type"](dev)
        if kind in found:
            found[kind].append(dev)
    chosen = found[_DEV_GPU] or found[_DEV_IGPU]
    result = []
    for index, dev in enumerate(chosen):
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        if memory:
            api["memory"](dev, ctypes.byref(free), ctypes.byref(total))
        result.append(
            Device(
                index,
                (api["name"](dev) or b"").decode("utf-8", "replace"),
                (api["description"](dev) or b"").decode("utf-8", "replace"),
                free.value,
                total.value,
            )
        )
    return result


def library_path() -> str:
    """The llama.cpp library in use: llama-cpp-python's own, or the build LLAMA_CPP_LIB_PATH names."""
    return llama().llama_cpp._lib._name
