"""Choosing onnxruntime's execution provider: DirectML on Windows, CUDA where present, else the CPU."""

from __future__ import annotations

from .errors import Qwen3ASRError

# Short names users type -> onnxruntime provider names, in automatic preference order.
PROVIDERS = {
    "dml": "DmlExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
ALIASES = {"directml": "dml", "gpu": None, "auto": None}


def available_providers() -> list[str]:
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def choose_providers(
    requested: str | None = None, device_index: int = 0, available: list[str] | None = None
) -> list[tuple[str, dict]]:
    """Provider list for an InferenceSession: the requested one (or the best available) with CPU fallback.

    `requested` is None/"auto" (best available), "gpu" (DirectML or CUDA, whichever exists), or one of
    "dml", "cuda", "cpu". Asking for a provider this onnxruntime build lacks is an error that names the fix.
    """
    available = available_providers() if available is None else available
    key = (requested or "auto").lower()
    key = ALIASES.get(key, key)
    if key is None:
        wanted = [name for short, name in PROVIDERS.items() if short != "cpu" and name in available]
        if requested and requested.lower() == "gpu" and not wanted:
            raise Qwen3ASRError(
                "no GPU execution provider in this onnxruntime; install onnxruntime-gpu (CUDA) or, "
                "on Windows, onnxruntime-directml, or use --device cpu"
            )
        chosen = wanted[:1]
    elif key in PROVIDERS:
        if PROVIDERS[key] not in available:
            fix = {
                "dml": "pip install onnxruntime-directml (Windows)",
                "cuda": "pip install qwen3asr-plugin[cuda] (onnxruntime-gpu)",
            }.get(key, "")
            raise Qwen3ASRError(
                f"execution provider {key} is not available here; {fix or 'use --device cpu'}"
            )
        chosen = [PROVIDERS[key]] if key != "cpu" else []
    else:
        raise Qwen3ASRError(f"unknown device {requested!r}; choose auto, gpu, {', '.join(PROVIDERS)}")
    result = [(name, {"device_id": device_index}) for name in chosen]
    result.append(("CPUExecutionProvider", {}))
    return result
